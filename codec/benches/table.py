#!/usr/bin/env python3
"""Prints the midge-codec vs rumqttc table of docs/benchmarks.md from criterion's results.

Run after `cargo bench -p midge-codec --bench codec`, from anywhere in the workspace:
    python3 codec/benches/table.py [path/to/target/criterion]
Medians come from <group>/<function>/new/estimates.json ("median" point estimate, in ns).
"""

import json
import sys
from pathlib import Path

ROWS = [
    f"{packet}/{op}"
    for packet in [
        "publish_64B_v311",
        "publish_4KiB_v311",
        "publish_64B_v5",
        "publish_4KiB_v5",
        "connect_v5",
        "subscribe_10_v311",
        "subscribe_10_v5",
    ]
    for op in ["decode", "encode"]
]


def criterion_dir() -> Path:
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "target" / "criterion").is_dir():
            return parent / "target" / "criterion"
    sys.exit("target/criterion not found: run the benchmark first, or pass its path")


def median_ns(root: Path, group: str, function: str) -> float:
    # Criterion turns the '/' of a group name into '_' in directory names.
    path = root / group.replace("/", "_") / function / "new" / "estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


def fmt(ns: float) -> str:
    if ns >= 1000:
        return f"{ns / 1000:.2f} µs"
    return f"{ns:.1f} ns"


def main() -> None:
    root = criterion_dir()
    print("| row | midge median | rumqttc median | ratio (rumqttc/midge) |")
    print("|---|---:|---:|---:|")
    for row in ROWS:
        try:
            midge = median_ns(root, row, "midge")
            rumqttc = median_ns(root, row, "rumqttc")
        except FileNotFoundError:
            print(f"| `{row}` | – | – | not run |")
            continue
        ratio = rumqttc / midge
        print(f"| `{row}` | {fmt(midge)} | {fmt(rumqttc)} | {ratio:.2f} |")


if __name__ == "__main__":
    main()

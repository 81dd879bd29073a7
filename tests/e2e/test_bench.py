"""Smoke runs of the load generator and of the comparison with Mosquitto: seconds, not
minutes, and no timing assertions; they check that midge-bench works, that both brokers
answer every row of the quick comparison, and that QoS 1 loses nothing in a pairs run."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import MIDGE

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(os.environ.get("MIDGE_BENCH_BIN", ROOT / "target" / "debug" / "midge-bench"))
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

# The rows of `midge-bench compare --quick`, in order.
QUICK_ROWS = [
    "pairs 10→10 QoS 1 64 B tcp 10k/s",
    "pairs 10→10 QoS 1 64 B tcp max",
    "broadcast 1→100 QoS 0 64 B tcp 10k/s",
    "fan-in 100→1 QoS 1 64 B tcp 10k/s",
    "pairs 10→10 QoS 1 4 KiB ws max",
    "pairs 10→10 QoS 0 64 B ws 10k/s",
    "idle 200 tcp",
    "idle 200 ws",
]


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("topology", ["pairs", "broadcast", "fan-in"])
def test_midge_bench_smoke(broker, topology, transport):
    port = broker.tcp_port if transport == "tcp" else broker.http_port
    run = subprocess.run(
        [str(BENCH), "--port", str(port), "--transport", transport, "--topology", topology,
         "--publishers", "3", "--subscribers", "3", "--qos", "1", "--rate", "200", "--seconds", "1",
         "--pid", str(broker.proc.pid), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    outcome = report["outcome"]
    assert report["plan"]["transport"] == transport
    assert outcome["sent"] > 0
    assert outcome["lost"] == 0 and outcome["delivered"] == outcome["expected"]
    assert outcome["latency_us"]["max"] >= outcome["latency_us"]["p50"] > 0
    assert outcome["generator_cpu_seconds"] >= 0 and outcome["stuck_publishers"] == 0
    assert report["broker"]["cpu_seconds"] >= 0 and report["broker"]["peak_rss_kib"] > 0


def test_midge_bench_idle(broker):
    run = subprocess.run(
        [str(BENCH), "--port", str(broker.tcp_port), "--idle", "50", "--pid", str(broker.proc.pid), "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout)
    assert outcome["connections"] == 50
    assert outcome["broker_rss_after_kib"] > 0 and outcome["bytes_per_connection"] >= 0


def test_compare_quick(tmp_path):
    results = tmp_path / "compare.json"
    run = subprocess.run(
        [str(BENCH), "compare", "--quick", "--no-pin", "--midge", str(MIDGE), "--mosquitto", MOSQUITTO,
         "--json", str(results)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    table = [line for line in run.stdout.splitlines() if line.startswith("|")]
    # Per row: Mosquitto, midge and their ratio, each a line of the table.
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [c[0] for c in cells[0::3]] == QUICK_ROWS
    assert [c[1] for c in cells[0::3]] == ["Mosquitto"] * len(QUICK_ROWS)
    assert [c[1] for c in cells[1::3]] == ["midge"] * len(QUICK_ROWS)
    assert [c[1] for c in cells[2::3]] == ["midge/Mosquitto"] * len(QUICK_ROWS)
    assert not any("failed" in c for line in cells for c in line), run.stdout

    measured = json.loads(results.read_text())
    assert [(m["row"], m["broker"]) for m in measured] == [
        (row, broker) for row in QUICK_ROWS for broker in ("mosquitto", "midge")
    ]
    for m in measured:
        assert m["kind"] in ("load", "idle"), m
        if m["kind"] == "load":
            assert m["outcome"]["delivered"] > 0, m
            assert m["usage"]["cpu_seconds"] >= 0 and m["usage"]["peak_rss_kib"] > 0
        else:
            assert m["connections"] == 200 and m["broker_rss_after_kib"] > 0
        if m["row"].endswith("10k/s"):
            # Three rounds, the brokers in turns; the one shown has the median p99.
            p99s = sorted(r["p99_us"] for r in m["rounds"])
            assert len(p99s) == 3 and m["outcome"]["latency_us"]["p99"] == p99s[1], m
        else:
            assert "rounds" not in m, m
        if m["row"].startswith("pairs") and " QoS 1 " in m["row"]:
            outcome = m["outcome"]
            assert outcome["lost"] == 0 and outcome["delivered"] == outcome["expected"] > 0, m

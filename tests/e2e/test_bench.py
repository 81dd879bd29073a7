"""A smoke run of the load generator against midge: seconds, not minutes, and no timing
assertions; it checks that midge-bench works and that QoS 1 loses nothing."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = Path(os.environ.get("MIDGE_BENCH_BIN", ROOT / "target" / "debug" / "midge-bench"))


@pytest.mark.parametrize("topology", ["pairs", "broadcast", "fan-in"])
def test_midge_bench_smoke(broker, topology):
    run = subprocess.run(
        [str(BENCH), "--port", str(broker.tcp_port), "--topology", topology, "--publishers", "3",
         "--subscribers", "3", "--qos", "1", "--rate", "200", "--seconds", "1", "--pid", str(broker.proc.pid),
         "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    outcome = report["outcome"]
    assert outcome["sent"] > 0
    assert outcome["lost"] == 0 and outcome["delivered"] == outcome["expected"]
    assert outcome["latency_us"]["max"] >= outcome["latency_us"]["p50"] > 0
    assert report["broker"]["cpu_seconds"] >= 0 and report["broker"]["peak_rss_kib"] > 0

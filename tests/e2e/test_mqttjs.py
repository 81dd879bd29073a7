"""The broker driven by MQTT.js (npm `mqtt`), the client browsers use, over WebSocket."""

import json
import subprocess
from pathlib import Path

import pytest

from paho_client import Client

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("mqttjs_client.mjs")


@pytest.mark.parametrize("version", [4, 5])
def test_mqttjs_over_websocket(broker, version):
    watcher = Client(broker, "watcher")
    watcher.subscribe("mqttjs/#", qos=2)
    url = f"ws://127.0.0.1:{broker.http_port}/mqtt"
    run = subprocess.run(["node", str(SCRIPT), url, str(version), f"mqttjs-{version}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    events = {e["event"]: e for e in map(json.loads, run.stdout.splitlines())}
    assert events["suback"]["granted"] == [2]
    assert events["messages"]["received"] == [
        {"topic": f"mqttjs/echo/{qos}", "payload": f"from mqtt.js at qos {qos}", "qos": qos} for qos in (0, 1, 2)
    ]
    # 5.0: the broker used topic aliases towards MQTT.js, which resolved them.
    assert (events["messages"]["aliased"] > 0) == (version == 5)
    # And a client of another library saw the same messages.
    got = sorted((m.topic, m.payload) for m in (watcher.get(), watcher.get(), watcher.get()))
    assert got == [(f"mqttjs/echo/{qos}", f"from mqtt.js at qos {qos}".encode()) for qos in (0, 1, 2)]

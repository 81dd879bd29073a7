"""The wasm client (client-wasm/tests/browser.rs) in headless Chromium, against a live broker.

`wasm-pack test --headless --chrome` runs the Rust test file in Debian's Chromium through
Debian's chromedriver. The broker is started here on free ports: `midge`, and Debian's
`mosquitto` with a websockets listener (interop with a broker no one here wrote). The tests
get the broker's WebSocket URL at compile time, and the URL of a small control server (below)
that stops and starts the broker on the same ports for the reconnect tests.
"""

import http.server
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, Broker, free_port, wait_for

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


class Mosquitto:
    """Debian's mosquitto with a websockets listener, on free ports."""

    def __init__(self, tmp_path: Path):
        self.tcp_port, self.http_port = free_port(), free_port()
        self.config = tmp_path / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.tcp_port} 127.0.0.1\n"
            f"listener {self.http_port} 127.0.0.1\nprotocol websockets\n"
            f"allow_anonymous true\npersistence false\nacl_file {write_acl(tmp_path)}\n"
            # Started as root, mosquitto would become user "mosquitto", who cannot read
            # pytest's private temporary directory; it ignores this when not root.
            "user root\n"
        )
        self.log_path = tmp_path / "mosquitto.log"
        self.start()

    def start(self):
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.config), "-v"], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: "Opening websockets listen socket" in self.log_path.read_text() and port_open(self.http_port), 10, "mosquitto to listen")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def write_acl(tmp_path: Path) -> Path:
    """Both brokers get the same ACL (Mosquitto's format, which midge reads): the tests'
    topics, under midge-test/, and nothing else, for the tests of refusals."""
    acl = tmp_path / "acl"
    acl.write_text("topic readwrite midge-test/#\n")
    return acl


def midge_with_acl(tmp_path: Path) -> Broker:
    config = tmp_path / "midge.toml"
    config.write_text(f'acl_file = "{write_acl(tmp_path)}"\n')
    return Broker(tmp_path, "--config", str(config))


def port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class Control(http.server.ThreadingHTTPServer):
    """GET /stop and GET /start: stops the broker, or starts it again on the same ports."""

    def __init__(self, broker):
        self.broker = broker
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ControlHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ControlHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        broker = self.server.broker
        with self.server.lock:
            if self.path == "/stop":
                broker.stop()
            elif self.path == "/start":
                if isinstance(broker, Broker):
                    broker.start(broker.tcp_port, broker.http_port)
                else:
                    broker.start()
            else:
                self.send_error(404)
                return
        self.send_response(200)
        # The test page is served by wasm-bindgen's runner on another port.
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def run_browser_tests(broker_kind: str, ws_url: str, control: Control, log_dir: Path):
    env = dict(
        os.environ,
        MIDGE_TEST_WS_URL=ws_url,
        MIDGE_TEST_CONTROL_URL=control.url,
        MIDGE_TEST_CLOSED_PORT=str(free_port()),
        MIDGE_TEST_BROKER=broker_kind,
        # wasm-bindgen-test's timeout covers a whole test file.
        WASM_BINDGEN_TEST_TIMEOUT="120",
    )
    cmd = [
        "wasm-pack", "test", "--headless", "--chrome", "--chromedriver", "/usr/bin/chromedriver",
        "--mode", "no-install", "client-wasm", "--lib",
    ]
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    log = log_dir / "wasm-pack-test.log"
    log.write_text(output)
    print(f"wasm-pack test output: {log}")
    print(output[-6000:])
    print(f"wasm-pack test: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, output[-6000:]
    # Each test passing is reported by the runner; none may be missing or ignored.
    assert "test result: ok." in output
    assert "0 failed" in output


@pytest.mark.parametrize("broker_kind", ["midge", "mosquitto"])
def test_wasm_client_in_chromium(tmp_path, broker_kind):
    broker = midge_with_acl(tmp_path) if broker_kind == "midge" else Mosquitto(tmp_path)
    control = Control(broker)
    try:
        run_browser_tests(broker_kind, f"ws://127.0.0.1:{broker.http_port}/mqtt", control, tmp_path)
    finally:
        control.shutdown()
        broker.stop()

"""Fixtures for the end-to-end tests: the real `midge` binary on free ports.

Every broker a test starts is stopped by its pid when the test ends, pass or fail.
The binary is `target/debug/midge` unless MIDGE_BIN says otherwise (scripts/test.sh
builds it first).
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIDGE = Path(os.environ.get("MIDGE_BIN", ROOT / "target" / "debug" / "midge"))
LISTENING = re.compile(r"listening for (MQTT|HTTP) on (?:tcp|http)://127\.0\.0\.1:(\d+)")


class Broker:
    """A running `midge` process and the ports it chose."""

    def __init__(self, tmp_path: Path, *extra: str, web: Path | None = None):
        if web is None:
            web = tmp_path / "web"
            web.mkdir(exist_ok=True)
            (web / "index.html").write_text("<!doctype html><title>midge test</title>hello\n")
        self.log_path = tmp_path / "midge.log"
        if os.environ.get("MIDGE_DURABLE") and not {"--config", "--data-dir", "--in-memory"} & set(extra):
            # The whole suite against the durable store: MIDGE_DURABLE=1 pytest tests/e2e
            extra = (*extra, "--data-dir", str(tmp_path / "data"))
        self.args = [str(MIDGE), "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--web", str(web), *extra]
        self.lines: list[str] = []
        self.tcp_port = self.http_port = None
        self.start()

    def start(self, tcp_port: int | None = None, http_port: int | None = None):
        args = list(self.args)
        if tcp_port:
            args[args.index("--tcp") + 1] = f"127.0.0.1:{tcp_port}"
        if http_port:
            args[args.index("--http") + 1] = f"127.0.0.1:{http_port}"
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        ready = threading.Event()
        ports = {}

        def pump():
            with open(self.log_path, "a") as log:
                for line in self.proc.stderr:
                    log.write(line)
                    self.lines.append(line)
                    m = LISTENING.search(line)
                    if m:
                        ports[m.group(1)] = int(m.group(2))
                        if len(ports) == 2:
                            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(10):
            self.stop()
            raise RuntimeError(f"midge did not start: {''.join(self.lines)}")
        self.tcp_port, self.http_port = ports["MQTT"], ports["HTTP"]

    def stop(self, sig=signal.SIGTERM) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def restart(self, sig=signal.SIGTERM):
        """Stops (by `sig`: SIGKILL is a crash) and starts again on the same ports."""
        tcp, http = self.tcp_port, self.http_port
        self.stop(sig)
        self.start(tcp, http)

    def log(self) -> str:
        return "".join(self.lines)


@contextlib.contextmanager
def configured_broker(tmp_path, config: str):
    """A broker started with `config` as its TOML file, stopped by pid afterwards."""
    path = tmp_path / "midge.toml"
    path.write_text(config)
    b = Broker(tmp_path, "--config", str(path))
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


def wait_for(predicate, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(broker, name):
    """The value of one of the broker's /metrics counters or gauges."""
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
    raise AssertionError(f"no metric {name}")

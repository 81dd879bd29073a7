"""The `midge` command line: safe defaults and readable configuration errors."""

import subprocess

from conftest import MIDGE


def run(*args, timeout=10):
    return subprocess.run([str(MIDGE), *args], capture_output=True, text=True, timeout=timeout)


def test_refuses_an_exposed_address_without_allow_anonymous():
    result = run("--tcp", "0.0.0.0:0", "--http", "127.0.0.1:0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0:0" in result.stderr and "allow_anonymous" in result.stderr


def test_a_bad_config_file_names_the_line(tmp_path):
    config = tmp_path / "midge.toml"
    config.write_text('tcp = ["127.0.0.1:0"]\nhttp = ["127.0.0.1:0"]\nmax_queued_messages = "lots"\n')
    result = run("--config", str(config))
    assert result.returncode == 2
    assert f"{config}: line 3:" in result.stderr, result.stderr


def test_an_unknown_key_is_an_error(tmp_path):
    config = tmp_path / "midge.toml"
    config.write_text("max_inflight = 10\n")
    result = run("--config", str(config))
    assert result.returncode == 2
    assert "line 1" in result.stderr and "max_inflight" in result.stderr


def test_a_port_in_use_is_a_clear_error():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--tcp", f"127.0.0.1:{port}", "--http", "127.0.0.1:0")
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serves_the_repositorys_web_page(tmp_path):
    import urllib.request

    from conftest import ROOT, Broker

    broker = Broker(tmp_path, web=ROOT / "web")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/", timeout=5) as r:
            assert r.headers["Content-Type"] == "text/html; charset=utf-8"
            assert b"<title>Midge \xc2\xb7 MQTT in the browser</title>" in r.read()
    finally:
        broker.stop()

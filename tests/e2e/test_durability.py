"""Durability (issue 7): what the broker acknowledged survives a restart and a crash.

The store lives in each test's temporary directory (`--data-dir`, or `data` beside a
configuration file), never in the repository. The crash test kills the broker with
SIGKILL a few times; MIDGE_CRASH=<kills> runs it longer, for example:
    MIDGE_CRASH=20 .venv/bin/pytest tests/e2e/test_durability.py -k crash -s
"""

import itertools
import os
import random
import signal
import struct
import subprocess
import threading
import time
import urllib.request
from collections import Counter

import paho.mqtt.client as mqtt
import pytest

import raw
from conftest import MIDGE, Broker, wait_for
from paho_client import Client, properties

EXPIRY = properties("CONNECT", SessionExpiryInterval=3600)


@pytest.fixture
def durable(tmp_path):
    b = Broker(tmp_path, "--data-dir", str(tmp_path / "data"))
    yield b
    b.stop()


def store_metrics(broker):
    text = urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=5).read().decode()
    values = dict(line.split() for line in text.splitlines() if line.startswith("midge_store_"))
    return int(values["midge_store_commits_total"]), int(values["midge_store_ops_total"])


def persistent(broker, client_id, version):
    if version == 5:
        return Client(broker, client_id, clean=False, connect_properties=EXPIRY)
    return Client(broker, client_id, version=4, clean=False)


@pytest.mark.parametrize("version", [4, 5])
def test_a_persistent_session_survives_a_crash(durable, version):
    sub = persistent(durable, f"keeper-{version}", version)
    sub.subscribe("keep/#", qos=1)
    sub.stop()
    pub = Client(durable, "pub")
    for n in range(3):
        pub.publish("keep/a", f"queued {n}".encode(), qos=1)
    pub.stop()

    durable.restart(signal.SIGKILL)
    assert "sessions 1, messages 3," in durable.log()

    sub = persistent(durable, f"keeper-{version}", version)
    assert sub.flags.session_present
    got = [m.payload for m in sub.drain()]
    assert got == [b"queued 0", b"queued 1", b"queued 2"]
    # The subscription came back with the session.
    pub = Client(durable, "pub")
    pub.publish("keep/b", b"after", qos=1)
    assert sub.get().payload == b"after"
    sub.stop()
    pub.stop()


def test_a_graceful_restart_keeps_sessions_and_in_memory_keeps_nothing(durable, tmp_path):
    sub = persistent(durable, "graceful", 5)
    sub.subscribe("g/#", qos=2)
    sub.stop()
    commits, ops = store_metrics(durable)
    assert 0 < commits <= ops
    durable.restart()
    sub = persistent(durable, "graceful", 5)
    assert sub.flags.session_present
    sub.stop()

    (tmp_path / "mem").mkdir()
    memory = Broker(tmp_path / "mem", "--in-memory")
    try:
        sub = persistent(memory, "forgotten", 5)
        sub.subscribe("g/#", qos=1)
        sub.stop()
        assert store_metrics(memory) == (0, 0)
        memory.restart(signal.SIGKILL)
        sub = persistent(memory, "forgotten", 5)
        assert not sub.flags.session_present
        sub.stop()
    finally:
        memory.stop()
    assert not (tmp_path / "mem" / "data").exists()


def test_sessions_expire_across_a_restart(durable):
    short = Client(durable, "short", clean=False, connect_properties=properties("CONNECT", SessionExpiryInterval=1))
    short.subscribe("s/#", qos=1)
    short.stop()
    lasting = persistent(durable, "lasting", 5)
    lasting.stop()
    durable.stop(signal.SIGKILL)
    time.sleep(1.5)
    durable.start(durable.tcp_port, durable.http_port)
    log = durable.log()
    assert "sessions 1," in log and "sessions 2," not in log, "the expired session goes as the store is read"
    short = Client(durable, "short", clean=False, connect_properties=EXPIRY)
    assert not short.flags.session_present
    lasting = persistent(durable, "lasting", 5)
    assert lasting.flags.session_present
    short.stop()
    lasting.stop()
    data_dir = durable.args[durable.args.index("--data-dir") + 1]
    assert os.stat(data_dir).st_mode & 0o777 == 0o700, "the store is the broker's own"


def test_retained_messages_survive_a_crash(durable):
    pub = Client(durable, "pub")
    pub.publish("status/kept", b"on", qos=1, retain=True)
    pub.publish("status/gone", b"x", qos=1, retain=True)
    pub.publish("status/gone", b"", qos=1, retain=True)
    pub.stop()
    durable.restart(signal.SIGKILL)
    sub = Client(durable, "reader")
    sub.subscribe("status/#", qos=1)
    got = sub.drain()
    assert [(m.topic, m.payload, m.retain) for m in got] == [("status/kept", b"on", True)]
    sub.stop()


def test_expired_messages_do_not_come_back(durable):
    sub = persistent(durable, "late", 5)
    sub.subscribe("exp/#", qos=1)
    sub.stop()
    pub = Client(durable, "pub")
    pub.publish("exp/short", b"short", qos=1, properties=properties("PUBLISH", MessageExpiryInterval=1))
    pub.publish("exp/long", b"long", qos=1, properties=properties("PUBLISH", MessageExpiryInterval=600))
    pub.stop()
    durable.stop(signal.SIGKILL)
    time.sleep(1.5)
    durable.start(durable.tcp_port, durable.http_port)
    sub = persistent(durable, "late", 5)
    got = sub.drain()
    assert [m.payload for m in got] == [b"long"]
    assert got[0].properties.MessageExpiryInterval <= 600
    sub.stop()


def test_inbound_qos2_state_survives_a_crash(durable):
    sub = persistent(durable, "q2-sub", 5)
    sub.subscribe("q2/#", qos=2)
    expiry = bytes([0x11]) + struct.pack(">I", 3600)
    qos2 = raw.packet(0x34, raw.string("q2/t") + struct.pack(">H", 7) + b"\x00" + b"once")
    peer = raw.Peer(durable.tcp_port)
    peer.send(raw.connect("q2-pub", clean=False, properties=expiry))
    peer.expect(0x20)
    peer.send(qos2)
    assert peer.expect(0x50)[:2] == b"\x00\x07"  # PUBREC
    assert sub.get().payload == b"once"
    peer.close()

    durable.restart(signal.SIGKILL)
    sub.client.loop_stop()
    sub = persistent(durable, "q2-sub", 5)
    assert sub.flags.session_present
    peer = raw.Peer(durable.tcp_port)
    peer.send(raw.connect("q2-pub", clean=False, properties=expiry))
    assert peer.expect(0x20)[0] == 1  # session present
    # The publisher never saw the PUBREC: it sends again (DUP); not delivered twice.
    peer.send(bytes([0x3C]) + qos2[1:])
    assert peer.expect(0x50)[:2] == b"\x00\x07"
    peer.send(raw.packet(0x62, struct.pack(">H", 7)))
    comp = peer.expect(0x70)
    assert comp[:2] == b"\x00\x07" and comp[2:3] in (b"", b"\x00"), "PUBREL of a known packet id"
    assert sub.nothing(0.5)
    peer.close()
    sub.stop()


def test_a_corrupted_store_is_named_at_start(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "midge.redb").write_bytes(b"this is not a redb file" * 200)
    result = subprocess.run([str(MIDGE), "--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir", str(data)],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2, result.stderr
    assert str(data / "midge.redb") in result.stderr, result.stderr
    assert "listening" not in result.stderr


def test_the_store_is_beside_the_config_file(tmp_path):
    config = tmp_path / "etc" / "midge.toml"
    config.parent.mkdir()
    config.write_text("sys_interval_secs = 0\n")
    b = Broker(tmp_path, "--config", str(config))
    try:
        assert (tmp_path / "etc" / "data" / "midge.redb").exists()
    finally:
        b.stop()


# --- The crash test ---------------------------------------------------------------------

KILLS = int(os.environ.get("MIDGE_CRASH", "3"))
PUBLISHERS = 4
TOPIC = "crash/{}"


class Subscriber:
    """A persistent session that Paho reconnects by itself after every crash."""

    def __init__(self, broker, client_id, version, qos):
        self.qos = qos
        self.received = Counter()
        self.log = []
        self.client_id = client_id
        self.lock = threading.Lock()
        protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        kwargs = {} if version == 5 else {"clean_session": False}
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol, **kwargs)
        self.client.reconnect_delay_set(0.05, 0.3)
        self.client.on_message = self.on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        connect = {"clean_start": False, "properties": EXPIRY} if version == 5 else {}
        self.client.connect("127.0.0.1", broker.tcp_port, keepalive=10, **connect)
        self.client.loop_start()
        self.client.subscribe("crash/#", qos=qos)
        assert self.subscribed.wait(5)

    def on_message(self, client, userdata, message):
        with self.lock:
            self.received[message.payload] += 1
            self.log.append((message.payload, message.mid, message.dup, time.monotonic()))

    def count(self, payload):
        with self.lock:
            return self.received[payload]


def stream(n, attempts):
    """The messages of publisher `n`: QoS 1 and 2 in turn, each payload `n:seq:qos`."""
    for seq in itertools.count():
        qos = 1 + seq % 2
        payload = f"{n}:{seq}:{qos}".encode()
        attempts.append(payload)
        yield qos, payload


def publisher(broker, n, stop, acked, attempts):
    """Publishes QoS 1 and 2 in turn; a message is acknowledged when Paho says it is
    published. After a failure a new client with a clean session takes over: nothing
    unacknowledged is sent again (on a new clean session QoS 2 cannot promise exactly once)."""
    messages = stream(n, attempts)
    while not stop.is_set():
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"crash-pub-{n}",
                             reconnect_on_failure=False)
        try:
            client.connect("127.0.0.1", broker.tcp_port, keepalive=10)
        except OSError:
            time.sleep(0.05)
            continue
        client.loop_start()
        try:
            for qos, payload in messages:
                if stop.is_set():
                    break
                info = client.publish(TOPIC.format(n), payload, qos=qos)
                deadline = time.monotonic() + 3
                while not info.is_published() and client.is_connected() and time.monotonic() < deadline:
                    time.sleep(0.001)
                if not info.is_published():
                    break
                acked.append(payload)
                time.sleep(0.002)
        except (RuntimeError, ValueError):
            pass
        finally:
            client.loop_stop()
            client.disconnect()


def persistent_publisher(broker, n, stop, acked, attempts):
    """A publisher with a persistent session: Paho reconnects by itself after a crash and
    sends what was not acknowledged again, QoS 2 with the same packet identifier, which the
    broker's stored inbound QoS 2 state must recognise."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"crash-pub-{n}", protocol=mqtt.MQTTv5)
    client.reconnect_delay_set(0.05, 0.3)
    client.connect("127.0.0.1", broker.tcp_port, keepalive=10, clean_start=False, properties=EXPIRY)
    client.loop_start()
    try:
        for qos, payload in stream(n, attempts):
            if stop.is_set():
                break
            while not client.is_connected() and not stop.is_set():
                time.sleep(0.01)
            info = client.publish(TOPIC.format(n), payload, qos=qos)
            try:
                while not info.is_published() and not stop.is_set():
                    time.sleep(0.001)
                if info.is_published():
                    acked.append(payload)
            except RuntimeError:
                pass  # the connection broke as it was published: Paho keeps it, unacknowledged
            time.sleep(0.002)
    finally:
        client.loop_stop()
        client.disconnect()


def test_crash(tmp_path):
    seed = int(os.environ.get("MIDGE_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test: {KILLS} kills, seed {seed}")
    rng = random.Random(seed)
    config = tmp_path / "midge.toml"
    config.write_text("sys_interval_secs = 0\nmax_queued_messages = 1000000\n")
    broker = Broker(tmp_path, "--config", str(config))
    subscribers = []
    stop = threading.Event()
    threads = []
    try:
        subscribers = [
            Subscriber(broker, "crash-sub-v5-q2", 5, 2),
            Subscriber(broker, "crash-sub-v3-q2", 4, 2),
            Subscriber(broker, "crash-sub-v5-q1", 5, 1),
        ]
        broker.lines.clear()
        acked, attempts = [], []
        threads = [threading.Thread(target=persistent_publisher if n % 2 else publisher,
                                    args=(broker, n, stop, acked, attempts))
                   for n in range(PUBLISHERS)]
        for t in threads:
            t.start()
        retained = None
        kill_times = []
        for kill in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.5))
            value = f"round {kill}".encode()
            # A retained message acknowledged before each crash must be back after it.
            keeper = Client(broker, "crash-retainer")
            keeper.publish("crash-retained", value, qos=1, retain=True)
            keeper.stop()
            retained = value
            time.sleep(rng.uniform(0.0, 0.5))
            before = len(acked)
            kill_times.append(time.monotonic())
            broker.restart(signal.SIGKILL)
            print(f"kill {kill + 1}: {before} acknowledged so far")
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join(10)

        def complete():
            return all(s.count(p) >= 1 for s in subscribers for p in acked)

        wait_for(complete, timeout=60, what="every acknowledged message at every subscriber")
        time.sleep(0.5)
        for s in subscribers:
            if s.qos == 2:
                extra = {p: c for p, c in s.received.items() if c > 1 and p.endswith(b":2")}
                for p in list(extra)[:3]:
                    print(s.client_id, p, p in acked, [e for e in s.log if e[0] == p], kill_times)
                assert not extra, f"QoS 2 delivered more than once: {list(extra.items())[:5]}"
        q1_dups = sum(c - 1 for s in subscribers for p, c in s.received.items() if c > 1)
        unacked_delivered = len(set(subscribers[0].received) - set(acked))
        print(f"crash test: {len(attempts)} published, {len(acked)} acknowledged, all delivered to "
              f"{len(subscribers)} persistent subscribers; {q1_dups} duplicates (QoS 1); "
              f"{unacked_delivered} unacknowledged delivered")
        assert "queue full" not in broker.log()

        reader = Client(broker, "crash-reader")
        reader.subscribe("crash-retained", qos=1)
        assert reader.get().payload == retained
        reader.stop()
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for s in subscribers:
            s.client.loop_stop()
            s.client.disconnect()
        broker.stop()

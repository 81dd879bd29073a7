"""Soak: publishers and persistent subscribers over TCP and WebSocket for minutes, with
subscribers dropping off at random. No QoS 1 or 2 message may be lost for a persistent
session (QoS 2 exactly once), and the broker's memory must stay flat.

Skipped unless MIDGE_SOAK is set to the number of seconds to run, for example:
    MIDGE_SOAK=300 .venv/bin/pytest tests/e2e/test_soak.py -s
"""

import os
import random
import threading
import time
from collections import Counter

import pytest

from paho_client import Client, properties

SECONDS = int(os.environ.get("MIDGE_SOAK", "0"))
pytestmark = pytest.mark.skipif(not SECONDS, reason="a soak test: set MIDGE_SOAK=<seconds> to run it")

PUBLISHERS = 8
SUBSCRIBERS = 12
RATE = 50  # messages per second per publisher
DRAIN = 60  # seconds the subscribers get to catch up after the publishers stop


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Subscriber:
    """A persistent session that keeps disconnecting and coming back."""

    def __init__(self, broker, n):
        self.id = f"soak-sub-{n}"
        self.received = Counter()
        self.lock = threading.Lock()
        self.client = Client(broker, self.id, transport="websockets" if n % 2 else "tcp", clean=False,
                             connect_properties=properties("CONNECT", SessionExpiryInterval=3600),
                             on_message=self.on_message)
        self.client.subscribe("soak/#", qos=2)

    def on_message(self, client, userdata, message):
        with self.lock:
            self.received[(message.topic, message.qos, message.payload)] += 1

    def has(self, expected):
        with self.lock:
            return expected <= self.received.keys()

    def bounce(self):
        if random.random() < 0.5:
            self.client.kill()  # abrupt: no DISCONNECT
        else:
            self.client.stop()
        time.sleep(random.uniform(0.05, 1.0))
        self.client.reconnect()
        assert self.client.flags.session_present, f"{self.id} lost its session"


def publisher(broker, n, stop, sent):
    client = Client(broker, f"soak-pub-{n}", transport="tcp" if n % 2 else "websockets")
    seq = 0
    while not stop.is_set():
        qos = 1 + seq % 2
        payload = f"{n}:{seq}".encode()
        client.publish(f"soak/{n}", payload, qos=qos)
        sent.append((f"soak/{n}", qos, payload))
        seq += 1
        time.sleep(1 / RATE)
    client.stop()


def test_soak(broker):
    subscribers = [Subscriber(broker, n) for n in range(SUBSCRIBERS)]
    stop = threading.Event()
    sent = []
    threads = [threading.Thread(target=publisher, args=(broker, n, stop, sent)) for n in range(PUBLISHERS)]
    for t in threads:
        t.start()
    samples = []
    started = time.monotonic()
    while time.monotonic() - started < SECONDS:
        random.choice(subscribers).bounce()
        samples.append((time.monotonic() - started, rss_kib(broker.proc.pid)))
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    # Every subscriber is back for good: wait until each has drained its session (a slow
    # one may still be working through a backlog), for at most DRAIN seconds.
    expected = set(sent)
    drained_at = time.monotonic()
    while time.monotonic() - drained_at < DRAIN and not all(s.has(expected) for s in subscribers):
        time.sleep(0.5)
    drained = time.monotonic() - drained_at
    for s in subscribers:
        with s.lock:
            got = dict(s.received)
        missing = expected - set(got)
        assert not missing, f"{s.id} lost {len(missing)} of {len(expected)}, e.g. {sorted(missing)[:3]}"
        twice = [m for m, count in got.items() if m[1] == 2 and count > 1]
        assert not twice, f"{s.id} got QoS 2 messages more than once: {twice[:3]}"
    # Memory: the last quarter of the run is no higher than the second quarter plus slack.
    quarter = len(samples) // 4
    early = max(rss for _, rss in samples[quarter:2 * quarter])
    late = max(rss for _, rss in samples[3 * quarter:])
    print(f"\nsoak: {len(sent)} messages to {SUBSCRIBERS} bouncing subscribers in {SECONDS} s, "
          f"drained {drained:.1f} s after the publishers stopped; "
          f"RSS {samples[0][1]} KiB at start, {early} KiB at 1/4-1/2, {late} KiB at 3/4-end")
    assert late <= early * 1.2 + 2048, f"memory grew: {early} KiB -> {late} KiB"

"""Backpressure: a subscriber slower than its publishers slows them down (the broker stops
reading from them while its queue is past half full) instead of losing their messages; one
that stops reading altogether holds them back only for `max_publisher_wait_ms`."""

import socket
import struct
import threading
import time

import pytest

from conftest import configured_broker, metric
from raw import Peer, connect, packet, string, subscribe

COUNT = 20_000
PAYLOAD = 1000
SMALL_QUEUE = "max_queued_messages = 20\n"


def publishes(qos: int, count: int = COUNT) -> bytes:
    """`count` 3.1.1 PUBLISH packets to "stream", numbered in their payloads."""
    out = bytearray()
    for n in range(count):
        head = string("stream") + (struct.pack(">H", n % 65535 + 1) if qos else b"")
        out += packet(0x30 | qos << 1, head + struct.pack(">I", n) + b"x" * (PAYLOAD - 4))
    return bytes(out)


class Subscriber:
    """A 3.1.1 subscriber to "stream" with a small receive buffer, reading on a thread;
    `pause` seconds between every 100 messages makes it slower than any publisher."""

    def __init__(self, broker, client_id: str, qos: int, pause: float = 0.0, reads: bool = True):
        self.peer = Peer.__new__(Peer)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", broker.tcp_port))
        self.peer.sock, self.peer.buf = sock, b""
        self.peer.send(connect(client_id, version=4))
        self.peer.expect(0x20)
        self.peer.send(subscribe(1, "stream", qos=qos, version=4))
        self.peer.expect(0x90)
        self.numbers: list[int] = []
        self.pause = pause
        if reads:
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()

    def run(self):
        try:
            while len(self.numbers) < COUNT:
                got = self.peer.read()
                if got is None:
                    return
                first, body = got
                topic_len = struct.unpack(">H", body[:2])[0]
                at = 2 + topic_len
                if first & 0x06:
                    self.peer.send(packet(0x40, body[at:at + 2]))  # PUBACK
                    at += 2
                self.numbers.append(struct.unpack(">I", body[at:at + 4])[0])
                if self.pause and len(self.numbers) % 100 == 0:
                    time.sleep(self.pause)
        except OSError:
            return

    def wait(self, seconds: float):
        self.thread.join(seconds)


@pytest.mark.parametrize("qos", [0, 1])
def test_a_slow_subscriber_slows_the_publisher_and_loses_nothing(tmp_path, qos):
    with configured_broker(tmp_path, SMALL_QUEUE) as broker:
        slow = Subscriber(broker, "slow", qos, pause=0.002)
        publisher = Peer(broker.tcp_port)
        publisher.send(connect("fast", version=4))
        publisher.expect(0x20)
        # 20 MB at once: far more than the queue (20 messages) and the sockets hold.
        publisher.sock.sendall(publishes(qos))
        slow.wait(60)
        assert len(slow.numbers) == COUNT, f"received {len(slow.numbers)} of {COUNT}"
        assert slow.numbers == list(range(COUNT))
        assert metric(broker, "midge_messages_dropped_total") == 0
        publisher.close()


def test_without_waiting_the_same_load_overruns_the_queue(tmp_path):
    """The control: with `max_publisher_wait_ms = 0` the test above loses messages, so it
    measures the waiting and not a load too light to overrun anything."""
    with configured_broker(tmp_path, SMALL_QUEUE + "max_publisher_wait_ms = 0\n") as broker:
        slow = Subscriber(broker, "slow", 0, pause=0.002)
        publisher = Peer(broker.tcp_port)
        publisher.send(connect("fast", version=4))
        publisher.expect(0x20)
        publisher.sock.sendall(publishes(0))
        # Until the last message arrived or the stream stopped for a second.
        seen = -1
        while seen != len(slow.numbers) and (not slow.numbers or slow.numbers[-1] != COUNT - 1):
            seen = len(slow.numbers)
            time.sleep(1)
        assert metric(broker, "midge_messages_dropped_total") > 0
        assert len(slow.numbers) < COUNT
        publisher.close()


def test_a_subscriber_that_stops_reading_holds_publishers_back_only_a_while(tmp_path):
    config = SMALL_QUEUE + "max_publisher_wait_ms = 300\n"
    with configured_broker(tmp_path, config) as broker:
        stuck = Subscriber(broker, "stuck", 0, reads=False)
        healthy = Subscriber(broker, "healthy", 0)
        publisher = Peer(broker.tcp_port)
        publisher.send(connect("fast", version=4))
        publisher.expect(0x20)
        started = time.monotonic()
        publisher.sock.sendall(publishes(0))
        healthy.wait(60)
        # The healthy subscriber gets everything, though the stuck one's queue is full.
        assert healthy.numbers == list(range(COUNT))
        assert metric(broker, "midge_messages_dropped_total") > 0
        assert "stalled subscriber: it took no message while publishers waited; they no longer wait for it" in broker.log()
        assert "stuck" in broker.log()
        print(f"{COUNT} messages past a stuck subscriber in {time.monotonic() - started:.1f} s")
        stuck.peer.close()
        publisher.close()

"""Parked connections (`park_after_idle_ms`, broker/src/park.rs): an idle plain TCP
connection gives up its task, and must still do everything a connection does: receive,
be acknowledged, answer pings, time out, be taken over, publish its will, close at
shutdown, and keep counting against max_connections.

The broker parks after 100 ms here; every test first waits until the connections it
means to test are parked (the `midge_connections_parked` gauge), so that what follows
happens to a parked connection."""

import socket
import struct
import time

import pytest

import raw
from conftest import configured_broker, metric, wait_for
from paho_client import Client, properties

PARKING = "park_after_idle_ms = 100\n"


@pytest.fixture
def broker(tmp_path):
    with configured_broker(tmp_path, PARKING) as b:
        yield b


def parked(broker, n):
    wait_for(lambda: metric(broker, "midge_connections_parked") >= n, what=f"{n} parked connections")


def refused(peer, data):
    """Whether the broker closes `peer` without an answer to `data`: a close, or a reset
    (closed at accept, with what we sent unread)."""
    try:
        peer.send(data)
        return peer.closed()
    except (ConnectionResetError, BrokenPipeError):
        return True


def raw_peer(broker, client_id, version=5, keep_alive=60, properties=b"", will=None):
    """A raw client, connected; `will` is (topic, payload) for a QoS 0 will."""
    peer = raw.Peer(broker.tcp_port)
    flags = 0x02
    payload = raw.string(client_id)
    if will:
        flags |= 0x04
        topic, message = will
        will_props = b"\x00" if version == 5 else b""
        payload += will_props + raw.string(topic) + raw.string(message)
    body = raw.string("MQTT") + bytes([version, flags]) + struct.pack(">H", keep_alive)
    if version == 5:
        body += raw.varint(len(properties)) + properties
    peer.send(raw.packet(0x10, body + payload))
    peer.expect(0x20)
    return peer


@pytest.mark.parametrize("version", [4, 5])
def test_a_parked_subscriber_gets_every_qos_and_its_acknowledgements_are_taken(broker, version):
    sub = Client(broker, "parked-sub", version)
    sub.subscribe("p/#", qos=2)
    parked(broker, 1)
    pub = Client(broker, "pub", version)
    for qos in (0, 1, 2):
        # Each message finds the subscriber parked again.
        parked(broker, 2)
        pub.publish(f"p/{qos}", f"qos {qos}".encode(), qos=qos)
        message = sub.get()
        assert (message.topic, message.payload, message.qos) == (f"p/{qos}", f"qos {qos}".encode(), qos)
    # The QoS 1 and 2 flows ended: nothing is sent again, nothing is held.
    parked(broker, 2)
    sub.nothing(0.5)
    assert metric(broker, "midge_connections") == 2
    pub.stop()
    sub.stop()


@pytest.mark.parametrize("durable", [False, True], ids=["in-memory", "store-on-disk"])
def test_a_parked_publisher_is_read_and_acknowledged(tmp_path, durable):
    """A parked publisher's QoS 1 message to a parked subscriber is acknowledged and
    delivered. With the store on disk the subscriber's session is persistent: the message
    is written to the store first, and acknowledged once durable (a parked connection keeps
    the store's progress watch)."""
    config = PARKING + (f'data_dir = "{tmp_path / "data"}"\n' if durable else "")
    with configured_broker(tmp_path, config) as broker:
        expiry = properties("CONNECT", SessionExpiryInterval=600) if durable else None
        sub = Client(broker, "sub", clean=not durable, connect_properties=expiry)
        sub.subscribe("q", qos=1)
        pub = Client(broker, "parked-pub")
        parked(broker, 2)
        pub.publish("q", b"from parked", qos=1)
        assert pub.pubacks.get(timeout=5).value == 0
        assert sub.get().payload == b"from parked"
        pub.stop()
        sub.stop()


def test_many_parked_subscribers_all_get_a_broadcast(broker):
    peers = [raw_peer(broker, f"many-{i}") for i in range(200)]
    for peer in peers:
        peer.send(raw.subscribe(1, "all"))
        peer.expect(0x90)
    parked(broker, 200)
    pub = Client(broker, "pub")
    pub.publish("all", b"everyone", qos=0)
    pub.stop()
    for peer in peers:
        first, body = peer.read()
        assert first & 0xF0 == 0x30
        assert raw.parse_publish_v5(first, body)[2] == b"everyone"
    for peer in peers:
        peer.close()
    wait_for(lambda: metric(broker, "midge_connections") == 0, what="all closed")
    assert metric(broker, "midge_connections_parked") == 0


def test_pings_are_answered_while_parked(broker):
    peer = raw_peer(broker, "pinger", keep_alive=2)
    for _ in range(3):
        parked(broker, 1)
        peer.send(raw.packet(0xC0, b""))
        peer.expect(0xD0)
        time.sleep(1)
    # Pinging within its keep alive, it was never timed out.
    assert metric(broker, "midge_connections") == 1


def test_keep_alive_runs_out_while_parked_and_the_will_goes_out(broker):
    watcher = Client(broker, "watcher")
    watcher.subscribe("wills/#")
    silent = raw_peer(broker, "silent", keep_alive=1, will=("wills/silent", b"gone quiet"))
    parked(broker, 2)
    started = time.monotonic()
    # 5.0: DISCONNECT 0x8D (Keep Alive timeout) at 1.5 times the keep alive; the watcher
    # checks parked connections every second, so within 1.5 + 1 s and some scheduling.
    body = silent.expect(0xE0)
    assert body[0] == 0x8D
    assert silent.closed()
    assert time.monotonic() - started < 4
    assert watcher.get().payload == b"gone quiet"


@pytest.mark.parametrize("version", [4, 5])
def test_a_parked_client_that_goes_away_is_noticed_and_its_will_published(broker, version):
    watcher = Client(broker, "watcher")
    watcher.subscribe("wills/#")
    peer = raw_peer(broker, "leaver", version, will=("wills/leaver", b"left"))
    parked(broker, 2)
    # Closed without DISCONNECT: the will goes out.
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.close()
    assert watcher.get().payload == b"left"
    wait_for(lambda: metric(broker, "midge_connections") == 1, what="the leaver closed")


def test_a_parked_connection_is_taken_over(broker):
    old = raw_peer(broker, "same-id")
    parked(broker, 1)
    new = raw_peer(broker, "same-id")
    # 5.0: DISCONNECT 0x8E (Session taken over), then the old connection closes.
    assert old.expect(0xE0)[0] == 0x8E
    assert old.closed()
    new.send(raw.packet(0xC0, b""))
    new.expect(0xD0)
    wait_for(lambda: metric(broker, "midge_connections") == 1, what="one connection left")


def test_parked_connections_are_told_at_shutdown(tmp_path):
    with configured_broker(tmp_path, PARKING) as broker:
        peers = [raw_peer(broker, f"bye-{i}") for i in range(20)]
        parked(broker, 20)
        started = time.monotonic()
        assert broker.stop() == 0
        # Well within the 5 s grace: each was revived and closed at once.
        assert time.monotonic() - started < 4
        for peer in peers:
            assert peer.expect(0xE0)[0] == 0x8B
            assert peer.closed()


def test_a_parked_connection_still_counts_against_max_connections(tmp_path, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "info,midge_broker::connection=trace")
    with configured_broker(tmp_path, PARKING + "max_connections = 2\n") as broker:
        a, b = raw_peer(broker, "a"), raw_peer(broker, "b")
        # Not by the gauge: fetching /metrics takes a connection too. Ten times the wait.
        time.sleep(1)
        assert "parked client=a" in broker.log() and "parked client=b" in broker.log()
        assert refused(raw.Peer(broker.tcp_port), raw.connect("c"))
        a.close()
        time.sleep(0.5)
        d = raw_peer(broker, "d")
        d.send(raw.packet(0xC0, b""))
        d.expect(0xD0)
        b.close()


def test_a_parked_persistent_session_gets_what_was_queued_for_it(tmp_path):
    """A QoS 1 message for a parked subscriber whose Receive Maximum is used up waits in
    its queue, and goes once the subscriber acknowledges (that wakes it)."""
    with configured_broker(tmp_path, PARKING) as broker:
        sub = raw_peer(broker, "narrow", properties=b"\x21\x00\x01")  # Receive Maximum 1
        sub.send(raw.subscribe(1, "n", qos=1))
        sub.expect(0x90)
        pub = Client(broker, "pub")
        pub.publish("n", b"one", qos=1)
        pub.publish("n", b"two", qos=1)
        first, body = sub.read()
        assert first & 0xF0 == 0x30
        topic_len = struct.unpack(">H", body[:2])[0]
        packet_id = body[2 + topic_len:4 + topic_len]
        assert body.endswith(b"one")
        # "two" waits for the window; the subscriber parks holding it unacknowledged.
        parked(broker, 2)
        sub.send(raw.packet(0x40, packet_id))
        first, body = sub.read()
        assert body.endswith(b"two")


def test_nothing_parks_when_parking_is_off(tmp_path):
    with configured_broker(tmp_path, "park_after_idle_ms = 0\n") as broker:
        sub = Client(broker, "sub")
        sub.subscribe("t")
        time.sleep(0.5)
        assert metric(broker, "midge_connections_parked") == 0
        Client(broker, "pub").publish("t", b"x")
        assert sub.get().payload == b"x"


def test_websocket_connections_are_not_parked(broker):
    peer = raw.WsPeer(broker.http_port)
    peer.send(raw.connect("ws-client"))
    peer.expect(0x20)
    time.sleep(0.5)
    assert metric(broker, "midge_connections_parked") == 0
    peer.send(raw.packet(0xC0, b""))
    peer.expect(0xD0)


def test_parked_subscriber_with_subscription_identifiers_and_properties(broker):
    sub = Client(broker, "props")
    sub.subscribe("r/+", qos=1, properties=properties("SUBSCRIBE", SubscriptionIdentifier=7))
    parked(broker, 1)
    Client(broker, "pub").publish("r/x", b"p", qos=1,
                                  properties=properties("PUBLISH", UserProperty=[("k", "v")]))
    message = sub.get()
    assert message.properties.SubscriptionIdentifier == [7]
    assert message.properties.UserProperty == [("k", "v")]

"""Malformed input from scripted peers: each gets the reason code the specification asks
for (a 5.0 DISCONNECT, or a plain close for 3.1.1), and nobody else notices."""

import socket
import struct
import time
import urllib.request

import pytest

from conftest import configured_broker, metric
from paho_client import Client
from raw import Peer, WsPeer, connect, packet, parse_publish_v5, publish, string, subscribe, varint

DISCONNECT = 0xE0

V5_CASES = {
    "PUBLISH with QoS 3": (packet(0x36, string("t") + b"\x00\x01\x00"), 0x81),
    "wildcard in a topic name": (publish("a/+", b"x"), 0x90),
    "reserved fixed-header flags": (packet(0xC1, b""), 0x81),
    "invalid UTF-8 in a topic": (packet(0x30, struct.pack(">H", 2) + b"\xc3\x28\x00"), 0x81),
    "No Local on a shared subscription": (
        packet(0x82, b"\x00\x01\x00" + string("$share/g/t") + b"\x04"), 0x82),
    "empty SUBSCRIBE": (packet(0x82, b"\x00\x01\x00"), 0x82),
    "duplicate property": (packet(0x30, string("t") + b"\x06\x03\x00\x01a\x03\x00\x01b"), 0x82),
    "property not allowed in PUBLISH": (packet(0x30, string("t") + b"\x05\x11\x00\x00\x00\x01"), 0x81),
    "second CONNECT": (connect("again"), 0x82),
    "topic alias above the maximum": (packet(0x30, string("t") + b"\x03\x23\xff\xff"), 0x94),
    "unknown topic alias": (packet(0x30, string("") + b"\x03\x23\x00\x01"), 0x82),
    "packet over the maximum packet size": (publish("t", b"x" * (1024 * 1024)), 0x95),
    "remaining length of five bytes": (b"\x30\xff\xff\xff\xff\x01", 0x81),
}


@pytest.fixture
def bystander(broker):
    """A subscriber that must keep receiving whatever happens to other connections."""
    client = Client(broker, "bystander")
    client.subscribe("bystander/#", qos=1)
    yield client
    publisher = Client(broker, "after-the-attack")
    publisher.publish("bystander/check", b"still here", qos=1)
    assert client.get().payload == b"still here"
    client.stop()


@pytest.mark.parametrize("case", V5_CASES)
def test_v5_malformed_input_gets_its_reason_code(broker, bystander, case):
    data, reason = V5_CASES[case]
    peer = Peer(broker.tcp_port)
    peer.send(connect(f"attacker-{len(case)}"))
    assert peer.expect(0x20)[:2] == b"\x00\x00"  # CONNACK, success
    try:
        peer.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the broker may stop reading a packet it refuses; its DISCONNECT is still there
    body = peer.expect(DISCONNECT)
    assert body[0] == reason, f"{case}: reason 0x{body[0]:02x}, expected 0x{reason:02x}"
    # Properties: a Reason String (0x1F) saying what was wrong.
    assert body[1] > 0 and body[2] == 0x1F, body
    assert peer.closed()


@pytest.mark.parametrize("data", [
    packet(0x36, string("t") + b"\x00\x01"),  # QoS 3
    publish("a/#", b"x", version=4),  # wildcard in a topic name
    packet(0x82, b"\x00\x01"),  # empty SUBSCRIBE
    packet(0x62, b"\x00"),  # truncated PUBREL
])
def test_v311_malformed_input_closes_the_connection(broker, bystander, data):
    peer = Peer(broker.tcp_port)
    peer.send(connect("old-timer", version=4))
    assert peer.expect(0x20) == b"\x00\x00"
    peer.send(data)
    assert peer.closed()  # 3.1.1 has no DISCONNECT from the server: just the close


def test_receive_maximum_exceeded(broker, bystander):
    peer = Peer(broker.tcp_port)
    peer.send(connect("greedy"))
    connack = peer.expect(0x20)
    assert b"\x21" in connack  # Receive Maximum announced
    # QoS 2 PUBLISHes never released by PUBREL, past the Receive Maximum (100 by default).
    for i in range(1, 102):
        peer.send(packet(0x34, string("t") + struct.pack(">H", i) + b"\x00x"))
    while (got := peer.read()) is not None and got[0] == 0x50:  # PUBRECs
        pass
    assert got is not None and got[0] == DISCONNECT and got[1][0] == 0x93


def test_first_packet_must_be_connect(broker):
    peer = Peer(broker.tcp_port)
    peer.send(subscribe(1, "t"))
    assert peer.closed()


def test_non_mqtt_bytes_are_refused(broker, bystander):
    peer = Peer(broker.tcp_port)
    peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert peer.closed()


def test_unsupported_protocol_level_gets_a_connack_refusal(broker):
    peer = Peer(broker.tcp_port)
    peer.send(packet(0x10, string("MQTT") + b"\x07\x02\x00\x3c" + string("future")))
    got = peer.read()
    # Refused in 3.1.1 terms (every client version reads those): return code 1.
    assert got is None or got == (0x20, b"\x00\x01")


def test_websocket_several_packets_in_one_message_and_one_packet_across_messages(broker):
    peer = WsPeer(broker.http_port)
    assert "101" in peer.response.splitlines()[0]
    assert "Sec-WebSocket-Protocol: mqtt" in peer.response
    peer.send(connect("ws-raw") + subscribe(1, "ws/t", qos=0))  # two packets, one message
    peer.expect(0x20)
    peer.expect(0x90)
    message = publish("ws/t", b"split across frames")
    peer.send(message[:3])
    peer.send(message[3:])
    first, body = peer.read()
    assert first == 0x30 and body.endswith(b"split across frames")


def test_websocket_mqttv31_subprotocol(broker):
    peer = WsPeer(broker.http_port, protocol="mqttv3.1")
    assert "Sec-WebSocket-Protocol: mqttv3.1" in peer.response
    peer.send(connect("ws-31", version=4))
    assert peer.expect(0x20) == b"\x00\x00"


def test_plain_http_get_on_mqtt_is_refused(broker):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/mqtt", timeout=5)
    assert err.value.code == 426


def test_static_files_and_metrics(broker):
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/html")
        assert b"midge test" in r.read()
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/../../etc/passwd", timeout=5)
    assert err.value.code == 404
    Client(broker, "counted")
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.http_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "midge_connections 1" in text
    assert "# TYPE midge_messages_received_total counter" in text


def test_sigterm_tells_v5_clients_and_exits_cleanly(broker):
    peer = Peer(broker.tcp_port)
    peer.send(connect("leaving"))
    peer.expect(0x20)
    assert broker.stop() == 0
    assert peer.expect(DISCONNECT)[0] == 0x8B  # Server shutting down


def test_a_slow_consumer_cannot_grow_memory(tmp_path):
    with configured_broker(tmp_path, "max_queued_messages = 50\nmax_queued_bytes = 100000\n") as broker:
        slow = Peer(broker.tcp_port)
        slow.send(connect("slow", properties=b"\x21\x00\x05"))  # Receive Maximum 5
        slow.expect(0x20)
        slow.send(subscribe(1, "flood", qos=1))
        slow.expect(0x90)
        # It never reads or acknowledges again. A flood of 500 QoS 1 messages of 100 bytes:
        flooder = Client(broker, "flooder")
        for _ in range(500):
            flooder.publish("flood", b"x" * 100, qos=1)
        # 5 in flight, 50 queued, the rest dropped, counted, and the memory bounded.
        assert metric(broker, "midge_messages_dropped_total") == 500 - 5 - 50
        assert metric(broker, "midge_queued_bytes") == 50 * (100 + len("flood"))
        # Everyone else is served as before.
        watcher = Client(broker, "watcher")
        watcher.subscribe("other", qos=1)
        flooder.publish("other", b"fine", qos=1)
        assert watcher.get().payload == b"fine"
        assert "queue full" in broker.log()


@pytest.mark.parametrize("version", [5, 4])
def test_messages_in_flight_to_a_client_are_capped_by_receive_maximum(tmp_path, version):
    # A 5.0 client that names no Receive Maximum (so 65,535) and a 3.1.1 client, which
    # cannot: both get at most the broker's `receive_maximum` unacknowledged at once.
    with configured_broker(tmp_path, "receive_maximum = 10\n") as broker:
        peer = Peer(broker.tcp_port)
        peer.send(connect("unacking", version=version))
        peer.expect(0x20)
        peer.send(subscribe(1, "capped", qos=1, version=version))
        peer.expect(0x90)
        publisher = Client(broker, "pub")
        for n in range(25):
            publisher.publish("capped", str(n).encode(), qos=1)

        payloads = []

        def packet_ids(count):
            ids = []
            for _ in range(count):
                first, body = peer.read()
                assert first & 0xF6 == 0x32, f"expected a QoS 1 PUBLISH, got 0x{first:02x}"
                (topic_len,) = struct.unpack(">H", body[:2])
                at = 4 + topic_len
                ids.append(body[at - 2:at])
                if version == 5:
                    at += 1 + body[at]  # the properties (a one-byte length here)
                payloads.append(body[at:])
            return ids

        def nothing_more():
            peer.sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                peer.read()
            peer.sock.settimeout(5)

        in_flight = packet_ids(10)
        nothing_more()
        # Each acknowledgement lets one more go, in order, until all 25 have come.
        for _ in range(3):
            for packet_id in in_flight[:5]:
                peer.send(packet(0x40, packet_id))
            in_flight = in_flight[5:] + packet_ids(5)
            nothing_more()
        assert len(in_flight) == 10
        assert payloads == [str(n).encode() for n in range(25)]
        assert metric(broker, "midge_messages_dropped_total") == 0


def test_websocket_ping_is_answered_between_mqtt_packets(broker):
    # A browser or proxy may ping the WebSocket at any time: the pong comes back with the
    # same payload, and MQTT goes on around it (RFC 6455 §5.5.2-5.5.3).
    peer = WsPeer(broker.http_port)
    peer.send(connect("pinged") + subscribe(1, "ws/ping", qos=0))
    peer.expect(0x20)
    peer.expect(0x90)
    peer.send_frame(0x9, b"are you there")
    Client(broker, "pub").publish("ws/ping", b"after the ping", qos=1)
    frames = []
    while not (any(op == 0xA for op, _ in frames) and any(op == 0x2 for op, _ in frames)):
        frame = peer.next_frame()
        assert frame is not None, f"closed after {frames}"
        frames.append(frame)
    assert (0xA, b"are you there") in frames
    assert any(op == 0x2 and payload.endswith(b"after the ping") for op, payload in frames)
    peer.send(packet(0xC0, b""))  # PINGREQ
    peer.expect(0xD0)


def test_websocket_ping_alone_is_answered_at_once(broker):
    # No MQTT traffic to carry it: the pong goes out on its own, and a ping is not the
    # client's MQTT keep alive (only packets are), so nothing else comes.
    peer = WsPeer(broker.http_port)
    peer.send(connect("lonely-ping"))
    peer.expect(0x20)
    for n in range(3):
        peer.send_frame(0x9, f"ping {n}".encode())
        assert peer.next_frame() == (0xA, f"ping {n}".encode())
    peer.send(packet(0xC0, b""))  # PINGREQ: MQTT goes on
    peer.expect(0xD0)


def test_websocket_close_gets_its_close_reply(broker):
    # The client starts the closing handshake: the broker answers with a Close frame and
    # then closes the connection (RFC 6455 §5.5.1); the will goes out, as for any close
    # without DISCONNECT.
    watcher = Client(broker, "will-watcher")
    watcher.subscribe("ws/will", qos=1)
    # 5.0 CONNECT: flags Will and Clean Start, keep alive 60, no properties; then the client
    # id, no will properties, the will's topic and payload.
    head = string("MQTT") + b"\x05\x06\x00\x3c\x00"
    will = b"\x00" + string("ws/will") + string("gone")
    peer = WsPeer(broker.http_port)
    peer.send(packet(0x10, head + string("closer") + will))
    peer.expect(0x20)
    peer.send_frame(0x8, struct.pack(">H", 1000))
    assert peer.next_frame() == (0x8, struct.pack(">H", 1000))
    assert peer.next_frame() is None
    assert watcher.get().payload == b"gone"


def test_websocket_broker_closes_with_a_close_frame(broker):
    # A 5.0 DISCONNECT from the broker (here for a malformed packet), then its Close frame,
    # then the end of the connection.
    peer = WsPeer(broker.http_port)
    peer.send(connect("ws-violator"))
    peer.expect(0x20)
    peer.send(packet(0x36, string("t") + b"\x00\x01\x00"))  # QoS 3
    opcode, payload = peer.next_frame()
    assert opcode == 0x2 and payload[0] == DISCONNECT and payload[2] == 0x81
    assert peer.next_frame() == (0x8, b"")
    peer.send_frame(0x8, b"")  # the client's reply to it
    assert peer.next_frame() is None


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_large_payloads_arrive_whole_and_in_order(broker, transport):
    # Payloads of 1 KiB and more leave the broker from the buffer they arrived in, in
    # vectored writes with the small messages between them: every byte in its place,
    # over both transports, also in a WebSocket frame of more than 64 KiB.
    sizes = [1023, 1024, 4096, 10, 100_000, 3, 65_536 + 7, 2048, 0, 300_000]
    payloads = [bytes([n % 251]) * size for n, size in enumerate(sizes)]
    peer = Peer(broker.tcp_port) if transport == "tcp" else WsPeer(broker.http_port)
    peer.send(connect(f"big-{transport}") + subscribe(1, "big/#", qos=0))
    peer.expect(0x20)
    peer.expect(0x90)
    publisher = Peer(broker.tcp_port)
    publisher.send(connect(f"big-pub-{transport}"))
    publisher.expect(0x20)
    publisher.send(b"".join(publish(f"big/{n}", p) for n, p in enumerate(payloads)))
    for n, expected in enumerate(payloads):
        first, body = peer.read()
        assert first == 0x30
        topic, _, payload = parse_publish_v5(first, body)
        assert (topic, len(payload)) == (f"big/{n}", len(expected))
        assert payload == expected, f"payload {n} differs"


def test_outbound_topic_aliases_within_the_clients_maximum(broker):
    peer = Peer(broker.tcp_port)
    peer.send(connect("aliased", properties=b"\x22\x00\x02"))  # Topic Alias Maximum 2
    peer.expect(0x20)
    peer.send(subscribe(1, "#"))
    peer.expect(0x90)
    publisher = Client(broker, "pub")
    topics = ["a/1", "a/1", "b/2", "c/3", "a/1"]
    for n, topic in enumerate(topics):
        publisher.publish(topic, str(n).encode(), qos=1)
    got = [parse_publish_v5(*peer.read()) for _ in topics]
    assert got == [
        ("a/1", 1, b"0"),  # sets alias 1
        ("", 1, b"1"),  # uses it
        ("b/2", 2, b"2"),  # sets alias 2
        ("c/3", None, b"3"),  # the client's two aliases are taken: in full
        ("", 1, b"4"),
    ]


def test_keep_alive_is_enforced_at_one_and_a_half_times(broker):
    peer = Peer(broker.tcp_port)
    # CONNECT with a keep alive of 1 s, then silence.
    peer.send(packet(0x10, string("MQTT") + b"\x05\x02\x00\x01\x00" + string("sleepy")))
    peer.expect(0x20)
    started = time.monotonic()
    assert peer.expect(DISCONNECT)[0] == 0x8D  # Keep Alive timeout
    # Not at 1x the keep alive: at 1.5x, counted from the CONNECT (a moment before `started`).
    assert time.monotonic() - started >= 1.2


def test_server_keep_alive(tmp_path):
    with configured_broker(tmp_path, "max_keep_alive_secs = 1\n") as broker:
        peer = Peer(broker.tcp_port)
        peer.send(connect("never-pings"))  # keep alive 60 s, above the maximum
        connack = peer.expect(0x20)
        assert b"\x13\x00\x01" in connack  # Server Keep Alive: 1 s
        assert peer.expect(DISCONNECT)[0] == 0x8D


def test_messages_too_large_for_the_client_are_dropped(broker):
    peer = Peer(broker.tcp_port)
    peer.send(connect("small", properties=b"\x27\x00\x00\x00\x40"))  # Maximum Packet Size 64
    peer.expect(0x20)
    peer.send(subscribe(1, "m"))
    peer.expect(0x90)
    publisher = Client(broker, "pub")
    publisher.publish("m", b"x" * 100)  # would be 107 bytes: dropped [MQTT-3.1.2-25]
    publisher.publish("m", b"fits")
    topic, _, payload = parse_publish_v5(*peer.read())
    assert (topic, payload) == ("m", b"fits")
    assert metric(broker, "midge_messages_dropped_total") == 1

"""A scripted MQTT peer that writes exact bytes: for malformed-input tests."""

import base64
import os
import socket
import struct

TIMEOUT = 5


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(b)) + b


def connect(client_id: str, version: int = 5, clean: bool = True, properties: bytes = b"") -> bytes:
    body = string("MQTT") + bytes([version, 0x02 if clean else 0]) + struct.pack(">H", 60)
    if version == 5:
        body += varint(len(properties)) + properties
    return packet(0x10, body + string(client_id))


def subscribe(packet_id: int, topic: str, qos: int = 0, version: int = 5) -> bytes:
    props = b"\x00" if version == 5 else b""
    return packet(0x82, struct.pack(">H", packet_id) + props + string(topic) + bytes([qos]))


def publish(topic: str, payload: bytes, version: int = 5) -> bytes:
    props = b"\x00" if version == 5 else b""
    return packet(0x30, string(topic) + props + payload)


class Peer:
    """A TCP connection to the broker with packet-level reads."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read(self):
        """The next packet as (first byte, body), or None once the broker closed."""
        if not self._fill(2):
            return None
        length, shift, i = 0, 0, 1
        while True:
            if not self._fill(i + 1):
                return None
            byte = self.buf[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        if not self._fill(i + length):
            return None
        first, body = self.buf[0], self.buf[i:i + length]
        self.buf = self.buf[i + length:]
        return first, body

    def expect(self, first: int):
        got = self.read()
        assert got is not None and got[0] == first, f"expected packet 0x{first:02x}, got {got}"
        return got[1]

    def closed(self) -> bool:
        """Whether the broker closes the connection, with nothing (else) sent."""
        return self.read() is None

    def close(self):
        self.sock.close()


class WsPeer(Peer):
    """The same over a WebSocket at /mqtt, with control over message boundaries."""

    def __init__(self, port: int, protocol: str = "mqtt"):
        super().__init__(port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        self.response = head.decode()
        self.raw = b""

    def send(self, data: bytes):
        """Sends `data` as one binary message (masked, as clients must)."""
        self.send_frame(0x2, data)

    def send_frame(self, opcode: int, data: bytes):
        """Sends one final frame with `opcode` (0x2 binary, 0x9 ping, ...), masked."""
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            length = bytes([0x80 | n])
        elif n < 65536:
            length = bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            length = bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(bytes([0x80 | opcode]) + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            frame = self._frame()
            if frame is None:
                return False
            self.buf += frame
        return True

    def _frame(self):
        """The next data frame's payload (b"" for a control frame), None once closed."""
        frame = self.next_frame()
        if frame is None or frame[0] == 0x8:
            return None
        opcode, payload = frame
        return payload if opcode in (0x0, 0x2) else b""

    def next_frame(self):
        """The next frame as (opcode, payload), or None once the connection closed."""
        def need(k):
            while len(self.raw) < k:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return False
                self.raw += chunk
            return True

        if not need(2):
            return None
        opcode, n = self.raw[0] & 0x0F, self.raw[1] & 0x7F
        offset = 2
        if n == 126:
            if not need(4):
                return None
            n, offset = struct.unpack(">H", self.raw[2:4])[0], 4
        elif n == 127:
            if not need(10):
                return None
            n, offset = struct.unpack(">Q", self.raw[2:10])[0], 10
        if not need(offset + n):
            return None
        payload, self.raw = self.raw[offset:offset + n], self.raw[offset + n:]
        return opcode, payload


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if not byte & 0x80:
            return value, i


def parse_publish_v5(first: int, body: bytes) -> tuple[str, int | None, bytes]:
    """The topic name, Topic Alias (if any) and payload of a 5.0 PUBLISH."""
    n = struct.unpack(">H", body[:2])[0]
    topic, i = body[2:2 + n].decode(), 2 + n
    if (first >> 1) & 3:
        i += 2  # packet identifier
    length, i = read_varint(body, i)
    end, alias = i + length, None
    while i < end:
        prop, i = read_varint(body, i)
        if prop == 0x23:
            alias = struct.unpack(">H", body[i:i + 2])[0]
            i += 2
        else:
            raise AssertionError(f"unexpected property 0x{prop:02x}")
    return topic, alias, body[end:]

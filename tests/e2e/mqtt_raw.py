"""Hand-built MQTT packets, correct and deliberately broken, for a peer that
breaks the protocol on purpose."""

import socket
import ssl
import struct


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            b |= 0x80
        out.append(b)
        if not n:
            return bytes(out)


def read_varint(data, off):
    """Decodes a Variable Byte Integer at |off|; returns (value, next offset)."""
    value, mult = 0, 1
    while True:
        b = data[off]
        off += 1
        value += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return value, off


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(b)) + b


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect(client_id, version=5, keepalive=60, clean=True, props=b""):
    flags = 0x02 if clean else 0
    var = s("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        var += varint(len(props)) + props
    return packet(0x10, var + s(client_id))


def publish(topic, payload=b"x", qos=0, pid=1, props=b"", version=5, retain=False):
    body = s(topic)
    if qos:
        body += struct.pack("!H", pid)
    if version == 5:
        body += varint(len(props)) + props
    return packet(0x30 | (qos << 1) | (1 if retain else 0), body + payload)


def subscribe(filters, pid=1, version=5, first=0x82):
    body = struct.pack("!H", pid)
    if version == 5:
        body += b"\x00"
    for f, opts in filters:
        body += s(f) + bytes([opts])
    return packet(first, body)


class RawClient:
    """A TLS socket to the gateway that reads whole MQTT packets."""

    def __init__(self, fleet, dev, timeout=10):
        ctx = ssl.create_default_context(cafile=dev.ca)
        ctx.load_cert_chain(dev.cert, dev.key)
        raw = socket.create_connection(("127.0.0.1", fleet.mqtt_port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk

    def read_packet(self):
        """Returns (first_byte, body) or None when the gateway closed."""
        try:
            self._fill(2)
            mult, length, i = 1, 0, 1
            while True:
                self._fill(i + 1)
                b = self.buf[i]
                length += (b & 0x7F) * mult
                mult *= 128
                i += 1
                if not b & 0x80:
                    break
            self._fill(i + length)
            first, body = self.buf[0], self.buf[i:i + length]
            self.buf = self.buf[i + length:]
            return first, body
        except (EOFError, ConnectionError, ssl.SSLError, socket.timeout, OSError):
            return None

    def read_until_closed(self):
        """Reads packets until the gateway closes; returns them."""
        out = []
        while True:
            p = self.read_packet()
            if p is None:
                return out
            out.append(p)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

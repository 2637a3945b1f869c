"""Gateway limits with real clients: backpressure (at most max_buffered bytes
per direction, then the gateway stops reading the other side), the
per-source connect rate limit, and a certificate that expires during a live
session."""

import os
import re
import socket
import ssl
import struct
import threading
import time
import unittest

import mqtt_raw as m
from policies import FACTORY
from warden_fixture import Fleet

PUBLISH = 0x30
DISCONNECT = 0xE0


def set_yaml(fleet, pattern, replacement):
    path = os.path.join(fleet.dir, "warden.yaml")
    with open(path) as f:
        text = f.read()
    new, n = re.subn(pattern, replacement, text, flags=re.M)
    assert n == 1, f"{pattern!r} not found in warden.yaml"
    with open(path, "w") as f:
        f.write(new)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class FleetClass(unittest.TestCase):
    """One fleet per class, configured by |configure| before it starts."""

    serve_env = None

    @classmethod
    def configure(cls, fleet):
        pass

    @classmethod
    def setUpClass(cls):
        cls.fleet = Fleet(start=False)
        cls.addClassCleanup(cls.fleet.close)
        cls.configure(cls.fleet)
        cls.fleet.start_broker()
        if cls.serve_env:
            env = dict(os.environ)
            env.update(cls.serve_env(env))
            cls.fleet.start_serve(env=env)
        else:
            cls.fleet.start_serve()
        assert cls.fleet.apply_policy(FACTORY).returncode == 0

    def closing(self, obj):
        self.addCleanup(obj.close)
        return obj

    def connected(self, dev, version=5):
        c = self.closing(m.RawClient(self.fleet, dev))
        c.send(m.connect(dev.name, version=version))
        first, body = c.read_packet()
        self.assertEqual(first, 0x20)
        self.assertEqual(body[1], 0, "CONNACK refused")
        return c


class BackpressureTest(FleetClass):
    """A subscriber that stops reading must not make the gateway buffer what
    the broker sends it: past max_buffered (1 MiB) the gateway stops reading
    that session's upstream connection, and the session stays intact."""

    # Freed memory must be reusable for the RSS bound to mean anything under
    # AddressSanitizer (its quarantine keeps every freed block otherwise).
    @staticmethod
    def serve_env(env):
        opts = env.get("ASAN_OPTIONS", "")
        return {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=0"}

    def test_slow_subscriber_is_backpressured_not_buffered(self):
        f = self.fleet
        sensor = f.device("bp-sensor", "sensor")
        reader = f.device("bp-reader", "controller")
        other = f.device("bp-other", "controller")

        slow = self.connected(reader)
        slow.send(m.subscribe([("factory/telemetry/#", 0)]))
        first, _ = slow.read_packet()
        self.assertEqual(first, 0x90)
        # From here on |slow| reads nothing: its receive window fills up.
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)

        pub = self.connected(sensor)
        payload = b"p" * (64 * 1024)
        count = 640  # 40 MiB
        before = rss_kib(f.serve.pid)
        done = threading.Event()
        errors = []

        def flood():
            try:
                for i in range(count):
                    pub.send(m.publish("factory/telemetry/bp-sensor/bulk", struct.pack(">I", i) + payload))
            except OSError as e:  # pragma: no cover - reported below
                errors.append(e)
            done.set()

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        self.assertTrue(done.wait(120), "the publisher was blocked: device->upstream must not wait on another session")
        self.assertEqual(errors, [])
        time.sleep(1.0)
        grown = rss_kib(f.serve.pid) - before
        # 40 MiB went to a reader that took none of it: without backpressure
        # the gateway would hold most of it.
        self.assertLess(grown, 16 * 1024, f"gateway RSS grew by {grown} KiB while a subscriber did not read")

        # The gateway still serves everyone else.
        probe = self.connected(other)
        probe.send(m.subscribe([("factory/telemetry/bp-sensor/probe", 0)]))
        self.assertEqual(probe.read_packet()[0], 0x90)
        pub.send(m.publish("factory/telemetry/bp-sensor/probe", b"still-alive"))
        got = probe.read_packet()
        self.assertIsNotNone(got)
        self.assertEqual(got[0] & 0xF0, PUBLISH)
        self.assertTrue(got[1].endswith(b"still-alive"))

        # The slow reader's session is intact: once it reads, messages come
        # in publish order.
        slow.sock.settimeout(10)
        seqs = []
        while len(seqs) < 40:
            p = slow.read_packet()
            self.assertIsNotNone(p, f"the slow subscriber was disconnected after {len(seqs)} messages")
            if p[0] & 0xF0 != PUBLISH:
                continue
            body = p[1]
            tlen = struct.unpack(">H", body[:2])[0]
            off = 2 + tlen
            plen, off = m.read_varint(body, off)
            off += plen
            seqs.append(struct.unpack(">I", body[off:off + 4])[0])
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(seqs[0], 0)

    def test_queued_deliveries_are_recalled_when_a_change_denies_them(self):
        # Deliveries waiting in the gateway for a subscriber that does not
        # read are decided again by a change: after `policy apply` returns,
        # none of them is forwarded.
        f = self.fleet
        sensor = f.device("recall-sensor", "sensor")
        reader = f.device("recall-reader", "controller")
        slow = self.connected(reader)
        slow.send(m.subscribe([("factory/telemetry/recall-sensor/#", 0)]))
        self.assertEqual(slow.read_packet()[0], 0x90)
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        pub = self.connected(sensor)
        payload = b"r" * (64 * 1024)
        for i in range(320):  # 20 MiB: the socket buffers fill, then the gateway's queue
            pub.send(m.publish("factory/telemetry/recall-sensor/bulk", struct.pack(">I", i) + payload))
        time.sleep(1.0)
        no_receive = FACTORY.replace("""  - id: controllers-read-telemetry
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/telemetry/#"]
""", "")
        self.assertNotEqual(no_receive, FACTORY)
        try:
            self.assertEqual(f.apply_policy(no_receive).returncode, 0)
            line = re.search(r"recall-reader: (\d+) queued deliveries no longer allowed, not forwarded", f.log())
            self.assertIsNotNone(line, "nothing was recalled from the gateway's queue")
            self.assertGreater(int(line.group(1)), 0)
        finally:
            self.assertEqual(f.apply_policy(FACTORY).returncode, 0)
        # The session is intact; what it still reads was on its way before the change.
        slow.sock.settimeout(3)
        seqs = []
        while True:
            p = slow.read_packet()
            if p is None:
                break
            if p[0] & 0xF0 == PUBLISH:
                body = p[1]
                off = 2 + struct.unpack(">H", body[:2])[0]
                plen, off = m.read_varint(body, off)
                seqs.append(struct.unpack(">I", body[off + plen:off + plen + 4])[0])
        self.assertEqual(seqs, sorted(seqs), "in publish order")
        self.assertLess(len(seqs), 320 - int(line.group(1)) + 1)


class ConnectRateTest(FleetClass):
    """gateway.limits.connect_rate: new connections per source address."""

    @classmethod
    def configure(cls, fleet):
        set_yaml(fleet, r"^(\s*)connect_rate:.*$", r"\1connect_rate: {per_second: 0.5, burst: 3}")

    def handshake_ok(self, dev):
        ctx = ssl.create_default_context(cafile=dev.ca)
        ctx.load_cert_chain(dev.cert, dev.key)
        raw = socket.create_connection(("127.0.0.1", self.fleet.mqtt_port), timeout=10)
        try:
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        except (ssl.SSLError, ConnectionError, OSError):
            raw.close()
            return False
        try:
            s.send(m.connect(dev.name))
            return s.recv(16)[:1] == b"\x20"
        except (ssl.SSLError, ConnectionError, OSError):
            return False
        finally:
            s.close()

    def test_connections_over_the_rate_are_refused_and_recorded(self):
        f = self.fleet
        dev = f.device("rate-sensor", "sensor")
        # start_serve's port probe took a token: let the bucket fill again.
        time.sleep(2.5)
        results = [self.handshake_ok(dev) for _ in range(8)]
        self.assertEqual(results[:3], [True, True, True], results)
        self.assertGreaterEqual(results.count(False), 4, results)
        e = f.wait_event(lambda e: e["type"] == "tls_reject" and e.get("reason") == "rate_limited")
        self.assertEqual(e["decision"], "deny")
        # The bucket refills: one new connection every 2 s.
        time.sleep(2.5)
        self.assertTrue(self.handshake_ok(dev))


class CertificateExpiryTest(FleetClass):
    """A certificate that expires while its session is live ends the session
    (MQTT 5: DISCONNECT 0x87) and is refused at the next handshake."""

    @classmethod
    def configure(cls, fleet):
        set_yaml(fleet, r"^(\s*)cert_ttl:.*$", r"\1cert_ttl: 1m")

    def test_expiry_cuts_live_session(self):
        f = self.fleet
        dev = f.device("exp-sensor", "sensor")
        c = self.connected(dev)
        c.sock.settimeout(90)
        start = time.time()
        packets = c.read_until_closed()
        waited = time.time() - start
        disc = [p for p in packets if p[0] == DISCONNECT]
        self.assertTrue(disc, f"closed without DISCONNECT after {waited:.0f} s: {packets}")
        self.assertEqual(disc[-1][1][0], 0x87)
        self.assertGreater(waited, 30, "cut long before the certificate expired")
        e = f.wait_event(lambda e: e["type"] == "disconnect" and e.get("reason") == "cert_expired"
                         and e.get("principal", "").endswith("/device/exp-sensor"))
        self.assertEqual(e["type"], "disconnect")
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            again = m.RawClient(f, dev)
            try:
                again.send(m.connect(dev.name))
                if again.read_packet() is None:
                    raise ConnectionError("closed")
            finally:
                again.close()


if __name__ == "__main__":
    unittest.main()

"""A peer that breaks MQTT on purpose: the gateway parses, validates and
re-encodes every packet and closes on malformed input (MQTT 5: DISCONNECT
0x81/0x82/... first)."""

import struct
import time
import unittest

import mqtt_raw as m
from policies import FACTORY
from warden_fixture import FleetTestCase

DISCONNECT = 0xE0


class ProtocolTest(FleetTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        assert cls.fleet.apply_policy(FACTORY).returncode == 0
        cls.sensor = cls.fleet.device("proto-sensor", "sensor")
        cls.controller = cls.fleet.device("proto-ctl", "controller")

    def client(self):
        return self.closing(m.RawClient(self.fleet, self.sensor))

    def connected(self, version=5):
        c = self.client()
        c.send(m.connect("proto-sensor", version=version))
        first, body = c.read_packet()
        self.assertEqual(first, 0x20)
        self.assertEqual(body[1], 0)
        return c

    def assert_disconnect(self, c, reason=None):
        packets = c.read_until_closed()
        if reason is None:
            return packets
        disc = [p for p in packets if p[0] == DISCONNECT]
        self.assertTrue(disc, f"no DISCONNECT before close: {packets}")
        self.assertEqual(disc[-1][1][0], reason, f"DISCONNECT reason {disc[-1][1][0]:#x}")
        return packets

    def test_packet_before_connect_closes(self):
        c = self.client()
        c.send(m.publish("factory/telemetry/proto-sensor/t"))
        packets = c.read_until_closed()
        self.assertFalse(any(p[0] == 0x20 for p in packets))

    def test_protocol_level_3_gets_return_code_1(self):
        c = self.client()
        c.send(m.connect("proto-sensor", version=3))
        p = c.read_packet()
        self.assertIsNotNone(p)
        self.assertEqual(p[0], 0x20)
        self.assertEqual(p[1][1], 1)

    def test_second_connect_is_a_protocol_error(self):
        c = self.connected()
        c.send(m.connect("proto-sensor"))
        self.assert_disconnect(c, 0x82)

    def test_reserved_flag_bits_are_malformed(self):
        c = self.connected()
        c.send(m.subscribe([("factory/commands/x", 1)], first=0x80))  # must be 0x82
        self.assert_disconnect(c, 0x81)

    def test_invalid_utf8_topic_is_malformed(self):
        c = self.connected()
        c.send(m.publish(b"factory/telemetry/\xff\xfe"))
        self.assert_disconnect(c, 0x81)

    def test_nul_in_topic_is_malformed(self):
        c = self.connected()
        c.send(m.publish(b"factory/telemetry/a\x00b"))
        self.assert_disconnect(c, 0x81)

    def test_wildcard_in_publish_topic(self):
        c = self.connected()
        c.send(m.publish("factory/telemetry/#"))
        self.assert_disconnect(c, 0x90)

    def test_wildcard_in_publish_topic_v311_closes(self):
        c = self.connected(version=4)
        c.send(m.publish("factory/telemetry/+", version=4))
        packets = c.read_until_closed()
        self.assertFalse(any(p[0] == 0x30 for p in packets))

    def test_overlong_remaining_length_closes(self):
        c = self.connected()
        c.send(bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]))
        packets = c.read_until_closed()
        self.assertTrue(all(p[0] == DISCONNECT for p in packets))

    def test_oversized_packet_is_refused_from_its_header(self):
        c = self.connected()
        big = 300 * 1024
        c.send(bytes([0x30]) + m.varint(big) + b"\x00\x01a")  # header only; body never sent
        self.assert_disconnect(c, 0x95)

    def test_topic_alias_zero(self):
        c = self.connected()
        c.send(m.publish("factory/telemetry/proto-sensor/t", props=b"\x23\x00\x00"))
        self.assert_disconnect(c, 0x94)

    def test_topic_alias_above_maximum(self):
        c = self.connected()
        c.send(m.publish("factory/telemetry/proto-sensor/t", props=b"\x23\xff\xff"))
        self.assert_disconnect(c, 0x94)

    def test_empty_topic_with_unknown_alias(self):
        c = self.connected()
        c.send(m.publish("", props=b"\x23\x00\x05"))
        self.assert_disconnect(c, 0x82)

    def test_repeated_single_use_property(self):
        c = self.connected()
        # Payload Format Indicator twice.
        c.send(m.publish("factory/telemetry/proto-sensor/t", props=b"\x01\x01\x01\x01"))
        packets = self.assert_disconnect(c)
        disc = [p for p in packets if p[0] == DISCONNECT]
        self.assertTrue(disc and disc[-1][1][0] in (0x81, 0x82))

    def test_invalid_filter_v5_gets_0x8f(self):
        c = self.connected()
        c.send(m.subscribe([("factory/#/x", 1)]))
        p = c.read_packet()
        self.assertIsNotNone(p)
        self.assertEqual(p[0], 0x90)  # SUBACK
        self.assertEqual(p[1][-1], 0x8F)

    def test_denied_qos2_publish_is_answered_by_gateway(self):
        c = self.connected()
        c.send(m.publish("factory/commands/x", qos=2, pid=7))
        first, body = c.read_packet()
        self.assertEqual(first, 0x50)  # PUBREC
        self.assertEqual(struct.unpack("!H", body[:2])[0], 7)
        self.assertEqual(body[2], 0x87)

    def test_denied_qos2_v311_gets_pubrec_then_pubcomp(self):
        c = self.connected(version=4)
        c.send(m.publish("factory/commands/x", qos=2, pid=9, version=4))
        first, body = c.read_packet()
        self.assertEqual(first, 0x50)
        c.send(bytes([0x62, 0x02, 0x00, 0x09]))  # PUBREL
        first, body = c.read_packet()
        self.assertEqual(first, 0x70)  # PUBCOMP

    def suback_codes(self, c, pid):
        first, body = c.read_packet()
        self.assertEqual(first, 0x90)
        self.assertEqual(struct.unpack("!H", body[:2])[0], pid)
        props_len = body[2]  # < 128 here: one byte
        return list(body[3 + props_len:])

    def test_more_than_16_filters_in_one_subscribe_exceed_quota(self):
        c = self.closing(m.RawClient(self.fleet, self.controller))
        c.send(m.connect("proto-ctl"))
        self.assertEqual(c.read_packet()[0], 0x20)
        c.send(m.subscribe([(f"factory/telemetry/q{i}", 0) for i in range(17)], pid=3))
        self.assertEqual(self.suback_codes(c, 3), [0x97] * 17)
        c.send(m.subscribe([(f"factory/telemetry/q{i}", 0) for i in range(16)], pid=4))
        self.assertEqual(self.suback_codes(c, 4), [0x00] * 16)

    def test_more_than_100_filters_per_session_exceed_quota(self):
        c = self.closing(m.RawClient(self.fleet, self.controller))
        c.send(m.connect("proto-ctl"))
        self.assertEqual(c.read_packet()[0], 0x20)
        codes = []
        for batch in range(7):  # 7 x 16 = 112 distinct filters
            c.send(m.subscribe([(f"factory/telemetry/s{batch}-{i}", 0) for i in range(16)], pid=10 + batch))
            codes += self.suback_codes(c, 10 + batch)
        self.assertEqual(codes[:100], [0x00] * 100)
        self.assertEqual(codes[100:], [0x97] * 12)

    def test_pipelined_subscribes_count_against_the_session_quota(self):
        c = self.closing(m.RawClient(self.fleet, self.controller))
        c.send(m.connect("proto-ctl"))
        self.assertEqual(c.read_packet()[0], 0x20)
        # 7 x 16 = 112 distinct filters in one write, no SUBACK awaited.
        c.send(b"".join(m.subscribe([(f"factory/telemetry/p{batch}-{i}", 0) for i in range(16)], pid=30 + batch)
                        for batch in range(7)))
        codes = []
        for batch in range(7):
            codes += self.suback_codes(c, 30 + batch)
        self.assertEqual(codes.count(0x00), 100, codes)
        self.assertEqual(codes[100:], [0x97] * 12)

    @staticmethod
    def connack_property(body, wanted):
        """The value of property |wanted| in a CONNACK body (ints only)."""
        length, off = m.read_varint(body, 2)
        end = off + length
        sizes = {0x24: 1, 0x25: 1, 0x28: 1, 0x29: 1, 0x2A: 1, 0x13: 2, 0x21: 2, 0x22: 2, 0x11: 4, 0x27: 4}
        while off < end:
            pid = body[off]
            off += 1
            if pid in sizes:
                value = int.from_bytes(body[off:off + sizes[pid]], "big")
                if pid == wanted:
                    return value
                off += sizes[pid]
            elif pid == 0x26:  # user property: two strings
                for _ in range(2):
                    off += 2 + struct.unpack("!H", body[off:off + 2])[0]
            else:  # a string
                off += 2 + struct.unpack("!H", body[off:off + 2])[0]
        return None

    def test_more_qos2_in_flight_than_receive_maximum_disconnects(self):
        c = self.client()
        c.send(m.connect("proto-sensor"))
        first, body = c.read_packet()
        self.assertEqual((first, body[1]), (0x20, 0))
        limit = self.connack_property(body, 0x21)
        self.assertIsNotNone(limit, "CONNACK without Receive Maximum")
        topic = "factory/telemetry/proto-sensor/staged"
        # |limit| QoS 2 PUBLISHes awaiting PUBREL are allowed ...
        c.send(b"".join(m.publish(topic, qos=2, pid=i) for i in range(1, limit + 1)))
        for _ in range(limit):
            self.assertEqual(c.read_packet()[0] & 0xF0, 0x50)
        # ... one more is DISCONNECT 0x93 (MQTT 5.0 §3.3.4).
        c.send(m.publish(topic, qos=2, pid=limit + 1))
        packets = c.read_until_closed()
        self.assertEqual([p[0] for p in packets], [0xE0], packets)
        self.assertEqual(packets[0][1][0], 0x93)

    def test_answers_come_in_the_order_of_the_publishes(self):
        # MQTT 5.0 §4.6: PUBACKs (and PUBRECs) in the order the PUBLISHes
        # arrived, also when the gateway answers a denial itself while the
        # broker still owes the answer to an earlier, permitted PUBLISH.
        c = self.connected()
        allowed, denied = "factory/telemetry/proto-sensor/order", "factory/commands/order"
        c.send(m.publish(allowed, qos=1, pid=1) + m.publish(denied, qos=1, pid=2)
               + m.publish(allowed, qos=2, pid=3) + m.publish(denied, qos=2, pid=4)
               + m.publish(denied, qos=1, pid=5))
        answers = []
        for _ in range(5):
            first, body = c.read_packet()
            code = body[2] if len(body) > 2 else 0
            # Permitted: the broker's success code (0x10 "no matching subscribers" counts).
            answers.append((first & 0xF0, struct.unpack("!H", body[:2])[0], code if code >= 0x80 else "ok"))
        self.assertEqual(answers, [(0x40, 1, "ok"), (0x40, 2, 0x87), (0x50, 3, "ok"), (0x50, 4, 0x87),
                                   (0x40, 5, 0x87)])

    def test_oversized_connect_is_refused_from_its_header(self):
        # Remaining Length 300 KiB, over the 256 KiB limit: refused before
        # the body is read. MQTT 5 is told why (CONNACK 0x95); 3.1.1 has no
        # code for it and is closed.
        for level, expected in ((5, [(0x20, 0x95)]), (4, [])):
            c = self.client()
            var = m.s("MQTT") + bytes([level, 0x02, 0x00, 0x3C])
            c.send(bytes([0x10]) + m.varint(300 * 1024) + var)
            packets = c.read_until_closed()
            self.assertEqual([(p[0], p[1][1]) for p in packets], expected, f"protocol level {level}")

    def test_connect_timeout_closes_idle_tls(self):
        c = self.closing(m.RawClient(self.fleet, self.sensor, timeout=30))
        start = time.time()
        packets = c.read_until_closed()
        self.assertEqual(packets, [])
        self.assertLess(time.time() - start, 20)  # 10 s limit, not our 30 s socket timeout


if __name__ == "__main__":
    unittest.main()

"""Instant cut-off: revocation, quarantine, release and policy changes act on
live sessions before the command returns; TLS resumption is re-checked."""

import signal
import ssl
import struct
import time
import unittest

import mqtt_raw as m
from policies import FACTORY, factory_plus
from warden_fixture import FleetTestCase

QUARANTINE_RULES = """
  - id: quarantined-may-connect
    effect: permit
    principals: {segment: quarantine}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: quarantined-report-status
    effect: permit
    principals: {segment: quarantine}
    actions: [mqtt:publish]
    resources: ["quarantine/${principal.id}/#"]
"""

ACTUATOR_COMMANDS = """  - id: actuators-receive-own-commands
    effect: permit
    principals: {role: actuator}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/commands/${principal.id}/#"]
"""
WITHOUT_VALVE_COMMANDS = FACTORY.replace(ACTUATOR_COMMANDS, "")


def connect_packet(client_id, version=5):
    """A minimal MQTT CONNECT (clean start, keep-alive 60)."""
    cid = client_id.encode()
    if version == 5:
        var = b"\x00\x04MQTT\x05\x02\x00\x3c\x00"
    else:
        var = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = struct.pack("!H", len(cid)) + cid
    body = var + payload
    return bytes([0x10, len(body)]) + body


class CutoffTest(FleetTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.fleet.apply_policy(factory_plus(QUARANTINE_RULES))
        assert r.returncode == 0, r.stdout + r.stderr
        cls.controller = cls.fleet.device("ctl-1", "controller")

    def setUp(self):
        super().setUp()
        r = self.fleet.apply_policy(factory_plus(QUARANTINE_RULES))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_quarantine_restricts_and_release_restores(self):
        sensor = self.fleet.device("q-sensor-1", "sensor")
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        s = self.closing(self.fleet.paho(sensor))
        self.assertEqual(s.rc_value(s.connack[0]), 0)
        s.publish("factory/telemetry/q-sensor-1/t", b"before", qos=1)
        self.assertEqual(len(ctl.wait_messages(1, topic="factory/telemetry/q-sensor-1/t")), 1)

        r = self.fleet.cli("device", "quarantine", "q-sensor-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.fleet.cli_json("device", "show", "q-sensor-1")["state"], "quarantined")
        # The session may stay (quarantine allows connect) but telemetry is denied.
        if not s.disconnected.is_set():
            s.publish("factory/telemetry/q-sensor-1/t", b"during", qos=1)
        time.sleep(0.7)
        self.assertEqual([m.payload for m in ctl.messages if m.topic == "factory/telemetry/q-sensor-1/t"],
                         [b"before"])
        self.assertEqual(self.fleet.cli("device", "quarantine", "q-sensor-1").returncode, 0)  # idempotent

        r = self.fleet.cli("device", "release", "q-sensor-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        s2 = self.closing(self.fleet.paho(sensor))
        s2.publish("factory/telemetry/q-sensor-1/t", b"after", qos=1)
        got = ctl.wait_messages(2, topic="factory/telemetry/q-sensor-1/t")
        self.assertEqual([m.payload for m in got], [b"before", b"after"])

    def test_quarantine_without_connect_rule_closes_session(self):
        self.assertEqual(self.fleet.apply_policy(FACTORY).returncode, 0)
        sensor = self.fleet.device("q-sensor-2", "sensor")
        s = self.closing(self.fleet.paho(sensor))
        self.assertEqual(s.rc_value(s.connack[0]), 0)
        r = self.fleet.cli("device", "quarantine", "q-sensor-2")
        self.assertEqual(r.returncode, 0)
        self.assertTrue(s.disconnected.wait(2), "quarantined session without connect permit stayed open")
        self.assertEqual(s.rc_value(s.disconnect_rc), 0x87)
        self.fleet.cli("device", "release", "q-sensor-2")

    def test_policy_change_suspends_and_restores_live_subscription(self):
        valve = self.fleet.device("valve-p", "actuator")
        v = self.closing(self.fleet.paho(valve))
        self.assertEqual(v.subscribe("factory/commands/valve-p/#"), [1])
        self.fleet.pub(self.controller, "factory/commands/valve-p/open", "1", "-q", "1")
        self.assertEqual(len(v.wait_messages(1)), 1)

        r = self.fleet.apply_policy(factory_plus(QUARANTINE_RULES).replace("""  - id: actuators-receive-own-commands
    effect: permit
    principals: {role: actuator}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/commands/${principal.id}/#"]
""", ""))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.fleet.pub(self.controller, "factory/commands/valve-p/open", "2", "-q", "1")
        time.sleep(0.7)
        self.assertEqual([m.payload for m in v.messages], [b"1"])
        self.assertFalse(v.disconnected.is_set(), "connect is still allowed: the session must stay")

        r = self.fleet.apply_policy(factory_plus(QUARANTINE_RULES))
        self.assertEqual(r.returncode, 0, r.stderr)
        # Restored before the command returned: no resubscribe needed.
        self.fleet.pub(self.controller, "factory/commands/valve-p/open", "3", "-q", "1")
        got = v.wait_messages(2)
        self.assertEqual([m.payload for m in got], [b"1", b"3"])

    # --- QoS 2: the broker delivers on PUBREL, so the PUBREL is checked ------------
    SENSOR_PUBLISH = """  - id: sensors-publish-own-telemetry
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
"""

    def _stage_qos2(self, sensor, topic, ids, props=b""):
        """Connects |sensor| raw, sends QoS 2 PUBLISHes with |ids| on |topic|
        and reads their PUBRECs; returns the client."""
        c = m.RawClient(self.fleet, sensor)
        self.addCleanup(c.close)
        c.send(m.connect(sensor.name, props=props))
        ack = c.read_packet()
        self.assertEqual((ack[0], ack[1][1]), (0x20, 0), ack)
        for i in ids:
            c.send(m.publish(topic, b"staged-%d" % i, qos=2, pid=i))
        for i in ids:
            rec = c.read_packet()
            self.assertEqual(rec[0] & 0xF0, 0x50, rec)
            self.assertEqual(struct.unpack("!H", rec[1][:2])[0], i)
        return c

    def _resume(self, dev, props):
        """Connects |dev| raw with Clean Start 0; asserts the broker session was resumed."""
        c = m.RawClient(self.fleet, dev)
        self.addCleanup(c.close)
        c.send(m.connect(dev.name, clean=False, props=props))
        ack = c.read_packet()
        self.assertEqual((ack[0], ack[1][0] & 1, ack[1][1]), (0x20, 1, 0), ack)
        return c

    def _release(self, c, ids):
        """Sends PUBREL for |ids|; returns {id: PUBCOMP reason code}."""
        for i in ids:
            c.send(bytes([0x62, 2]) + struct.pack("!H", i))
        out = {}
        for _ in ids:
            comp = c.read_packet()
            self.assertIsNotNone(comp)
            self.assertEqual(comp[0], 0x70, comp)
            out[struct.unpack("!H", comp[1][:2])[0]] = comp[1][2] if len(comp[1]) > 2 else 0
        return out

    def test_staged_qos2_is_not_released_after_the_policy_denies_it(self):
        sensor = self.fleet.device("qos2-sensor-1", "sensor")
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/qos2-sensor-1/#"), [1])
        topic = "factory/telemetry/qos2-sensor-1/staged"
        c = self._stage_qos2(sensor, topic, [1, 2, 3])
        # Released while permitted: delivered.
        self.assertEqual(self._release(c, [1]), {1: 0})
        self.assertEqual([x.payload for x in ctl.wait_messages(1, topic=topic)], [b"staged-1"])

        no_publish = factory_plus(QUARANTINE_RULES).replace(self.SENSOR_PUBLISH, "")
        self.assertNotEqual(no_publish, factory_plus(QUARANTINE_RULES))
        self.assertEqual(self.fleet.apply_policy(no_publish).returncode, 0)
        # The session stays (connect is still allowed); the staged messages
        # are not released: PUBCOMP 0x92, nothing delivered.
        self.assertEqual(self._release(c, [2, 3]), {2: 0x92, 3: 0x92})
        time.sleep(1.0)
        self.assertEqual([x.payload for x in ctl.messages], [b"staged-1"])
        self.fleet.wait_event(lambda e: e["type"] == "deny" and e["resource"] == topic
                              and e["principal"].endswith("/device/qos2-sensor-1"))

    def test_staged_qos2_is_checked_when_a_resumed_session_releases_it(self):
        sensor = self.fleet.device("qos2-sensor-2", "sensor")
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/qos2-sensor-2/#"), [1])
        topic = "factory/telemetry/qos2-sensor-2/staged"
        expiry = b"\x11" + struct.pack("!I", 300)  # Session Expiry 300 s
        c = self._stage_qos2(sensor, topic, [7, 8], props=expiry)
        c.close()  # unclean: the broker keeps the session and the staged messages
        time.sleep(0.5)

        # Resumed while still permitted: released and delivered.
        c = self._resume(sensor, expiry)
        self.assertEqual(self._release(c, [7]), {7: 0})
        self.assertEqual([x.payload for x in ctl.wait_messages(1, topic=topic)], [b"staged-7"])
        c.close()
        time.sleep(0.5)

        no_publish = factory_plus(QUARANTINE_RULES).replace(self.SENSOR_PUBLISH, "")
        self.assertEqual(self.fleet.apply_policy(no_publish).returncode, 0)
        c = self._resume(sensor, expiry)
        # The PUBREL of the earlier connection is checked against the new policy.
        self.assertEqual(self._release(c, [8]), {8: 0x92})
        # An id the gateway never saw is not released either.
        self.assertEqual(self._release(c, [999]), {999: 0x92})
        time.sleep(1.0)
        self.assertEqual([x.payload for x in ctl.messages], [b"staged-7"])

    # --- a will the broker holds for its Will Delay ------------------------------
    def _disconnect_with_delayed_will(self, name, topic):
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes
        sensor = self.fleet.device(name, "sensor")
        wp = Properties(PacketTypes.WILLMESSAGE)
        wp.WillDelayInterval = 3
        cp = Properties(PacketTypes.CONNECT)
        cp.SessionExpiryInterval = 60
        s = self.fleet.paho(sensor, properties=cp,
                            will={"topic": topic, "payload": "gone", "qos": 1, "properties": wp})
        self.assertEqual(s.rc_value(s.connack[0]), 0)
        s.c.loop_stop()
        s.c.socket().close()  # unclean: the broker will send the will 3 s later
        time.sleep(0.5)
        return time.time()

    def test_delayed_will_goes_out_when_a_change_still_permits_it(self):
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        topic = "factory/telemetry/will-sensor-1/will"
        self._disconnect_with_delayed_will("will-sensor-1", topic)
        # A change that re-checks every session (and parked will) but changes nothing for it.
        self.assertEqual(self.fleet.apply_policy(factory_plus(QUARANTINE_RULES) + "\n").returncode, 0)
        got = ctl.wait_messages(1, topic=topic, timeout=10)
        self.assertEqual([x.payload for x in got], [b"gone"])

    def test_delayed_will_is_cancelled_when_a_change_denies_it(self):
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        topic = "factory/telemetry/will-sensor-2/will"
        t0 = self._disconnect_with_delayed_will("will-sensor-2", topic)
        no_publish = factory_plus(QUARANTINE_RULES).replace(self.SENSOR_PUBLISH, "")
        self.assertEqual(self.fleet.apply_policy(no_publish).returncode, 0)
        self.assertLess(time.time() - t0, 2.5, "the change must land inside the Will Delay")
        time.sleep(max(0.0, t0 + 5 - time.time()))
        self.assertEqual([x for x in ctl.messages if x.topic == topic], [])
        self.fleet.wait_event(lambda e: e["type"] == "deny" and e["reason"] == "will_denied"
                              and e["resource"] == topic)

    def test_resumed_session_after_a_restart_delivers_only_what_may_be_subscribed(self):
        # After `warden serve` restarts it no longer knows the filters of a
        # broker session that a device resumes, so it cannot suspend them:
        # it delivers only topics the device may subscribe to now.
        auditor_rules = (
            "  - id: auditors-subscribe\n"
            "    effect: permit\n"
            "    principals: {role: auditor}\n"
            "    actions: [mqtt:subscribe]\n"
            "    resources: [\"factory/#\"]\n"
            "  - id: auditors-receive\n"
            "    effect: permit\n"
            "    principals: {role: auditor}\n"
            "    actions: [mqtt:receive]\n"
            "    resources: [\"factory/#\"]\n")
        with_subscribe = factory_plus(QUARANTINE_RULES + auditor_rules)
        only_telemetry = with_subscribe.replace(
            "actions: [mqtt:subscribe]\n    resources: [\"factory/#\"]",
            "actions: [mqtt:subscribe]\n    resources: [\"factory/telemetry/#\"]")
        self.assertNotEqual(only_telemetry, with_subscribe)
        self.assertEqual(self.fleet.apply_policy(with_subscribe).returncode, 0)
        auditor = self.fleet.device("restart-auditor", "auditor")
        sensor = self.fleet.device("restart-sensor", "sensor")
        expiry = b"\x11" + struct.pack("!I", 600)
        a = m.RawClient(self.fleet, auditor)
        a.send(m.connect(auditor.name, props=expiry))
        self.assertEqual(a.read_packet()[0], 0x20)
        a.send(m.subscribe([("factory/#", 1)], pid=1))
        self.assertEqual(a.read_packet()[1][-1], 1)  # granted QoS 1
        a.send(bytes([0xE0, 0]))  # clean DISCONNECT; the broker keeps the session 600 s
        a.close()
        time.sleep(0.3)

        self.fleet.stop_serve()
        self.fleet.start_serve()
        self.assertEqual(self.fleet.apply_policy(only_telemetry).returncode, 0)
        a = m.RawClient(self.fleet, auditor)
        self.addCleanup(a.close)
        a.send(m.connect(auditor.name, clean=False, props=expiry))
        ack = a.read_packet()
        self.assertEqual((ack[0], ack[1][0] & 1), (0x20, 1), "the broker session must be resumed")
        self.fleet.pub(self.controller, "factory/commands/valve-x/open", "cmd", "-q", "1")
        self.fleet.pub(sensor, "factory/telemetry/restart-sensor/t", "21", "-q", "1")
        got = []
        deadline = time.time() + 5
        while time.time() < deadline and not any(body.endswith(b"21") for body in got):
            p = a.read_packet()
            if p is None:
                break
            if p[0] & 0xF0 == 0x30:
                got.append(p[1])
        topics = [body[2:2 + struct.unpack("!H", body[:2])[0]].decode() for body in got]
        self.assertEqual(topics, ["factory/telemetry/restart-sensor/t"])

    def test_subscribe_in_flight_during_a_change_starts_suspended(self):
        # A SUBSCRIBE the broker has not acknowledged yet when a change
        # lands: the change cannot see it, so the SUBACK is checked again.
        valve = self.fleet.device("valve-race", "actuator")
        v = self.closing(self.fleet.paho(valve))
        self.assertEqual(v.rc_value(v.connack[0]), 0)
        self.fleet.broker.send_signal(signal.SIGSTOP)  # the broker holds the SUBACK
        try:
            mid = v.c.subscribe("factory/commands/valve-race/#", qos=1)[1]
            time.sleep(0.3)
            # Receive stays permitted: only the subscription check can stop the delivery.
            receive_only = ACTUATOR_COMMANDS.replace("[mqtt:subscribe, mqtt:receive]", "[mqtt:receive]")
            r = self.fleet.apply_policy(factory_plus(QUARANTINE_RULES).replace(ACTUATOR_COMMANDS, receive_only))
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            self.fleet.broker.send_signal(signal.SIGCONT)
        deadline = time.time() + 5
        while time.time() < deadline and mid not in v.suback:
            time.sleep(0.02)
        self.assertIn(mid, v.suback, "no SUBACK after the broker resumed")
        time.sleep(0.3)
        self.fleet.pub(self.controller, "factory/commands/valve-race/open", "1", "-q", "1")
        time.sleep(0.7)
        self.assertEqual([x.payload for x in v.messages], [])
        # Allowed again: restored without resubscribing.
        self.assertEqual(self.fleet.apply_policy(factory_plus(QUARANTINE_RULES)).returncode, 0)
        self.fleet.pub(self.controller, "factory/commands/valve-race/open", "2", "-q", "1")
        self.assertEqual([x.payload for x in v.wait_messages(1)], [b"2"])

    def test_policy_removing_connect_closes_session(self):
        valve = self.fleet.device("valve-c", "actuator")
        v = self.closing(self.fleet.paho(valve))
        self.assertEqual(v.rc_value(v.connack[0]), 0)
        no_connect = factory_plus(QUARANTINE_RULES).replace("principals: {kind: device}\n    actions: [mqtt:connect]",
                                                            "principals: {role: [sensor, controller]}\n    actions: [mqtt:connect]")
        self.assertEqual(self.fleet.apply_policy(no_connect).returncode, 0)
        self.assertTrue(v.disconnected.wait(2))
        self.assertEqual(v.rc_value(v.disconnect_rc), 0x87)

    def test_revoke_many_live_sessions(self):
        devices = [self.fleet.device(f"bulk-{i}", "sensor") for i in range(3)]
        clients = [self.closing(self.fleet.paho(d)) for d in devices]
        for d, c in zip(devices, clients):
            self.assertEqual(self.fleet.cli("device", "revoke", d.name).returncode, 0)
            self.assertTrue(c.disconnected.is_set() or c.disconnected.wait(1.0))

    def test_tls_resumption_after_revocation_is_refused(self):
        dev = self.fleet.device("resume-1", "sensor")
        ctx = ssl.create_default_context(cafile=dev.ca)
        ctx.load_cert_chain(dev.cert, dev.key)
        import socket
        raw = socket.create_connection(("127.0.0.1", self.fleet.mqtt_port), timeout=10)
        s1 = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s1.sendall(connect_packet("resume-1"))
        connack = s1.recv(64)
        self.assertEqual(connack[0], 0x20)
        session = s1.session
        s1.close()
        self.assertIsNotNone(session)

        self.assertEqual(self.fleet.cli("device", "revoke", "resume-1").returncode, 0)
        raw = socket.create_connection(("127.0.0.1", self.fleet.mqtt_port), timeout=10)
        try:
            s2 = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
        except (ssl.SSLError, ConnectionError):
            return  # refused during the handshake: fine
        try:
            s2.sendall(connect_packet("resume-1"))
            data = s2.recv(64)
        except (ssl.SSLError, ConnectionError, socket.timeout):
            data = b""
        self.assertFalse(data.startswith(b"\x20") and len(data) >= 4 and data[3] == 0,
                         f"a resumed session of a revoked device was accepted (reused={s2.session_reused})")
        s2.close()


if __name__ == "__main__":
    unittest.main()

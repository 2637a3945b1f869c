"""Per-packet authorization through the gateway, attacked with real clients:
spoofed client ids, wildcard and $ escalation, shared subscriptions, topic
aliases, wills, retained messages, receive checks and session takeover."""

import time
import unittest

from policies import factory_plus
from warden_fixture import FleetTestCase

POLICY = factory_plus("""
  - id: sensors-retain-own-status
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish, mqtt:retain]
    resources: ["factory/status/${principal.id}"]
  - id: controllers-read-status
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/status/#"]
  - id: controllers-share-telemetry
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["$share/lines/factory/telemetry/#"]
  - id: auditors-subscribe-wide
    effect: permit
    principals: {role: auditor}
    actions: [mqtt:subscribe]
    resources: ["factory/#"]
  - id: auditors-receive-telemetry-only
    effect: permit
    principals: {role: auditor}
    actions: [mqtt:receive]
    resources: ["factory/telemetry/#"]
""")


class MqttAuthorizationTest(FleetTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.fleet.apply_policy(POLICY)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.sensor = cls.fleet.device("sensor-a", "sensor")
        cls.sensor2 = cls.fleet.device("sensor-b", "sensor")
        cls.valve = cls.fleet.device("valve-a", "actuator")
        cls.controller = cls.fleet.device("controller-a", "controller")
        cls.auditor = cls.fleet.device("auditor-a", "auditor")

    # --- CONNECT -----------------------------------------------------------
    def test_spoofed_client_id_is_refused_v5(self):
        c = self.closing(self.fleet.paho(self.sensor, client_id="valve-a"))
        self.assertEqual(c.rc_value(c.connack[0]), 0x85)

    def test_spoofed_client_id_is_refused_v311(self):
        c = self.closing(self.fleet.paho(self.sensor, client_id="valve-a", protocol=4))
        self.assertEqual(c.connack[0], 2)

    def test_spoofed_client_id_with_mosquitto_pub(self):
        r = self.fleet.pub(self.sensor, "factory/telemetry/sensor-a/t", "1", client_id="controller-a")
        self.assertNotEqual(r.returncode, 0)

    def test_empty_client_id_gets_the_device_name_v5(self):
        c = self.closing(self.fleet.paho(self.sensor, client_id=""))
        self.assertEqual(c.rc_value(c.connack[0]), 0)
        props = c.connack[2]
        self.assertEqual(getattr(props, "AssignedClientIdentifier", None), "sensor-a")

    def test_empty_client_id_with_persistent_session_refused_v311(self):
        # paho refuses this combination locally, so speak raw MQTT.
        import mqtt_raw as m
        c = self.closing(m.RawClient(self.fleet, self.sensor))
        c.send(m.connect("", version=4, clean=False))
        first, body = c.read_packet()
        self.assertEqual((first, body[1]), (0x20, 2))

    def test_connack_advertises_gateway_limits(self):
        c = self.closing(self.fleet.paho(self.sensor))
        props = c.connack[2]
        self.assertEqual(props.MaximumPacketSize, 256 * 1024)
        self.assertGreater(props.TopicAliasMaximum, 0)
        self.assertEqual(props.SharedSubscriptionAvailable, 1)
        self.assertEqual(props.WildcardSubscriptionAvailable, 1)

    def test_keepalive_zero_becomes_server_keepalive(self):
        # paho 1.6.1 makes its socket non-blocking with keepalive 0: speak raw MQTT.
        import mqtt_raw as m
        c = self.closing(m.RawClient(self.fleet, self.sensor))
        c.send(m.connect("sensor-a", version=5, keepalive=0))
        first, body = c.read_packet()
        self.assertEqual((first, body[1]), (0x20, 0))
        self.assertIn(b"\x13\x01\x2c", body)  # Server Keep Alive = 300

    # --- SUBSCRIBE -----------------------------------------------------------
    def test_wildcard_escalation_is_denied(self):
        c = self.closing(self.fleet.paho(self.valve))
        self.assertEqual(c.subscribe("#"), [0x87])
        self.assertEqual(c.subscribe("factory/commands/+/open"), [0x87])
        self.assertEqual(c.subscribe("factory/commands/#"), [0x87])
        self.assertEqual(c.subscribe("+/commands/valve-a/#"), [0x87])
        self.assertEqual(c.subscribe("factory/commands/valve-a/#"), [1])

    def test_mixed_subscribe_keeps_order(self):
        c = self.closing(self.fleet.paho(self.valve))
        granted = c.subscribe([("factory/commands/valve-a/x", 1), ("#", 1), ("factory/commands/valve-a/y", 0)])
        self.assertEqual(granted, [1, 0x87, 0])

    def test_denied_subscribe_v311_returns_0x80(self):
        c = self.closing(self.fleet.paho(self.valve, protocol=4))
        self.assertEqual(c.subscribe("#"), [0x80])

    def test_dollar_topics_need_a_literal_rule(self):
        c = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(c.subscribe("$SYS/#"), [0x87])
        self.assertEqual(c.subscribe("$SYS/broker/uptime"), [0x87])
        self.assertEqual(c.subscribe("+/telemetry/#"), [0x87])

    def test_shared_subscription_needs_literal_share_permit(self):
        c = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(c.subscribe("$share/lines/factory/telemetry/#"), [1])
        self.assertEqual(c.subscribe("$share/other/factory/telemetry/#"), [0x87])
        self.assertEqual(c.subscribe("$share/lines/#"), [0x87])
        v = self.closing(self.fleet.paho(self.valve))
        self.assertEqual(v.subscribe("$share/lines/factory/commands/valve-a/#"), [0x87])

    def test_shared_subscription_receives(self):
        c = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(c.subscribe("$share/lines/factory/telemetry/#"), [1])
        time.sleep(0.3)
        self.fleet.pub(self.sensor, "factory/telemetry/sensor-a/shared", "s", "-q", "1")
        got = c.wait_messages(1, topic="factory/telemetry/sensor-a/shared")
        self.assertEqual(len(got), 1)

    def test_malformed_shared_subscription(self):
        c = self.closing(self.fleet.paho(self.controller))
        granted = c.subscribe("$share/lines")
        self.assertTrue(granted is None or granted[0] in (0x8F, 0x87, 0x80), granted)

    # --- PUBLISH -------------------------------------------------------------
    def test_denied_qos1_publish_gets_puback_0x87(self):
        c = self.closing(self.fleet.paho(self.sensor))
        got = []
        c.c.on_publish = lambda client, userdata, mid: got.append(mid)
        info = c.publish("factory/telemetry/sensor-b/temp", b"spoof", qos=1)
        self.assertTrue(info.is_published())  # the gateway answered it

    def test_denied_publish_is_not_forwarded(self):
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        s = self.closing(self.fleet.paho(self.sensor))
        s.publish("factory/telemetry/sensor-b/temp", b"spoof", qos=1)
        s.publish("factory/telemetry/sensor-b/temp", b"spoof2", qos=2)
        s.publish("factory/telemetry/sensor-a/temp", b"real", qos=1)
        got = ctl.wait_messages(1, topic="factory/telemetry/sensor-a/temp")
        time.sleep(0.5)
        self.assertEqual([m.topic for m in ctl.messages], ["factory/telemetry/sensor-a/temp"])
        self.assertEqual(got[0].payload, b"real")

    def test_forbid_beats_permit(self):
        c = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(c.subscribe("firmware/#"), [0x87])
        r = self.fleet.pub(self.controller, "firmware/update", "x", "-q", "1")
        # mosquitto_pub exits 0 on a QoS 1 PUBACK with a failure code in 2.0.11;
        # the event log is the proof.
        self.fleet.wait_event(lambda e: e["type"] == "deny" and e["resource"] == "firmware/update"
                              and e["reason"] == "forbidden" and e["rule"] == "nobody-touches-firmware")

    def test_retain_needs_mqtt_retain(self):
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        s = self.closing(self.fleet.paho(self.sensor))
        s.publish("factory/telemetry/sensor-a/retained", b"r", qos=1, retain=True)
        time.sleep(0.5)
        self.assertEqual([m for m in ctl.messages if m.topic.endswith("/retained")], [])
        self.fleet.wait_event(lambda e: e["type"] == "deny" and e["action"] == "mqtt:retain")

    def test_permitted_retained_message_reaches_late_subscriber(self):
        s = self.closing(self.fleet.paho(self.sensor))
        s.publish("factory/status/sensor-a", b"online", qos=1, retain=True)
        time.sleep(0.5)
        late = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(late.subscribe("factory/status/#"), [1])
        got = late.wait_messages(1, topic="factory/status/sensor-a")
        self.assertEqual(got[0].payload, b"online")
        self.assertTrue(got[0].retain)

    def test_receive_is_checked_at_delivery(self):
        aud = self.closing(self.fleet.paho(self.auditor))
        self.assertEqual(aud.subscribe("factory/#"), [1])
        time.sleep(0.3)
        self.fleet.pub(self.controller, "factory/commands/valve-a/open", "1", "-q", "1")
        self.fleet.pub(self.sensor, "factory/telemetry/sensor-a/rx", "ok", "-q", "1")
        got = aud.wait_messages(1, topic="factory/telemetry/sensor-a/rx")
        self.assertEqual(len(got), 1)
        self.assertEqual([m for m in aud.messages if m.topic.startswith("factory/commands")], [])

    def test_topic_alias_is_resolved_and_enforced(self):
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        s = self.closing(self.fleet.paho(self.sensor))
        p = Properties(PacketTypes.PUBLISH)
        p.TopicAlias = 1
        s.publish("factory/telemetry/sensor-a/alias", b"1", qos=1, properties=p)
        s.publish("", b"2", qos=1, properties=p)  # alias only
        # A denied publish still sets the alias; using it stays denied.
        p2 = Properties(PacketTypes.PUBLISH)
        p2.TopicAlias = 2
        s.publish("factory/telemetry/sensor-b/alias", b"spoof", qos=1, properties=p2)
        s.publish("", b"spoof2", qos=1, properties=p2)
        got = ctl.wait_messages(2, topic="factory/telemetry/sensor-a/alias")
        self.assertEqual([m.payload for m in got], [b"1", b"2"])
        time.sleep(0.5)
        self.assertEqual([m for m in ctl.messages if "sensor-b" in m.topic], [])

    # --- wills -----------------------------------------------------------------
    def test_will_on_forbidden_topic_refuses_connect(self):
        c = self.closing(self.fleet.paho(self.sensor, will={"topic": "factory/commands/valve-a/open",
                                                             "payload": "1", "qos": 1}))
        self.assertEqual(c.rc_value(c.connack[0]), 0x87)
        self.fleet.wait_event(lambda e: e["type"] == "deny" and e["reason"] == "will_denied")

    def test_permitted_will_is_delivered_after_unclean_disconnect(self):
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        s = self.fleet.paho(self.sensor2, will={"topic": "factory/telemetry/sensor-b/will",
                                                "payload": "gone", "qos": 1})
        self.assertEqual(s.rc_value(s.connack[0]), 0)
        s.c.loop_stop()
        s.c.socket().close()  # unclean: no DISCONNECT
        got = ctl.wait_messages(1, topic="factory/telemetry/sensor-b/will", timeout=15)
        self.assertEqual([m.payload for m in got], [b"gone"])

    def test_clean_disconnect_sends_no_will(self):
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        s = self.fleet.paho(self.sensor2, will={"topic": "factory/telemetry/sensor-b/will2",
                                                "payload": "gone", "qos": 1})
        s.close()
        time.sleep(1.5)
        self.assertEqual(ctl.wait_messages(1, topic="factory/telemetry/sensor-b/will2", timeout=1), [])

    # --- takeover ----------------------------------------------------------------
    def test_second_connection_takes_over(self):
        first = self.closing(self.fleet.paho(self.valve))
        self.assertEqual(first.rc_value(first.connack[0]), 0)
        second = self.closing(self.fleet.paho(self.valve))
        self.assertEqual(second.rc_value(second.connack[0]), 0)
        self.assertTrue(first.disconnected.wait(5))
        self.assertEqual(first.rc_value(first.disconnect_rc), 0x8E)
        self.fleet.wait_event(lambda e: e["type"] == "session_takeover"
                              and e["principal"].endswith("/device/valve-a"))

    def test_takeover_sends_the_old_connections_will_if_permitted(self):
        # As with Mosquitto alone: the connection that is taken over ends
        # without DISCONNECT, so its will goes out (no Will Delay here).
        ctl = self.closing(self.fleet.paho(self.controller))
        self.assertEqual(ctl.subscribe("factory/telemetry/#"), [1])
        first = self.closing(self.fleet.paho(self.sensor2, will={"topic": "factory/telemetry/sensor-b/takeover",
                                                                 "payload": "old", "qos": 1}))
        self.assertEqual(first.rc_value(first.connack[0]), 0)
        second = self.closing(self.fleet.paho(self.sensor2))
        self.assertEqual(second.rc_value(second.connack[0]), 0)
        self.assertTrue(first.disconnected.wait(5))
        self.assertEqual(first.rc_value(first.disconnect_rc), 0x8E)
        got = ctl.wait_messages(1, topic="factory/telemetry/sensor-b/takeover", timeout=10)
        self.assertEqual([x.payload for x in got], [b"old"])


if __name__ == "__main__":
    unittest.main()

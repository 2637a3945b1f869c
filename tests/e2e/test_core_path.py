"""The walking skeleton's core path with real clients: a device enrolls,
talks through the gateway, is denied with a reason, and is cut off at once."""

import time
import unittest

from policies import FACTORY
from warden_fixture import FleetTestCase


class CorePathTest(FleetTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.fleet.apply_policy(FACTORY)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.sensor = cls.fleet.device("temp-sensor-1", "sensor", ["site=plant1"])
        cls.valve = cls.fleet.device("valve-1", "actuator")
        cls.controller = cls.fleet.device("line-controller-1", "controller")

    def test_agent_wrote_key_0600_and_chain(self):
        import os
        import stat
        mode = stat.S_IMODE(os.stat(self.sensor.key).st_mode)
        self.assertEqual(mode, 0o600)
        with open(self.sensor.cert) as f:
            self.assertEqual(f.read().count("BEGIN CERTIFICATE"), 2)  # leaf + issuing
        with open(self.sensor.ca) as f:
            self.assertEqual(f.read().count("BEGIN CERTIFICATE"), 2)  # root + issuing

    def test_device_show_reports_enrolled_state(self):
        shown = self.fleet.cli_json("device", "show", "temp-sensor-1")
        self.assertEqual(shown["name"], "temp-sensor-1")
        self.assertEqual(shown["state"], "active")
        self.assertEqual(shown["spiffe_id"], "spiffe://warden.local/device/temp-sensor-1")
        self.assertEqual(shown["labels"], {"site": "plant1"})
        self.assertTrue(shown["cert_serial"])
        for key in ("role", "cert_not_after", "connected"):
            self.assertIn(key, shown)

    def test_allowed_telemetry_reaches_controller(self):
        sub = self.closing(self.fleet.sub_proc(self.controller, "factory/telemetry/#"))
        time.sleep(1.0)
        r = self.fleet.pub(self.sensor, "factory/telemetry/temp-sensor-1/temp", "21.5", "-q", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        line = sub.wait_line(lambda l: l == "factory/telemetry/temp-sensor-1/temp 21.5")
        self.assertIsNotNone(line, f"controller did not receive telemetry: {sub.lines} {sub.err}")

    def test_sensor_cannot_command_valve(self):
        valve = self.closing(self.fleet.paho(self.valve))
        self.assertEqual(valve.subscribe("factory/commands/valve-1/#"), [1])
        sensor = self.closing(self.fleet.paho(self.sensor))
        info = sensor.publish("factory/commands/valve-1/open", b"1", qos=1)
        self.assertTrue(info.is_published())
        time.sleep(1.0)
        self.assertEqual(valve.messages, [], "a denied command reached the valve")
        event = self.fleet.wait_event(lambda e: e["type"] == "deny"
                                      and e["principal"].endswith("/device/temp-sensor-1")
                                      and e["resource"] == "factory/commands/valve-1/open")
        self.assertEqual(event["action"], "mqtt:publish")
        self.assertEqual(event["decision"], "deny")
        self.assertEqual(event["rule"], "default-deny")
        self.assertEqual(event["reason"], "no_permit")

    def test_controller_commands_reach_valve(self):
        valve = self.closing(self.fleet.paho(self.valve))
        self.assertEqual(valve.subscribe("factory/commands/valve-1/#"), [1])
        r = self.fleet.pub(self.controller, "factory/commands/valve-1/open", "1", "-q", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = valve.wait_messages(1)
        self.assertEqual([m.topic for m in got], ["factory/commands/valve-1/open"])

    def test_zz_revoke_cuts_live_session_at_once(self):
        # Runs last in this class (name order): the device stays revoked.
        sensor = self.closing(self.fleet.paho(self.sensor))
        self.assertEqual(sensor.rc_value(sensor.connack[0]), 0)
        start = time.time()
        r = self.fleet.cli("device", "revoke", "temp-sensor-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The command returns only after the session was cut.
        self.assertTrue(sensor.disconnected.wait(2.0), "live session survived revocation")
        self.assertLess(time.time() - start, 10)
        self.assertEqual(sensor.rc_value(sensor.disconnect_rc), 0x87)
        # Repeating the state change is ok and changes nothing.
        self.assertEqual(self.fleet.cli("device", "revoke", "temp-sensor-1").returncode, 0)
        # A new connection with the revoked certificate is refused.
        r = self.fleet.pub(self.sensor, "factory/telemetry/temp-sensor-1/temp", "1", timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.fleet.wait_event(lambda e: e["type"] == "revoke" and e["resource"] == "temp-sensor-1")
        self.assertEqual(self.fleet.cli_json("device", "show", "temp-sensor-1")["state"], "revoked")


if __name__ == "__main__":
    unittest.main()

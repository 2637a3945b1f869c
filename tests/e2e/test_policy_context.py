"""The gateway decides with the request's context: the device's source
address, the protocol and the time; a decision that holds only until a time
window closes is re-evaluated on the live session when it does. Denials in
the event log carry the decision's short form."""

import datetime
import os
import time
import unittest

from policies import OPERATORS
from warden_fixture import FleetTestCase

DISCONNECT = 0xE0


class PolicyContextTest(FleetTestCase):

    def test_source_address_and_protocol_conditions(self):
        f = self.fleet
        policy = "rules:" + OPERATORS + """
  - id: ctx-connect
    effect: permit
    principals: {role: ctxsensor}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
    when:
      - context.protocol == mqtt
  - id: from-loopback
    effect: permit
    principals: {role: ctxsensor}
    actions: [mqtt:publish, mqtt:subscribe, mqtt:receive]
    resources: ["ctx/loop/#"]
    when:
      - context.source_ip in 127.0.0.0/8
  - id: from-plant-network
    effect: permit
    principals: {role: ctxsensor}
    actions: [mqtt:publish, mqtt:subscribe, mqtt:receive]
    resources: ["ctx/plant/#"]
    when:
      - context.source_ip in 10.0.0.0/8
"""
        r = f.apply_policy(policy)
        self.assertEqual(r.returncode, 0, r.stderr)
        dev = f.device("ctx-sensor", "ctxsensor")
        c = self.closing(f.paho(dev))
        self.assertEqual(c.subscribe("ctx/loop/a")[0], 1)
        self.assertEqual(c.subscribe("ctx/plant/a")[0], 0x87)
        e = f.wait_event(lambda e: e["type"] == "deny" and e.get("resource") == "ctx/plant/a")
        self.assertEqual(e["reason"], "no_permit")
        self.assertIn("missing_flows", e["detail"])
        self.assertEqual(e["detail"]["valid_until"], "none")

    def test_admin_api_decides_with_source_address_protocol_and_cert_age(self):
        """Operators' calls carry the same context as device packets:
        context.source_ip (the caller's address), context.protocol = http,
        context.time and principal.cert.age."""
        f = self.fleet
        policy = """rules:
  - id: operators-from-loopback
    effect: permit
    principals: {kind: user, id: admin}
    actions: ["admin:*"]
    resources: ["*"]
    when:
      - context.source_ip in 127.0.0.0/8
      - context.protocol == http
      - principal.cert.age >= 0s
  - id: list-only-from-plant
    effect: forbid
    principals: {kind: user}
    actions: [admin:device.list]
    resources: ["*"]
    when:
      - context.source_ip not in 10.0.0.0/8
"""
        r = f.apply_policy(policy)
        self.assertEqual(r.returncode, 0, r.stderr)
        shown = f.cli("policy", "show")
        self.assertEqual(shown.returncode, 0, shown.stderr)
        listed = f.cli("device", "list")
        self.assertNotEqual(listed.returncode, 0)
        self.assertIn("list-only-from-plant", listed.stderr)
        e = f.wait_event(lambda e: e["type"] == "admin_deny" and e.get("action") == "admin:device.list")
        self.assertEqual(e["reason"], "forbidden")
        self.assertEqual(e["rule"], "list-only-from-plant")
        # A permit whose address condition cannot hold for 127.0.0.1 leaves
        # the operator with nothing: apply refuses without --force.
        locked = policy.replace("127.0.0.0/8", "10.0.0.0/8")
        r = f.apply_policy(locked)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("admin:policy.apply", r.stderr)

    def test_dry_run_reports_live_sessions_and_changes_nothing(self):
        f = self.fleet
        base = "rules:" + OPERATORS + """
  - id: dry-connect
    effect: permit
    principals: {role: [dryreader, drycutme]}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: dry-read
    effect: permit
    principals: {role: dryreader}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["dry/a/#", "dry/b/#"]
  - id: dry-write
    effect: permit
    principals: {role: drycutme}
    actions: [mqtt:publish]
    resources: ["dry/#"]
"""
        self.assertEqual(f.apply_policy(base).returncode, 0)
        reader = f.device("dry-reader", "dryreader")
        writer = f.device("dry-writer", "drycutme")
        r = self.closing(f.paho(reader))
        self.assertEqual(r.subscribe("dry/a/#")[0], 1)
        self.assertEqual(r.subscribe("dry/b/#")[0], 1)
        w = self.closing(f.paho(writer))
        # Candidate: the writer may no longer connect, the reader loses dry/b.
        candidate = base.replace('{role: [dryreader, drycutme]}', '{role: dryreader}') \
                        .replace('["dry/a/#", "dry/b/#"]', '["dry/a/#"]')
        path = os.path.join(f.tmp, "dry-candidate.yaml")
        with open(path, "w") as fh:
            fh.write(candidate)
        j = f.cli_json("policy", "apply", "--dry-run", path)
        live = j["sessions"]
        self.assertGreaterEqual(live["live"], 2)
        self.assertIn({"device": "dry-writer", "reason": "no_permit", "rule": "default-deny"}, live["would_cut"])
        self.assertIn({"device": "dry-reader", "filters": ["dry/b/#"]}, live["would_lose_subscriptions"])
        text = f.cli("policy", "apply", "--dry-run", path)
        self.assertEqual(text.returncode, 0)
        self.assertIn("dry-writer", text.stdout)
        self.assertIn("suspend", text.stdout)
        # Nothing changed: both sessions are live and the reader still gets dry/b.
        w.publish("dry/b/x", b"still", qos=1)
        self.assertTrue(r.wait_messages(1, topic="dry/b/x"))
        self.assertFalse(w.disconnected.is_set())

    def test_time_window_closes_on_a_live_session(self):
        f = self.fleet
        now = datetime.datetime.now(datetime.timezone.utc)
        if now.second >= 50:  # leave the session time to connect inside the window
            time.sleep(61 - now.second)
            now = datetime.datetime.now(datetime.timezone.utc)
        start = now.replace(second=0, microsecond=0)
        end = start + datetime.timedelta(minutes=1)
        window = f"{start:%H:%M}-{end:%H:%M} UTC"
        policy = "rules:" + OPERATORS + f"""
  - id: shift-connect
    effect: permit
    principals: {{role: shiftsensor}}
    actions: [mqtt:connect]
    resources: ["${{principal.id}}"]
    when:
      - context.time in {window}
"""
        r = f.apply_policy(policy)
        self.assertEqual(r.returncode, 0, r.stderr)
        dev = f.device("shift-sensor", "shiftsensor")
        c = self.closing(f.paho(dev))
        self.assertEqual(c.rc_value(c.connack[0]), 0, "connect refused inside the window")
        # The window ends at |end|: the session must be cut then, not later.
        deadline = (end - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        e = f.wait_event(lambda e: e["type"] == "disconnect"
                         and e.get("principal", "").endswith("/device/shift-sensor"),
                         timeout=deadline + 15)
        cut_at = datetime.datetime.now(datetime.timezone.utc)
        self.assertGreaterEqual(cut_at, end - datetime.timedelta(seconds=1))
        self.assertLess((cut_at - end).total_seconds(), 10, "cut long after the window closed")
        self.assertEqual(e["reason"], "policy_changed")
        self.assertTrue(c.disconnected.wait(5))
        self.assertEqual(c.rc_value(c.disconnect_rc), 0x87)
        deny = f.wait_event(lambda e: e["type"] == "deny" and e.get("action") == "mqtt:connect"
                            and e.get("principal", "").endswith("/device/shift-sensor"))
        self.assertEqual(deny["reason"], "no_permit")


if __name__ == "__main__":
    unittest.main()

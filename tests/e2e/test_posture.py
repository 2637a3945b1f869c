"""Continuous verification, server side (issue 6): a device that never
attests in a segment that requires it is quarantined `stale` by `trust` and
its live subscription is cut back to quarantine rights; a device's own denials
lower its trust until it is quarantined `low_trust`; firmware reference values
are approved, listed and revoked (with --yes gating)."""

import json
import time
import unittest

from policies import OPERATORS
from warden_fixture import FleetTestCase

POLICY = """
segments:
  attested:
    role: controller
    labels: {tier: attested}
    attestation: {required: true, interval: 2s, grace: 6s, min_assurance: software}
rules:""" + OPERATORS + """
  - id: devices-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: sensors-publish-own-telemetry
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
  - id: controllers-read-telemetry
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/telemetry/#"]
  - id: quarantined-may-connect
    effect: permit
    principals: {segment: quarantine}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
"""

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


class PostureTest(FleetTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        r = cls.fleet.apply_policy(POLICY)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.sensor = cls.fleet.device("pt-sensor-1", "sensor")

    def quarantine_event(self, name, reason, timeout):
        spiffe = f"spiffe://warden.local/device/{name}"
        return self.fleet.wait_event(lambda e: e["type"] == "quarantine" and e["principal"] == spiffe
                                     and e["actor"] == "trust" and e["reason"] == reason, timeout=timeout)

    def test_never_attesting_device_is_quarantined_stale_and_its_subscription_cut(self):
        plc = self.fleet.device("pt-plc-1", "controller", labels=["tier=attested"])
        sub = self.closing(self.fleet.sub_proc(plc, "factory/telemetry/#"))
        time.sleep(0.5)
        r = self.fleet.pub(self.sensor, "factory/telemetry/pt-sensor-1/t", "before")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNotNone(sub.wait_line(lambda l: l.endswith(" before"), timeout=5),
                             f"no delivery before quarantine: {sub.lines} {sub.err}")
        show = self.fleet.cli_json("device", "show", "pt-plc-1")
        self.assertTrue(show["posture"]["attestation"]["required"])
        self.assertIn(show["posture"]["state"], ("healthy", "suspect"))

        # Never attests: due at once (one grace period), stale after 6 s.
        e = self.quarantine_event("pt-plc-1", "stale", timeout=20)
        self.assertEqual(e["detail"]["reasons"], ["stale"])
        self.assertEqual(e["detail"]["trust"], 30)
        show = self.fleet.cli_json("device", "show", "pt-plc-1")
        self.assertEqual(show["state"], "quarantined")
        self.assertEqual(show["posture"]["state"], "quarantined")
        self.assertEqual(show["posture"]["reasons"], ["stale"])
        self.assertEqual(show["posture"]["trust"], 30)
        components = {c["name"]: c for c in show["posture"]["trust_components"]}
        self.assertEqual(components["attestation"]["value"], "stale")
        self.assertEqual(components["attestation"]["cost"], 70)

        # The same mosquitto_sub stays connected (quarantine allows connect)
        # but receives nothing more: its subscription was suspended.
        r = self.fleet.pub(self.sensor, "factory/telemetry/pt-sensor-1/t", "after")
        self.assertEqual(r.returncode, 0, r.stderr)
        time.sleep(1.0)
        self.assertIsNone(sub.wait_line(lambda l: l.endswith(" after"), timeout=0.5), sub.lines)
        self.assertIsNone(sub.proc.poll(), "the session should stay with quarantine rights")

        # Its timeline shows the automatic quarantine and why.
        history = self.fleet.cli_json("device", "history", "pt-plc-1")
        self.assertEqual(history["state"], "quarantined")
        types = [(h["type"], h["actor"], h["reason"]) for h in history["events"]]
        self.assertIn(("quarantine", "trust", "stale"), types)
        text = self.fleet.cli("device", "history", "pt-plc-1")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn("quarantine", text.stdout)
        self.assertIn("by trust", text.stdout)

        # An operator's release clears it and gives one grace period.
        r = self.fleet.cli("device", "release", "pt-plc-1")
        self.assertEqual(r.returncode, 0, r.stderr)
        show = self.fleet.cli_json("device", "show", "pt-plc-1")
        self.assertEqual(show["state"], "active")
        self.assertEqual(show["posture"]["reasons"], [])

    def test_own_denials_lower_trust_and_quarantine_low_trust(self):
        noisy = self.fleet.device("pt-noisy-1", "sensor")
        c = self.closing(self.fleet.paho(noisy))
        self.assertEqual(c.rc_value(c.connack[0]), 0)
        self.assertEqual(self.fleet.cli_json("device", "show", "pt-noisy-1")["posture"]["trust"], 50)
        for i in range(11):
            c.publish(f"factory/telemetry/someone-else/{i}", b"x", qos=0)
        self.quarantine_event("pt-noisy-1", "low_trust", timeout=10)
        show = self.fleet.cli_json("device", "show", "pt-noisy-1")
        self.assertEqual(show["state"], "quarantined")
        self.assertEqual(show["posture"]["reasons"], ["low_trust"])
        self.assertLessEqual(show["posture"]["trust"], 39)
        components = {c["name"]: c for c in show["posture"]["trust_components"]}
        self.assertGreaterEqual(components["denials"]["cost"], 11)
        self.assertEqual(components["attestation"]["value"], "never_attested")
        # The operator's quarantine adds manual; release clears every reason.
        self.assertEqual(self.fleet.cli("device", "quarantine", "pt-noisy-1").returncode, 0)
        self.assertEqual(self.fleet.cli_json("device", "show", "pt-noisy-1")["posture"]["reasons"],
                         ["low_trust", "manual"])
        self.assertEqual(self.fleet.cli("device", "release", "pt-noisy-1").returncode, 0)
        show = self.fleet.cli_json("device", "show", "pt-noisy-1")
        self.assertEqual(show["state"], "active")
        self.assertEqual(show["posture"]["reasons"], [])
        self.assertEqual(show["posture"]["trust"], 50)

    def test_firmware_approve_list_and_revoke_approval(self):
        r = self.fleet.cli_json("firmware", "approve", DIGEST, "--model", "gw-100", "--version", "2.1.0")
        self.assertEqual(r, {"digest": DIGEST, "model": "gw-100", "version": "2.1.0", "changed": True})
        again = self.fleet.cli_json("firmware", "approve", DIGEST.upper().replace("SHA256:", "sha256:"),
                                    "--model", "gw-100", "--version", "2.1.0")
        self.assertFalse(again["changed"])
        other = self.fleet.cli("firmware", "approve", DIGEST, "--model", "gw-100", "--version", "2.2.0")
        self.assertEqual(other.returncode, 1, other.stdout)
        self.assertIn("already approved", other.stderr)
        bad = self.fleet.cli("firmware", "approve", "sha256:abc", "--model", "gw-100", "--version", "1")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("64 hex digits", bad.stderr)
        bad = self.fleet.cli("firmware", "approve", DIGEST, "--model", "bad model", "--version", "1")
        self.assertEqual(bad.returncode, 2)

        listed = self.fleet.cli_json("firmware", "list")
        mine = [a for a in listed if a["digest"] == DIGEST]
        self.assertEqual(len(mine), 1)
        self.assertEqual(mine[0]["state"], "approved")
        self.assertEqual(mine[0]["approved_by"], "spiffe://warden.local/user/admin")
        text = self.fleet.cli("firmware", "list")
        self.assertIn("gw-100", text.stdout)
        self.assertIn(DIGEST, text.stdout)

        # Without --yes nothing changes: it says how many devices it would quarantine.
        dry = self.fleet.cli("firmware", "revoke-approval", DIGEST)
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn("would quarantine 0 device(s)", dry.stdout)
        self.assertIn("--yes", dry.stdout)
        dry = self.fleet.cli_json("firmware", "revoke-approval", DIGEST, "--model", "gw-100")
        self.assertFalse(dry["applied"])
        self.assertEqual(dry["quarantine_count"], 0)
        self.assertEqual([a["state"] for a in self.fleet.cli_json("firmware", "list") if a["digest"] == DIGEST],
                         ["approved"])

        done = self.fleet.cli("firmware", "revoke-approval", DIGEST, "--yes")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("0 quarantined", done.stdout)
        self.assertEqual([a["state"] for a in self.fleet.cli_json("firmware", "list") if a["digest"] == DIGEST],
                         ["revoked"])
        gone = self.fleet.cli("firmware", "revoke-approval", DIGEST, "--yes")
        self.assertEqual(gone.returncode, 1)
        self.assertIn("not an approved firmware digest", gone.stderr)
        missing = self.fleet.cli("firmware", "revoke-approval", OTHER)
        self.assertEqual(missing.returncode, 1)
        self.fleet.wait_event(lambda e: e["type"] == "firmware_revoke" and e["detail"]["digest"] == DIGEST)
        self.fleet.wait_event(lambda e: e["type"] == "firmware_approve" and e["detail"]["digest"] == DIGEST)


if __name__ == "__main__":
    unittest.main()

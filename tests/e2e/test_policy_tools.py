"""`warden policy explain|history|diff|rollback|test|lint` against a real
server: JSON shapes, exit codes (explain answers 0 for deny too; test 1 on a
mismatch; 2 on invalid input) and rollback writing a new version."""

import json
import os
import unittest

from policies import OPERATORS
from warden_fixture import WARDEN, FleetTestCase

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

VEHICLE = "rules:" + OPERATORS + """
  - id: devices-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: careless
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish, mqtt:subscribe]
    resources: ["#"]
segments:
  head: {role: headunit}
  chassis: {role: brake}
services:
  brakes: {segment: chassis, mqtt: ["vehicle/+/brake/#"]}
"""


class PolicyToolsTest(FleetTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fleet.add_device("ivi-1", "headunit")
        r = cls.fleet.apply_policy(VEHICLE)
        if r.returncode != 0:
            raise AssertionError(r.stdout + r.stderr)

    def explain(self, *extra):
        return self.fleet.cli("policy", "explain", "--principal", "ivi-1", "--action", "mqtt:publish", *extra)

    def test_explain_deny_exits_0_with_missing_flow(self):
        r = self.explain("--resource", "vehicle/v1/brake/cmd", "--context", "source_ip=10.0.0.7", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        for key in ("decision", "reason", "rule", "flow", "missing_flows", "rules"):
            self.assertIn(key, j)
        self.assertEqual(j["decision"], "deny")
        self.assertEqual(j["reason"], "no_flow")
        self.assertEqual(j["missing_flows"], [{"from": "head", "to": "brakes", "action": "mqtt:publish"}])
        self.assertEqual([r["id"] for r in j["rules"]], ["careless"])
        self.assertEqual(set(j["rules"][0]), {"id", "effect", "matched", "why_not"})

    def test_explain_permit_text_and_spiffe_id(self):
        r = self.fleet.cli("policy", "explain", "--principal", "spiffe://warden.local/device/ivi-1",
                           "--action", "mqtt:publish", "--resource", "media/now")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("permit (permitted) by rule careless", r.stdout)

    def test_explain_invalid_input_exits_2_unknown_principal_1(self):
        self.assertEqual(self.explain("--resource", "a", "--context", "mfa=maybe").returncode, 2)
        self.assertEqual(self.explain("--resource", "a", "--context", "nonsense").returncode, 2)
        r = self.fleet.cli("policy", "explain", "--principal", "ghost", "--action", "mqtt:publish", "--resource", "a")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_history_diff_rollback(self):
        history = self.fleet.cli_json("policy", "history")
        active = history["active"]
        self.assertGreaterEqual(active, 2)
        self.assertEqual(history["versions"][0]["version"], active)
        diff = self.fleet.cli_json("policy", "diff", "1", str(active))
        self.assertIn("careless", diff["rules"]["added"])
        self.assertIn("head", diff["segments"]["added"])
        rolled = self.fleet.cli_json("policy", "rollback", str(active))
        self.assertEqual(rolled["version"], active + 1)
        self.assertEqual(self.fleet.cli_json("policy", "show")["text"], VEHICLE)
        self.assertTrue(self.fleet.cli_json("policy", "diff", str(active), str(active + 1))["identical"])

    def test_rollback_unknown_version_and_lockout_are_refused(self):
        self.assertEqual(self.fleet.cli("policy", "rollback", "999").returncode, 1)
        lockout = "rules:\n  - {id: d, effect: permit, principals: {kind: device}, actions: [mqtt:connect], " \
                  "resources: [\"${principal.id}\"]}\n"
        self.assertEqual(self.fleet.apply_policy(lockout).returncode, 1)

    def test_offline_test_and_lint(self):
        for name in ("factory", "vehicle"):
            r = self.fleet.run(WARDEN, "policy", "test", os.path.join(REPO, "examples", "policies", f"{name}.test.yaml"),
                               "-o", "json")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            j = json.loads(r.stdout)
            self.assertEqual(j["failed"], 0)
            self.assertGreater(j["passed"], 0)
        bad = os.path.join(self.fleet.tmp, "bad.test.yaml")
        with open(bad, "w") as f:
            f.write("tests:\n  - {name: n, principal: {id: ivi-1, role: headunit}, action: mqtt:publish, "
                    "resource: vehicle/v1/brake/x, expect: permit}\n")
        policy = os.path.join(self.fleet.tmp, "vehicle.yaml")
        with open(policy, "w") as f:
            f.write(VEHICLE)
        r = self.fleet.run(WARDEN, "policy", "test", bad, "--policy", policy)
        self.assertEqual(r.returncode, 1)
        self.assertIn("expected: permit", r.stdout)
        self.assertIn("no_flow", r.stdout)
        self.assertEqual(self.fleet.run(WARDEN, "policy", "test", bad).returncode, 2)  # which policy?
        lint = self.fleet.run(WARDEN, "policy", "lint", policy, "-o", "json")
        self.assertEqual(lint.returncode, 0)
        codes = {f["code"] for f in json.loads(lint.stdout)["findings"]}
        self.assertIn("broader-than-segment", codes)
        self.assertEqual(self.fleet.run(WARDEN, "policy", "lint", policy, "--strict").returncode, 1)
        server = self.fleet.cli_json("policy", "lint")
        self.assertIn("findings", server)

    def test_apply_dry_run_stores_nothing(self):
        before = self.fleet.cli_json("policy", "show")["version"]
        path = os.path.join(self.fleet.tmp, "dry.yaml")
        with open(path, "w") as f:
            f.write(VEHICLE.replace("careless", "careful").replace('resources: ["#"]', 'resources: ["media/#"]'))
        j = self.fleet.cli_json("policy", "apply", "--dry-run", path)
        self.assertTrue(j["dry_run"])
        self.assertFalse(j["would_lock_out"])
        self.assertIn("ivi-1", j["changed_principals"])
        self.assertEqual(self.fleet.cli_json("policy", "show")["version"], before)
        r = self.fleet.cli("policy", "apply", "--dry-run", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("nothing was stored", r.stdout)

    def test_help_of_every_policy_command(self):
        for cmd in ("explain", "test", "lint", "diff", "history", "rollback", "apply"):
            r = self.fleet.run(WARDEN, "policy", cmd, "--help")
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("Exit codes", r.stdout + r.stderr, cmd)


if __name__ == "__main__":
    unittest.main()

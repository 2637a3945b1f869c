"""The operator CLI's contract: commands, -o json shapes, exit codes, policy
errors with FILE:LINE:COL, and a clean SIGTERM."""

import json
import os
import signal
import subprocess
import time
import unittest

from policies import FACTORY, OPERATORS
from warden_fixture import WARDEN, Fleet, FleetTestCase


class CliTest(FleetTestCase):

    def test_init_refuses_existing_installation(self):
        before = sorted(os.listdir(self.fleet.dir))
        r = self.fleet.run(WARDEN, "init", "--dir", self.fleet.dir)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(sorted(os.listdir(self.fleet.dir)), before)

    def test_init_layout_and_permissions(self):
        d = self.fleet.dir
        self.assertEqual(os.stat(d).st_mode & 0o777, 0o700)
        for key in ("root.key", "issuing.key", "gateway.key", "admin.key", "upstream-ca.key",
                    "upstream-client.key", "broker.key"):
            self.assertEqual(os.stat(os.path.join(d, "pki", key)).st_mode & 0o777, 0o600, key)
        self.assertTrue(os.path.exists(os.path.join(d, "warden.yaml")))
        self.assertTrue(os.path.exists(os.path.join(d, "warden.db")))

    def test_device_add_json_shape(self):
        out = self.fleet.cli_json("device", "add", "cli-dev-1", "--role", "sensor", "--label", "site=plant1")
        self.assertEqual(set(out), {"name", "role", "labels", "token", "token_expires_at", "ca_fingerprint"})
        self.assertEqual(out["labels"], {"site": "plant1"})
        self.assertEqual(out["ca_fingerprint"], self.fleet.ca_fingerprint)
        self.assertGreaterEqual(len(out["token"]), 22)

    def test_device_list_json_shape(self):
        self.fleet.cli_json("device", "add", "cli-dev-2", "--role", "sensor")
        out = self.fleet.cli_json("device", "list")
        self.assertIsInstance(out, list)
        entry = [d for d in out if d["name"] == "cli-dev-2"][0]
        self.assertEqual(set(entry), {"name", "spiffe_id", "role", "labels", "state", "cert_serial",
                                      "cert_not_after", "connected", "key_store", "cert_ttl"})
        self.assertEqual(entry["key_store"], {"claimed": None, "verified": False})
        self.assertEqual(entry["state"], "pending")
        self.assertFalse(entry["connected"])

    def test_json_flag_anywhere(self):
        r = self.fleet.run(WARDEN, "-o", "json", "device", "list", "--dir", self.fleet.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        json.loads(r.stdout)

    def test_validation_errors_exit_2(self):
        self.assertEqual(self.fleet.cli("device", "add", "Bad_Name", "--role", "sensor").returncode, 2)
        self.assertEqual(self.fleet.cli("device", "add", "ok-name", "--role", "sensor",
                                        "--label", "bad label=x").returncode, 2)
        self.assertEqual(self.fleet.cli("device", "add", "ok-name2", "--role", "sensor",
                                        "--token-ttl", "forever").returncode, 2)
        self.assertEqual(self.fleet.cli("device", "frobnicate").returncode, 2)

    def test_names_are_never_reused(self):
        self.fleet.cli_json("device", "add", "cli-dup", "--role", "sensor")
        self.assertEqual(self.fleet.cli("device", "add", "cli-dup", "--role", "sensor").returncode, 1)
        self.assertEqual(self.fleet.cli("device", "revoke", "cli-dup").returncode, 0)
        self.assertEqual(self.fleet.cli("device", "add", "cli-dup", "--role", "sensor").returncode, 1)

    def test_unknown_device_exits_1(self):
        self.assertEqual(self.fleet.cli("device", "show", "no-such-device").returncode, 1)
        self.assertEqual(self.fleet.cli("device", "revoke", "no-such-device").returncode, 1)

    def test_revoke_several_devices_in_one_command(self):
        enrolled = [self.fleet.device(f"cli-batch-{i}", "sensor") for i in range(2)]
        clients = [self.live(d) for d in enrolled]
        pending = [f"cli-batch-p{i}" for i in range(18)]
        for name in pending:
            self.fleet.add_device(name, "sensor")
        names = [d.name for d in enrolled] + pending

        def states():
            return {d["name"]: d["state"] for d in self.fleet.cli_json("device", "list")}

        # One invalid name anywhere: exit 2 and nothing is sent.
        self.assertEqual(self.fleet.cli("device", "revoke", *names, "Bad_Name").returncode, 2)
        self.assertFalse([n for n in names if states()[n] == "revoked"])
        for c in clients:
            self.assertFalse(c.disconnected.is_set())

        # An unknown name among them: its error, exit 1, and every other device is
        # revoked; one result a line in the order given, a repeated name once.
        r = self.fleet.cli("-o", "json", "device", "revoke", *names[:10], "cli-batch-nobody", *names[10:],
                           names[0])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cli-batch-nobody", r.stderr)
        results = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        self.assertEqual([x["name"] for x in results], names)
        self.assertTrue(all(x["state"] == "revoked" and x["changed"] is True for x in results), results)
        self.assertEqual({n for n, s in states().items() if n in names and s == "revoked"}, set(names))
        # The live sessions were closed before the command returned.
        for c in clients:
            self.assertTrue(c.disconnected.is_set() or c.disconnected.wait(1.0))
            self.assertEqual(c.rc_value(c.disconnect_rc), 0x87)

        # Again: nothing changes, exit 0, text in the order given.
        r = self.fleet.cli("device", "revoke", *names[:3])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([line.split()[1] for line in r.stdout.splitlines()], names[:3])
        self.assertTrue(all("already revoked" in line for line in r.stdout.splitlines()), r.stdout)

    def test_unreachable_server_exits_3(self):
        creds = ["--server", "https://127.0.0.1:1",
                 "--cert", os.path.join(self.fleet.dir, "pki", "admin.pem"),
                 "--key", os.path.join(self.fleet.dir, "pki", "admin.key"),
                 "--ca", os.path.join(self.fleet.dir, "pki", "ca-bundle.pem")]
        r = self.fleet.run(WARDEN, "device", "list", *creds)
        self.assertEqual(r.returncode, 3)
        # Several names: exit 3 too, and the server is said to be unreachable once.
        r = self.fleet.run(WARDEN, "device", "revoke", "a-1", "a-2", "a-3", *creds)
        self.assertEqual(r.returncode, 3)
        self.assertEqual(r.stderr.count("cannot reach the Warden API"), 1, r.stderr)

    def test_policy_error_reports_file_line_col(self):
        path = os.path.join(self.fleet.tmp, "bad.yaml")
        with open(path, "w") as f:
            f.write("rules:\n  - id: x\n    effect: permit\n    principals: {kind: device}\n"
                    "    actions: [mqtt:teleport]\n    resources: [\"a\"]\n")
        r = self.fleet.cli("policy", "apply", path)
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr + r.stdout, rf"{path}:5:\d+: ")

    def test_policy_that_locks_out_operator_is_refused(self):
        before = self.fleet.cli_json("policy", "show")
        r = self.fleet.apply_policy("rules:\n  - id: devices\n    effect: permit\n    principals: {kind: device}\n"
                                    "    actions: [mqtt:connect]\n    resources: [\"${principal.id}\"]\n")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(self.fleet.cli_json("policy", "show")["version"], before["version"])

    def test_policy_show_returns_exact_text(self):
        text = FACTORY + "# trailing comment kept\n"
        self.assertEqual(self.fleet.apply_policy(text).returncode, 0)
        shown = self.fleet.cli_json("policy", "show")
        self.assertEqual(shown["text"], text)
        self.assertGreaterEqual(shown["version"], 2)

    def test_events_since_and_json_lines(self):
        self.fleet.cli_json("device", "add", "cli-ev", "--role", "sensor")
        events = self.fleet.events()
        self.assertTrue(events)
        ids = [e["id"] for e in events]
        self.assertEqual(ids, sorted(ids))
        for key in ("id", "time", "type", "principal", "actor", "action", "resource", "decision", "rule",
                    "reason"):
            self.assertIn(key, events[-1])
        since = self.fleet.events(since=ids[-2]) if len(ids) > 1 else []
        self.assertEqual([e["id"] for e in since], ids[-1:] if len(ids) > 1 else [])

    def test_events_follow_streams_new_events(self):
        p = subprocess.Popen([WARDEN, "events", "--follow", "-o", "json", "--dir", self.fleet.dir],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.0)
            self.fleet.cli_json("device", "add", "cli-follow", "--role", "sensor")
            line = p.stdout.readline()
            e = json.loads(line)
            self.assertEqual(e["type"], "device_add")
            self.assertEqual(e["resource"], "cli-follow")
        finally:
            p.terminate()
            p.wait(5)

    def test_help_everywhere(self):
        for args in (["--help"], ["device", "--help"], ["device", "add", "--help"], ["policy", "apply", "--help"],
                     ["events", "--help"], ["init", "--help"], ["serve", "--help"], ["broker", "config", "--help"],
                     ["firmware", "--help"], ["firmware", "approve", "--help"],
                     ["firmware", "revoke-approval", "--help"], ["firmware", "list", "--help"],
                     ["device", "history", "--help"]):
            r = self.fleet.run(WARDEN, *args)
            self.assertEqual(r.returncode, 0, args)
            self.assertIn("Usage", r.stdout + r.stderr)


class ShutdownTest(unittest.TestCase):

    def test_sigterm_disconnects_devices_with_0x8b_and_exits_0(self):
        fleet = Fleet()
        try:
            assert fleet.apply_policy(FACTORY).returncode == 0
            dev = fleet.device("shutdown-dev", "sensor")
            c = fleet.paho(dev)
            self.assertEqual(c.rc_value(c.connack[0]), 0)
            start = time.time()
            rc = fleet.stop_serve(signal.SIGTERM)
            self.assertEqual(rc, 0)
            self.assertLess(time.time() - start, 10)
            self.assertTrue(c.disconnected.wait(2))
            self.assertEqual(c.rc_value(c.disconnect_rc), 0x8B)
            c.close()
        finally:
            fleet.close()


if __name__ == "__main__":
    unittest.main()

"""Manual approval of enrollments (enrollment.approval: manual): 202 +
Retry-After, the request bound to the first CSR's key, `warden device
pending|approve|deny`, the token consumed only at issuance, and warden-agent
waiting through 202s; per-manufacturer approval for factory identities."""

import base64
import json
import os
import subprocess
import tempfile
import time
import unittest

from factory_ca import FactoryCa
from policies import FACTORY
from warden_fixture import AGENT, Device, FleetTestCase, SubProcess


class ApprovalTest(FleetTestCase):
    config_edits = (("approval: auto", "approval: manual"), ("retry_after: 1m", "retry_after: 1s"),
                    ("failures_per_minute: 20", "failures_per_minute: 1000"))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        assert cls.fleet.apply_policy(FACTORY).returncode == 0
        cls.url = f"https://127.0.0.1:{cls.fleet.api_port}/.well-known/est"
        cls.bundle = os.path.join(cls.fleet.dir, "pki", "ca-bundle.pem")

    def tmpdir(self):
        return tempfile.mkdtemp(dir=self.fleet.tmp)

    def csr(self, d, name="x"):
        os.makedirs(d, exist_ok=True)
        key = os.path.join(d, "key.pem")
        der = os.path.join(d, "csr.der")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-sha256", "-nodes", "-subj", f"/CN={name}", "-keyout", key, "-outform", "DER",
                        "-out", der], check=True, capture_output=True)
        b64 = os.path.join(d, "csr.b64")
        with open(der, "rb") as f, open(b64, "w") as o:
            o.write(base64.encodebytes(f.read()).decode())
        return key, b64

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "--cacert", self.bundle, "-o", "-", "-w", "\n%{http_code}", "-D", "-",
                            *args], capture_output=True, text=True, timeout=30)
        out = r.stdout.replace("\r\n", "\n")
        body, _, code = out.rpartition("\n")
        headers, _, payload = body.partition("\n\n")
        return int(code or 0), headers.lower(), payload

    def enroll_curl(self, name, token, b64):
        return self.curl("-u", f"{name}:{token}", "-H", "Content-Type: application/pkcs10", "--data-binary",
                         f"@{b64}", f"{self.url}/simpleenroll")

    def factory_device(self, d, org, maker, prefix, serial, *extra):
        """A manufacturer |maker| (CA "/O=|org|/CN=|org| CA", auto-registering
        devices |prefix|<serial>) and one factory identity of it, under |d|:
        returns its (cert, key)."""
        ca = FactoryCa(os.path.join(d, "ca"), subject=f"/O={org}/CN={org} CA")
        r = self.fleet.cli("manufacturer", "add", maker, "--ca", ca.cert, "--auto-register", "--role",
                           "sensor", "--name-prefix", prefix, *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        return ca.idevid(os.path.join(d, "dev"), serial)

    def pending(self, device):
        return [r for r in self.fleet.cli_json("device", "pending") if r["device"] == device]

    def test_first_request_is_202_then_same_key_gets_the_certificate_once_approved(self):
        added = self.fleet.add_device("appr-1", "sensor")
        d = self.tmpdir()
        key, b64 = self.csr(os.path.join(d, "a"), "appr-1")
        code, headers, body = self.enroll_curl("appr-1", added["token"], b64)
        self.assertEqual(code, 202, body)
        self.assertIn("retry-after: 1", headers)
        reqs = self.pending("appr-1")
        self.assertEqual(len(reqs), 1)
        req = reqs[0]
        self.assertEqual(req["state"], "pending")
        self.assertEqual(req["kind"], "token")
        self.assertIn(req["id"], body)
        e = self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["reason"] == "approval_pending"
                                  and e["resource"] == "appr-1")
        self.assertEqual(e["detail"]["request"], req["id"])
        # Retrying before approval: still 202, one request.
        code, _, _ = self.enroll_curl("appr-1", added["token"], b64)
        self.assertEqual(code, 202)
        self.assertEqual(len(self.pending("appr-1")), 1)
        # Another key is refused, before and after approval.
        _, other = self.csr(os.path.join(d, "b"), "appr-1")
        code, _, body = self.enroll_curl("appr-1", added["token"], other)
        self.assertEqual(code, 403, body)
        self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["reason"] == "key_mismatch")
        r = self.fleet.cli("device", "approve", req["id"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.fleet.wait_event(lambda e: e["type"] == "enroll_approve" and e["resource"] == "appr-1")
        code, _, body = self.enroll_curl("appr-1", added["token"], other)
        self.assertEqual(code, 403, body)
        # The token was not consumed by the 202s: the approved key gets its certificate.
        code, headers, body = self.enroll_curl("appr-1", added["token"], b64)
        self.assertEqual(code, 200, body)
        self.assertIn("application/pkcs7-mime", headers)
        self.assertEqual(self.pending("appr-1"), [])
        # Consumed now: a replay is the usual 401.
        code, _, _ = self.enroll_curl("appr-1", added["token"], b64)
        self.assertEqual(code, 401)

    def test_denied_request_is_refused(self):
        added = self.fleet.add_device("appr-2", "sensor")
        _, b64 = self.csr(self.tmpdir(), "appr-2")
        code, _, _ = self.enroll_curl("appr-2", added["token"], b64)
        self.assertEqual(code, 202)
        req = self.pending("appr-2")[0]
        out = self.fleet.cli_json("device", "deny", req["id"])
        self.assertEqual(out["state"], "denied")
        code, _, body = self.enroll_curl("appr-2", added["token"], b64)
        self.assertEqual(code, 403, body)
        self.assertIn("denied", body)
        self.fleet.wait_event(lambda e: e["type"] == "enroll_deny" and e["resource"] == "appr-2")
        self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["reason"] == "approval_denied")
        # Approving a denied request is refused; unknown ids are 404 (exit 1).
        self.assertEqual(self.fleet.cli("device", "approve", req["id"]).returncode, 1)
        self.assertEqual(self.fleet.cli("device", "approve", "r0000000000000000").returncode, 1)
        # A new token starts over.
        token = self.fleet.cli_json("device", "token", "appr-2")["token"]
        code, _, _ = self.enroll_curl("appr-2", token, b64)
        self.assertEqual(code, 202)

    def test_after_a_denial_only_a_new_key_asks_again(self):
        d = self.tmpdir()
        cert, key = self.factory_device(d, "Denied", "deniedmaker", "den-", "d1")

        def enroll(b64):
            return self.curl("--cert", cert, "--key", key, "-H", "Content-Type: application/pkcs10",
                             "--data-binary", f"@{b64}", f"{self.url}/simpleenroll")
        _, first = self.csr(os.path.join(d, "k1"))
        self.assertEqual(enroll(first)[0], 202)
        denied = self.pending("den-d1")[0]
        self.assertEqual(self.fleet.cli_json("device", "deny", denied["id"])["state"], "denied")
        # The denied key stays refused: a replay of the request changes nothing.
        code, _, body = enroll(first)
        self.assertEqual(code, 403, body)
        self.assertIn("denied", body)
        self.assertEqual(self.pending("den-d1"), [])
        # A new key (the device was reset) opens one new request for the operator...
        _, second = self.csr(os.path.join(d, "k2"))
        self.assertEqual(enroll(second)[0], 202)
        again = self.pending("den-d1")
        self.assertEqual(len(again), 1)
        self.assertNotEqual(again[0]["id"], denied["id"])
        # ...and only one: a third key is refused while it is pending, the old one too.
        _, third = self.csr(os.path.join(d, "k3"))
        self.assertEqual(enroll(third)[0], 403)
        self.assertEqual(enroll(first)[0], 403)
        self.assertEqual(len(self.pending("den-d1")), 1)
        self.assertEqual(self.fleet.cli("device", "approve", again[0]["id"]).returncode, 0)
        code, _, body = enroll(second)
        self.assertEqual(code, 200, body)

    def test_agent_waits_through_202_until_approved_and_connects(self):
        added = self.fleet.add_device("appr-3", "sensor")
        agent_dir = os.path.join(self.tmpdir(), "agent")
        proc = self.closing(SubProcess([AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}",
                                        "--name", "appr-3", "--token", added["token"],
                                        "--ca-fingerprint", self.fleet.ca_fingerprint, "--dir", agent_dir,
                                        "--approval-timeout", "2m"]))
        deadline = time.time() + 30
        while time.time() < deadline and not self.pending("appr-3"):
            time.sleep(0.3)
        reqs = self.pending("appr-3")
        self.assertEqual(len(reqs), 1)
        # The pending key is kept 0600 while it waits.
        self.assertEqual(os.stat(os.path.join(agent_dir, "pending-key.pem")).st_mode & 0o777, 0o600)
        time.sleep(1.5)  # at least one more 202 round
        self.assertEqual(len(self.pending("appr-3")), 1)
        self.assertEqual(self.fleet.cli("device", "approve", reqs[0]["id"]).returncode, 0)
        self.assertTrue(proc.exited(timeout=30), "warden-agent did not finish after approval")
        self.assertEqual(proc.proc.returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(agent_dir, "pending-key.pem")))
        dev = Device(self.fleet, "appr-3", agent_dir)
        p = self.fleet.pub(dev, "factory/telemetry/appr-3/t", "1")
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_agent_gives_up_after_its_bound_and_keeps_the_key(self):
        added = self.fleet.add_device("appr-4", "sensor")
        agent_dir = os.path.join(self.tmpdir(), "agent")
        args = [AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}", "--name", "appr-4",
                "--token", added["token"], "--ca-fingerprint", self.fleet.ca_fingerprint, "--dir", agent_dir,
                "--approval-timeout", "3s"]
        r = self.fleet.run(*args)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("awaits approval", r.stderr)
        self.assertTrue(os.path.exists(os.path.join(agent_dir, "pending-key.pem")))
        req = self.pending("appr-4")[0]
        self.assertEqual(self.fleet.cli("device", "approve", req["id"]).returncode, 0)
        # Running it again continues the same request with the kept key.
        r = self.fleet.run(*args)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_agent_denied_says_how_to_ask_again(self):
        added = self.fleet.add_device("appr-5", "sensor")
        agent_dir = os.path.join(self.tmpdir(), "agent")
        args = [AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}", "--name", "appr-5",
                "--token", added["token"], "--ca-fingerprint", self.fleet.ca_fingerprint, "--dir", agent_dir,
                "--approval-timeout", "2s"]
        self.assertEqual(self.fleet.run(*args).returncode, 1)
        first = self.pending("appr-5")[0]
        self.assertEqual(self.fleet.cli("device", "deny", first["id"]).returncode, 0)
        r = self.fleet.run(*args)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("denied", r.stderr)
        waiting = os.path.join(agent_dir, "pending-key.pem")
        self.assertIn(f"delete {waiting}", r.stderr)
        os.remove(waiting)
        r = self.fleet.run(*args)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("awaits approval", r.stderr)
        second = self.pending("appr-5")[0]
        self.assertNotEqual(second["id"], first["id"])
        self.assertEqual(self.fleet.cli("device", "approve", second["id"]).returncode, 0)
        self.assertEqual(self.fleet.run(*args).returncode, 0)

    def test_manufacturer_with_auto_approval_skips_the_fleet_setting(self):
        d = self.tmpdir()
        cert, key = self.factory_device(d, "Auto", "automaker", "auto-", "a1", "--approval", "auto")
        _, b64 = self.csr(os.path.join(d, "csr"))
        code, _, body = self.curl("--cert", cert, "--key", key, "-H", "Content-Type: application/pkcs10",
                                  "--data-binary", f"@{b64}", f"{self.url}/simpleenroll")
        self.assertEqual(code, 200, body)

    def test_factory_identity_waits_for_approval_under_the_fleet_setting(self):
        d = self.tmpdir()
        cert, key = self.factory_device(d, "Manual", "manualmaker", "man-", "m1")
        _, b64 = self.csr(os.path.join(d, "csr"))
        enroll = ["--cert", cert, "--key", key, "-H", "Content-Type: application/pkcs10", "--data-binary", f"@{b64}",
                  f"{self.url}/simpleenroll"]
        code, headers, _ = self.curl(*enroll)
        self.assertEqual(code, 202)
        req = self.pending("man-m1")[0]
        self.assertEqual(req["kind"], "factory")
        self.assertEqual(req["manufacturer"], "manualmaker")
        self.assertEqual(req["serial_number"], "m1")
        # No device exists before issuance.
        self.assertNotEqual(self.fleet.cli("device", "show", "man-m1").returncode, 0)
        self.assertEqual(self.fleet.cli("device", "approve", req["id"]).returncode, 0)
        code, _, body = self.curl(*enroll)
        self.assertEqual(code, 200, body)
        self.assertEqual(self.fleet.cli_json("device", "show", "man-m1")["state"], "active")


if __name__ == "__main__":
    unittest.main()

"""CA rotation with live sessions: `warden ca rotate` against a running
server with Mosquitto and devices in live MQTT sessions, renewal onto the new
CA, `warden ca retire` (refused, then --force), `warden ca list`; no session
is lost that the rotation should not cut."""

import json
import os
import shutil
import subprocess
import time
import unittest

from policies import FACTORY
from warden_fixture import AGENT, Device, FleetTestCase, free_port, wait_port

PKI_PORT = free_port()


def run(*args, timeout=60):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def issuer_cn(cert_file):
    return run("openssl", "x509", "-in", cert_file, "-noout", "-issuer").stdout.strip()


def serial_of(cert_file):
    return run("openssl", "x509", "-in", cert_file, "-noout", "-serial").stdout.strip().split("=")[1].lower()


class CaRotationTest(FleetTestCase):
    init_args = ("--pki-listen", f"127.0.0.1:{PKI_PORT}")

    def renew(self, dev):
        r = run(AGENT, "run", "--dir", dev.dir, "--renew-now", "--once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_rotate_and_retire_with_live_sessions(self):
        f = self.fleet
        wait_port(PKI_PORT, proc=f.serve)
        self.assertEqual(f.apply_policy(FACTORY).returncode, 0)
        s1, s2 = f.device("rot-s1", "sensor"), f.device("rot-s2", "sensor")
        ctl = f.device("rot-ctl", "controller")
        stay = f.device("rot-stay", "sensor")  # keeps its old certificate to the end
        for d in (s1, s2, ctl, stay):
            self.assertIn("Warden Issuing CA", issuer_cn(d.cert))
        c1, c2, cc, cs = self.live(s1), self.live(s2), self.live(ctl), self.live(stay)
        self.assertEqual(cc.subscribe("factory/telemetry/#"), [1])
        self.assertTrue(self.flows(c1, s1, cc, "before"))

        # --- rotate: nothing is cut, traffic keeps flowing --------------------
        out = f.cli_json("ca", "rotate")
        self.assertEqual((out["name"], out["previous"]), ("issuing-2", "issuing-1"))
        time.sleep(0.5)
        for c in (c1, c2, cc, cs):
            self.assertFalse(c.disconnected.is_set(), "a live session was cut by the rotation")
        self.assertTrue(self.flows(c1, s1, cc, "after-rotate"))
        self.assertTrue(self.flows(c2, s2, cc, "after-rotate-2"))
        cas = {c["name"]: c for c in f.cli_json("ca", "list")}
        self.assertEqual(cas["issuing-1"]["state"], "retiring")
        self.assertEqual(cas["issuing-2"]["state"], "active")
        self.assertEqual(cas["root"]["kind"], "root")
        with open(os.path.join(f.dir, "pki", "ca-bundle.pem")) as fh:
            self.assertEqual(fh.read().count("BEGIN CERTIFICATE"), 3)

        # New certificates come from the new CA at once; cacerts carries both.
        fresh = f.device("rot-new", "sensor")
        self.assertIn("Issuing CA 2", issuer_cn(fresh.cert))
        with open(fresh.ca) as fh:
            self.assertEqual(fh.read().count("BEGIN CERTIFICATE"), 3)
        self.live(fresh)
        # The gateway presents its reissued certificate (leaf + new issuing CA).
        sock = f.tls_socket(fresh)
        issuer = dict(x[0] for x in sock.getpeercert()["issuer"])
        sock.close()
        self.assertIn("Issuing CA 2", issuer["commonName"])
        # A device still on the old CA can open new connections too (this
        # one takes its live session over, so it gets a new one).
        r = f.pub(stay, "factory/telemetry/rot-stay/t", "old-ca", "-q", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        cs = self.live(stay)
        # The operator certificate moved to the new CA.
        self.assertIn("Issuing CA 2", issuer_cn(os.path.join(f.dir, "pki", "admin.pem")))
        # The new CA publishes its CRL; the old one still does.
        for ca in ("issuing-1", "issuing-2"):
            r = run("curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{PKI_PORT}/pki/{ca}.crl")
            self.assertEqual(r.returncode, 0, ca)

        # --- retire refuses while the old CA has valid certificates ----------
        r = f.cli("ca", "retire", "issuing-1")
        self.assertEqual(r.returncode, 1)
        self.assertIn("unexpired certificate", r.stderr)
        r = f.cli("ca", "retire", "issuing-2")
        self.assertEqual(r.returncode, 1)
        self.assertIn("active", r.stderr)

        # --- devices renew onto the new CA and reconnect with it -------------
        old_serials = {}
        moved = []
        for dev, client in ((s1, c1), (s2, c2), (ctl, cc)):
            old_serials[dev.name] = serial_of(dev.cert)
            self.renew(dev)
            self.assertIn("Issuing CA 2", issuer_cn(dev.cert))
            client.close()
            moved.append(self.live(dev, client_id=dev.name))
        n1, n2, ncc = moved
        self.assertEqual(ncc.subscribe("factory/telemetry/#"), [1])
        self.assertTrue(self.flows(n1, s1, ncc, "renewed"))

        # --- retire --force: only the session on an old certificate is cut ---
        out = f.cli_json("ca", "retire", "issuing-1", "--force")
        self.assertEqual(out["state"], "retired")
        self.assertGreaterEqual(out["revoked"], 4)  # rot-stay + 3 old device certificates (+ the old operator/gateway)
        self.assertTrue(cs.disconnected.wait(5), "the session on a force-revoked certificate was not cut")
        time.sleep(0.5)
        for c in (n1, n2, ncc):
            self.assertFalse(c.disconnected.is_set(), "a session on a new certificate was cut by retire")
        self.assertTrue(self.flows(n2, s2, ncc, "after-retire"))
        cas = {c["name"]: c for c in f.cli_json("ca", "list")}
        self.assertEqual(cas["issuing-1"]["state"], "retired")
        with open(os.path.join(f.dir, "pki", "ca-bundle.pem")) as fh:
            self.assertEqual(fh.read().count("BEGIN CERTIFICATE"), 2)
        # The old CA is no longer trusted: the old certificate cannot connect.
        r = f.pub(stay, "factory/telemetry/rot-stay/t", "x")
        self.assertNotEqual(r.returncode, 0)
        # Its CRL and OCSP stay up while its certificates have not expired.
        crl = os.path.join(f.tmp, "issuing-1.crl")
        r = run("curl", "-sf", "-o", crl, f"http://127.0.0.1:{PKI_PORT}/pki/issuing-1.crl")
        self.assertEqual(r.returncode, 0)
        text = run("openssl", "crl", "-inform", "DER", "-in", crl, "-noout", "-text").stdout
        self.assertIn("Superseded", text)
        self.assertIn(old_serials["rot-s1"].upper()[-8:], text.replace(":", "").upper())
        issuing1 = os.path.join(f.dir, "pki", "issuing.pem")
        r = run("openssl", "ocsp", "-issuer", issuing1, "-serial", "0x" + old_serials["rot-s2"],
                "-url", f"http://127.0.0.1:{PKI_PORT}/ocsp", "-CAfile", os.path.join(f.dir, "pki", "root.pem"),
                "-verify_other", issuing1, "-resp_text")
        self.assertIn(": revoked", r.stdout + r.stderr)
        # The root CRL, re-signed offline, lists the retired CA for third
        # parties: -crl_check_all now fails for its certificates.
        signed = f.cli_json("ca", "crl", "--root")
        issuing1_serial = run("openssl", "x509", "-in", issuing1, "-noout", "-serial").stdout.split("=")[1].strip()
        self.assertEqual([int(s, 16) for s in signed["revoked"]], [int(issuing1_serial, 16)])
        root_crl = run("openssl", "crl", "-inform", "DER", "-in", os.path.join(f.dir, "pki", "crl", "root.crl"),
                       "-noout", "-text").stdout
        self.assertIn("Superseded", root_crl)
        self.assertIn(issuing1_serial.upper(), root_crl.replace(":", "").upper())
        # The operator CLI still works (its certificate is from issuing-2).
        self.assertTrue(any(c["issuer"] == "issuing-2" for c in f.cli_json("cert", "list")))
        f.wait_event(lambda e: e["type"] == "ca_rotate" and e["resource"] == "issuing-2")
        f.wait_event(lambda e: e["type"] == "ca_retire" and e["resource"] == "issuing-1")
        # Rotating again makes issuing-3; the broker was never touched.
        self.assertEqual(f.cli_json("ca", "rotate")["name"], "issuing-3")
        self.assertIsNone(f.broker.poll())
        self.assertTrue(self.flows(n1, s1, ncc, "after-second-rotate"))


if __name__ == "__main__":
    unittest.main()

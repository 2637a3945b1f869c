"""Factory identities (IEEE 802.1AR IDevIDs): `warden manufacturer` and
enrollment over TLS client authentication with a factory certificate, by
warden-agent and by `openssl req` + `curl`; every refusal path."""

import base64
import json
import os
import subprocess
import tempfile
import time
import unittest

from factory_ca import FactoryCa
from policies import FACTORY
from warden_fixture import AGENT, Device, FleetTestCase


class IdevidTest(FleetTestCase):
    # Many refusals from one address in a minute: keep them below the limit.
    config_edits = (("failures_per_minute: 20", "failures_per_minute: 1000"),)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        assert cls.fleet.apply_policy(FACTORY).returncode == 0
        cls.url = f"https://127.0.0.1:{cls.fleet.api_port}/.well-known/est"
        cls.bundle = os.path.join(cls.fleet.dir, "pki", "ca-bundle.pem")
        cls.work = tempfile.mkdtemp(dir=cls.fleet.tmp)
        cls.acme = FactoryCa(os.path.join(cls.work, "acme"))
        # Same subject name, another key: must never be mistaken for Acme's CA.
        cls.lookalike = FactoryCa(os.path.join(cls.work, "lookalike"))
        cls.unknown = FactoryCa(os.path.join(cls.work, "unknown"), subject="/O=Unknown/CN=Unknown IDevID CA")
        allow = os.path.join(cls.work, "serials.txt")
        with open(allow, "w") as f:
            f.write("# Acme lot 42\nsn0001\n  sn0002  # with a comment\nsn0003\nsn0004\nsn0005\nsn0006\n\nSN0007\n")
        r = cls.fleet.cli("manufacturer", "add", "acme", "--ca", cls.acme.cert, "--allow", allow,
                          "--role", "sensor", "--label", "vendor=acme", "--name-prefix", "acme-", "-o", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        cls.acme_json = json.loads(r.stdout)

    def tmpdir(self):
        return tempfile.mkdtemp(dir=self.fleet.tmp)

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "--cacert", self.bundle, "-o", "-", "-w", "\n%{http_code}",
                            *args], capture_output=True, text=True, timeout=30)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body, r.returncode

    def csr(self, d):
        key = os.path.join(d, "key.pem")
        der = os.path.join(d, "csr.der")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-sha256", "-nodes", "-subj", "/CN=whatever", "-keyout", key, "-outform", "DER",
                        "-out", der], check=True, capture_output=True)
        b64 = os.path.join(d, "csr.b64")
        with open(der, "rb") as f, open(b64, "w") as o:
            o.write(base64.encodebytes(f.read()).decode())
        return key, b64

    def enroll_curl(self, cert, key, b64):
        return self.curl("--cert", cert, "--key", key, "-H", "Content-Type: application/pkcs10",
                         "--data-binary", f"@{b64}", f"{self.url}/simpleenroll")

    def agent_enroll(self, cert, key, d):
        return self.fleet.run(AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}",
                              "--idevid", cert, "--idevid-key", key, "--ca-fingerprint", self.fleet.ca_fingerprint,
                              "--dir", d, "-o", "json")

    def test_manufacturer_list_shows_the_ca(self):
        out = self.fleet.cli_json("manufacturer", "list")
        acme = [m for m in out if m["name"] == "acme"][0]
        self.assertEqual(acme["role"], "sensor")
        self.assertEqual(acme["name_prefix"], "acme-")
        self.assertEqual(acme["allowed_serials"], 7)
        self.assertFalse(acme["auto_register"])
        fp = subprocess.run(["openssl", "x509", "-in", self.acme.cert, "-noout", "-fingerprint", "-sha256"],
                            capture_output=True, text=True).stdout.strip().split("=")[1].replace(":", "").lower()
        self.assertEqual(acme["ca"][0]["fingerprint"], "sha256:" + fp)
        self.fleet.wait_event(lambda e: e["type"] == "manufacturer_add" and e["resource"] == "acme")

    def test_agent_enrolls_with_idevid_and_connects_through_the_gateway(self):
        d = self.tmpdir()
        cert, key = self.acme.idevid(os.path.join(d, "factory"), "sn0001")
        agent_dir = os.path.join(d, "agent")
        r = self.agent_enroll(cert, key, agent_dir)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["name"], "acme-sn0001")
        self.assertEqual(out["spiffe_id"], "spiffe://warden.local/device/acme-sn0001")
        dev = self.fleet.cli_json("device", "show", "acme-sn0001")
        self.assertEqual(dev["state"], "active")
        self.assertEqual(dev["role"], "sensor")
        self.assertEqual(dev["labels"], {"vendor": "acme"})
        e = self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["resource"] == "acme-sn0001")
        self.assertEqual(e["decision"], "permit")
        self.assertEqual(e["detail"]["manufacturer"], "acme")
        self.assertEqual(e["detail"]["serial_number"], "sn0001")
        # The LDevID works at the gateway (mosquitto_pub) ...
        device = Device(self.fleet, "acme-sn0001", agent_dir)
        p = self.fleet.pub(device, "factory/telemetry/acme-sn0001/t", "21.5")
        self.assertEqual(p.returncode, 0, p.stderr)
        # ... and the same factory identity again is a clone: refused.
        d2 = self.tmpdir()
        r = self.agent_enroll(cert, key, os.path.join(d2, "agent"))
        self.assertNotEqual(r.returncode, 0)
        e = self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["reason"] == "duplicate_identity"
                                  and e["resource"] == "acme-sn0001")
        self.assertEqual(e["decision"], "deny")

    def test_openssl_and_curl_enroll_with_an_idevid_with_eku(self):
        d = self.tmpdir()
        cert, key = self.acme.idevid(os.path.join(d, "factory"), "sn0002", eku=True)
        _, b64 = self.csr(d)
        code, body, _ = self.enroll_curl(cert, key, b64)
        self.assertEqual(code, 200, body)
        der = base64.b64decode(body)
        p = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-print_certs", "-text"], input=der,
                           capture_output=True)
        self.assertIn(b"URI:spiffe://warden.local/device/acme-sn0002", p.stdout)

    def test_serial_not_allowed_is_refused(self):
        d = self.tmpdir()
        for serial in ("sn9999", "sn0007"):  # not listed; listed only as SN0007 (exact match)
            cert, key = self.acme.idevid(os.path.join(d, serial), serial)
            _, b64 = self.csr(os.path.join(d, serial))
            code, body, _ = self.enroll_curl(cert, key, b64)
            self.assertEqual(code, 403, body)
            self.assertIn("allow-list", body)
        e = self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["reason"] == "serial_not_allowed")
        self.assertEqual(e["detail"]["manufacturer"], "acme")
        r = self.fleet.cli("device", "show", "acme-sn9999")
        self.assertNotEqual(r.returncode, 0)

    def test_unknown_manufacturer_and_lookalike_ca_fail_the_handshake(self):
        d = self.tmpdir()
        for name, ca in (("unknown", self.unknown), ("lookalike", self.lookalike)):
            cert, key = ca.idevid(os.path.join(d, name), "sn0003")
            _, b64 = self.csr(os.path.join(d, name))
            code, body, rc = self.enroll_curl(cert, key, b64)
            self.assertNotEqual(rc, 0, f"{name}: {code} {body}")
            self.assertNotEqual(code, 200)
            r = self.agent_enroll(cert, key, os.path.join(d, name, "agent"))
            self.assertNotEqual(r.returncode, 0)
        self.fleet.wait_event(lambda e: e["type"] == "tls_reject" and e["detail"].get("listener") == "api")
        r = self.fleet.cli("device", "show", "acme-sn0003")
        self.assertNotEqual(r.returncode, 0)

    def test_idevid_is_refused_by_gateway_admin_api_and_reenroll(self):
        d = self.tmpdir()
        cert, key = self.acme.idevid(os.path.join(d, "factory"), "sn0004")
        # Gateway: not a trust anchor there.
        fake = Device(self.fleet, "acme-sn0004", d)
        fake.cert, fake.key, fake.ca = cert, key, self.bundle
        p = self.fleet.pub(fake, "factory/telemetry/acme-sn0004/t", "x")
        self.assertNotEqual(p.returncode, 0)
        # Admin API: never an operator.
        code, body, _ = self.curl("--cert", cert, "--key", key, f"https://127.0.0.1:{self.fleet.api_port}/v1/devices")
        self.assertEqual(code, 403, body)
        self.assertIn("factory certificate", body)
        # simplereenroll: never a renewal credential.
        _, b64 = self.csr(d)
        code, body, _ = self.curl("--cert", cert, "--key", key, "-H", "Content-Type: application/pkcs10",
                                  "--data-binary", f"@{b64}", f"{self.url}/simplereenroll")
        self.assertEqual(code, 403, body)
        self.fleet.wait_event(lambda e: e["type"] == "renew" and e["reason"] == "factory_certificate")
        self.fleet.wait_event(lambda e: e["type"] == "admin_deny" and e["detail"].get("cause") == "factory_certificate")
        # cacerts and csrattrs still answer a client presenting it.
        code, _, _ = self.curl("--cert", cert, "--key", key, f"{self.url}/csrattrs")
        self.assertEqual(code, 200)

    def test_invalid_name_is_refused(self):
        d = self.tmpdir()
        cert, key = self.acme.idevid(os.path.join(d, "factory"), "SN-0005")  # uppercase: not a device name
        _, b64 = self.csr(d)
        code, body, _ = self.enroll_curl(cert, key, b64)
        self.assertEqual(code, 403, body)
        e = self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["reason"] == "invalid_name")
        self.assertEqual(e["decision"], "deny")

    def test_taken_name_is_refused(self):
        self.fleet.add_device("acme-sn0005", "sensor")  # registered by token first
        d = self.tmpdir()
        cert, key = self.acme.idevid(os.path.join(d, "factory"), "sn0005")
        _, b64 = self.csr(d)
        code, body, _ = self.enroll_curl(cert, key, b64)
        self.assertEqual(code, 403, body)
        self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["reason"] == "name_taken")

    def test_removed_manufacturer_no_longer_enrolls(self):
        d = self.tmpdir()
        ca = FactoryCa(os.path.join(d, "gone"), subject="/O=Gone/CN=Gone CA")
        r = self.fleet.cli("manufacturer", "add", "gone", "--ca", ca.cert, "--auto-register", "--role", "sensor")
        self.assertEqual(r.returncode, 0, r.stderr)
        cert, key = ca.idevid(os.path.join(d, "dev"), "gone-1")
        _, b64 = self.csr(d)
        code, body, _ = self.enroll_curl(cert, key, b64)
        self.assertEqual(code, 200, body)  # auto-register: no allow-list, no prefix
        self.assertEqual(self.fleet.cli_json("device", "show", "gone-1")["state"], "active")
        r = self.fleet.cli("manufacturer", "remove", "gone")
        self.assertEqual(r.returncode, 0, r.stderr)
        cert2, key2 = ca.idevid(os.path.join(d, "dev2"), "gone-2")
        code, body, rc = self.enroll_curl(cert2, key2, b64)
        self.assertNotEqual(code, 200, body)
        self.assertNotIn("gone", [m["name"] for m in self.fleet.cli_json("manufacturer", "list")])
        r = self.fleet.cli("manufacturer", "remove", "gone")
        self.assertEqual(r.returncode, 1)

    def test_manufacturer_add_validates(self):
        allow = os.path.join(self.work, "serials.txt")
        cases = [
            ["manufacturer", "add", "bad", "--ca", self.acme.cert, "--role", "sensor"],  # neither list nor auto
            ["manufacturer", "add", "bad", "--ca", self.acme.cert, "--allow", allow, "--auto-register",
             "--role", "sensor"],
            ["manufacturer", "add", "bad", "--ca", allow, "--auto-register", "--role", "sensor"],  # not a PEM
            ["manufacturer", "add", "bad", "--ca", self.acme.cert, "--auto-register", "--role", "sensor",
             "--cert-ttl", "31d"],
            ["manufacturer", "add", "Bad", "--ca", self.acme.cert, "--auto-register", "--role", "sensor"],
        ]
        for args in cases:
            r = self.fleet.cli(*args)
            self.assertEqual(r.returncode, 2, f"{args}: {r.stdout}{r.stderr}")
        r = self.fleet.cli("manufacturer", "add", "acme", "--ca", self.acme.cert, "--auto-register", "--role", "x")
        self.assertEqual(r.returncode, 1, r.stderr)  # exists

    def test_zz_rebootstrap_after_the_certificate_expired(self):
        d = self.tmpdir()
        ca = FactoryCa(os.path.join(d, "short"), subject="/O=Short/CN=Short CA")
        r = self.fleet.cli("manufacturer", "add", "short", "--ca", ca.cert, "--auto-register", "--role", "sensor",
                           "--name-prefix", "short-", "--cert-ttl", "1m")
        self.assertEqual(r.returncode, 0, r.stderr)
        cert, key = ca.idevid(os.path.join(d, "dev"), "s1")
        r = self.agent_enroll(cert, key, os.path.join(d, "a1"))
        self.assertEqual(r.returncode, 0, r.stderr)
        first = json.loads(r.stdout)["cert_serial"]
        # While the certificate is valid, the identity is in use: refused.
        r = self.agent_enroll(cert, key, os.path.join(d, "a2"))
        self.assertNotEqual(r.returncode, 0)
        time.sleep(62)  # the 1-minute certificate expires
        r = self.agent_enroll(cert, key, os.path.join(d, "a3"))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["name"], "short-s1")
        self.assertNotEqual(out["cert_serial"], first)
        e = self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["resource"] == "short-s1"
                                  and e["detail"].get("rebootstrap"))
        self.assertEqual(e["decision"], "permit")
        dev = Device(self.fleet, "short-s1", os.path.join(d, "a3"))
        p = self.fleet.pub(dev, "factory/telemetry/short-s1/t", "1")
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()

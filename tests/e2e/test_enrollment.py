"""EST enrollment (RFC 7030) by warden-agent and by a standard client made of
`openssl req` + `curl`, and every token attack."""

import base64
import os
import stat
import subprocess
import tempfile
import time
import unittest

from policies import FACTORY
from warden_fixture import Device, FleetTestCase


class EnrollmentTest(FleetTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        assert cls.fleet.apply_policy(FACTORY).returncode == 0
        cls.url = f"https://127.0.0.1:{cls.fleet.api_port}/.well-known/est"
        cls.bundle = os.path.join(cls.fleet.dir, "pki", "ca-bundle.pem")

    def tmpdir(self):
        d = tempfile.mkdtemp(dir=self.fleet.tmp)
        return d

    def make_csr(self, d, name, algo="ec", digest="-sha256"):
        key = os.path.join(d, "key.pem")
        if algo == "ec":
            subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", key],
                           check=True, capture_output=True)
        elif algo == "p384":
            subprocess.run(["openssl", "ecparam", "-genkey", "-name", "secp384r1", "-noout", "-out", key],
                           check=True, capture_output=True)
        else:
            subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
        der = os.path.join(d, "csr.der")
        subprocess.run(["openssl", "req", "-new", "-key", key, digest, "-subj", f"/CN={name}/O=ignored",
                        "-outform", "DER", "-out", der], check=True, capture_output=True)
        b64 = os.path.join(d, "csr.b64")
        with open(der, "rb") as f, open(b64, "w") as o:
            o.write(base64.encodebytes(f.read()).decode())
        return key, b64

    def curl(self, *args):
        r = subprocess.run(["curl", "-sS", "--cacert", self.bundle, "-o", "-", "-w", "\n%{http_code}",
                            "-D", "-", *args], capture_output=True, text=True, timeout=30)
        out = r.stdout.replace("\r\n", "\n")
        body, _, code = out.rpartition("\n")
        return int(code or 0), body

    def enroll_curl(self, name, token, b64, content_type="application/pkcs10"):
        return self.curl("-u", f"{name}:{token}", "-H", f"Content-Type: {content_type}",
                         "--data-binary", f"@{b64}", f"{self.url}/simpleenroll")

    def test_cacerts_returns_root_and_issuing(self):
        d = self.tmpdir()
        r = subprocess.run(["curl", "-sS", "--cacert", self.bundle, "-o", os.path.join(d, "ca.b64"),
                            f"{self.url}/cacerts"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0)
        with open(os.path.join(d, "ca.b64"), "rb") as f:
            der = base64.b64decode(f.read())
        p = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-print_certs"], input=der,
                           capture_output=True)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stdout.count(b"BEGIN CERTIFICATE"), 2)

    def test_openssl_and_curl_enroll_like_the_agent(self):
        added = self.fleet.add_device("curl-dev", "sensor")
        d = self.tmpdir()
        key, b64 = self.make_csr(d, "curl-dev")
        code, body = self.enroll_curl("curl-dev", added["token"], b64)
        self.assertEqual(code, 200, body)
        headers, _, payload = body.partition("\n\n")
        self.assertIn("application/pkcs7-mime", headers.lower())
        self.assertIn("smime-type=certs-only", headers.lower())
        der = base64.b64decode(payload)
        p = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-print_certs"], input=der, capture_output=True)
        self.assertEqual(p.stdout.count(b"BEGIN CERTIFICATE"), 1)  # the issued certificate only
        with open(os.path.join(d, "cert.pem"), "wb") as f:
            f.write(p.stdout)
        text = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "cert.pem"), "-noout", "-text"],
                              capture_output=True, text=True).stdout
        self.assertIn("URI:spiffe://warden.local/device/curl-dev", text)
        self.assertIn("TLS Web Client Authentication", text)
        self.assertIn("CA:FALSE", text)
        self.assertNotIn("O = ignored", text)
        with open(os.path.join(d, "cert.pem"), "ab") as f, open(os.path.join(self.fleet.dir, "pki",
                                                                              "issuing.pem"), "rb") as i:
            f.write(i.read())
        with open(os.path.join(d, "ca.pem"), "wb") as f, open(self.bundle, "rb") as b:
            f.write(b.read())
        dev = Device(self.fleet, "curl-dev", d)
        r = self.fleet.pub(dev, "factory/telemetry/curl-dev/t", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The token was consumed in the same transaction: reuse fails.
        key2, b64_2 = self.make_csr(self.tmpdir(), "curl-dev")
        code, _ = self.enroll_curl("curl-dev", added["token"], b64_2)
        self.assertEqual(code, 401)

    def test_reenroll_with_client_certificate(self):
        dev = self.fleet.device("reenroll-dev", "sensor")
        d = self.tmpdir()
        key, b64 = self.make_csr(d, "reenroll-dev")
        code, body = self.curl("--cert", dev.cert, "--key", dev.key, "-H", "Content-Type: application/pkcs10",
                               "--data-binary", f"@{b64}", f"{self.url}/simplereenroll")
        self.assertEqual(code, 200, body)
        # Without a client certificate: refused.
        code, _ = self.curl("-H", "Content-Type: application/pkcs10", "--data-binary", f"@{b64}",
                            f"{self.url}/simplereenroll")
        self.assertIn(code, (401, 403))
        self.fleet.wait_event(lambda e: e["type"] == "renew" and e["principal"].endswith("/reenroll-dev"))

    def test_wrong_and_reused_tokens_get_the_same_401(self):
        added = self.fleet.add_device("tok-dev", "sensor")
        key, b64 = self.make_csr(self.tmpdir(), "tok-dev")
        code1, body1 = self.enroll_curl("tok-dev", "A" * 22, b64)
        code2, body2 = self.enroll_curl("no-such-device", added["token"], b64)
        self.assertEqual(code1, 401)
        self.assertEqual(code2, 401)
        self.assertIn("WWW-Authenticate: Basic", body1)
        strip = lambda b: b.partition("\n\n")[2]
        self.assertEqual(strip(body1), strip(body2))
        self.fleet.wait_event(lambda e: e["type"] == "token_failure" and e["reason"] == "token_mismatch")
        # The real token still works: failures never lock a name.
        code, _ = self.enroll_curl("tok-dev", added["token"], b64)
        self.assertEqual(code, 200)

    def test_expired_token_is_refused(self):
        added = self.fleet.add_device("exp-dev", "sensor", token_ttl="1s")
        time.sleep(2.2)
        key, b64 = self.make_csr(self.tmpdir(), "exp-dev")
        code, _ = self.enroll_curl("exp-dev", added["token"], b64)
        self.assertEqual(code, 401)
        self.fleet.wait_event(lambda e: e["type"] == "token_failure" and e["reason"] == "token_expired")
        # A new token replaces it.
        t = self.fleet.cli_json("device", "token", "exp-dev")
        code, _ = self.enroll_curl("exp-dev", t["token"], b64)
        self.assertEqual(code, 200)

    def test_new_token_invalidates_old(self):
        added = self.fleet.add_device("rot-dev", "sensor")
        self.fleet.cli_json("device", "token", "rot-dev")
        key, b64 = self.make_csr(self.tmpdir(), "rot-dev")
        code, _ = self.enroll_curl("rot-dev", added["token"], b64)
        self.assertEqual(code, 401)

    def test_rsa_and_junk_csrs_are_400(self):
        added = self.fleet.add_device("csr-dev", "sensor")
        d = self.tmpdir()
        key, b64 = self.make_csr(d, "csr-dev", algo="rsa")
        code, body = self.enroll_curl("csr-dev", added["token"], b64)
        self.assertEqual(code, 400, body)
        junk = os.path.join(d, "junk")
        with open(junk, "w") as f:
            f.write("this is not base64 !!!")
        code, body = self.enroll_curl("csr-dev", added["token"], junk)
        self.assertEqual(code, 400)
        code, body = self.enroll_curl("csr-dev", added["token"], b64, content_type="application/json")
        self.assertEqual(code, 415)
        # csrattrs announces P-256 and ECDSA-SHA256, and the server holds CSRs to it.
        key, b64 = self.make_csr(self.tmpdir(), "csr-dev", algo="p384")
        code, body = self.enroll_curl("csr-dev", added["token"], b64)
        self.assertEqual(code, 400, body)
        self.assertIn("use an EC P-256 key", body)
        key, b64 = self.make_csr(self.tmpdir(), "csr-dev", digest="-sha384")
        code, body = self.enroll_curl("csr-dev", added["token"], b64)
        self.assertEqual(code, 400, body)
        self.assertIn("sign it with ECDSA and SHA-256", body)
        # The token was not consumed by refused requests.
        key, b64 = self.make_csr(self.tmpdir(), "csr-dev")
        code, body = self.enroll_curl("csr-dev", added["token"], b64)
        self.assertEqual(code, 200, body)
        self.fleet.wait_event(lambda e: e["type"] == "enroll" and e["reason"] == "bad_csr"
                              and e["resource"] == "csr-dev")

    def test_csrattrs_announces_p256_and_ecdsa_sha256(self):
        d = self.tmpdir()
        code, body = self.curl(f"{self.url}/csrattrs")
        self.assertEqual(code, 200, body)
        headers, _, payload = body.partition("\n\n")
        self.assertIn("content-type: application/csrattrs", headers.lower())
        self.assertIn("content-transfer-encoding: base64", headers.lower())
        der = base64.b64decode(payload)
        self.assertEqual(der.hex(), "302106082a8648ce3d040302301506072a8648ce3d0201310a06082a8648ce3d030107")
        path = os.path.join(d, "attrs.der")
        with open(path, "wb") as f:
            f.write(der)
        text = subprocess.run(["openssl", "asn1parse", "-inform", "DER", "-in", path],
                              capture_output=True, text=True, check=True).stdout
        self.assertIn("ecdsa-with-SHA256", text)
        self.assertIn("id-ecPublicKey", text)
        self.assertIn("prime256v1", text)
        # A standard client follows it: openssl req with the announced key and digest, then curl.
        added = self.fleet.add_device("attrs-dev", "sensor")
        key = os.path.join(d, "k.pem")
        csr = os.path.join(d, "c.der")
        subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-sha256", "-nodes", "-subj", "/CN=attrs-dev", "-keyout", key, "-outform", "DER",
                        "-out", csr], check=True, capture_output=True)
        b64 = os.path.join(d, "c.b64")
        with open(csr, "rb") as f, open(b64, "w") as o:
            o.write(base64.encodebytes(f.read()).decode())
        code, body = self.enroll_curl("attrs-dev", added["token"], b64)
        self.assertEqual(code, 200, body)

    def test_serverkeygen_and_fullcmc_are_501(self):
        _, b64 = self.make_csr(self.tmpdir(), "nobody")
        for op in ("serverkeygen", "fullcmc"):
            code, body = self.curl("-H", "Content-Type: application/pkcs10", "--data-binary", f"@{b64}",
                                   f"{self.url}/{op}")
            self.assertEqual(code, 501, body)
            self.assertIn("simpleenroll", body)

    def test_key_certified_to_another_device_is_refused(self):
        a = self.fleet.add_device("keyreuse-a", "sensor")
        b = self.fleet.add_device("keyreuse-b", "sensor")
        d = self.tmpdir()
        key, b64 = self.make_csr(d, "keyreuse-a")
        self.assertEqual(self.enroll_curl("keyreuse-a", a["token"], b64)[0], 200)
        self.assertEqual(self.enroll_curl("keyreuse-b", b["token"], b64)[0], 400)

    def test_agent_refuses_wrong_pin_and_keeps_token(self):
        added = self.fleet.add_device("pin-dev", "sensor")
        d = os.path.join(self.fleet.tmp, "agents", "pin-dev")
        r = self.fleet.run(self.fleet_agent(), "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}",
                           "--name", "pin-dev", "--token", added["token"], "--ca-fingerprint", "sha256:" + "0" * 64,
                           "--dir", d)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(d, "cert.pem")))
        dev = self.fleet.enroll("pin-dev", added["token"])
        self.assertEqual(stat.S_IMODE(os.stat(dev.key).st_mode), 0o600)

    def fleet_agent(self):
        from warden_fixture import AGENT
        return AGENT

    def test_zz_token_guessing_is_rate_limited(self):
        self.fleet.add_device("guess-dev", "sensor")
        key, b64 = self.make_csr(self.tmpdir(), "guess-dev")
        codes = [self.enroll_curl("guess-dev", f"guess{i:017d}", b64)[0] for i in range(30)]
        self.assertIn(429, codes)
        self.assertTrue(all(c in (401, 429) for c in codes), codes)


if __name__ == "__main__":
    unittest.main()

"""Revocation for third parties: the plain-HTTP PKI listener (CRLs, CA
certificates, OCSP) checked with real `openssl crl`, `openssl verify
-crl_check_all`, `openssl ocsp` and `curl`, before and after `warden cert
revoke` cuts a live MQTT session; `warden cert list`."""

import base64
import json
import os
import subprocess
import time
import unittest
import urllib.parse
import urllib.request
import urllib.error

from policies import FACTORY
from warden_fixture import Fleet, FleetTestCase, free_port, wait_port

PKI_PORT = free_port()


def run(*args, input=None, timeout=60):
    return subprocess.run(list(args), capture_output=True, timeout=timeout, input=input)


class PkiRevocationTest(FleetTestCase):
    init_args = ("--pki-listen", f"127.0.0.1:{PKI_PORT}")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        wait_port(PKI_PORT, proc=cls.fleet.serve)
        r = cls.fleet.apply_policy(FACTORY)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.url = f"http://127.0.0.1:{PKI_PORT}"
        cls.pki = os.path.join(cls.fleet.dir, "pki")
        cls.work = os.path.join(cls.fleet.tmp, "pki-work")
        os.makedirs(cls.work, exist_ok=True)
        cls.root = os.path.join(cls.pki, "root.pem")
        cls.issuing = os.path.join(cls.pki, "issuing.pem")
        cls.bundle = os.path.join(cls.pki, "ca-bundle.pem")

    # --- helpers -------------------------------------------------------------
    def path(self, name):
        return os.path.join(self.work, name)

    def fetch(self, target, name=None):
        """curl GET; returns (status, content_type, file)."""
        out = self.path(name or target.strip("/").replace("/", "_"))
        r = run("curl", "-sS", "-o", out, "-w", "%{http_code} %{content_type}", self.url + target)
        self.assertEqual(r.returncode, 0, r.stderr)
        code, _, ctype = r.stdout.decode().partition(" ")
        return int(code), ctype, out

    def crls(self):
        code, ctype, root_crl = self.fetch("/pki/root.crl")
        self.assertEqual((code, ctype), (200, "application/pkix-crl"))
        code, ctype, issuing_crl = self.fetch("/pki/issuing-1.crl")
        self.assertEqual((code, ctype), (200, "application/pkix-crl"))
        pems = []
        for f in (root_crl, issuing_crl):
            r = run("openssl", "crl", "-inform", "DER", "-in", f, "-out", f + ".pem")
            self.assertEqual(r.returncode, 0, r.stderr)
            pems.append(f + ".pem")
        return pems

    def verify(self, cert):
        root_crl, issuing_crl = self.crls()
        return run("openssl", "verify", "-crl_check_all", "-CAfile", self.root, "-untrusted", self.issuing,
                   "-CRLfile", root_crl, "-CRLfile", issuing_crl, cert)

    def ocsp(self, *args, issuer=None):
        return run("openssl", "ocsp", "-issuer", issuer or self.issuing, "-url", self.url + "/ocsp",
                   "-CAfile", self.bundle, "-resp_text", *args)

    def ocsp_response_status(self, der):
        f = self.path(f"resp-{time.monotonic_ns()}.der")
        with open(f, "wb") as fh:
            fh.write(der)
        r = run("openssl", "ocsp", "-respin", f, "-resp_text", "-noverify")
        return (r.stdout + r.stderr).decode()

    def post_ocsp(self, body, content_type="application/ocsp-request"):
        req = urllib.request.Request(self.url + "/ocsp", data=body, headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()

    # --- tests ---------------------------------------------------------------
    def test_publications(self):
        code, ctype, crt = self.fetch("/pki/issuing-1.crt")
        self.assertEqual((code, ctype), (200, "application/pkix-cert"))
        r = run("openssl", "x509", "-inform", "DER", "-in", crt, "-noout", "-subject")
        self.assertIn(b"Warden Issuing CA", r.stdout)
        code, ctype, pem = self.fetch("/pki/issuing-1.crl.pem")
        self.assertEqual(code, 200)
        with open(pem) as f:
            self.assertIn("BEGIN X509 CRL", f.read())
        _, _, der = self.fetch("/pki/issuing-1.crl", "issuing.crl")
        r = run("openssl", "crl", "-inform", "DER", "-in", der, "-noout", "-text")
        text = r.stdout.decode()
        self.assertIn("X509v3 CRL Number", text)
        self.assertIn("X509v3 Authority Key Identifier", text)
        self.assertIn("Next Update", text)
        self.assertEqual(self.fetch("/pki/nope.crl")[0], 404)
        self.assertEqual(self.fetch("/pki/..%2Fwarden.yaml")[0], 404)
        self.assertEqual(self.fetch("/elsewhere")[0], 404)

    def test_certificates_name_their_revocation_sources(self):
        dev = self.fleet.device("src-1", "sensor")
        r = run("openssl", "x509", "-in", dev.cert, "-noout", "-text")
        text = r.stdout.decode()
        self.assertIn(f"URI:{self.url}/pki/issuing-1.crl", text)
        self.assertIn(f"OCSP - URI:{self.url}/ocsp", text)
        self.assertIn(f"CA Issuers - URI:{self.url}/pki/issuing-1.crt", text)
        r = run("openssl", "x509", "-in", self.issuing, "-noout", "-text")
        self.assertIn(f"URI:{self.url}/pki/root.crl", r.stdout.decode())

    def test_ocsp_answers(self):
        dev = self.fleet.device("ocsp-1", "sensor")
        # SHA-1 CertID with a nonce (openssl's default), POST.
        r = self.ocsp("-cert", dev.cert)
        out = (r.stdout + r.stderr).decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("Response verify OK", out)
        self.assertIn(f"{dev.cert}: good", out)
        self.assertIn("OCSP Nonce", out)
        self.assertNotIn("WARNING: no nonce in response", out)
        self.assertIn("OCSP Signing", out)
        self.assertIn("OCSP No Check", out)
        # SHA-256 CertID, without a nonce.
        r = self.ocsp("-sha256", "-no_nonce", "-cert", dev.cert)
        out = (r.stdout + r.stderr).decode()
        self.assertIn(f"{dev.cert}: good", out)
        self.assertIn("Hash Algorithm: sha256", out)
        self.assertNotIn("OCSP Nonce", out)
        # A serial Warden never issued: unknown.
        r = self.ocsp("-serial", "0x1234567890abcdef")
        self.assertIn("0x1234567890abcdef: unknown", (r.stdout + r.stderr).decode())
        # GET with the base64 request in the path.
        req = self.path("get-req.der")
        self.assertEqual(run("openssl", "ocsp", "-issuer", self.issuing, "-cert", dev.cert, "-reqout", req).returncode, 0)
        with open(req, "rb") as f:
            b64 = urllib.parse.quote(base64.b64encode(f.read()).decode(), safe="")
        code, ctype, resp = self.fetch("/ocsp/" + b64, "get-resp.der")
        self.assertEqual((code, ctype), (200, "application/ocsp-response"))
        # (-cert would make openssl build a new request with another nonce.)
        r = run("openssl", "ocsp", "-respin", resp, "-reqin", req, "-CAfile", self.bundle, "-resp_text")
        out = (r.stdout + r.stderr).decode()
        self.assertIn("Cert Status: good", out)
        self.assertIn("Response verify OK", out)
        self.assertNotIn("Nonce Verify error", out)

    def test_ocsp_refusals(self):
        # A CA Warden does not run: unauthorized.
        foreign_key, foreign = self.path("foreign.key"), self.path("foreign.pem")
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", foreign_key, "-out", foreign, "-subj", "/CN=Foreign CA", "-days", "1")
        r = self.ocsp("-serial", "0x01", issuer=foreign)
        self.assertIn("unauthorized", (r.stdout + r.stderr).decode())
        # Garbage: malformedRequest (an OCSPResponse, HTTP 200).
        status, ctype, body = self.post_ocsp(b"\x30\x03garbage")
        self.assertEqual((status, ctype), (200, "application/ocsp-response"))
        self.assertIn("malformedrequest", self.ocsp_response_status(body))
        # Nonces: 1..32 octets are echoed, 33 are refused (RFC 8954).
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509 import ocsp
        with open(self.issuing, "rb") as fh:
            issuing = x509.load_pem_x509_certificate(fh.read())
        dev = self.fleet.device("ocsp-2", "sensor")
        with open(dev.cert, "rb") as fh:
            cert = x509.load_pem_x509_certificate(fh.read())
        for n, ok in ((1, True), (32, True), (33, False)):
            req = (ocsp.OCSPRequestBuilder().add_certificate(cert, issuing, hashes.SHA256())
                   .add_extension(x509.OCSPNonce(b"\x07" * n), critical=False).build())
            _, _, body = self.post_ocsp(req.public_bytes(serialization.Encoding.DER))
            resp = ocsp.load_der_ocsp_response(body)
            if ok:
                self.assertEqual(resp.response_status, ocsp.OCSPResponseStatus.SUCCESSFUL)
                self.assertEqual(resp.certificate_status, ocsp.OCSPCertStatus.GOOD)
                nonce = resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
                self.assertEqual(nonce, b"\x07" * n)
            else:
                self.assertEqual(resp.response_status, ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        # Wrong media type on POST.
        with self.assertRaises(urllib.error.HTTPError) as e:
            self.post_ocsp(b"x", "text/plain")
        self.assertEqual(e.exception.code, 415)
        # An oversized request gets its 413, also while the client is still
        # sending a body larger than the sockets hold (no reset).
        for _ in range(3):
            with self.assertRaises(urllib.error.HTTPError) as e:
                self.post_ocsp(b"\x30" * (4 * 1024 * 1024))
            self.assertEqual(e.exception.code, 413)

    def test_revocation_cuts_session_and_shows_in_crl_and_ocsp(self):
        dev = self.fleet.device("rev-1", "sensor")
        r = self.verify(dev.cert)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(b": OK", r.stdout)
        client = self.closing(self.fleet.paho(dev))
        self.assertEqual(client.rc_value(client.connack[0]), 0)
        serial = run("openssl", "x509", "-in", dev.cert, "-noout", "-serial").stdout.decode().strip().split("=")[1].lower()
        # cert list shows it; -o json for scripts.
        certs = self.fleet.cli_json("cert", "list")
        mine = [c for c in certs if c["serial"] == serial]
        self.assertEqual(len(mine), 1)
        self.assertEqual((mine[0]["principal"], mine[0]["kind"], mine[0]["issuer"], mine[0]["revoked"]),
                         ("rev-1", "device", "issuing-1", False))
        self.assertTrue(any(c["kind"] == "ocsp" and c["issuer"] == "issuing-1" for c in certs))
        soon = self.fleet.cli_json("cert", "list", "--expiring", "2d")
        self.assertIn(serial, [c["serial"] for c in soon])
        self.assertNotIn("gateway", [c["principal"] for c in soon])  # a year away
        # Bad input is refused locally.
        r = self.fleet.cli("cert", "revoke", serial, "--reason", "bogus")
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.fleet.cli("cert", "revoke", "ffff", "--reason", "superseded")
        self.assertEqual(r.returncode, 1, r.stderr)
        # The operator cannot revoke its own, only certificate (lock-out).
        admin = [c for c in certs if c["kind"] == "user" and c["principal"] == "admin"]
        r = self.fleet.cli("cert", "revoke", admin[0]["serial"], "--reason", "superseded")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("lock you out", r.stderr)

        t0 = time.monotonic()
        out = self.fleet.cli_json("cert", "revoke", serial.upper(), "--reason", "keyCompromise")
        self.assertTrue(out["changed"])
        self.assertTrue(client.disconnected.wait(5), "the live session was not cut")
        self.assertLess(time.monotonic() - t0, 5)
        # Revoking twice changes nothing.
        self.assertFalse(self.fleet.cli_json("cert", "revoke", serial, "--reason", "keyCompromise")["changed"])

        # CRL (fresh when the command returned), openssl verify, OCSP.
        r = run("openssl", "crl", "-inform", "DER", "-in", self.fetch("/pki/issuing-1.crl", "after.crl")[2],
                "-noout", "-text")
        text = r.stdout.decode()
        self.assertIn(serial.upper().lstrip("0") or "0", text.replace(":", "").upper())
        self.assertIn("Key Compromise", text)
        r = self.verify(dev.cert)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"certificate revoked", r.stdout + r.stderr)
        r = self.ocsp("-cert", dev.cert)
        out = (r.stdout + r.stderr).decode()
        self.assertIn(f"{dev.cert}: revoked", out)
        self.assertIn("Reason: keyCompromise", out)
        self.assertIn("Response verify OK", out)
        # The gateway refuses the certificate from now on.
        again = self.closing(self.fleet.paho(dev))
        self.assertNotEqual(again.rc_value(again.connack[0]) if again.connack else -1, 0)
        e = self.fleet.wait_event(lambda e: e["type"] == "revoke" and e["action"] == "admin:cert.revoke"
                                  and e["detail"].get("serial") == serial)
        self.assertEqual(e["detail"]["revocation_reason"], "keyCompromise")

    def presented_serial(self, port):
        r = run("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", self.bundle,
                "-verify_return_error", input=b"", timeout=30)
        self.assertIn(b"Verify return code: 0 (ok)", r.stdout, r.stderr)
        cert = self.path(f"presented-{time.monotonic_ns()}.pem")
        with open(cert, "wb") as f:
            f.write(r.stdout)
        return run("openssl", "x509", "-in", cert, "-noout", "-serial").stdout.decode().strip().split("=")[1].lower()

    def test_revoking_the_gateway_certificate_replaces_it(self):
        dev = self.fleet.device("rev-gw", "sensor")
        client = self.closing(self.fleet.paho(dev))
        self.assertEqual(client.rc_value(client.connack[0]), 0)
        old = self.presented_serial(self.fleet.mqtt_port)
        self.assertEqual(old, self.presented_serial(self.fleet.api_port))
        out = self.fleet.cli_json("cert", "revoke", old, "--reason", "keyCompromise")
        self.assertTrue(out["changed"])
        new = out["replaced_by"]
        self.assertNotEqual(new, old)
        # Both listeners present the new certificate as soon as the command returns.
        self.assertEqual(self.presented_serial(self.fleet.mqtt_port).lstrip("0"), new.lstrip("0"))
        self.assertEqual(self.presented_serial(self.fleet.api_port).lstrip("0"), new.lstrip("0"))
        r = self.verify(os.path.join(self.pki, "gateway.pem"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.ocsp("-serial", "0x" + old)
        self.assertIn(b": revoked", r.stdout + r.stderr)
        # Live sessions are untouched; new ones and the CLI verify the new certificate.
        self.assertFalse(client.disconnected.is_set())
        self.assertEqual(self.fleet.pub(dev, "factory/telemetry/rev-gw/t", "1").returncode, 0)
        e = self.fleet.wait_event(lambda e: e["type"] == "revoke" and e["detail"].get("serial") == old)
        self.assertEqual(e["detail"]["replaced_by"], new)

    def test_rate_limit(self):
        # 50/s with a burst of 200 per source: a tight loop on one
        # keep-alive connection runs into it (429 with Retry-After).
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", PKI_PORT, timeout=10)
        limited = None
        for _ in range(2000):
            conn.request("GET", "/pki/issuing-1.crt")
            resp = conn.getresponse()
            resp.read()
            if resp.status == 429:
                limited = resp
                break
        conn.close()
        self.assertIsNotNone(limited, "no request was rate-limited")
        self.assertEqual(limited.getheader("Retry-After"), "1")
        time.sleep(5)  # let the bucket refill for the other tests


class RootCrlTest(unittest.TestCase):
    def test_root_crl_is_signed_offline(self):
        port = free_port()
        fleet = Fleet(("--pki-listen", f"127.0.0.1:{port}", "--pki-url", "http://pki.example.test:8080"), start=False)
        try:
            crl = os.path.join(fleet.dir, "pki", "crl", "root.crl")
            first = run("openssl", "crl", "-inform", "DER", "-in", crl, "-noout", "-crlnumber").stdout
            self.assertIn(b"crlNumber=0x01", first)  # signed by init
            r = fleet.cli("ca", "crl", "--root", "--root-key", os.path.join(fleet.dir, "pki", "root.key"), "-o", "json")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["crl_number"], 2)
            second = run("openssl", "crl", "-inform", "DER", "-in", crl, "-noout", "-crlnumber").stdout
            self.assertIn(b"crlNumber=0x02", second)
            r = fleet.cli("ca", "crl", "--root", "--root-key", "/nonexistent/root.key")
            self.assertEqual(r.returncode, 2)
            # --pki-url is what the certificates name.
            r = run("openssl", "x509", "-in", os.path.join(fleet.dir, "pki", "admin.pem"), "-noout", "-text")
            self.assertIn(b"http://pki.example.test:8080/pki/issuing-1.crl", r.stdout)
            r = fleet.run(fleet_warden(), "init", "--dir", os.path.join(fleet.tmp, "x"), "--pki-url", "https://a")
            self.assertEqual(r.returncode, 2)
        finally:
            fleet.close()


class LegacyDataDirTest(unittest.TestCase):
    """A data directory from before the CA inventory: serve records its one
    issuing CA as issuing-1 and everything keeps working."""

    def test_serve_bootstraps_the_inventory(self):
        import sqlite3
        port = free_port()
        fleet = Fleet(("--pki-listen", f"127.0.0.1:{port}"), start=False)
        try:
            db = sqlite3.connect(os.path.join(fleet.dir, "warden.db"))
            db.execute("DELETE FROM cas")
            db.commit()
            db.close()
            os.remove(os.path.join(fleet.dir, "pki", "crl", "root.crl"))
            fleet.start_broker()
            fleet.start_serve()
            wait_port(port, proc=fleet.serve)
            cas = {c["name"]: c for c in fleet.cli_json("ca", "list")}
            self.assertEqual(cas["issuing-1"]["state"], "active")
            self.assertEqual(cas["root"]["kind"], "root")
            dev = fleet.device("legacy-1", "sensor")
            r = run("openssl", "ocsp", "-issuer", os.path.join(fleet.dir, "pki", "issuing.pem"), "-cert", dev.cert,
                    "-url", f"http://127.0.0.1:{port}/ocsp", "-CAfile", os.path.join(fleet.dir, "pki", "ca-bundle.pem"))
            self.assertIn(f"{dev.cert}: good", (r.stdout + r.stderr).decode())
            # No root CRL until the operator signs one offline.
            r = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/pki/root.crl")
            self.assertEqual(r.stdout, b"404")
        finally:
            fleet.close()


def fleet_warden():
    from warden_fixture import WARDEN
    return WARDEN


if __name__ == "__main__":
    unittest.main()

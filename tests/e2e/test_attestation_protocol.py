"""The attestation wire protocol (docs/attestation.md) spoken by a client we
wrote here from the spec, not by warden-agent: Python's ssl + http.client with
the device's own certificate, and signed logs made with `cryptography`.

What an attacker holding a device certificate would try: replaying evidence,
inventing or reusing nonces, letting one expire, signing with another
device's key, a payload naming another identity, oversized and malformed
bodies, calling without a certificate. Refusals change nothing (400 + an
attestation_refused event); evidence that fails verification quarantines the
device and restricts its live MQTT session. Also the operator side: TPM
vendor CAs and operator-registered EKs."""

import base64
import http.client
import json
import os
import secrets
import ssl
import subprocess
import time
import unittest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from policies import FACTORY
from warden_fixture import Fleet



def b64(data):
    return base64.b64encode(data).decode()


class AttestClient:
    """POSTs to /attest/v1/* over mutual TLS with a device's certificate."""

    def __init__(self, fleet, dev=None):
        self.port = fleet.api_port
        ctx = ssl.create_default_context(cafile=os.path.join(fleet.dir, "pki", "ca-bundle.pem"))
        ctx.check_hostname = False
        if dev is not None:
            ctx.load_cert_chain(dev.cert, dev.key)
        self.ctx = ctx

    def post(self, path, body, content_type="application/json"):
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        try:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            conn.request("POST", path, body=data, headers={"Content-Type": content_type})
            r = conn.getresponse()
            text = r.read().decode()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text
        finally:
            conn.close()

    def challenge(self):
        status, body = self.post("/attest/v1/challenge", {})
        assert status == 200, (status, body)
        return body


def signed_log(dev, nonce, key_path=None, spiffe_id=None, log=(), boot_id=None):
    """A signed-log evidence body: payload {nonce, spiffe_id, boot_id, log} signed with the device key."""
    payload = json.dumps({"nonce": nonce,
                          "spiffe_id": spiffe_id or f"spiffe://warden.local/device/{dev.name}",
                          "boot_id": boot_id or secrets.token_hex(16),
                          "log": list(log)}).encode()
    with open(key_path or dev.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    return {"nonce": nonce, "kind": "signed-log", "payload": b64(payload), "signature": b64(signature)}


class AttestationProtocolTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.fleet = Fleet()
        cls.addClassCleanup(cls.fleet.close)
        r = cls.fleet.apply_policy(FACTORY)
        assert r.returncode == 0, r.stdout + r.stderr

    def refused(self, status, body, code):
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"], code, body)

    def test_good_signed_log_is_accepted_once(self):
        dev = self.fleet.device("att-good", "sensor")
        client = AttestClient(self.fleet, dev)
        ch = client.challenge()
        self.assertEqual(len(base64.urlsafe_b64decode(ch["nonce"] + "=")), 32)
        self.assertEqual(ch["pcrs"], [10])
        self.assertFalse(ch["ak_registered"])
        self.assertIsNone(ch["next_due_s"])  # no segment requires attestation of it
        evidence = signed_log(dev, ch["nonce"])
        status, body = client.post("/attest/v1/evidence", evidence)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"], "ok", body)
        self.assertEqual(body["trust"], 80)  # software-attested, healthy
        # The same evidence again is a replay: refused, and nothing changes.
        status, body = client.post("/attest/v1/evidence", evidence)
        self.refused(status, body, "nonce_reused")
        self.fleet.wait_event(lambda e: e["type"] == "attestation_refused" and e["reason"] == "nonce_reused"
                              and e["resource"] == "att-good")
        self.assertEqual(self.fleet.cli_json("device", "show", "att-good")["state"], "active")

    def test_nonces_are_per_device_single_and_short_lived(self):
        a = self.fleet.device("att-nonce-a", "sensor")
        b = self.fleet.device("att-nonce-b", "sensor")
        ca, cb = AttestClient(self.fleet, a), AttestClient(self.fleet, b)
        # A nonce that was never issued.
        ca.challenge()
        status, body = ca.post("/attest/v1/evidence", signed_log(a, base64.urlsafe_b64encode(
            secrets.token_bytes(32)).decode().rstrip("=")))
        self.refused(status, body, "nonce_unknown")
        # Another device's nonce is not this device's.
        nb = cb.challenge()["nonce"]
        ca.challenge()
        status, body = ca.post("/attest/v1/evidence", signed_log(a, nb))
        self.refused(status, body, "nonce_unknown")
        # A new challenge replaces the outstanding nonce.
        first = ca.challenge()["nonce"]
        ca.challenge()
        status, body = ca.post("/attest/v1/evidence", signed_log(a, first))
        self.refused(status, body, "nonce_reused")
        # Spent even when the evidence fails: malformed evidence spends it too.
        n = ca.challenge()["nonce"]
        status, body = ca.post("/attest/v1/evidence", {"nonce": n, "kind": "signed-log"})
        self.refused(status, body, "malformed_evidence")
        status, body = ca.post("/attest/v1/evidence", signed_log(a, n))
        self.refused(status, body, "nonce_reused")
        for device in ("att-nonce-a", "att-nonce-b"):
            self.assertEqual(self.fleet.cli_json("device", "show", device)["state"], "active")

    def test_an_expired_nonce_is_refused(self):
        dev = self.fleet.device("att-expired", "sensor")
        client = AttestClient(self.fleet, dev)
        n = client.challenge()["nonce"]
        time.sleep(31)
        status, body = client.post("/attest/v1/evidence", signed_log(dev, n))
        self.refused(status, body, "nonce_expired")
        self.assertEqual(self.fleet.cli_json("device", "show", "att-expired")["state"], "active")

    def test_malformed_and_oversized_bodies_change_nothing(self):
        dev = self.fleet.device("att-malformed", "sensor")
        client = AttestClient(self.fleet, dev)
        cases = [
            b"{not json",
            {"nonce": "x", "kind": "tpm3-quote"},
            {"nonce": "x", "kind": "signed-log", "payload": "!!!", "signature": "AA=="},
            {"nonce": "x", "kind": "tpm2-quote", "quote": "AA==", "signature": "AA==",
             "log": [{"pcr": 10, "digest": "sha1:00", "type": "firmware", "name": "a"}]},
            {"nonce": "x", "kind": "tpm2-quote", "quote": "AA==", "signature": "AA==",
             "log": [{"pcr": 10, "digest": "sha256:" + "00" * 32, "type": "firmware", "name": "a"}] * 1025},
        ]
        for case in cases:
            client.challenge()
            status, body = client.post("/attest/v1/evidence", case)
            self.refused(status, body, "malformed_evidence")
        client.challenge()
        status, _ = client.post("/attest/v1/evidence", b"{" + b" " * (300 * 1024) + b"}")
        self.assertEqual(status, 413)
        client.challenge()
        status, body = client.post("/attest/v1/evidence", signed_log(dev, client.challenge()["nonce"]),
                                   content_type="text/plain")
        self.refused(status, body, "malformed_evidence")
        self.assertEqual(self.fleet.cli_json("device", "show", "att-malformed")["state"], "active")

    def test_without_a_device_certificate_nothing_is_judged(self):
        anonymous = AttestClient(self.fleet)
        try:
            status, body = anonymous.post("/attest/v1/challenge", {})
        except (ssl.SSLError, ConnectionError, OSError):
            return  # the TLS layer refused: fine as well
        self.assertEqual(status, 401, body)

    def test_evidence_signed_by_another_devices_key_quarantines_and_cuts_rights(self):
        victim = self.fleet.device("att-signer-victim", "sensor")
        other = self.fleet.device("att-signer-other", "sensor")
        client = AttestClient(self.fleet, victim)
        paho = self.fleet.paho(victim)
        self.addCleanup(paho.close)
        self.assertEqual(paho.rc_value(paho.connack[0]), 0)
        n = client.challenge()["nonce"]
        status, body = client.post("/attest/v1/evidence", signed_log(victim, n, key_path=other.key))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"], "failed")
        self.assertEqual(body["reason"], "bad_signature")
        self.assertEqual(body["state"], "quarantined")
        shown = self.fleet.cli_json("device", "show", "att-signer-victim")
        self.assertEqual(shown["state"], "quarantined")
        # The live session now has only quarantine rights: none in this policy, so it is closed.
        self.assertTrue(paho.disconnected.wait(5), "the quarantined session stayed open")
        self.assertEqual(paho.rc_value(paho.disconnect_rc), 0x87)
        self.fleet.wait_event(lambda e: e["type"] == "quarantine" and e["resource"] == "att-signer-victim")
        # The device whose key was used is untouched.
        self.assertEqual(self.fleet.cli_json("device", "show", "att-signer-other")["state"], "active")

    def test_a_payload_naming_another_identity_fails(self):
        dev = self.fleet.device("att-spoof", "sensor")
        client = AttestClient(self.fleet, dev)
        n = client.challenge()["nonce"]
        ev = signed_log(dev, n, spiffe_id="spiffe://warden.local/device/att-good")
        status, body = client.post("/attest/v1/evidence", ev)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"], "failed", body)
        self.assertEqual(self.fleet.cli_json("device", "show", "att-spoof")["state"], "quarantined")

    def test_a_tpm_quote_without_a_registered_ak_is_refused(self):
        dev = self.fleet.device("att-noak", "sensor")
        client = AttestClient(self.fleet, dev)
        n = client.challenge()["nonce"]
        status, body = client.post("/attest/v1/evidence", {
            "nonce": n, "kind": "tpm2-quote", "quote": b64(b"\xff\x54\x43\x47" + b"\x00" * 60),
            "signature": b64(b"\x00\x18\x00\x0b" + b"\x00" * 8), "log": []})
        self.refused(status, body, "ak_not_registered")

    def test_an_ak_needs_a_trusted_ek(self):
        dev = self.fleet.device("att-ek", "sensor")
        client = AttestClient(self.fleet, dev)
        status, body = client.post("/attest/v1/ak", {"ek_public": b64(b"\x00\x01"), "ak_public": b64(b"\x00\x01")})
        self.assertEqual(status, 400, body)
        self.assertIn(body["error"], ("ak_invalid", "malformed_evidence"))
        status, body = client.post("/attest/v1/ak/activate", {"secret": b64(b"x" * 32)})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"], "activation_failed")

    def test_tpm_vendor_cas_and_registered_eks(self):
        tmp = self.fleet.tmp
        ca_key, ca_pem = os.path.join(tmp, "vendor.key"), os.path.join(tmp, "vendor.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", ca_key, "-out", ca_pem, "-days", "30", "-subj", "/CN=Test TPM Vendor",
                        "-addext", "basicConstraints=critical,CA:TRUE"], check=True, capture_output=True)
        added = self.fleet.cli_json("tpm-ca", "add", ca_pem)
        self.assertEqual(len(added), 1)
        fp = added[0]["fingerprint"]
        self.assertTrue(fp.startswith("sha256:"))
        self.assertTrue(added[0]["added"])
        again = self.fleet.cli_json("tpm-ca", "add", ca_pem)
        self.assertFalse(again[0]["added"])
        self.assertIn(fp, [c["fingerprint"] for c in self.fleet.cli_json("tpm-ca", "list")])
        # A leaf certificate is not a CA.
        leaf = os.path.join(tmp, "leaf.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", os.path.join(tmp, "leaf.key"), "-out", leaf, "-days", "30",
                        "-subj", "/CN=leaf", "-addext", "basicConstraints=critical,CA:FALSE"],
                       check=True, capture_output=True)
        r = self.fleet.cli("tpm-ca", "add", leaf)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("CA certificate", r.stderr)
        r = self.fleet.cli("tpm-ca", "remove", fp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.fleet.cli("tpm-ca", "remove", fp).returncode, 1)
        self.assertEqual(self.fleet.cli("tpm-ca", "remove", "not-a-fingerprint").returncode, 2)

        # An operator-registered EK: one EK binds one device.
        self.fleet.add_device("att-ek-a", "sensor")
        self.fleet.add_device("att-ek-b", "sensor")
        ek_pub = os.path.join(tmp, "ek.pub.pem")
        subprocess.run(["openssl", "pkey", "-in", ca_key, "-pubout", "-out", ek_pub], check=True)
        bound = self.fleet.cli_json("tpm-ek", "add", "att-ek-a", ek_pub)
        self.assertTrue(bound["ek"].startswith("sha256:"))
        r = self.fleet.cli("tpm-ek", "add", "att-ek-b", ek_pub)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("another device", r.stderr)
        self.assertEqual(self.fleet.cli("tpm-ek", "add", "no-such-device", ek_pub).returncode, 1)
        self.assertEqual(self.fleet.cli("tpm-ek", "remove", "att-ek-a").returncode, 0)
        self.assertEqual(self.fleet.cli("tpm-ek", "add", "att-ek-b", ek_pub).returncode, 0)
        self.fleet.wait_event(lambda e: e["type"] == "tpm_ca_add" and e["resource"] == fp)


if __name__ == "__main__":
    unittest.main()

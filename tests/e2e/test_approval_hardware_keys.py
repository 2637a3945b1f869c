"""Manual approval with a hardware-held device key: an enrollment request
awaiting approval is bound to the CSR's key, so the agent must complete it
with the same key after it gave up waiting or restarted. With a TPM the key
is the staged TPM-wrapped blob (A/key.pem.next); with a PKCS#11 token it is
the token key. A restart reuses it, and the certificate certifies it."""

import os
import subprocess
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hsm_fixture import MODULE, SoftHsm
from policies import FACTORY
from tpm_fixture import SoftTpm
from warden_fixture import AGENT, Fleet

MANUAL = (("approval: auto", "approval: manual"), ("retry_after: 1m", "retry_after: 1s"))


def cert_spki(path):
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


class ApprovalWithHardwareKeysTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.fleet = Fleet(config_edits=MANUAL)
        cls.addClassCleanup(cls.fleet.close)
        assert cls.fleet.apply_policy(FACTORY).returncode == 0

    def pending(self, device):
        return [r for r in self.fleet.cli_json("device", "pending") if r["device"] == device]

    def enroll(self, name, token, agent_dir, key_args, env):
        return subprocess.run([AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}",
                               "--name", name, "--token", token, "--ca-fingerprint", self.fleet.ca_fingerprint,
                               "--dir", agent_dir, "--approval-timeout", "2s", *key_args],
                              capture_output=True, text=True, env=env, timeout=120)

    def approve_after_restart(self, name, key_args, env):
        """Enroll until the agent gives up, approve, enroll again: the same
        request completes. Returns the agent directory."""
        added = self.fleet.add_device(name, "sensor")
        agent_dir = os.path.join(self.fleet.tmp, "agents", name)
        r = self.enroll(name, added["token"], agent_dir, key_args, env)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("awaits approval", r.stderr)
        reqs = self.pending(name)
        self.assertEqual(len(reqs), 1, reqs)
        # A second run before approval continues the same request (the same
        # key): a new key would be refused as key_mismatch and open nothing new.
        r = self.enroll(name, added["token"], agent_dir, key_args, env)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("awaits approval", r.stderr)
        self.assertNotIn("another key", r.stderr)
        self.assertEqual([q["id"] for q in self.pending(name)], [reqs[0]["id"]])
        self.assertEqual(self.fleet.cli("device", "approve", reqs[0]["id"]).returncode, 0)
        r = self.enroll(name, added["token"], agent_dir, key_args, env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.pending(name), [])
        self.assertFalse(any(e["type"] == "enroll" and e.get("reason") == "key_mismatch"
                             and e.get("resource") == name for e in self.fleet.events()))
        return agent_dir

    def test_tpm_key_survives_a_restart_while_awaiting_approval(self):
        tpm = SoftTpm().start()
        self.addCleanup(tpm.stop)
        env = dict(tpm.env)
        env.pop("OPENSSL_CONF", None)
        agent_dir = self.approve_after_restart("appr-tpm", ["--key-store", "tpm2", "--tpm", tpm.tcti], env)
        self.assertFalse(os.path.exists(os.path.join(agent_dir, "key.pem.next")))
        with open(os.path.join(agent_dir, "key.pem")) as f:
            self.assertIn("-----BEGIN TSS2 PRIVATE KEY-----", f.read())
        # The certificate certifies the TPM key: the agent connects with it.
        r = subprocess.run([AGENT, "run", "--dir", agent_dir, "--renew-now", "--once"],
                           capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_token_key_survives_a_restart_while_awaiting_approval(self):
        hsm = SoftHsm(label="se-approval")
        self.addCleanup(hsm.close)
        uri = hsm.uri("appr-key", with_module=False)
        agent_dir = self.approve_after_restart(
            "appr-se", ["--key-store", "pkcs11", "--pkcs11-module", MODULE, "--key-uri", uri], hsm.env)
        self.assertEqual(cert_spki(os.path.join(agent_dir, "cert.pem")),
                         serialization.load_der_public_key(hsm.public_key_der("appr-key")).public_bytes(
                             serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.assertIn("never extractable", hsm.private_key_access("appr-key"))


if __name__ == "__main__":
    unittest.main()

"""Device keys on a PKCS#11 secure element (SoftHSM2 standing in for it):
`warden-agent enroll --key-store pkcs11 --pkcs11-module PATH --key-uri URI`
generates the key in the token, not extractable; the device then connects
through the gateway with `mosquitto_pub --tls-engine pkcs11 --keyform
engine` (libp11's engine), renews with the same token key, and the claim
shows in `warden device show`."""

import os
import subprocess
import unittest

from hsm_fixture import MODULE, SoftHsm
from policies import FACTORY
from warden_fixture import AGENT, Fleet


class Pkcs11DeviceKeyTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.hsm = SoftHsm(label="secure-element")
        cls.addClassCleanup(cls.hsm.close)
        cls.fleet = Fleet()
        cls.addClassCleanup(cls.fleet.close)
        assert cls.fleet.apply_policy(FACTORY).returncode == 0

    def key_uri(self, obj, with_module=False):
        return self.hsm.uri(obj, with_module=with_module)

    def enroll(self, name, obj, *extra):
        added = self.fleet.add_device(name, "sensor")
        agent_dir = os.path.join(self.fleet.tmp, "agents", name)
        r = subprocess.run([AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}",
                            "--name", name, "--token", added["token"], "--ca-fingerprint", self.fleet.ca_fingerprint,
                            "--dir", agent_dir, "--key-store", "pkcs11", "--pkcs11-module", MODULE,
                            "--key-uri", self.key_uri(obj), *extra, "-o", "json"],
                           capture_output=True, text=True, env=self.hsm.env, timeout=120)
        return agent_dir, r

    def mosquitto_pub_engine(self, name, agent_dir, obj):
        """mosquitto_pub --tls-engine pkcs11 --keyform engine --key URI through the gateway.

        libp11's engine takes the module from PKCS11_MODULE_PATH and the PIN
        from the URI's pin-source (read verbatim: no trailing newline).
        mosquitto 2.0.11 fopen()s --key before it applies --keyform engine
        (fixed upstream by setting the key form first), so the URI must also
        name a file: it runs in the agent directory, where an empty file of
        that name exists and pin-source is a relative path."""
        pin = os.path.join(agent_dir, "se.pin")
        fd = os.open(pin, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("3141")
        key = f"pkcs11:token=secure-element;object={obj};type=private?pin-source=se.pin"
        open(os.path.join(agent_dir, key), "w").close()
        env = dict(self.hsm.env, PKCS11_MODULE_PATH=MODULE)
        return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.fleet.mqtt_port),
                               "--cafile", "ca.pem", "--cert", "cert.pem",
                               "--tls-engine", "pkcs11", "--keyform", "engine", "--key", key,
                               "-i", name, "-t", f"factory/telemetry/{name}/t", "-m", "19.5"],
                              capture_output=True, text=True, env=env, timeout=60, cwd=agent_dir)

    def test_enroll_generates_a_non_extractable_key_and_connects_with_the_engine(self):
        agent_dir, r = self.enroll("se-sensor-1", "device-key-1")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(os.path.join(agent_dir, "key.pem")), "no key file next to a token key")
        with open(os.path.join(agent_dir, "agent.yaml")) as f:
            config = f.read()
        self.assertIn("key_store: pkcs11", config)
        self.assertIn("module-path=" + MODULE, config)
        self.assertNotIn("3141", config)
        access = self.hsm.private_key_access("device-key-1")
        self.assertIn("never extractable", access)
        self.assertIn("local", access)
        out = os.path.join(self.hsm.dir, "out.der")
        self.hsm.tool("--read-object", "--type", "privkey", "--label", "device-key-1", "--output-file", out)
        self.assertFalse(os.path.exists(out) and os.path.getsize(out) > 0)

        r = self.mosquitto_pub_engine("se-sensor-1", agent_dir, "device-key-1")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        shown = self.fleet.cli_json("device", "show", "se-sensor-1")
        self.assertEqual(shown["key_store"], {"claimed": "pkcs11", "verified": False})

    def test_renewal_keeps_the_token_key(self):
        agent_dir, r = self.enroll("se-sensor-2", "device-key-2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        cert = os.path.join(agent_dir, "cert.pem")
        before = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-serial", "-pubkey"],
                                capture_output=True, text=True).stdout
        r = subprocess.run([AGENT, "run", "--dir", agent_dir, "--renew-now", "--once"], capture_output=True,
                           text=True, env=self.hsm.env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        after = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-serial", "-pubkey"],
                               capture_output=True, text=True).stdout
        self.assertNotEqual(before.splitlines()[0], after.splitlines()[0], "a new certificate")
        self.assertEqual(before.splitlines()[1:], after.splitlines()[1:], "for the same token key")
        r = self.mosquitto_pub_engine("se-sensor-2", agent_dir, "device-key-2")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_an_extractable_token_key_is_refused(self):
        r = self.hsm.tool("--keypairgen", "--key-type", "EC:prime256v1", "--label", "soft-key", "--id", "51",
                          "--extractable")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        agent_dir, r = self.enroll("se-sensor-3", "soft-key")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("extractable", r.stderr + r.stdout)

    def test_options_are_checked(self):
        added = self.fleet.add_device("se-sensor-4", "sensor")
        base = [AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}", "--name", "se-sensor-4",
                "--token", added["token"], "--ca-fingerprint", self.fleet.ca_fingerprint,
                "--dir", os.path.join(self.fleet.tmp, "agents", "se-sensor-4")]
        for extra, expect in (
                (["--key-store", "pkcs11", "--key-uri", self.key_uri("k")], "--pkcs11-module"),
                (["--key-store", "pkcs11", "--pkcs11-module", MODULE], "--key-uri"),
                (["--key-store", "pkcs11", "--pkcs11-module", MODULE,
                  "--key-uri", "pkcs11:token=secure-element;object=k?pin-value=3141"], "pin-source"),
                (["--key-store", "tpm2"], "--tpm"),
                (["--key-uri", self.key_uri("k")], "--key-store pkcs11")):
            r = subprocess.run(base + extra, capture_output=True, text=True, env=self.hsm.env, timeout=60)
            self.assertEqual(r.returncode, 2, (extra, r.stdout, r.stderr))
            self.assertIn(expect, r.stderr)
            self.assertNotIn("3141", r.stderr)


if __name__ == "__main__":
    unittest.main()

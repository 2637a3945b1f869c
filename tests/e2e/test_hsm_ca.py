"""CA keys in an HSM (SoftHSM2 through libp11's engine): `warden init
--ca-key-generate --ca-key pkcs11:... --root-key pkcs11:...` creates both CA
keys in the token, non-extractable; `warden serve` signs device certificates
with them; a device enrolled that way connects through the gateway; the
root rotates with its key in the token (`ca rotate --root --root-key
pkcs11:...`). Every refusal (PIN file readable by others, pin-value, a
missing key, a URI without a module) is tested too."""

import os
import stat
import subprocess
import time
import unittest

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm_fixture import MODULE, SoftHsm
from policies import FACTORY
from warden_fixture import AGENT, WARDEN, Fleet, free_port


def spki_der(cert_path):
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_of_hsm_pub(der):
    """pkcs11-tool writes an EC public key as SubjectPublicKeyInfo DER."""
    key = serialization.load_der_public_key(der)
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


class HsmFleetTestCase(unittest.TestCase):
    """A fleet whose issuing and root CA keys were made in a SoftHSM token
    (`warden init --ca-key-generate --ca-key pkcs11:... --root-key pkcs11:...`)."""

    token_label = "warden-ca"

    @classmethod
    def setUpClass(cls):
        cls.hsm = SoftHsm(label=cls.token_label)
        cls.addClassCleanup(cls.hsm.close)
        # warden init, warden serve and pkcs11-tool all read SOFTHSM2_CONF.
        cls._saved_env = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = cls.hsm.conf
        cls.addClassCleanup(cls._restore_env)
        cls.fleet = Fleet(["--ca-key-generate", "--ca-key", cls.hsm.uri("issuing-ca"),
                           "--root-key", cls.hsm.uri("root-ca")])
        cls.addClassCleanup(cls.fleet.close)
        assert cls.fleet.apply_policy(FACTORY).returncode == 0

    @classmethod
    def _restore_env(cls):
        if cls._saved_env is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = cls._saved_env


class HsmRootRotationTest(HsmFleetTestCase):
    """`warden ca rotate --root --root-key pkcs11:...`: the active root's key
    stays in the token and signs NewWithOld there; the new root key goes
    where --new-root-key says; the fleet keeps working."""

    token_label = "warden-root"

    def test_root_rotation_with_the_root_key_in_the_token(self):
        f = self.fleet
        before = f.device("hsmroot-before", "sensor")
        offline = os.path.join(f.tmp, "offline")
        os.makedirs(offline, mode=0o700)
        new_key = os.path.join(offline, "root-2.key")
        # The new root must have a later notBefore (whole seconds) than the
        # root `warden init` made moments ago.
        time.sleep(1.1)
        out = f.cli_json("ca", "rotate", "--root", "--root-key", self.hsm.uri("root-ca"), "--new-root-key", new_key)
        self.assertEqual((out["root"], out["previous_root"]), ("root-2", "root"))
        self.assertEqual(stat.S_IMODE(os.stat(new_key).st_mode), 0o600)
        self.assertIn("never extractable", self.hsm.private_key_access("root-ca"))
        # NewWithOld carries the new root's key and is signed by the old root's
        # key, which only the token holds.
        with open(out["new_with_old"], "rb") as fh:
            nwo = x509.load_pem_x509_certificate(fh.read())
        with open(out["root_cert"], "rb") as fh:
            new_root = x509.load_pem_x509_certificate(fh.read())
        spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.assertEqual(nwo.public_key().public_bytes(*spki), new_root.public_key().public_bytes(*spki))
        old_root_key = serialization.load_der_public_key(self.hsm.public_key_der("root-ca"))
        old_root_key.verify(nwo.signature, nwo.tbs_certificate_bytes, ec.ECDSA(nwo.signature_hash_algorithm))
        cas = {c["name"]: c["state"] for c in f.cli_json("ca", "list")}
        self.assertEqual((cas["root"], cas["root-2"]), ("retiring", "active"))
        # Devices from before and after the rotation both get through the gateway.
        after = f.device("hsmroot-after", "sensor")
        for dev in (before, after):
            r = f.pub(dev, f"factory/telemetry/{dev.name}/t", "1")
            self.assertEqual(r.returncode, 0, r.stderr)


class HsmCaTest(HsmFleetTestCase):

    def init_dir(self, *args):
        d = os.path.join(self.fleet.tmp, f"init-{free_port()}")
        r = subprocess.run([WARDEN, "init", "--dir", d, *args], capture_output=True, text=True, timeout=60)
        return d, r

    def test_ca_keys_live_only_in_the_token(self):
        pki = os.path.join(self.fleet.dir, "pki")
        self.assertFalse(os.path.exists(os.path.join(pki, "issuing.key")))
        self.assertFalse(os.path.exists(os.path.join(pki, "root.key")))
        with open(os.path.join(self.fleet.dir, "warden.yaml")) as f:
            yaml = f.read()
        self.assertIn("issuing_ca_key: \"pkcs11:token=warden-ca;object=issuing-ca;type=private", yaml)
        self.assertIn("root_ca_key: \"pkcs11:token=warden-ca;object=root-ca;type=private", yaml)
        self.assertIn("pin-source=file:", yaml)
        self.assertNotIn("3141", yaml, "the PIN must never be written to warden.yaml")
        # The CA certificates certify the token's keys.
        self.assertEqual(spki_der(os.path.join(pki, "issuing.pem")),
                         spki_of_hsm_pub(self.hsm.public_key_der("issuing-ca")))
        self.assertEqual(spki_der(os.path.join(pki, "root.pem")),
                         spki_of_hsm_pub(self.hsm.public_key_der("root-ca")))

    def test_ca_keys_are_not_extractable(self):
        for label in ("issuing-ca", "root-ca"):
            access = self.hsm.private_key_access(label)
            self.assertIn("never extractable", access)
            self.assertIn("always sensitive", access)
            self.assertIn("local", access)  # generated in the token
            # Nothing reads the private value out of the token (pkcs11-tool
            # refuses, the token would answer CKR_ATTRIBUTE_SENSITIVE).
            out = os.path.join(self.hsm.dir, f"{label}.priv")
            self.hsm.tool("--read-object", "--type", "privkey", "--label", label, "--output-file", out)
            self.assertFalse(os.path.exists(out) and os.path.getsize(out) > 0)

    def test_device_enrolled_by_the_hsm_ca_connects_through_the_gateway(self):
        dev = self.fleet.device("hsm-sensor-1", "sensor")
        # The device certificate was signed by the issuing CA key in the token.
        r = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(self.fleet.dir, "pki", "ca-bundle.pem"),
                            dev.cert], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.fleet.pub(dev, "factory/telemetry/hsm-sensor-1/t", "21.5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("issuing CA key held by pkcs11", self.fleet.log())
        # Renewal is signed by the token too.
        r = self.fleet.run(AGENT, "run", "--dir", dev.dir, "--renew-now", "--once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_rotation_into_a_new_token_key_keeps_the_fleet_working(self):
        # Runs against the running server, whose engine loaded the token's
        # keys long before this key exists; the root key is in the token too
        # (pki.root_ca_key), so no --root-key is needed.
        before = self.fleet.device("hsm-before-rotate", "sensor")
        r = self.fleet.cli("ca", "rotate", "--ca-key-generate", "--ca-key", self.hsm.uri("issuing-ca-2"), "-o", "json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("pkcs11:token=warden-ca;object=issuing-ca-2", r.stdout)
        ca_dir = os.path.join(self.fleet.dir, "pki", "ca")
        self.assertEqual([n for n in os.listdir(ca_dir) if n.endswith(".key")], [],
                         "a CA key in the token is never written to disk")
        self.assertIn("never extractable", self.hsm.private_key_access("issuing-ca-2"))
        after = self.fleet.device("hsm-after-rotate", "sensor")
        new_ca = next(os.path.join(ca_dir, n) for n in os.listdir(ca_dir) if n.endswith(".pem"))
        self.assertEqual(spki_der(new_ca), spki_of_hsm_pub(self.hsm.public_key_der("issuing-ca-2")))
        with open(after.cert, "rb") as f:
            leaf = x509.load_pem_x509_certificate(f.read())
        with open(new_ca, "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        self.assertEqual(leaf.issuer, ca.subject, "new certificates come from the new CA at once")
        ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
        for dev in (before, after):
            r = self.fleet.pub(dev, f"factory/telemetry/{dev.name}/t", "1")
            self.assertEqual(r.returncode, 0, r.stderr)
        # A second rotation into the same key is refused: a rotation needs a new key.
        r = self.fleet.cli("ca", "rotate", "--ca-key", self.hsm.uri("issuing-ca-2"))
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("new key", r.stderr)

    def test_ca_key_must_be_a_pkcs11_uri(self):
        r = self.fleet.cli("ca", "rotate", "--ca-key", "/tmp/some.key")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("PKCS#11 URI", r.stderr)
        r = self.fleet.cli("ca", "rotate", "--ca-key", self.hsm.uri("no-such-rotation-key"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("--ca-key-generate", r.stderr)

    def test_init_with_an_existing_token_key(self):
        r = self.hsm.tool("--keypairgen", "--key-type", "EC:prime256v1", "--label", "existing-ca", "--id", "e1",
                          "--sensitive")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        d, r = self.init_dir("--ca-key", self.hsm.uri("existing-ca"), "--api-listen", f"127.0.0.1:{free_port()}",
                             "--mqtt-listen", f"127.0.0.1:{free_port()}")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(spki_der(os.path.join(d, "pki", "issuing.pem")),
                         spki_of_hsm_pub(self.hsm.public_key_der("existing-ca")))
        self.assertTrue(os.path.exists(os.path.join(d, "pki", "root.key")), "without --root-key the root is a file")

    def test_missing_key_is_refused_with_a_hint(self):
        d, r = self.init_dir("--ca-key", self.hsm.uri("no-such-key"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("--ca-key-generate", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "warden.yaml")))

    def test_pin_file_readable_by_others_is_refused(self):
        loose = os.path.join(self.hsm.dir, "loose.pin")
        with open(loose, "w") as f:
            f.write("3141\n")
        os.chmod(loose, 0o644)
        d, r = self.init_dir("--ca-key-generate", "--ca-key", self.hsm.uri("loose-ca", pin_file=loose))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("chmod 0600", r.stderr)
        self.assertNotIn("3141", r.stderr + r.stdout)

    def test_pin_value_and_missing_module_are_refused(self):
        d, r = self.init_dir("--ca-key", "pkcs11:token=warden-ca;object=x?module-path=" + MODULE + "&pin-value=3141")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("pin-source=file:", r.stderr)
        d, r = self.init_dir("--ca-key", self.hsm.uri("x", with_module=False))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("module-path", r.stderr)

    def test_wrong_pin_is_refused(self):
        wrong = os.path.join(self.hsm.dir, "wrong.pin")
        fd = os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("0000\n")
        d, r = self.init_dir("--ca-key-generate", "--ca-key", self.hsm.uri("wrong-pin-ca", pin_file=wrong))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("refused the PIN", r.stderr)
        self.assertNotIn("0000", r.stderr)


class MoveCaIntoHsmTest(unittest.TestCase):
    """An install made with file keys moves its issuing CA into an HSM with
    `warden ca rotate --ca-key pkcs11:...`, live, and retires the file CA."""

    def setUp(self):
        self.hsm = SoftHsm(label="warden-move")
        self.addCleanup(self.hsm.close)
        saved = os.environ.get("SOFTHSM2_CONF")
        os.environ["SOFTHSM2_CONF"] = self.hsm.conf
        self.addCleanup(lambda: os.environ.pop("SOFTHSM2_CONF") if saved is None
                        else os.environ.__setitem__("SOFTHSM2_CONF", saved))
        self.fleet = Fleet()
        self.addCleanup(self.fleet.close)
        assert self.fleet.apply_policy(FACTORY).returncode == 0

    def test_file_install_moves_its_issuing_ca_into_the_token(self):
        old = self.fleet.device("move-old", "sensor")
        r = self.fleet.cli("ca", "rotate", "--ca-key-generate", "--ca-key", self.hsm.uri("moved-ca"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("issuing-2 is the active issuing CA", r.stdout)
        self.assertIn("never extractable", self.hsm.private_key_access("moved-ca"))
        # The old device renews: its new certificate is signed in the token.
        r = self.fleet.run(AGENT, "run", "--dir", old.dir, "--renew-now", "--once")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        new = self.fleet.device("move-new", "sensor")
        for dev in (old, new):
            with open(dev.cert, "rb") as f:
                leaf = x509.load_pem_x509_certificate(f.read())
            self.assertIn("Issuing CA 2", leaf.issuer.rfc4514_string())
        cas = {c["name"]: c for c in self.fleet.cli_json("ca", "list")}
        self.assertEqual(cas["issuing-2"]["state"], "active")
        # Nothing is left under the file CA except the gateway's and the
        # operator's old certificates, which the rotation replaced.
        r = self.fleet.cli("ca", "retire", "issuing-1", "--force")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.fleet.pub(new, "factory/telemetry/move-new/t", "after-retire")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.fleet.pub(old, "factory/telemetry/move-old/t", "renewed")
        self.assertEqual(r.returncode, 0, r.stderr)
        # A restarted server loads the CA from the token by its URI.
        self.fleet.stop_serve()
        self.fleet.start_serve()
        r = self.fleet.pub(new, "factory/telemetry/move-new/t", "after-restart")
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()

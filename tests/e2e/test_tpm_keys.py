"""Device keys in a TPM 2.0 (swtpm behind tpm2-abrmd, tests/e2e/tpm_fixture.py).

`warden-agent enroll --key-store tpm2` creates the device key inside the TPM
under the SRK (persistent 0x81000001, created if absent) and stores only the
TPM-wrapped TSS2 PRIVATE KEY blob. Standard clients then use that blob
through the tpm2 provider: `openssl s_client -provider tpm2 -provider
default` over TLS 1.3 and mosquitto_pub (OPENSSL_CONF loading the providers)
through the gateway. Renewal makes a new TPM key, and the key survives a
simulated reboot."""

import os
import re
import subprocess
import time
import unittest

import mqtt_raw
from policies import FACTORY
from tpm_fixture import SoftTpm
from warden_fixture import AGENT, Device, Fleet

TSS2_PEM = "-----BEGIN TSS2 PRIVATE KEY-----"


class TpmKeysTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tpm = SoftTpm().start()
        cls.addClassCleanup(cls.tpm.stop)
        cls.fleet = Fleet()
        cls.addClassCleanup(cls.fleet.close)
        assert cls.fleet.apply_policy(FACTORY).returncode == 0

    def agent_env(self):
        env = dict(self.tpm.env)
        env.pop("OPENSSL_CONF", None)  # the agent loads the provider itself
        return env

    def enroll_tpm(self, name, *extra):
        added = self.fleet.add_device(name, "sensor")
        agent_dir = os.path.join(self.fleet.tmp, "agents", name)
        r = subprocess.run([AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}",
                            "--name", name, "--token", added["token"], "--ca-fingerprint", self.fleet.ca_fingerprint,
                            "--dir", agent_dir, "--key-store", "tpm2", "--tpm", self.tpm.tcti, *extra],
                           capture_output=True, text=True, env=self.agent_env(), timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return Device(self.fleet, name, agent_dir)

    def s_client_connect(self, dev):
        """MQTT CONNECT over `openssl s_client -provider tpm2 -provider default -tls1_3`; returns stdout bytes."""
        p = subprocess.Popen(["openssl", "s_client", "-provider", "tpm2", "-provider", "default", "-tls1_3",
                              "-connect", f"127.0.0.1:{self.fleet.mqtt_port}", "-cert", dev.cert, "-key", dev.key,
                              "-CAfile", dev.ca, "-quiet", "-no_ign_eof"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.agent_env())
        p.stdin.write(mqtt_raw.connect(dev.name, version=4))
        p.stdin.flush()
        time.sleep(1.5)
        try:
            out, err = p.communicate(input=mqtt_raw.packet(0xE0, b""), timeout=20)  # DISCONNECT
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        return out, err.decode(errors="replace")

    def key_attributes(self, key_path):
        """objectAttributes of the TPM key in a TSS2 PRIVATE KEY blob (tpm2_print of its TPM2B_PUBLIC)."""
        r = subprocess.run(["openssl", "asn1parse", "-in", key_path], capture_output=True, text=True, check=True)
        offsets = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+):d=1.*OCTET STRING", r.stdout, re.M)]
        self.assertEqual(len(offsets), 2, r.stdout)  # pubkey, privkey
        pub = os.path.join(self.fleet.tmp, "pub.tpm2b")
        subprocess.run(["openssl", "asn1parse", "-in", key_path, "-strparse", str(offsets[0]), "-noout",
                        "-out", pub], capture_output=True, check=True)
        r = self.tpm.tool("tpm2_print", "-t", "TPM2B_PUBLIC", pub)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_enroll_creates_the_key_in_the_tpm_under_the_srk(self):
        dev = self.enroll_tpm("tpm-sensor-1")
        with open(dev.key) as f:
            blob = f.read()
        self.assertTrue(blob.startswith(TSS2_PEM), blob[:60])
        self.assertEqual(os.stat(dev.key).st_mode & 0o777, 0o600)
        with open(os.path.join(dev.dir, "agent.yaml")) as f:
            config = f.read()
        self.assertIn("key_store: tpm2", config)
        self.assertIn("tpm: tabrmd:bus_type=session", config)
        handles = self.tpm.tool("tpm2_getcap", "handles-persistent").stdout
        self.assertIn("0x81000001", handles)
        # The parent recorded in the blob is the SRK, and the key can never leave the TPM.
        r = subprocess.run(["openssl", "asn1parse", "-in", dev.key], capture_output=True, text=True, check=True)
        self.assertIn(":81000001", r.stdout)
        attrs = self.key_attributes(dev.key)
        for a in ("fixedtpm", "fixedparent", "sensitivedataorigin", "sign"):
            self.assertIn(a, attrs)
        # A plain OpenSSL (no tpm2 provider) cannot use the blob as a key.
        r = subprocess.run(["openssl", "pkey", "-in", dev.key, "-noout"], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"})
        self.assertNotEqual(r.returncode, 0)

    def test_openssl_s_client_with_the_tpm_key_connects_over_tls13(self):
        dev = self.enroll_tpm("tpm-sensor-2")
        out, err = self.s_client_connect(dev)
        # -tls1_3 offers nothing else, so a CONNACK means TLS 1.3 with the TPM key.
        self.assertIn(b"\x20\x02\x00\x00", out, err)  # CONNACK, accepted

    def test_mosquitto_pub_with_the_tpm_key_through_the_provider(self):
        dev = self.enroll_tpm("tpm-sensor-3")
        r = self.fleet.run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.fleet.mqtt_port),
                           "--cafile", dev.ca, "--cert", dev.cert, "--key", dev.key, "--tls-version", "tlsv1.3",
                           "-i", dev.name, "-t", "factory/telemetry/tpm-sensor-3/t", "-m", "20.1",
                           env=self.tpm.env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_paho_with_the_tpm_key_through_the_provider(self):
        dev = self.enroll_tpm("tpm-sensor-6")
        script = """
import ssl, sys, paho.mqtt.client as mqtt
ca, cert, key, port, name = sys.argv[1:6]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.load_verify_locations(ca)
ctx.load_cert_chain(cert, key)   # the TSS2 blob, decoded by the tpm2 provider (OPENSSL_CONF)
c = mqtt.Client(client_id=name, protocol=mqtt.MQTTv311)
c.tls_set_context(ctx)
rc = c.connect("127.0.0.1", int(port))
c.loop_start()
info = c.publish("factory/telemetry/" + name + "/t", "18.0", qos=1)
info.wait_for_publish(10)
c.disconnect(); c.loop_stop()
print("published", info.is_published())
"""
        r = subprocess.run(["/usr/bin/python3", "-c", script, dev.ca, dev.cert, dev.key, str(self.fleet.mqtt_port),
                            dev.name], capture_output=True, text=True, env=self.tpm.env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("published True", r.stdout)

    def test_renewal_makes_a_new_tpm_key_and_survives_a_reboot(self):
        dev = self.enroll_tpm("tpm-sensor-4")
        with open(dev.key) as f:
            first_blob = f.read()
        serial = subprocess.run(["openssl", "x509", "-in", dev.cert, "-noout", "-serial"], capture_output=True,
                                text=True).stdout
        r = subprocess.run([AGENT, "run", "--dir", dev.dir, "--renew-now", "--once"], capture_output=True,
                           text=True, env=self.agent_env(), timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(dev.key) as f:
            second_blob = f.read()
        self.assertTrue(second_blob.startswith(TSS2_PEM))
        self.assertNotEqual(first_blob, second_blob, "a renewal makes a new key")
        self.assertNotEqual(serial, subprocess.run(["openssl", "x509", "-in", dev.cert, "-noout", "-serial"],
                                                   capture_output=True, text=True).stdout)
        self.assertFalse(os.path.exists(dev.key + ".next"))
        out, err = self.s_client_connect(dev)
        self.assertIn(b"\x20\x02\x00\x00", out, err)

        before = self.tpm.reset_count()
        self.tpm.reboot()
        self.assertGreater(self.tpm.reset_count(), before)
        # After the power cycle the blob loads under the persistent SRK again:
        # renew with the same key, then connect.
        r = subprocess.run([AGENT, "run", "--dir", dev.dir, "--renew-now", "--once", "--keep-key"],
                           capture_output=True, text=True, env=self.agent_env(), timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(dev.key) as f:
            self.assertEqual(f.read(), second_blob)
        out, err = self.s_client_connect(dev)
        self.assertIn(b"\x20\x02\x00\x00", out, err)

    def test_tcti_without_a_resource_manager_is_refused(self):
        added = self.fleet.add_device("tpm-direct", "sensor")
        r = subprocess.run([AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}",
                            "--name", "tpm-direct", "--token", added["token"],
                            "--ca-fingerprint", self.fleet.ca_fingerprint,
                            "--dir", os.path.join(self.fleet.tmp, "agents", "tpm-direct"),
                            "--key-store", "tpm2", "--tpm", f"swtpm:host=127.0.0.1,port={self.tpm.port}"],
                           capture_output=True, text=True, env=self.agent_env(), timeout=60)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("tpm2-abrmd", r.stderr)

    def test_posture_records_the_claimed_tpm_key(self):
        self.enroll_tpm("tpm-sensor-5")
        shown = self.fleet.cli_json("device", "show", "tpm-sensor-5")
        self.assertEqual(shown["key_store"], {"claimed": "tpm2", "verified": False})
        # Proven only by a TPM attestation (test_attestation_tpm.py).
        self.assertEqual(shown["posture"]["key_in_tpm"], "claimed")


if __name__ == "__main__":
    unittest.main()

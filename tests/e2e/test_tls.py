"""The gateway's mutual-TLS door: only certificates the fleet issued to an
active device, with exactly its identity, get in; the broker accepts only the
gateway."""

import os
import subprocess
import time
import unittest

import certs
from warden_fixture import Device, FleetTestCase

TD = "spiffe://warden.local"


class TlsAdmissionTest(FleetTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from policies import FACTORY
        assert cls.fleet.apply_policy(FACTORY).returncode == 0
        cls.sensor = cls.fleet.device("tls-sensor", "sensor")

    def crafted(self, label, **kw):
        d = os.path.join(self.fleet.tmp, "crafted", label)
        certs.make_leaf(self.fleet, d, **kw)
        return Device(self.fleet, kw.get("cn", "x"), d)

    def assert_refused(self, dev, client_id=None):
        r = self.fleet.pub(dev, "factory/telemetry/tls-sensor/t", "x", client_id=client_id or "tls-sensor")
        self.assertNotEqual(r.returncode, 0, f"accepted: {r.stdout} {r.stderr}")

    def test_enrolled_device_is_admitted(self):
        r = self.fleet.pub(self.sensor, "factory/telemetry/tls-sensor/t", "ok")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_unknown_serial_from_real_ca_is_refused(self):
        dev = self.crafted("unknown-serial", cn="tls-sensor", uris=[f"{TD}/device/tls-sensor"])
        self.assert_refused(dev)
        self.fleet.wait_event(lambda e: e["type"] == "tls_reject" and e["reason"] == "unknown_serial")

    def test_foreign_ca_is_refused(self):
        dev = self.crafted("foreign", cn="tls-sensor", uris=[f"{TD}/device/tls-sensor"], issuer=certs.foreign_ca())
        self.assert_refused(dev)

    def test_expired_certificate_is_refused(self):
        dev = self.crafted("expired", cn="tls-sensor", uris=[f"{TD}/device/tls-sensor"], expired=True)
        self.assert_refused(dev)

    def test_two_uri_sans_are_refused(self):
        dev = self.crafted("two-uris", cn="tls-sensor",
                           uris=[f"{TD}/device/tls-sensor", f"{TD}/device/other"])
        self.assert_refused(dev)

    def test_no_uri_san_is_refused(self):
        self.assert_refused(self.crafted("no-uri", cn="tls-sensor", uris=[]))

    def test_cn_mismatch_is_refused(self):
        self.assert_refused(self.crafted("cn", cn="other", uris=[f"{TD}/device/tls-sensor"]))

    def test_user_path_is_refused(self):
        self.assert_refused(self.crafted("user", cn="admin", uris=[f"{TD}/user/admin"]), client_id="admin")

    def test_foreign_trust_domain_is_refused(self):
        self.assert_refused(self.crafted("td", cn="tls-sensor", uris=["spiffe://evil.example/device/tls-sensor"]))

    def test_percent_encoded_identity_is_refused(self):
        self.assert_refused(self.crafted("pct", cn="tls-sensor", uris=[f"{TD}/device/tls%2Dsensor"]))

    def test_no_client_certificate_is_refused(self):
        r = self.fleet.run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.fleet.mqtt_port),
                           "--cafile", self.sensor.ca, "-i", "tls-sensor", "-t", "a", "-m", "x")
        self.assertNotEqual(r.returncode, 0)

    def test_one_session_ticket_per_full_handshake(self):
        """One TLS 1.3 ticket per full handshake, not OpenSSL's two, on the
        gateway (devices may resume) and on the API listener (the ticket
        also acknowledges the client's Finished at once: without it a client
        with Nagle on waits for a delayed ACK before its request)."""
        def tickets(port, extra):
            p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
                                  "-CAfile", self.sensor.ca, *extra],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(1.5)  # the tickets follow the handshake at once; then close stdin and let s_client go
            out, _ = p.communicate(input="", timeout=30)
            self.assertIn("Verify return code: 0 (ok)", out)
            return out.count("Post-Handshake New Session Ticket arrived")
        gw = ["-cert", self.sensor.cert, "-key", self.sensor.key]
        self.assertEqual(tickets(self.fleet.mqtt_port, gw), 1)
        self.assertEqual(tickets(self.fleet.api_port, []), 1)
        self.assertEqual(tickets(self.fleet.api_port, gw), 1)

    def test_tls_1_1_and_cbc_are_refused(self):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.fleet.mqtt_port}",
                            "-tls1_1", "-cert", self.sensor.cert, "-key", self.sensor.key],
                           input="", capture_output=True, text=True, timeout=20)
        self.assertNotIn("Cipher is ECDHE", r.stdout)
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.fleet.mqtt_port}",
                            "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA", "-cert", self.sensor.cert,
                            "-key", self.sensor.key], input="", capture_output=True, text=True, timeout=20)
        self.assertNotIn("Cipher is ECDHE-ECDSA-AES128-SHA", r.stdout)

    def test_broker_refuses_device_certificate(self):
        r = self.fleet.run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.fleet.upstream_port),
                           *self.sensor.tls_args(), "-i", "tls-sensor", "-t", "factory/x", "-m", "x",
                           "--insecure")
        self.assertNotEqual(r.returncode, 0)

    def test_broker_refuses_plaintext_and_anonymous(self):
        r = self.fleet.run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.fleet.upstream_port),
                           "-t", "x", "-m", "x")
        self.assertNotEqual(r.returncode, 0)
        r = self.fleet.run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.fleet.upstream_port),
                           "--cafile", os.path.join(self.fleet.broker_dir, "upstream-ca.pem"), "--insecure",
                           "-t", "x", "-m", "x")
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main()

"""Certificate lifetimes (pki.cert_ttl, `manufacturer add --cert-ttl`,
`device add|set --cert-ttl`; device > manufacturer > fleet) and renewal by
warden-agent with and without a new key."""

import datetime
import json
import os
import subprocess
import tempfile
import unittest

from factory_ca import FactoryCa
from policies import FACTORY
from warden_fixture import AGENT, Device, FleetTestCase


def lifetime_seconds(cert_path):
    """notAfter minus now, in seconds (notBefore is back-dated by the CA)."""
    out = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-enddate"], capture_output=True,
                         text=True, check=True).stdout.strip().split("=", 1)[1]
    not_after = datetime.datetime.strptime(out, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=datetime.timezone.utc)
    return (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds()


def serial(cert_path):
    return subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-serial"], capture_output=True,
                          text=True, check=True).stdout.strip()


class LifetimeTest(FleetTestCase):
    config_edits = (("cert_ttl: 1d", "cert_ttl: 2h"),)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        assert cls.fleet.apply_policy(FACTORY).returncode == 0

    def assertLifetime(self, cert, expected):
        got = lifetime_seconds(cert)
        self.assertTrue(expected - 120 <= got <= expected + 5, f"lifetime {got}s, expected about {expected}s")

    def renew(self, dev, *extra):
        r = self.fleet.run(AGENT, "run", "--dir", dev.dir, "--renew-now", "--once", *extra)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_fleet_default_then_device_override(self):
        dev = self.fleet.device("ttl-fleet", "sensor")
        self.assertLifetime(dev.cert, 7200)
        added = self.fleet.cli_json("device", "add", "ttl-own", "--role", "sensor", "--cert-ttl", "30m")
        own = self.fleet.enroll("ttl-own", added["token"])
        self.assertLifetime(own.cert, 1800)
        self.assertEqual(self.fleet.cli_json("device", "show", "ttl-own")["cert_ttl"], "30m")

    def test_device_beats_manufacturer_beats_fleet(self):
        d = tempfile.mkdtemp(dir=self.fleet.tmp)
        ca = FactoryCa(os.path.join(d, "ca"), subject="/O=Ttl/CN=Ttl CA")
        r = self.fleet.cli("manufacturer", "add", "ttlmaker", "--ca", ca.cert, "--auto-register", "--role", "sensor",
                           "--name-prefix", "ttl-", "--cert-ttl", "1h")
        self.assertEqual(r.returncode, 0, r.stderr)
        cert, key = ca.idevid(os.path.join(d, "dev"), "m1")
        agent_dir = os.path.join(d, "agent")
        r = self.fleet.run(AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}", "--idevid", cert,
                           "--idevid-key", key, "--ca-fingerprint", self.fleet.ca_fingerprint, "--dir", agent_dir,
                           "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        dev = Device(self.fleet, "ttl-m1", agent_dir)
        self.assertLifetime(dev.cert, 3600)  # manufacturer over fleet (2h)
        out = self.fleet.cli_json("device", "set", "ttl-m1", "--cert-ttl", "45m")
        self.assertEqual(out["cert_ttl"], "45m")
        self.renew(dev)
        self.assertLifetime(dev.cert, 2700)  # device over manufacturer
        self.fleet.cli_json("device", "set", "ttl-m1", "--cert-ttl", "default")
        self.renew(dev)
        self.assertLifetime(dev.cert, 3600)
        self.fleet.wait_event(lambda e: e["type"] == "device_set" and e["resource"] == "ttl-m1")

    def test_invalid_lifetimes_are_refused_with_a_clear_error(self):
        self.fleet.add_device("ttl-bad", "sensor")
        for ttl in ("30s", "31d", "0m", "1w", "abc"):
            r = self.fleet.cli("device", "add", f"ttl-x-{len(ttl)}", "--role", "sensor", "--cert-ttl", ttl)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("from 1m to 30d", r.stderr)
            r = self.fleet.cli("device", "set", "ttl-bad", "--cert-ttl", ttl)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        r = self.fleet.cli("device", "set", "no-such-device", "--cert-ttl", "1h")
        self.assertEqual(r.returncode, 1)
        # Edges are accepted.
        self.assertEqual(self.fleet.cli("device", "set", "ttl-bad", "--cert-ttl", "1m").returncode, 0)
        self.assertEqual(self.fleet.cli("device", "set", "ttl-bad", "--cert-ttl", "30d").returncode, 0)

    def test_renewal_rekeys_by_default_and_keeps_the_key_on_request(self):
        dev = self.fleet.device("renew-dev", "sensor")
        with open(dev.key) as f:
            key0 = f.read()
        s0 = serial(dev.cert)
        self.renew(dev)
        with open(dev.key) as f:
            key1 = f.read()
        s1 = serial(dev.cert)
        self.assertNotEqual(key0, key1)  # a new key on every renewal by default
        self.assertNotEqual(s0, s1)
        self.assertEqual(os.stat(dev.key).st_mode & 0o777, 0o600)
        p = self.fleet.pub(dev, "factory/telemetry/renew-dev/t", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.renew(dev, "--keep-key")
        with open(dev.key) as f:
            key2 = f.read()
        self.assertEqual(key1, key2)
        self.assertNotEqual(serial(dev.cert), s1)
        p = self.fleet.pub(dev, "factory/telemetry/renew-dev/t", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.fleet.wait_event(lambda e: e["type"] == "renew" and e["resource"] == "renew-dev")

    def test_enroll_reports_renewal_at_two_thirds_of_life(self):
        added = self.fleet.add_device("renew-at", "sensor")
        d = os.path.join(self.fleet.tmp, "agents", "renew-at")
        r = self.fleet.run(AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}", "--name",
                           "renew-at", "--token", added["token"], "--ca-fingerprint", self.fleet.ca_fingerprint,
                           "--dir", d, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        parse = lambda t: datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")
        left = (parse(out["renew_at"]) - datetime.datetime.utcnow()).total_seconds()
        # 2/3 of 2 h, minus at most 10 % of the life as jitter.
        self.assertTrue(7200 * 2 / 3 - 720 - 120 <= left <= 7200 * 2 / 3 + 5, left)


if __name__ == "__main__":
    unittest.main()

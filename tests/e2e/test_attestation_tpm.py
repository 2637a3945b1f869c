"""Continuous verification with a real TPM (swtpm behind tpm2-abrmd,
tests/e2e/tpm_fixture.py), a real Mosquitto and real MQTT clients.

The whole loop with nobody pressing a button: a healthy device attests and
publishes; its firmware image changes and at its next attestation its live
MQTT session is reduced to quarantine rights; it installs an approved image,
reboots (swtpm power cycle + agent restart), attests and is re-admitted, and
the same mosquitto_sub receives again. Also the attacks: a quote from another
TPM, a TPM rolled back to an earlier state (resetCount going back), quotes
made with tpm2-tools and the device's own AK (replayed evidence, an old quote
under a fresh nonce, a log that does not replay to the quoted PCR), software
evidence where the segment requires a TPM or after an AK was registered, and
an approval revoked for the release the device runs.

The device key in the TPM: a device enrolled with `--key-store tpm2` proves
with each TPM attestation that its key is in the TPM (TPM2_Certify by its AK)
and shows `key_in_tpm: verified`, until a renewal with a new key; a file key
attesting with the TPM does not; a proof forged with tpm2-tools (a
certification of another TPM key by the device's own AK) fails attestation
with the reason, and leaving the proof out afterwards does not undo that."""

import base64
import hashlib
import json
import os
import subprocess
import time
import unittest

from test_attestation_protocol import AttestClient, b64
from tpm_fixture import SoftTpm
from warden_fixture import AGENT, Device, Fleet, SubProcess

POLICY = """
segments:
  plc:
    role: controller
    attestation: {required: true, interval: 4s, grace: 6s, min_assurance: tpm}
  lab:
    role: labdevice
    attestation: {required: true, interval: 4s, grace: 60s, min_assurance: software}
rules:
  - id: operators
    effect: permit
    principals: {kind: user, id: admin}
    actions: ["admin:*"]
    resources: ["*"]
  - id: devices-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: quarantined-stay-connected
    effect: permit
    principals: {segment: quarantine}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: plcs-read-commands
    effect: permit
    principals: {segment: plc}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/commands/${principal.id}/#"]
  - id: plcs-report
    effect: permit
    principals: {segment: plc}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
  - id: operators-command
    effect: permit
    principals: {role: operator-console}
    actions: [mqtt:publish]
    resources: ["factory/commands/#"]
"""

MODEL = "plc-x200"

# POSTER posts one attestation request over mutual TLS with a device's
# certificate and key; run with the TPM fixture's environment (OPENSSL_CONF
# loading the tpm2 provider) it uses a TPM-held key.
POSTER = """
import http.client, json, ssl, sys
ca, cert, key, port, path = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
ctx.load_cert_chain(cert, key)
conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx, timeout=60)
conn.request("POST", path, body=sys.stdin.read(), headers={"Content-Type": "application/json"})
r = conn.getresponse()
text = r.read().decode()
print(json.dumps({"status": r.status, "body": json.loads(text) if text else None}))
"""


def sha256_text(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TpmAttestationTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.fleet = Fleet()
        cls.addClassCleanup(cls.fleet.close)
        r = cls.fleet.apply_policy(POLICY)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.fw_good = b"PLC firmware 2.1.0 " + os.urandom(64)
        cls.fw_bad = b"PLC firmware 2.1.0 with an implant " + os.urandom(64)
        r = cls.fleet.cli("firmware", "approve", sha256_text(cls.fw_good), "--model", MODEL, "--version", "2.1.0")
        assert r.returncode == 0, r.stdout + r.stderr
        cls.console = cls.fleet.device("console-1", "operator-console")

    def setUp(self):
        # One TPM per test: one EK binds exactly one device.
        self.tpm = self.new_tpm()

    # --- helpers --------------------------------------------------------------------
    def new_tpm(self, trusted=True):
        """A fresh swtpm whose EK CA (swtpm_localca) the fleet trusts unless |trusted| is False."""
        tpm = SoftTpm().start()
        self.addCleanup(tpm.stop)
        if trusted:
            ca = os.path.join(self.fleet.tmp, f"tpm-vendor-ca-{tpm.port}.pem")
            with open(ca, "w") as f:
                f.write(tpm.ek_ca_pem())
            r = self.fleet.cli("tpm-ca", "add", ca)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return tpm

    def agent_env(self, tpm=None):
        env = dict((tpm or self.tpm).env)
        env.pop("OPENSSL_CONF", None)
        return env

    def plc(self, name, role="controller"):
        return self.fleet.device(name, role, labels=[f"model={MODEL}"])

    def firmware_file(self, dev, content):
        path = os.path.join(self.fleet.tmp, f"{dev.name}-firmware.bin")
        with open(path, "wb") as f:
            f.write(content)
        return path

    def attest_once(self, dev, firmware=None, tpm=None, use_tpm=True):
        """`warden-agent attest`: one challenge/evidence round; returns (exit code, verdict or output)."""
        args = [AGENT, "attest", "--dir", dev.dir, "-o", "json"]
        if use_tpm:
            args += ["--tpm", (tpm or self.tpm).tcti]
        if firmware:
            args += ["--firmware", firmware]
        r = subprocess.run(args, capture_output=True, text=True, timeout=120, env=self.agent_env(tpm))
        try:
            return r.returncode, json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return r.returncode, r.stdout + r.stderr

    def start_agent(self, dev, firmware):
        p = SubProcess([AGENT, "run", "--dir", dev.dir, "--tpm", self.tpm.tcti, "--firmware", firmware,
                        "--attest-interval", "2s"], env=self.agent_env())
        return p

    def posture(self, name):
        return self.fleet.cli_json("device", "show", name)

    def wait_for(self, what, name, predicate, timeout=40.0, agent=None):
        """Polls `device show NAME` until predicate(shown) holds."""
        deadline = time.time() + timeout
        shown = None
        while time.time() < deadline:
            shown = self.posture(name)
            if predicate(shown):
                return shown
            time.sleep(0.25)
        agent_out = "\n".join(agent.lines + agent.err)[-3000:] if agent else ""
        self.fail(f"timed out waiting for {what}; device show: {json.dumps(shown, indent=1)}\nagent: {agent_out}")

    def state(self, name):
        return self.posture(name)["state"]

    # --- the loop -------------------------------------------------------------------
    def test_tampered_image_quarantines_and_an_approved_image_after_reboot_readmits(self):
        dev = self.plc("plc-loop")
        fw = self.firmware_file(dev, self.fw_good)
        agent = self.start_agent(dev, fw)
        self.addCleanup(agent.close)
        self.wait_for("the first good TPM attestation", dev.name,
                      lambda d: d.get("posture", {}).get("state") == "healthy" and d["posture"].get("trust") == 100,
                      agent=agent)

        sub = SubProcess(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.fleet.mqtt_port), *dev.tls_args(),
                          "-i", dev.name, "-v", "-t", f"factory/commands/{dev.name}/#"])
        self.addCleanup(sub.close)
        time.sleep(1.0)
        r = self.fleet.pub(self.console, f"factory/commands/{dev.name}/run", "start")
        self.assertEqual(r.returncode, 0, r.stderr)
        sub.wait_line(lambda l: "start" in l, timeout=10)

        # The image changes on the device: the agent measures it at its next round.
        since = self.fleet.events()[-1]["id"]
        with open(fw, "wb") as f:
            f.write(self.fw_bad)
        q = self.fleet.wait_event(lambda e: e["id"] > since and e["type"] == "quarantine"
                                  and e["resource"] == dev.name, timeout=30)
        self.assertEqual(q["actor"], "trust")
        self.assertEqual(self.state(dev.name), "quarantined")
        failed = [e for e in self.fleet.events(since) if e["type"] == "attestation_failed"]
        self.assertTrue(failed and failed[-1]["reason"] == "unapproved_firmware", failed)
        # The live session keeps only quarantine rights: its subscription is suspended.
        self.fleet.pub(self.console, f"factory/commands/{dev.name}/run", "during-quarantine")
        time.sleep(1.5)
        self.assertFalse(any("during-quarantine" in l for l in sub.lines), sub.lines)
        self.assertIsNone(sub.proc.poll(), "mosquitto_sub was disconnected; quarantine allows connect")

        # Repair: the approved image is installed, the device reboots.
        agent.close()
        with open(fw, "wb") as f:
            f.write(self.fw_good)
        self.tpm.reboot()
        agent2 = self.start_agent(dev, fw)
        self.addCleanup(agent2.close)
        rel = self.fleet.wait_event(lambda e: e["id"] > since and e["type"] == "release"
                                    and e["resource"] == dev.name, timeout=60)
        self.assertEqual(rel["actor"], "trust")
        # At least 30 s in quarantine before re-admission (no flapping).
        self.assertGreaterEqual(rel["id"], q["id"])
        t = lambda e: time.mktime(time.strptime(e["time"], "%Y-%m-%dT%H:%M:%SZ"))
        self.assertGreaterEqual(t(rel) - t(q), 29)
        self.assertEqual(self.state(dev.name), "active")
        # The same mosquitto_sub process receives again.
        self.fleet.pub(self.console, f"factory/commands/{dev.name}/run", "after-readmission")
        sub.wait_line(lambda l: "after-readmission" in l, timeout=10)
        history = self.fleet.cli_json("device", "history", dev.name)
        types = [e["type"] for e in history] if isinstance(history, list) else [e["type"] for e in history["events"]]
        for t in ("quarantine", "release", "attestation_failed"):
            self.assertIn(t, types)

    def raw_ak(self, dev):
        """Loads the device's registered AK (A/ak.pub, A/ak.priv) with tpm2-tools, as an attacker on the
        device could; returns (path-in-work-dir function, tool function, AK context path)."""
        work = os.path.join(self.fleet.tmp, f"raw-{dev.name}")
        os.makedirs(work, exist_ok=True)
        p = lambda n: os.path.join(work, n)
        def tool(*args):
            r = self.tpm.tool(*args)
            self.assertEqual(r.returncode, 0, f"{args}: {r.stderr}")
        tool("tpm2_createek", "-c", p("ek.ctx"), "-G", "rsa", "-u", p("ek.pub"))
        tool("tpm2_startauthsession", "--policy-session", "-S", p("s.ctx"))
        tool("tpm2_policysecret", "-S", p("s.ctx"), "-c", "e")
        tool("tpm2_load", "-C", p("ek.ctx"), "-u", os.path.join(dev.dir, "ak.pub"),
             "-r", os.path.join(dev.dir, "ak.priv"), "-c", p("ak.ctx"), "-P", "session:" + p("s.ctx"))
        tool("tpm2_flushcontext", p("s.ctx"))
        return p, tool, p("ak.ctx")

    def raw_quoter(self, dev):
        """quote(nonce_bytes) -> (TPMS_ATTEST bytes, TPMT_SIGNATURE bytes) by the device's AK, with tpm2-tools."""
        p, tool, ak = self.raw_ak(dev)

        def quote(nonce):
            tool("tpm2_quote", "-c", ak, "-l", "sha256:10", "-q", nonce.hex(), "-g", "sha256",
                 "-m", p("q.msg"), "-s", p("q.sig"))
            with open(p("q.msg"), "rb") as f, open(p("q.sig"), "rb") as g:
                return f.read(), g.read()
        return quote

    def test_replayed_and_inconsistent_quotes(self):
        dev = self.plc("plc-raw")
        fw = self.firmware_file(dev, self.fw_good)
        code, verdict = self.attest_once(dev, fw)  # registers the AK and measures fw into PCR 10
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        with open(os.path.join(dev.dir, "attestation-log.json")) as f:
            log = json.load(f)["log"]
        quote = self.raw_quoter(dev)
        client = AttestClient(self.fleet, dev)

        def evidence(nonce_text, q, entries):
            return {"nonce": nonce_text, "kind": "tpm2-quote", "quote": b64(q[0]), "signature": b64(q[1]),
                    "log": entries}

        def nonce():
            text = client.challenge()["nonce"]
            return text, base64.urlsafe_b64decode(text + "=")

        # An honest quote made outside the agent is accepted...
        n1, raw1 = nonce()
        q1 = quote(raw1)
        status, body = client.post("/attest/v1/evidence", evidence(n1, q1, log))
        self.assertEqual((status, body["result"]), (200, "ok"), body)
        # ...once: the same evidence again is a replay, refused without a verdict.
        status, body = client.post("/attest/v1/evidence", evidence(n1, q1, log))
        self.assertEqual((status, body["error"]), (400, "nonce_reused"), body)
        self.assertEqual(self.state(dev.name), "active")
        # The old quote under a fresh nonce: the TPM signed another nonce.
        n2, _ = nonce()
        status, body = client.post("/attest/v1/evidence", evidence(n2, q1, log))
        self.assertEqual(status, 200, body)
        self.assertEqual((body["result"], body["reason"]), ("failed", "nonce_mismatch"), body)
        self.assertEqual(self.state(dev.name), "quarantined")

    def test_a_log_that_does_not_replay_to_the_quoted_pcr_fails(self):
        dev = self.plc("plc-pcr")
        fw = self.firmware_file(dev, self.fw_good)
        code, verdict = self.attest_once(dev, fw)
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        quote = self.raw_quoter(dev)
        client = AttestClient(self.fleet, dev)
        text = client.challenge()["nonce"]
        q = quote(base64.urlsafe_b64decode(text + "="))
        # A log that claims another image than the one extended into PCR 10.
        lie = [{"pcr": 10, "digest": sha256_text(self.fw_good + b"x"), "type": "firmware", "name": "fw.bin"}]
        status, body = client.post("/attest/v1/evidence", {"nonce": text, "kind": "tpm2-quote", "quote": b64(q[0]),
                                                           "signature": b64(q[1]), "log": lie})
        self.assertEqual(status, 200, body)
        self.assertEqual((body["result"], body["reason"]), ("failed", "pcr_mismatch"), body)
        self.assertEqual(self.state(dev.name), "quarantined")

    # --- attacks ----------------------------------------------------------------------
    def test_a_quote_from_another_tpm_fails_attestation(self):
        dev = self.plc("plc-foreign")
        fw = self.firmware_file(dev, self.fw_good)
        code, verdict = self.attest_once(dev, fw)
        self.assertEqual(code, 0, verdict)
        self.assertEqual(verdict["result"], "ok", verdict)
        other = self.new_tpm()  # a genuine TPM, but not this device's
        code, verdict = self.attest_once(dev, fw, tpm=other)
        self.assertNotEqual(code, 0, verdict)
        self.assertEqual(self.state(dev.name), "quarantined")
        self.fleet.wait_event(lambda e: e["type"] == "attestation_failed" and e["resource"] == dev.name
                              and e["reason"] == "foreign_tpm")

    def test_a_tpm_rolled_back_to_an_earlier_state_fails_attestation(self):
        dev = self.plc("plc-rollback")
        fw = self.firmware_file(dev, self.fw_good)
        saved = self.tpm.save_state()
        self.tpm.reboot()
        self.tpm.reboot()
        code, verdict = self.attest_once(dev, fw)
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        self.tpm.restore_state(saved)  # resetCount is back where it was two boots ago
        code, verdict = self.attest_once(dev, fw)
        self.assertEqual(verdict["result"], "failed", verdict)
        self.assertEqual(verdict["reason"], "reset_count_regressed", verdict)
        self.assertEqual(self.state(dev.name), "quarantined")

    def test_software_evidence_where_the_segment_requires_a_tpm(self):
        dev = self.plc("plc-software")
        fw = self.firmware_file(dev, self.fw_good)
        code, verdict = self.attest_once(dev, fw, use_tpm=False)
        self.assertEqual(verdict["result"], "failed", verdict)
        self.assertEqual(verdict["reason"], "assurance_insufficient", verdict)
        self.assertEqual(self.state(dev.name), "quarantined")

    def test_software_evidence_after_an_ak_was_registered_is_a_downgrade(self):
        dev = self.plc("lab-1", role="labdevice")  # its segment accepts software evidence
        fw = self.firmware_file(dev, self.fw_good)
        code, verdict = self.attest_once(dev, fw)
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        code, verdict = self.attest_once(dev, fw, use_tpm=False)
        self.assertEqual(verdict["result"], "failed", verdict)
        self.assertEqual(verdict["reason"], "assurance_downgrade", verdict)

    def test_revoking_the_approval_of_a_running_release_quarantines(self):
        image = b"PLC firmware 2.0.9 " + os.urandom(64)
        digest = sha256_text(image)
        r = self.fleet.cli("firmware", "approve", digest, "--model", MODEL, "--version", "2.0.9")
        self.assertEqual(r.returncode, 0, r.stderr)
        dev = self.plc("plc-revoked")
        fw = self.firmware_file(dev, image)
        code, verdict = self.attest_once(dev, fw)
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        r = self.fleet.cli("firmware", "revoke-approval", digest, "--model", MODEL)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("1", r.stdout)
        self.assertEqual(self.state(dev.name), "active")  # without --yes nothing changes
        r = self.fleet.cli("firmware", "revoke-approval", digest, "--model", MODEL, "--yes")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.state(dev.name), "quarantined")
        self.fleet.wait_event(lambda e: e["type"] == "quarantine" and e["resource"] == dev.name
                              and e["actor"] == "trust")

    # --- the device key in the TPM -----------------------------------------------------
    def enroll_tpm_key(self, name, role="sensor"):
        """A device whose key is made in self.tpm (`--key-store tpm2`); outside the attestation segments."""
        added = self.fleet.add_device(name, role)
        agent_dir = os.path.join(self.fleet.tmp, "agents", name)
        r = subprocess.run([AGENT, "enroll", "--server", f"https://127.0.0.1:{self.fleet.api_port}",
                            "--name", name, "--token", added["token"], "--ca-fingerprint", self.fleet.ca_fingerprint,
                            "--dir", agent_dir, "--key-store", "tpm2", "--tpm", self.tpm.tcti],
                           capture_output=True, text=True, env=self.agent_env(), timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return Device(self.fleet, name, agent_dir)

    def tpm_post(self, dev, path, body):
        """POSTs over mutual TLS with the device's TPM-held key (the tpm2 provider); returns (status, body)."""
        r = subprocess.run(["/usr/bin/python3", "-c", POSTER, os.path.join(self.fleet.dir, "pki", "ca-bundle.pem"),
                            dev.cert, dev.key, str(self.fleet.api_port), path],
                           input=json.dumps(body), capture_output=True, text=True, env=self.tpm.env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        return out["status"], out["body"]

    def key_in_tpm(self, name):
        shown = self.posture(name)
        return shown["posture"]["key_in_tpm"], shown

    def test_a_tpm_held_key_is_verified_and_a_renewal_with_a_new_key_must_prove_it_again(self):
        dev = self.enroll_tpm_key("tpm-key-1")
        state, shown = self.key_in_tpm(dev.name)
        self.assertEqual(state, "claimed", shown)
        self.assertEqual(shown["key_store"], {"claimed": "tpm2", "verified": False})
        code, verdict = self.attest_once(dev)
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        state, shown = self.key_in_tpm(dev.name)
        self.assertEqual(state, "verified", shown)
        self.assertEqual(shown["key_store"], {"claimed": "tpm2", "verified": True})
        self.assertEqual(shown["posture"]["key_proof"]["result"], "verified", shown)
        self.assertEqual(shown["posture"]["key_location"]["verified"], True, shown)
        self.fleet.wait_event(lambda e: e["type"] == "key_verified" and e["resource"] == dev.name)
        r = self.fleet.cli("device", "show", dev.name)
        self.assertIn("key in TPM:     verified", r.stdout)

        # A renewal makes a new TPM key: proven again only at the next attestation.
        r = subprocess.run([AGENT, "run", "--dir", dev.dir, "--renew-now", "--once"], capture_output=True,
                           text=True, env=self.agent_env(), timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        state, shown = self.key_in_tpm(dev.name)
        self.assertEqual(state, "claimed", shown)
        self.assertIsNone(shown["posture"]["key_proof"], shown)
        code, verdict = self.attest_once(dev)
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        self.assertEqual(self.key_in_tpm(dev.name)[0], "verified")

    def test_a_file_key_attesting_with_the_tpm_is_not_verified(self):
        dev = self.fleet.device("file-key-1", "sensor")
        code, verdict = self.attest_once(dev)
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        state, shown = self.key_in_tpm(dev.name)
        self.assertEqual(state, "not_claimed", shown)
        self.assertEqual(shown["key_store"], {"claimed": "file", "verified": False})

    def test_a_forged_proof_of_another_tpm_key_fails_attestation(self):
        dev = self.enroll_tpm_key("tpm-key-forged")
        code, verdict = self.attest_once(dev)  # registers the AK; the honest proof verifies
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        self.assertEqual(self.key_in_tpm(dev.name)[0], "verified")

        # On the device, with tpm2-tools: another key under the SRK, certified by the device's own AK.
        p, tool, ak = self.raw_ak(dev)
        tool("tpm2_create", "-C", "0x81000001", "-G", "ecc256", "-u", p("other.pub"), "-r", p("other.priv"))
        tool("tpm2_load", "-C", "0x81000001", "-u", p("other.pub"), "-r", p("other.priv"), "-c", p("other.ctx"))
        tool("tpm2_certify", "-c", p("other.ctx"), "-C", ak, "-g", "sha256", "-o", p("c.attest"), "-s", p("c.sig"))
        with open(p("c.attest"), "rb") as f, open(p("c.sig"), "rb") as g, open(p("other.pub"), "rb") as h:
            forged = {"attest": b64(f.read()), "signature": b64(g.read()), "public": b64(h.read())}

        def quote_evidence(text):
            tool("tpm2_quote", "-c", ak, "-l", "sha256:10", "-q", base64.urlsafe_b64decode(text + "=").hex(),
                 "-g", "sha256", "-m", p("q.msg"), "-s", p("q.sig"))
            with open(p("q.msg"), "rb") as f, open(p("q.sig"), "rb") as g:
                return {"nonce": text, "kind": "tpm2-quote", "quote": b64(f.read()), "signature": b64(g.read()),
                        "log": []}

        since = self.fleet.events()[-1]["id"]
        status, challenge = self.tpm_post(dev, "/attest/v1/challenge", {})
        self.assertEqual(status, 200, challenge)
        body = quote_evidence(challenge["nonce"])
        body["key_certify"] = forged
        status, verdict = self.tpm_post(dev, "/attest/v1/evidence", body)
        self.assertEqual(status, 200, verdict)
        self.assertEqual((verdict["result"], verdict["reason"]), ("failed", "foreign_key"), verdict)
        state, shown = self.key_in_tpm(dev.name)
        self.assertEqual(state, "failed", shown)
        self.assertEqual(shown["posture"]["key_proof"]["reason"], "foreign_key", shown)
        self.assertEqual(shown["key_store"]["verified"], False)
        self.assertEqual(shown["state"], "quarantined")
        failed = self.fleet.wait_event(lambda e: e["id"] > since and e["type"] == "attestation_failed"
                                       and e["resource"] == dev.name)
        self.assertEqual(failed["reason"], "foreign_key", failed)
        self.assertIn("not the key of the certificate", failed["detail"]["detail"])

        # Leaving the proof out does not answer the failed one.
        status, challenge = self.tpm_post(dev, "/attest/v1/challenge", {})
        status, verdict = self.tpm_post(dev, "/attest/v1/evidence", quote_evidence(challenge["nonce"]))
        self.assertEqual(status, 200, verdict)
        self.assertEqual((verdict["result"], verdict["reason"]), ("failed", "key_unproven"), verdict)
        self.assertEqual(self.key_in_tpm(dev.name)[0], "failed")

        # The honest agent proves the key again.
        code, verdict = self.attest_once(dev)
        self.assertEqual((code, verdict["result"]), (0, "ok"), verdict)
        self.assertEqual(self.key_in_tpm(dev.name)[0], "verified")


if __name__ == "__main__":
    unittest.main()

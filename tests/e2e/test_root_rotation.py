"""Root CA rotation with live sessions: `warden ca rotate --root` against a
running server with Mosquitto, devices in live MQTT sessions and
`warden-agent run` agents on short-lived certificates. cacerts carries
NewWithNew, OldWithOld, OldWithNew and NewWithOld (RFC 7030 §4.1.3); the
agents move their pin to the new root through NewWithOld at their next
renewal; an agent fed a forged bundle (a new root without a NewWithOld, or
with one signed by another key) refuses it and keeps its pin; the state
survives a restart of `warden serve`; retiring the old issuing CA drops the
old root and the fleet keeps working."""

import base64
import http.server
import os
import shutil
import ssl
import stat
import subprocess
import threading
import time
import unittest

from policies import FACTORY
from warden_fixture import AGENT, FleetTestCase, SubProcess, free_port, wait_port


def run(*args, timeout=60, input=None):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=input)


def openssl(*args):
    r = run("openssl", *args)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {r.stdout}{r.stderr}")
    return r.stdout


def subject_issuer(pem_text):
    """[(subject, issuer)] of every certificate in |pem_text| (RFC 2253 CNs)."""
    out, cur = [], []
    for line in pem_text.splitlines(keepends=True):
        cur.append(line)
        if "END CERTIFICATE" in line:
            text = run("openssl", "x509", "-noout", "-subject", "-issuer", "-nameopt", "RFC2253",
                       input="".join(cur)).stdout
            fields = dict(l.split("=", 1) for l in text.splitlines() if "=" in l)
            out.append((fields["subject"].strip(), fields["issuer"].strip()))
            cur = []
    return out


def read(path):
    with open(path) as f:
        return f.read()


def yaml_pin(agent_dir):
    for line in read(os.path.join(agent_dir, "agent.yaml")).splitlines():
        if line.startswith("ca_fingerprint:"):
            return line.split(":", 1)[1].strip().strip('"')
    return None


def first_pem(path):
    text = read(path)
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return text[:end] + "\n"


class FakeEstServer:
    """A tiny HTTPS server that answers cacerts with a chosen bundle and
    refuses everything else: the peer that breaks the rollover on purpose."""

    def __init__(self, cert_file, key_file, cacerts_b64):
        body = cacerts_b64.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/.well-known/est/cacerts"):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/pkcs7-mime")
                    self.send_header("Content-Transfer-Encoding", "base64")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_error(404)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(n)
                self.send_error(503, "fake EST server issues nothing")

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.httpd = http.server.HTTPServer(("127.0.0.1", self.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class RootRotationTest(FleetTestCase):

    def short_lived(self, name, role):
        added = self.fleet.cli_json("device", "add", name, "--role", role, "--cert-ttl", "2m")
        return self.fleet.enroll(name, added["token"])

    def cacerts(self, cafile):
        """cacerts fetched with curl, verifying the server with |cafile| only."""
        r = run("curl", "-sf", "--cacert", cafile, f"https://127.0.0.1:{self.fleet.api_port}/.well-known/est/cacerts")
        self.assertEqual(r.returncode, 0, r.stderr)
        der = base64.b64decode("".join(r.stdout.split()))
        p = subprocess.run(["openssl", "pkcs7", "-inform", "DER", "-print_certs"], input=der, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout.decode()

    def forged_bundle(self, work, old_root_pem, signed_by_forger, genuine=()):
        """cacerts answer: the real old root, a new self-signed root and, if
        |signed_by_forger|, a 'NewWithOld' signed by a look-alike of the old
        root (same name, another key)."""
        os.makedirs(work, exist_ok=True)
        p = lambda n: os.path.join(work, n)
        # The old root's subject is one RDN (CN=...), written here as -subj wants it.
        old_subject = "/" + subject_issuer(read(old_root_pem))[0][0]
        new_subject = old_subject + " 2"  # what the real new root is called
        for k in ("fake-root.key", "forger.key"):
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p(k))
        ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
        openssl("req", "-x509", "-new", "-key", p("fake-root.key"), "-subj", new_subject,
                "-days", "3650", *ca_ext, "-out", p("fake-root.pem"))
        bundle = read(old_root_pem) + "".join(read(g) for g in genuine) + read(p("fake-root.pem"))
        if signed_by_forger:
            openssl("req", "-x509", "-new", "-key", p("forger.key"), "-subj", old_subject, "-days", "3650", *ca_ext,
                    "-out", p("forger.pem"))
            openssl("req", "-new", "-key", p("fake-root.key"), "-subj", new_subject,
                    "-out", p("nwo.csr"))
            with open(p("ext.cnf"), "w") as f:
                f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
            openssl("x509", "-req", "-in", p("nwo.csr"), "-CA", p("forger.pem"), "-CAkey", p("forger.key"),
                    "-CAcreateserial", "-days", "365", "-extfile", p("ext.cnf"), "-out", p("nwo.pem"))
            bundle += read(p("nwo.pem"))
        with open(p("bundle.pem"), "w") as f:
            f.write(bundle)
        der = subprocess.run(["openssl", "crl2pkcs7", "-nocrl", "-certfile", p("bundle.pem"), "-outform", "DER"],
                             capture_output=True, check=True).stdout
        return base64.b64encode(der).decode()

    def refuses_forged_root(self, dev, gateway_cert, gateway_key, old_root_pem, signed_by_forger):
        f = self.fleet
        tag = "forger" if signed_by_forger else "nolink"
        # The genuine old root and issuing CA, plus the forgery: ca.pem must
        # come out exactly as it was.
        bundle = self.forged_bundle(os.path.join(f.tmp, f"forge-{tag}"), old_root_pem, signed_by_forger,
                                    genuine=(os.path.join(f.dir, "pki", "issuing.pem"),))
        fake = FakeEstServer(gateway_cert, gateway_key, bundle)
        self.addCleanup(fake.close)
        copy = os.path.join(f.tmp, "agents", f"{dev.name}-{tag}")
        shutil.copytree(dev.dir, copy)
        cfg = os.path.join(copy, "agent.yaml")
        text = read(cfg).replace(f"https://127.0.0.1:{f.api_port}", f"https://127.0.0.1:{fake.port}")
        with open(cfg, "w") as fh:
            fh.write(text)
        pin_before, ca_before = yaml_pin(copy), read(os.path.join(copy, "ca.pem"))
        r = run(AGENT, "run", "--dir", copy, "--renew-now", "--once")
        self.assertNotEqual(r.returncode, 0)  # the fake server issues nothing
        self.assertIn("refused root update", r.stdout + r.stderr)
        self.assertIn("Root CA 2", r.stdout + r.stderr)
        self.assertEqual(yaml_pin(copy), pin_before)
        self.assertEqual(read(os.path.join(copy, "ca.pem")), ca_before)
        self.assertNotIn(read(os.path.join(f.tmp, f"forge-{tag}", "fake-root.pem")).strip(),
                         read(os.path.join(copy, "ca.pem")))

    def test_root_rotation_with_live_sessions_and_agents(self):
        f = self.fleet
        pki = os.path.join(f.dir, "pki")
        old_root = os.path.join(pki, "root.pem")
        wait_port(f.pki_port, proc=f.serve)
        self.assertEqual(f.apply_policy(FACTORY).returncode, 0)
        s1, ctl = self.short_lived("rr-s1", "sensor"), self.short_lived("rr-ctl", "controller")
        stay = f.device("rr-stay", "sensor")  # default lifetime, no agent running: keeps the old pin
        # The gateway's credentials before the rotation: what the fake EST
        # server presents (it chains to the old root, like a rogue server
        # holding a stolen old certificate would).
        shutil.copy(os.path.join(pki, "gateway.pem"), os.path.join(f.tmp, "old-gateway.pem"))
        shutil.copy(os.path.join(pki, "gateway.key"), os.path.join(f.tmp, "old-gateway.key"))
        agents = []
        for d in (s1, ctl):
            a = self.closing(SubProcess([AGENT, "run", "--dir", d.dir]))
            agents.append(a)
        c1, cc, cs = self.live(s1), self.live(ctl), self.live(stay)
        self.assertEqual(cc.subscribe("factory/telemetry/#"), [1])
        self.assertTrue(self.flows(c1, s1, cc, "before"))
        old_pin = f.ca_fingerprint
        self.assertEqual(yaml_pin(s1.dir), old_pin)

        # --- rotate the root, the old root key "offline" in another place ----
        offline = os.path.join(f.tmp, "offline")
        os.makedirs(offline, mode=0o700)
        shutil.move(os.path.join(pki, "root.key"), os.path.join(offline, "root.key"))
        r = f.cli("ca", "rotate", "--root")  # no root key at the default place: refused, nothing changes
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("--root-key", r.stderr)
        out = f.cli_json("ca", "rotate", "--root", "--root-key", os.path.join(offline, "root.key"),
                         "--new-root-key", os.path.join(offline, "root-2.key"))
        self.assertEqual((out["root"], out["previous_root"]), ("root-2", "root"))
        self.assertEqual((out["name"], out["previous"]), ("issuing-2", "issuing-1"))
        new_pin = out["root_fingerprint"]
        self.assertNotEqual(new_pin, old_pin)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(offline, "root-2.key")).st_mode), 0o600)
        new_root = out["root_cert"]
        nwo = out["new_with_old"]
        self.assertIn("Warden Root CA 2", openssl("x509", "-in", new_root, "-noout", "-subject"))

        time.sleep(0.5)
        for c in (c1, cc, cs):
            self.assertFalse(c.disconnected.is_set(), "a live session was cut by the root rotation")
        self.assertTrue(self.flows(c1, s1, cc, "after-rotate"))

        # --- inventory, trust bundle, cacerts -------------------------------
        cas = {c["name"]: c for c in f.cli_json("ca", "list")}
        self.assertEqual((cas["root"]["state"], cas["root-2"]["state"]), ("retiring", "active"))
        self.assertEqual((cas["issuing-1"]["state"], cas["issuing-2"]["state"]), ("retiring", "active"))
        bundle = read(os.path.join(pki, "ca-bundle.pem"))
        self.assertEqual(bundle.count("BEGIN CERTIFICATE"), 4)
        self.assertIn(read(old_root).strip(), bundle)
        self.assertIn(read(new_root).strip(), bundle)
        # curl trusting only the OLD root reaches the API: it presents leaf +
        # issuing-2 + NewWithOld.
        certs = subject_issuer(self.cacerts(old_root))
        r1, r2 = subject_issuer(read(old_root))[0][0], subject_issuer(read(new_root))[0][0]
        self.assertEqual(r2, r1 + " 2")
        for pair in ((r2, r2), (r1, r1), (r1, r2), (r2, r1)):  # NewWithNew, OldWithOld, OldWithNew, NewWithOld
            self.assertIn(pair, certs)
        self.assertEqual(len([c for c in certs if c[0] in (r1, r2)]), 4)
        self.assertEqual(len(certs), 6)  # + issuing-1 and issuing-2
        # ...and so does a client that trusts only the new root.
        self.assertEqual(len(subject_issuer(self.cacerts(new_root))), 6)
        # New devices get the new fingerprint; one enrolled with the old pin
        # moves to the new root at once.
        fresh = f.device("rr-fresh", "sensor")
        self.assertEqual(yaml_pin(fresh.dir), new_pin)
        self.assertIn("Issuing CA 2", openssl("x509", "-in", fresh.cert, "-noout", "-issuer"))
        later = f.add_device("rr-later", "sensor")
        self.assertEqual(later["ca_fingerprint"], new_pin)
        self.live(fresh)

        # --- a forged bundle changes nothing ---------------------------------
        for forger in (False, True):
            self.refuses_forged_root(stay, os.path.join(f.tmp, "old-gateway.pem"),
                                     os.path.join(f.tmp, "old-gateway.key"), old_root, forger)

        # --- the agents renew (2m certificates: at 2/3 of their life) --------
        deadline = time.time() + 150
        while time.time() < deadline and not all(yaml_pin(d.dir) == new_pin for d in (s1, ctl)):
            time.sleep(1)
        for d, a in zip((s1, ctl), agents):
            self.assertEqual(yaml_pin(d.dir), new_pin, f"{d.name} did not move its pin: " + "\n".join(a.err[-20:]))
            self.assertTrue(any("root CA rollover" in l for l in a.err + a.lines), "\n".join(a.err[-20:]))
            ca = read(d.ca)
            self.assertIn(read(old_root).strip(), ca)
            self.assertIn(read(new_root).strip(), ca)
        # The renewed certificate is installed right after the pin moved.
        deadline = time.time() + 30
        while time.time() < deadline and not all(
                "Issuing CA 2" in openssl("x509", "-in", d.cert, "-noout", "-issuer") for d in (s1, ctl)):
            time.sleep(0.5)
        issuing2 = os.path.join(f.tmp, "issuing-2.pem")
        with open(issuing2, "w") as fh:
            fh.write(read(s1.cert)[len(first_pem(s1.cert)):])
        self.assertIn("Issuing CA 2", openssl("x509", "-in", issuing2, "-noout", "-subject"))
        leaf = os.path.join(f.tmp, "s1-leaf.pem")
        with open(leaf, "w") as fh:
            fh.write(first_pem(s1.cert))
        # openssl verify: the new root alone; the old root with NewWithOld.
        r = run("openssl", "verify", "-CAfile", new_root, "-untrusted", issuing2, leaf)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        chain = os.path.join(f.tmp, "issuing-2+nwo.pem")
        with open(chain, "w") as fh:
            fh.write(read(issuing2) + read(nwo))
        r = run("openssl", "verify", "-CAfile", old_root, "-untrusted", chain, leaf)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = run("openssl", "verify", "-CAfile", old_root, "-untrusted", issuing2, leaf)
        self.assertNotEqual(r.returncode, 0)  # without the link the old root cannot reach it
        c1.close()
        cc.close()
        n1, ncc = self.live(s1, client_id="rr-s1"), self.live(ctl, client_id="rr-ctl")
        self.assertEqual(ncc.subscribe("factory/telemetry/#"), [1])
        self.assertTrue(self.flows(n1, s1, ncc, "renewed"))
        # A device that kept the old pin still connects (old root trusted).
        self.assertEqual(f.pub(stay, "factory/telemetry/rr-stay/t", "old-root", "-q", "1").returncode, 0)

        # --- restart: the rotation is persisted -------------------------------
        f.stop_serve()
        f.start_serve()
        wait_port(f.pki_port, proc=f.serve)
        self.assertEqual(len(subject_issuer(self.cacerts(old_root))), 6)
        cas = {c["name"]: c for c in f.cli_json("ca", "list")}
        self.assertEqual((cas["root"]["state"], cas["root-2"]["state"]), ("retiring", "active"))
        n1, ncc = self.live(s1, client_id="rr-s1"), self.live(ctl, client_id="rr-ctl")
        self.assertEqual(ncc.subscribe("factory/telemetry/#"), [1])
        self.assertTrue(self.flows(n1, s1, ncc, "after-restart"))

        # --- retire the old issuing CA: the old root goes with it ----------
        r = f.cli("ca", "retire", "issuing-1")
        self.assertEqual(r.returncode, 1)  # rr-stay still holds a certificate from it
        out = f.cli_json("ca", "retire", "issuing-1", "--force")
        self.assertEqual(out["retired_roots"], ["root"])
        time.sleep(0.5)
        for c in (n1, ncc):
            self.assertFalse(c.disconnected.is_set(), "a session under the new root was cut by retire")
        self.assertTrue(self.flows(n1, s1, ncc, "after-retire"))
        cas = {c["name"]: c for c in f.cli_json("ca", "list")}
        self.assertEqual((cas["root"]["state"], cas["issuing-1"]["state"]), ("retired", "retired"))
        bundle = read(os.path.join(pki, "ca-bundle.pem"))
        self.assertEqual(bundle.count("BEGIN CERTIFICATE"), 2)
        self.assertNotIn(read(old_root).strip(), bundle)
        self.assertEqual(subject_issuer(self.cacerts(new_root)),
                         [(r2, r2), (r1.replace("Root CA", "Issuing CA 2"), r2)])
        # The fleet keeps working: a new device enrolls with the new pin.
        f.ca_fingerprint = new_pin  # the old root is gone from cacerts now
        late = f.enroll("rr-later", later["token"])
        self.assertEqual(yaml_pin(late.dir), new_pin)
        self.live(late)
        # The root CRLs: the new root's is signed offline with its own key.
        r = f.cli("ca", "crl", "--root", "--root-key", os.path.join(offline, "root-2.key"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(pki, "crl", "root-2.crl")))
        f.wait_event(lambda e: e["type"] == "ca_rotate" and e["resource"] == "root-2"
                     and e["detail"].get("previous_root") == "root")
        f.wait_event(lambda e: e["type"] == "ca_retire" and e["detail"].get("retired_roots") == ["root"])
        self.assertIsNone(f.broker.poll())


if __name__ == "__main__":
    unittest.main()

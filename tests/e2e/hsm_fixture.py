"""A SoftHSM2 token for end-to-end tests.

    hsm = SoftHsm(label="warden")    # temp SOFTHSM2_CONF + token dir, token initialized
    hsm.env                           # os.environ + SOFTHSM2_CONF (give it to warden, warden-agent, mosquitto_pub)
    hsm.uri("issuing-ca")             # pkcs11:token=warden;object=issuing-ca;type=private?module-path=...&pin-source=file:PIN
    hsm.pin_file                      # 0600 file with the user PIN
    hsm.tool("--list-objects")        # pkcs11-tool on this token, logged in; CompletedProcess
    hsm.close()                       # removes the token directory

SoftHSM reads SOFTHSM2_CONF when a process initializes the module, so every
process that uses the token gets `env`. Nothing is skipped: a missing
softhsm2-util, pkcs11-tool or libp11 engine is an error naming scripts/setup.
"""

import os
import shutil
import subprocess
import tempfile

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
ENGINE = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
USER_PIN = "3141"  # test-only PIN, written to a 0600 file


class SoftHsm:
    def __init__(self, label="warden", tmp=None):
        missing = [p for p in ("softhsm2-util", "pkcs11-tool") if shutil.which(p) is None]
        missing += [p for p in (MODULE, ENGINE) if not os.path.exists(p)]
        if missing:
            raise RuntimeError("missing " + ", ".join(missing) + ": run scripts/setup")
        self.label = label
        self.dir = tempfile.mkdtemp(prefix="warden-softhsm-", dir=tmp)
        tokens = os.path.join(self.dir, "tokens")
        os.makedirs(tokens)
        self.conf = os.path.join(self.dir, "softhsm2.conf")
        with open(self.conf, "w") as f:
            f.write(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
        self.env = dict(os.environ, SOFTHSM2_CONF=self.conf)
        self.pin_file = os.path.join(self.dir, "user.pin")
        fd = os.open(self.pin_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(USER_PIN + "\n")
        r = subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", USER_PIN,
                            "--so-pin", "27182818"], capture_output=True, text=True, env=self.env, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"softhsm2-util --init-token failed: {r.stdout}{r.stderr}")

    def uri(self, obj, pin_file=None, with_module=True):
        query = []
        if with_module:
            query.append(f"module-path={MODULE}")
        query.append(f"pin-source=file:{pin_file or self.pin_file}")
        return f"pkcs11:token={self.label};object={obj};type=private?" + "&".join(query)

    def tool(self, *args, login=True):
        cmd = ["pkcs11-tool", "--module", MODULE, "--token-label", self.label]
        if login:
            cmd += ["--login", "--pin", USER_PIN]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, env=self.env, timeout=60)

    def private_key_access(self, label):
        """The 'Access:' line pkcs11-tool prints for the private key |label|."""
        r = self.tool("--list-objects", "--type", "privkey")
        if r.returncode != 0:
            raise AssertionError(f"pkcs11-tool --list-objects failed: {r.stdout}{r.stderr}")
        # One block per object: "Private Key Object; EC", "label: NAME", ..., "Access: ...".
        current = None
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith("Private Key Object"):
                current = None
            elif line.startswith("label:"):
                current = line.split(":", 1)[1].strip()
            elif line.startswith("Access:") and current == label:
                return line.split(":", 1)[1].strip()
        raise AssertionError("no private key labelled " + label + ":\n" + r.stdout)

    def public_key_der(self, label):
        path = os.path.join(self.dir, f"{label}.pub.der")
        r = self.tool("--read-object", "--type", "pubkey", "--label", label, "--output-file", path)
        if r.returncode != 0:
            raise AssertionError(f"pkcs11-tool --read-object pubkey failed: {r.stdout}{r.stderr}")
        with open(path, "rb") as f:
            return f.read()

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

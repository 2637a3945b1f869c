"""A software TPM 2.0 for end-to-end tests: swtpm + a private D-Bus + tpm2-abrmd.

API (issue 6, "Continuous verification", reuses it):

    from tpm_fixture import SoftTpm

    with SoftTpm() as tpm:        # or: tpm = SoftTpm(); tpm.start(); ...; tpm.stop()
        tpm.tcti                  # "tabrmd:bus_type=session": the TCTI clients use
        tpm.env                   # os.environ + DBUS_SESSION_BUS_ADDRESS, TPM2TOOLS_TCTI,
                                  # TPM2OPENSSL_TCTI, OPENSSL_CONF (tpm2 + default providers)
        tpm.openssl_conf          # path of that OpenSSL config (load it with OPENSSL_CONF)
        tpm.tool("tpm2_getcap", "handles-persistent")   # a tpm2-tools command; CompletedProcess
        tpm.ek_cert_der()         # the RSA EK certificate (NV index 0x01c00002), DER bytes
        tpm.ek_ca_pem()           # swtpm_localca's CA chain that signed the EK certificate (PEM text)
        tpm.reset_count()         # TPM2_GetTime/ReadClock resetCount (grows with each reboot)
        tpm.reboot()              # power cycle (swtpm_ioctl -i) + TPM2_Startup(CLEAR); PCRs reset,
                                  # transient objects gone, persistent handles kept; tpm2-abrmd is
                                  # restarted (it holds stale contexts otherwise)
        saved = tpm.save_state()  # copy of the TPM's persistent state (a restart of swtpm = a boot)
        tpm.restore_state(saved)  # roll the TPM back to it (resetCount included, same EK)
        tpm.stop()                # stops abrmd, D-Bus and swtpm and removes the temp dir

What start() does, in a private temporary directory:
  1. `swtpm_setup --tpm2 --create-ek-cert --create-platform-cert` with
     swtpm_localca as the certificate tool (a local CA made in the temp dir),
     so the TPM holds an EK and its certificate like a real one;
  2. `swtpm socket` on two free 127.0.0.1 ports (TPM and control channel);
  3. `dbus-daemon` with a session configuration listening on a unix socket in
     the temp dir (no system or user bus is touched);
  4. `tpm2-abrmd --session --allow-root --tcti=swtpm:...` on that bus.
Every client (warden-agent, openssl with the tpm2 provider, tpm2-tools) then
reaches the TPM only through tpm2-abrmd. Everything is stopped on stop(),
also when start() fails half-way. Nothing is skipped: a missing program is an
error that names scripts/setup.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REQUIRED = ("swtpm", "swtpm_setup", "swtpm_ioctl", "swtpm_localca", "tpm2-abrmd", "dbus-daemon",
            "tpm2_startup", "tpm2_getcap", "tpm2_nvread", "tpm2_readclock")
TPM2_PROVIDER = "/usr/lib/x86_64-linux-gnu/ossl-modules/tpm2.so"


def _free_port_pair():
    """Two consecutive free ports (swtpm's TPM and control channels)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", port + 1))
            return port, port + 1
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports on 127.0.0.1")


def _wait_port(port, proc, what, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} does not listen on {port} after {timeout}s")


class SoftTpm:
    def __init__(self):
        missing = [p for p in REQUIRED if shutil.which(p) is None]
        if not os.path.exists(TPM2_PROVIDER):
            missing.append("tpm2-openssl (" + TPM2_PROVIDER + ")")
        if missing:
            raise RuntimeError("missing " + ", ".join(missing) + ": run scripts/setup")
        self.tmp = None
        self.swtpm = self.dbus = self.abrmd = None
        self.port = self.ctrl_port = None
        self.tcti = "tabrmd:bus_type=session"
        self.env = None
        self.openssl_conf = None

    # --- lifecycle ----------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        try:
            self._start()
        except Exception:
            self.stop()
            raise
        return self

    def _start(self):
        self.tmp = tempfile.mkdtemp(prefix="warden-tpm-")
        state = os.path.join(self.tmp, "state")
        localca = os.path.join(self.tmp, "localca")
        os.makedirs(state)
        os.makedirs(localca)
        self._write("localca.conf", f"statedir = {localca}\n"
                                    f"signingkey = {localca}/signkey.pem\n"
                                    f"issuercert = {localca}/issuercert.pem\n"
                                    f"certserial = {localca}/certserial\n")
        self._write("localca.options", "--platform-manufacturer Warden\n--platform-version 2.1\n"
                                       "--platform-model swtpm\n")
        self._write("swtpm_setup.conf", "create_certs_tool = /usr/bin/swtpm_localca\n"
                                        f"create_certs_tool_config = {self.tmp}/localca.conf\n"
                                        f"create_certs_tool_options = {self.tmp}/localca.options\n")
        r = subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", state, "--create-ek-cert",
                            "--create-platform-cert", "--config", os.path.join(self.tmp, "swtpm_setup.conf"),
                            "--overwrite"], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"swtpm_setup failed: {r.stdout}{r.stderr}")
        self.state_dir = state
        self.localca_dir = localca
        self._start_swtpm()

        bus = os.path.join(self.tmp, "bus")
        self._write("dbus.conf", f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={bus}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
""")
        self.dbus = self._spawn("dbus", ["dbus-daemon", "--config-file", os.path.join(self.tmp, "dbus.conf"),
                                         "--nofork"])
        deadline = time.time() + 10
        while not os.path.exists(bus):
            if self.dbus.poll() is not None or time.time() > deadline:
                raise RuntimeError("dbus-daemon did not start: " + self.log("dbus"))
            time.sleep(0.02)

        self.openssl_conf = os.path.join(self.tmp, "openssl-tpm2.cnf")
        # Signatures prefer the tpm2 provider (a TPM key must sign inside the
        # TPM: OpenSSL 3.0 would otherwise try the default provider's ECDSA
        # with only the key's public half); everything else stays default.
        self._write("openssl-tpm2.cnf", """openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
alg_section = evp_properties
[evp_properties]
default_properties = ?tpm2.signature
[provider_sect]
default = default_sect
tpm2 = tpm2_sect
[default_sect]
activate = 1
[tpm2_sect]
activate = 1
""")
        self.env = dict(os.environ)
        self.env.update({
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={bus}",
            "TPM2TOOLS_TCTI": self.tcti,
            "TPM2OPENSSL_TCTI": self.tcti,
            "OPENSSL_CONF": self.openssl_conf,
        })
        self._start_abrmd()

    def _start_swtpm(self, attempts=5):
        # Not self.env: its OPENSSL_CONF loads the tpm2 provider, which makes
        # swtpm's seccomp filter kill it (SIGSYS) when it restarts.
        env = {k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"}
        for attempt in range(1, attempts + 1):
            self.port, self.ctrl_port = _free_port_pair()
            self.swtpm = self._spawn("swtpm", [
                "swtpm", "socket", "--tpm2",
                "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
                "--ctrl", f"type=tcp,port={self.ctrl_port},bindaddr=127.0.0.1",
                "--tpmstate", f"dir={self.state_dir}", "--flags", "not-need-init,startup-clear"], env=env)
            try:
                _wait_port(self.ctrl_port, self.swtpm, "swtpm")
                return
            except RuntimeError:
                # The ports were free when picked; a process started in
                # parallel may have bound one first. Try others.
                if self.swtpm.poll() is None or attempt == attempts:
                    raise

    def _start_abrmd(self):
        env = dict(self.env)
        env.pop("OPENSSL_CONF", None)
        self.abrmd = self._spawn("abrmd", ["tpm2-abrmd", "--session", "--allow-root",
                                           f"--tcti=swtpm:host=127.0.0.1,port={self.port}"], env=env)
        deadline = time.time() + 15
        while True:
            r = self.tool("tpm2_getcap", "properties-fixed", timeout=10)
            if r.returncode == 0:
                return
            if self.abrmd.poll() is not None or time.time() > deadline:
                raise RuntimeError("tpm2-abrmd did not come up: " + self.log("abrmd") + r.stderr)
            time.sleep(0.1)

    def _stop_proc(self, proc):
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self):
        for p in (self.abrmd, self.dbus, self.swtpm):
            self._stop_proc(p)
        self.abrmd = self.dbus = self.swtpm = None
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    # --- operations -----------------------------------------------------------
    def tool(self, *args, timeout=30):
        """Runs a tpm2-tools command through tpm2-abrmd."""
        env = dict(self.env)
        env.pop("OPENSSL_CONF", None)
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, env=env)

    def reboot(self):
        """Simulates a power cycle: swtpm_ioctl -i (TPM2_Init), then TPM2_Startup(CLEAR).

        tpm2-abrmd keeps contexts of the previous power cycle that the TPM no
        longer knows, so it is restarted (with the same bus and TCTI)."""
        self._stop_proc(self.abrmd)
        r = subprocess.run(["swtpm_ioctl", "--tcp", f"127.0.0.1:{self.ctrl_port}", "-i"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"swtpm_ioctl -i failed: {r.stdout}{r.stderr}")
        r = subprocess.run(["tpm2_startup", "-c", "-T", f"swtpm:host=127.0.0.1,port={self.port}"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"tpm2_startup -c failed: {r.stdout}{r.stderr}")
        self._start_abrmd()

    def save_state(self):
        """Copies the TPM's persistent state (NV, seeds, counters) aside; returns the copy's path.

        With restore_state() this is the rollback attack on a TPM: its state
        taken back to an earlier point (resetCount included), EK unchanged."""
        self._stop_proc(self.abrmd)
        self._stop_proc(self.swtpm)  # swtpm writes its state file when it stops
        dest = tempfile.mkdtemp(prefix="state-", dir=self.tmp)
        shutil.copytree(self.state_dir, dest, dirs_exist_ok=True)
        self._start_swtpm()
        self._start_abrmd()
        return dest

    def restore_state(self, saved):
        """Replaces the TPM's state with a copy from save_state() and powers it on."""
        self._stop_proc(self.abrmd)
        self._stop_proc(self.swtpm)
        shutil.rmtree(self.state_dir)
        shutil.copytree(saved, self.state_dir)
        self._start_swtpm()
        self._start_abrmd()

    def reset_count(self):
        r = self.tool("tpm2_readclock")
        if r.returncode != 0:
            raise RuntimeError(f"tpm2_readclock failed: {r.stderr}")
        for line in r.stdout.splitlines():
            line = line.strip()
            if line.startswith("reset_count:"):
                return int(line.split(":", 1)[1])
        raise RuntimeError("tpm2_readclock printed no reset_count: " + r.stdout)

    def ek_cert_der(self):
        path = os.path.join(self.tmp, "ek.der")
        r = self.tool("tpm2_nvread", "-C", "o", "0x01c00002", "-o", path)
        if r.returncode != 0:
            raise RuntimeError(f"tpm2_nvread of the EK certificate failed: {r.stderr}")
        with open(path, "rb") as f:
            return f.read()

    def ek_ca_pem(self):
        out = ""
        for name in ("issuercert.pem", "swtpm-localca-rootca-cert.pem"):
            with open(os.path.join(self.localca_dir, name)) as f:
                out += f.read()
        return out

    def log(self, name):
        try:
            with open(os.path.join(self.tmp, f"{name}.log"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # --- helpers ----------------------------------------------------------------
    def _write(self, name, text):
        with open(os.path.join(self.tmp, name), "w") as f:
            f.write(text)

    def _spawn(self, name, args, env=None):
        log = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        try:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env or self.env,
                                    start_new_session=True)
        finally:
            log.close()

#!/usr/bin/python3
"""Warden's main job, end to end, with real components.

Starts Mosquitto (behind the gateway) and `warden serve` in a working
directory, adds three devices of a factory line, enrolls each with
`warden-agent`, and shows with mosquitto_pub / mosquitto_sub:
  1. allowed traffic flowing (sensor telemetry to the controller, controller
     commands to the valve),
  2. the sensor denied when it tries to command the valve, with the reason
     from the event log,
  3. the sensor's live session cut the moment it is revoked.
Then it keeps running for you to explore, with a cheat sheet. With --once it
exits 0 only if every expected allow, deny and cut was seen.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOLD, GREEN, RED, DIM, RESET = ("\033[1m", "\033[32m", "\033[31m", "\033[2m", "\033[0m") \
    if sys.stdout.isatty() else ("", "", "", "", "")


def say(text=""):
    print(text, flush=True)


def step(text):
    say(f"\n{BOLD}== {text}{RESET}")


def ok(text):
    say(f"  {GREEN}✔{RESET} {text}")


def bad(text):
    say(f"  {RED}✘ {text}{RESET}")


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see its log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} is not listening on 127.0.0.1:{port} after {timeout}s")


class Demo:
    def __init__(self, args):
        self.bin = os.path.abspath(os.path.join(ROOT, args.bin))
        self.warden = os.path.join(self.bin, "warden")
        self.agent = os.path.join(self.bin, "warden-agent")
        self.once = args.once
        self.work = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(prefix="warden-demo-")
        self.procs = []
        self.failures = []
        ports = [8443, 8883, 18883]
        if not all(port_free(p) for p in ports):
            ports = [free_port(), free_port(), free_port()]
            say(f"{DIM}default ports are busy; using {ports}{RESET}")
        self.api_port, self.mqtt_port, self.up_port = ports
        self.dir = os.path.join(self.work, "warden")
        self.devices = {}

    # -- plumbing ------------------------------------------------------------
    def run(self, *args, check=True, quiet=False):
        r = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise SystemExit(f"command failed ({r.returncode}): {' '.join(args)}\n{r.stdout}{r.stderr}")
        return r

    def w(self, *args, check=True):
        return self.run(self.warden, *args, "--dir", self.dir, check=check)

    def spawn(self, name, args):
        log = open(os.path.join(self.work, f"{name}.log"), "ab")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        return p

    def tls(self, name):
        d = self.devices[name]
        return ["--cafile", f"{d}/ca.pem", "--cert", f"{d}/cert.pem", "--key", f"{d}/key.pem",
                "-h", "127.0.0.1", "-p", str(self.mqtt_port), "-i", name]

    def expect(self, cond, good, failure):
        if cond:
            ok(good)
        else:
            bad(failure)
            self.failures.append(failure)

    # -- the story -----------------------------------------------------------
    def setup(self):
        step(f"Installing Warden in {self.dir}")
        if os.path.exists(os.path.join(self.dir, "warden.yaml")):
            say(f"  {DIM}reusing the existing installation{RESET}")
        else:
            os.makedirs(self.work, exist_ok=True)
            os.chmod(self.work, 0o755)
            r = self.run(self.warden, "init", "--dir", self.dir,
                         "--api-listen", f"127.0.0.1:{self.api_port}",
                         "--mqtt-listen", f"127.0.0.1:{self.mqtt_port}",
                         "--mqtt-upstream", f"127.0.0.1:{self.up_port}")
            say("  " + r.stdout.strip().splitlines()[0])
        self.w("broker", "config", "--out", os.path.join(self.work, "broker"))
        ok("root CA, issuing CA, gateway and operator certificates; a separate upstream CA for the broker")

        step("Starting Mosquitto (reachable only through the gateway) and `warden serve`")
        broker = self.spawn("mosquitto", ["mosquitto", "-c", os.path.join(self.work, "broker", "mosquitto.conf")])
        wait_port(self.up_port, broker, "mosquitto")
        serve = self.spawn("serve", [self.warden, "serve", "--dir", self.dir])
        wait_port(self.api_port, serve, "warden serve")
        wait_port(self.mqtt_port, serve, "warden serve")
        ok(f"admin API https://127.0.0.1:{self.api_port}, MQTT gateway 127.0.0.1:{self.mqtt_port}, "
           f"broker 127.0.0.1:{self.up_port}")

        step("Applying the factory policy (examples/policy-factory.yaml)")
        r = self.w("policy", "apply", os.path.join(ROOT, "examples", "policy-factory.yaml"))
        ok(r.stdout.strip() or "policy applied")

        step("Adding and enrolling three devices with warden-agent (EST, one-time tokens)")
        for name, role in (("temp-sensor-1", "sensor"), ("valve-1", "actuator"),
                           ("line-controller-1", "controller")):
            existing = self.w("device", "show", name, "-o", "json", check=False)
            agent_dir = os.path.join(self.work, "agents", name)
            if existing.returncode == 0 and json.loads(existing.stdout)["state"] != "pending" \
                    and os.path.exists(os.path.join(agent_dir, "cert.pem")):
                self.devices[name] = agent_dir
                continue
            added = json.loads(self.w("device", "add", name, "--role", role, "--label", "site=plant1",
                                      "-o", "json").stdout)
            self.run(self.agent, "enroll", "--server", f"https://127.0.0.1:{self.api_port}", "--name", name,
                     "--token", added["token"], "--ca-fingerprint", added["ca_fingerprint"], "--dir", agent_dir)
            self.devices[name] = agent_dir
            ok(f"{name:18} role={role:10} key generated on the device, certificate in {agent_dir}")

    def sub(self, name, topic):
        p = subprocess.Popen(["mosquitto_sub", *self.tls(name), "-t", topic, "-v", "-q", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        lines = []
        threading.Thread(target=lambda: [lines.append(l.rstrip()) for l in p.stdout], daemon=True).start()
        self.procs.append(p)
        return p, lines

    def wait_for(self, lines, text, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in lines:
                return True
            time.sleep(0.05)
        return False

    def last_event_id(self):
        r = self.w("events", "--limit", "1", "-o", "json")
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        return json.loads(lines[-1])["id"] if lines else 0

    def story(self):
        step("1. Allowed traffic flows")
        _, ctl_lines = self.sub("line-controller-1", "factory/telemetry/#")
        _, valve_lines = self.sub("valve-1", "factory/commands/valve-1/#")
        time.sleep(1.5)
        self.run("mosquitto_pub", *self.tls("temp-sensor-1"), "-q", "1",
                 "-t", "factory/telemetry/temp-sensor-1/temperature", "-m", "21.7")
        self.expect(self.wait_for(ctl_lines, "factory/telemetry/temp-sensor-1/temperature 21.7"),
                    "sensor -> factory/telemetry/temp-sensor-1/temperature reached the line controller",
                    "the controller did not receive the sensor's telemetry")
        self.run("mosquitto_pub", *self.tls("line-controller-1"), "-q", "1",
                 "-t", "factory/commands/valve-1/open", "-m", "50%")
        self.expect(self.wait_for(valve_lines, "factory/commands/valve-1/open 50%"),
                    "controller -> factory/commands/valve-1/open reached the valve",
                    "the valve did not receive the controller's command")

        step("2. The sensor tries to command the valve: denied")
        since = self.last_event_id()
        self.run("mosquitto_pub", *self.tls("temp-sensor-1"), "-q", "1",
                 "-t", "factory/commands/valve-1/open", "-m", "100%", check=False)
        time.sleep(1.0)
        self.expect("factory/commands/valve-1/open 100%" not in valve_lines,
                    "the valve never saw the sensor's command", "the sensor's command reached the valve!")
        deny = None
        deadline = time.time() + 10
        while deny is None and time.time() < deadline:
            r = self.w("events", "--since", str(since), "-o", "json")
            for line in r.stdout.splitlines():
                e = json.loads(line)
                if e["type"] == "deny" and e["resource"] == "factory/commands/valve-1/open":
                    deny = e
            time.sleep(0.2)
        self.expect(deny is not None,
                    f"event: {json.dumps(deny)}" if deny else "",
                    "no deny event for the sensor's command")

        step("3. The sensor is revoked while connected: its live session is cut at once")
        # mosquitto_pub -l keeps one MQTT 5 session open; -d prints what the
        # broker side (here: the gateway) sends, including DISCONNECT.
        live = subprocess.Popen(["stdbuf", "-oL", "mosquitto_pub", *self.tls("temp-sensor-1"), "-V", "mqttv5",
                                 "-d", "-l", "-t", "factory/telemetry/temp-sensor-1/temperature"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        self.procs.append(live)
        live_lines = []
        threading.Thread(target=lambda: [live_lines.append(l.rstrip()) for l in live.stdout], daemon=True).start()
        connected = self.wait_for(live_lines, "Client temp-sensor-1 received CONNACK (0)")
        start = time.time()
        self.w("device", "revoke", "temp-sensor-1")
        returned = time.time() - start
        # The command returns only after the cut: the line is there already
        # or arrives within the socket's delivery time.
        cut = self.wait_for(live_lines, "Received DISCONNECT (135)", timeout=2)
        self.expect(connected and cut,
                    f"`warden device revoke` returned in {returned * 1000:.0f} ms; the sensor's mosquitto_pub saw "
                    f"'Received DISCONNECT (135)' (0x87, not authorized)",
                    f"the revoked sensor's session was not cut (connected={connected}, output={live_lines})")
        live.terminate()
        r = self.run("mosquitto_pub", *self.tls("temp-sensor-1"), "-t",
                     "factory/telemetry/temp-sensor-1/temperature", "-m", "1", check=False)
        self.expect(r.returncode != 0, "reconnecting with the revoked certificate is refused",
                    "the revoked certificate still connects")

    def cheat_sheet(self):
        d = self.devices["line-controller-1"]
        say(f"""
{BOLD}Warden is running. Explore:{RESET}
  export WARDEN_DIR={self.dir}
  {self.warden} device list
  {self.warden} events --follow
  {self.warden} policy show
  {self.warden} device quarantine valve-1
  mosquitto_sub --cafile {d}/ca.pem --cert {d}/cert.pem --key {d}/key.pem \\
      -h 127.0.0.1 -p {self.mqtt_port} -i line-controller-1 -t 'factory/telemetry/#' -v
Logs: {self.work}/serve.log, {self.work}/mosquitto.log. Press Ctrl-C to stop.""")

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--once", action="store_true", help="exit when done: 0 only if every check passed")
    ap.add_argument("--workdir", help="where to keep the installation (default: a new temporary directory)")
    ap.add_argument("--bin", default="build", help="directory holding warden and warden-agent")
    args = ap.parse_args()
    demo = Demo(args)
    try:
        demo.setup()
        demo.story()
        if demo.failures:
            step(f"{RED}{len(demo.failures)} check(s) failed{RESET}")
        else:
            step(f"{GREEN}every expected allow, deny and cut was seen{RESET}")
        if args.once:
            return 1 if demo.failures else 0
        demo.cheat_sheet()
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        demo.close()
        if args.once and not args.workdir:
            shutil.rmtree(demo.work, ignore_errors=True)


def _terminate(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())

"""Shared fixture for Warden's end-to-end tests.

A Fleet starts, in a private temporary directory and on free loopback ports,
a real Mosquitto (configured by `warden broker config`) and a real
`warden serve`, and offers helpers that drive them with real clients: the
`warden` CLI, `warden-agent`, `mosquitto_pub`/`mosquitto_sub`, paho-mqtt,
`openssl` and `curl`. Everything is stopped and removed afterwards, also when
a test fails.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _find_bin(env, name):
    path = os.environ.get(env)
    if path:
        return path
    for d in ("build-test", "build"):
        p = os.path.join(ROOT, d, name)
        if os.path.exists(p):
            return p
    raise RuntimeError(f"{name} not found: set {env} or build into build-test/")


WARDEN = _find_bin("WARDEN_BIN", "warden")
AGENT = _find_bin("WARDEN_AGENT_BIN", "warden-agent")
PYTHON = "/usr/bin/python3"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0, proc=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Device:
    """An enrolled device: its name and the files warden-agent wrote."""

    def __init__(self, fleet, name, agent_dir):
        self.fleet = fleet
        self.name = name
        self.dir = agent_dir
        self.key = os.path.join(agent_dir, "key.pem")
        self.cert = os.path.join(agent_dir, "cert.pem")
        self.ca = os.path.join(agent_dir, "ca.pem")

    def tls_args(self):
        return ["--cafile", self.ca, "--cert", self.cert, "--key", self.key]


class Fleet:
    """A running Warden installation with its broker."""

    def __init__(self, extra_init_args=(), start=True, config_edits=()):
        self.tmp = tempfile.mkdtemp(prefix="warden-e2e-")
        os.chmod(self.tmp, 0o755)  # mosquitto (dropping to its user) must traverse it
        self.dir = os.path.join(self.tmp, "d")
        self.api_port = free_port()
        self.mqtt_port = free_port()
        self.upstream_port = free_port()
        # Every fleet gets its own PKI listener port unless the test names one
        # (the default, 127.0.0.1:8080, would collide between parallel tests).
        self.pki_port = free_port()
        if "--pki-listen" not in extra_init_args:
            extra_init_args = ("--pki-listen", f"127.0.0.1:{self.pki_port}", *extra_init_args)
        self.procs = []
        self.serve = None
        self.broker = None
        self._logs = {}
        r = self.run(WARDEN, "init", "--dir", self.dir,
                     "--api-listen", f"127.0.0.1:{self.api_port}",
                     "--mqtt-listen", f"127.0.0.1:{self.mqtt_port}",
                     "--mqtt-upstream", f"127.0.0.1:{self.upstream_port}",
                     *extra_init_args, "-o", "json")
        if r.returncode != 0:
            raise RuntimeError(f"warden init failed: {r.stdout}{r.stderr}")
        self.ca_fingerprint = json.loads(r.stdout)["ca_fingerprint"]
        self.broker_dir = os.path.join(self.tmp, "broker")
        self.edit_config(config_edits)
        r = self.run(WARDEN, "broker", "config", "--dir", self.dir, "--out", self.broker_dir)
        if r.returncode != 0:
            raise RuntimeError(f"warden broker config failed: {r.stdout}{r.stderr}")
        if start:
            try:
                self.start_broker()
                self.start_serve()
            except Exception:
                self.close()
                raise

    def edit_config(self, edits):
        """Applies (old, new) text replacements to warden.yaml (before start)."""
        if not edits:
            return
        path = os.path.join(self.dir, "warden.yaml")
        with open(path) as f:
            text = f.read()
        for old, new in edits:
            if old not in text:
                raise RuntimeError(f"warden.yaml has no {old!r}")
            text = text.replace(old, new, 1)
        with open(path, "w") as f:
            f.write(text)

    # --- processes --------------------------------------------------------
    def _spawn(self, name, args, env=None):
        log = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        self._logs[name] = log.name
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def start_broker(self):
        self.broker = self._spawn("mosquitto", ["mosquitto", "-c",
                                                os.path.join(self.broker_dir, "mosquitto.conf")])
        wait_port(self.upstream_port, proc=self.broker)

    def start_serve(self, env=None):
        self.serve = self._spawn("serve", [WARDEN, "serve", "--dir", self.dir], env=env)
        wait_port(self.api_port, proc=self.serve)
        wait_port(self.mqtt_port, proc=self.serve)

    def stop_serve(self, sig=signal.SIGTERM, timeout=15):
        if self.serve and self.serve.poll() is None:
            self.serve.send_signal(sig)
            try:
                self.serve.wait(timeout)
            except subprocess.TimeoutExpired:
                self.serve.kill()
                self.serve.wait()
        return self.serve.returncode if self.serve else None

    def log(self, name="serve"):
        try:
            with open(self._logs[name], "rb") as f:
                return f.read().decode(errors="replace")
        except (KeyError, OSError):
            return ""

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- commands ---------------------------------------------------------
    @staticmethod
    def run(*args, timeout=60, input=None, env=None):
        return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                              input=input, env=env)

    def cli(self, *args, timeout=60):
        return self.run(WARDEN, *args, "--dir", self.dir, timeout=timeout)

    def cli_json(self, *args):
        r = self.cli(*args, "-o", "json")
        if r.returncode != 0:
            raise AssertionError(f"warden {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
        return json.loads(r.stdout)

    def apply_policy(self, text):
        path = os.path.join(self.tmp, f"policy-{time.monotonic_ns()}.yaml")
        with open(path, "w") as f:
            f.write(text)
        return self.cli("policy", "apply", path)

    def add_device(self, name, role, labels=(), token_ttl=None):
        args = ["device", "add", name, "--role", role]
        for l in labels:
            args += ["--label", l]
        if token_ttl:
            args += ["--token-ttl", token_ttl]
        return self.cli_json(*args)

    def enroll(self, name, token, agent_dir=None):
        agent_dir = agent_dir or os.path.join(self.tmp, "agents", name)
        r = self.run(AGENT, "enroll", "--server", f"https://127.0.0.1:{self.api_port}",
                     "--name", name, "--token", token, "--ca-fingerprint", self.ca_fingerprint,
                     "--dir", agent_dir)
        if r.returncode != 0:
            raise AssertionError(f"warden-agent enroll {name} exited {r.returncode}: {r.stdout}{r.stderr}")
        return Device(self, name, agent_dir)

    def device(self, name, role, labels=()):
        """Adds and enrolls a device in one step."""
        added = self.add_device(name, role, labels)
        return self.enroll(name, added["token"])

    def events(self, since=None):
        args = ["events", "-o", "json"]
        if since is not None:
            args += ["--since", str(since)]
        r = self.cli(*args)
        if r.returncode != 0:
            raise AssertionError(f"warden events exited {r.returncode}: {r.stderr}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def wait_event(self, predicate, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for e in self.events():
                if predicate(e):
                    return e
            time.sleep(0.2)
        raise AssertionError("expected event not seen; last events: " +
                             json.dumps(self.events()[-10:], indent=1))

    # --- MQTT clients -----------------------------------------------------
    def pub(self, dev, topic, message="hello", *extra, client_id=None, timeout=20):
        return self.run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.mqtt_port),
                        *dev.tls_args(), "-i", dev.name if client_id is None else client_id,
                        "-t", topic, "-m", message,
                        *extra, timeout=timeout)

    def sub_proc(self, dev, *topics, extra=(), client_id=None):
        """Starts mosquitto_sub in the background; returns a SubProcess."""
        args = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.mqtt_port), *dev.tls_args(),
                "-i", client_id or dev.name, "-v", *extra]
        for t in topics:
            args += ["-t", t]
        return SubProcess(args)

    def paho(self, dev, client_id=None, protocol=5, clean_start=True, properties=None,
             will=None, keepalive=60, connect=True):
        return PahoClient(self, dev, dev.name if client_id is None else client_id, protocol, clean_start,
                          properties, will, keepalive, connect)

    def tls_socket(self, dev):
        """A raw TLS socket to the gateway with |dev|'s certificate."""
        ctx = ssl.create_default_context(cafile=dev.ca)
        ctx.load_cert_chain(dev.cert, dev.key)
        raw = socket.create_connection(("127.0.0.1", self.mqtt_port), timeout=10)
        return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


class SubProcess:
    """A background process (mosquitto_sub, warden-agent run) whose output lines are collected."""

    def __init__(self, args, env=None):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True, env=env)
        self.lines = []
        self.err = []
        self._t1 = threading.Thread(target=self._read, args=(self.proc.stdout, self.lines), daemon=True)
        self._t2 = threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)
        self._t1.start()
        self._t2.start()

    @staticmethod
    def _read(stream, sink):
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_line(self, predicate, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for l in list(self.lines):
                if predicate(l):
                    return l
            time.sleep(0.05)
        return None

    def exited(self, timeout=10.0):
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class PahoClient:
    """A paho-mqtt client (MQTT 5 by default) that records what happens."""

    def __init__(self, fleet, dev, client_id, protocol, clean_start, properties, will, keepalive, connect):
        import paho.mqtt.client as mqtt
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes
        self.mqtt = mqtt
        self.Properties = Properties
        self.PacketTypes = PacketTypes
        self.protocol = mqtt.MQTTv5 if protocol == 5 else mqtt.MQTTv311
        kwargs = {"client_id": client_id, "protocol": self.protocol}
        if self.protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = clean_start
        self.c = mqtt.Client(**kwargs)
        self.c.tls_set(ca_certs=dev.ca, certfile=dev.cert, keyfile=dev.key)
        self.messages = []
        self.connack = None
        self.disconnect_rc = None
        self.suback = {}
        self.puback = {}
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_publish = self._on_publish
        if will:
            self.c.will_set(**will)
        self.fleet = fleet
        self.clean_start = clean_start
        self.properties = properties
        self.keepalive = keepalive
        if connect:
            self.connect()

    def connect(self, timeout=10):
        kwargs = {"keepalive": self.keepalive}
        if self.protocol == self.mqtt.MQTTv5:
            kwargs["clean_start"] = self.clean_start
            if self.properties is not None:
                kwargs["properties"] = self.properties
        self.c.connect("127.0.0.1", self.fleet.mqtt_port, **kwargs)
        self.c.loop_start()
        self.connected.wait(timeout)
        return self.connack

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.connack = (rc, flags, properties)
        self.connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        # Never reconnect on our own: a test must see exactly what the
        # gateway did (paho's loop thread would otherwise retry forever).
        client._thread_terminate = True
        self.disconnect_rc = rc
        self.disconnected.set()
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.append(msg)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        self.suback[mid] = granted

    def _on_publish(self, client, userdata, mid):
        self.puback[mid] = True

    def rc_value(self, rc):
        return rc.value if hasattr(rc, "value") else rc

    def subscribe(self, topic, qos=1, timeout=10, **kw):
        _, mid = self.c.subscribe(topic, qos=qos, **kw)
        deadline = time.time() + timeout
        while time.time() < deadline and mid not in self.suback:
            time.sleep(0.02)
        granted = self.suback.get(mid)
        if granted is None:
            return None
        return [self.rc_value(g) if not isinstance(g, int) else g for g in granted]

    def publish(self, topic, payload=b"x", qos=0, retain=False, properties=None, timeout=10):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos > 0:
            info.wait_for_publish(timeout)
        return info

    def wait_messages(self, n=1, timeout=10.0, topic=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [m for m in self.messages if topic is None or m.topic == topic]
            if len(got) >= n:
                return got
            time.sleep(0.02)
        return [m for m in self.messages if topic is None or m.topic == topic]

    def close(self):
        try:
            self.c.disconnect()
        except Exception:
            pass
        self.c.loop_stop()


class FleetTestCase(unittest.TestCase):
    """Base class: one Fleet per test class, closed even when tests fail."""

    fleet = None
    init_args = ()
    config_edits = ()  # (old, new) replacements in warden.yaml before `warden serve` starts

    @classmethod
    def setUpClass(cls):
        cls.fleet = Fleet(cls.init_args, config_edits=cls.config_edits)
        # Class cleanups run even when a subclass's setUpClass fails later.
        cls.addClassCleanup(cls._close_fleet)

    @classmethod
    def _close_fleet(cls):
        if cls.fleet:
            if os.environ.get("WARDEN_E2E_KEEP"):
                print("kept", cls.fleet.tmp)
                return
            cls.fleet.close()

    def setUp(self):
        self._cleanups_closables = []

    def closing(self, obj):
        self.addCleanup(obj.close)
        return obj

    def live(self, dev, client_id=None):
        """A connected paho MQTT 5 client of |dev|, closed after the test."""
        c = self.closing(self.fleet.paho(dev, client_id=client_id))
        self.assertEqual(c.rc_value(c.connack[0]), 0, f"{dev.name} could not connect")
        return c

    def flows(self, sensor_client, sensor, controller_client, tag):
        """Whether |tag|, published QoS 1 by |sensor| on its telemetry topic,
        reaches |controller_client| within 10 s."""
        topic = f"factory/telemetry/{sensor.name}/t"
        before = len(controller_client.wait_messages(0, timeout=0))
        sensor_client.publish(topic, tag.encode(), qos=1)
        got = controller_client.wait_messages(before + 1, timeout=10, topic=topic)
        return any(m.payload == tag.encode() for m in got)

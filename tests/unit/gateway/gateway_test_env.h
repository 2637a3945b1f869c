#pragma once

// gateway_test_env.h: an end-to-end fixture for the MQTT gateway alone. It
// creates a PKI in a temporary directory, starts a real Mosquitto with a TLS
// listener that requires the gateway's upstream client certificate, runs a
// Gateway on a free loopback port on its own io thread, and drives it with
// real clients (python3-paho-mqtt, MQTT 5 and 3.1.1, and raw TLS sockets for
// protocol attacks). Everything is torn down in the destructor.

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "crypto/crypto.h"
#include "gateway/gateway.h"
#include "monitor/event_log.h"
#include "pki/certificate_authority.h"
#include "policy/policy.h"
#include "store/sqlite_store.h"

namespace warden::gateway::testing {

// freeLoopbackPort returns a port that was free a moment ago.
inline uint16_t freeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool portAccepts(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

inline void writeText(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

// kPythonPrelude defines Dev (a paho client with a device certificate) and
// Raw (a TLS socket speaking hand-made MQTT) for the test scripts. argv: PORT DIR.
inline constexpr const char* kPythonPrelude = R"PY(
import json, socket, ssl, struct, sys, threading, time
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
PORT = int(sys.argv[1]); DIR = sys.argv[2]
OUT = {}
def wait(cond, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond(): return True
        time.sleep(0.02)
    return cond()
def tls_ctx(name):
    ctx = ssl.create_default_context(cafile=DIR + '/root.pem')
    ctx.load_cert_chain(DIR + '/' + name + '.pem', DIR + '/' + name + '.key')
    return ctx
def val(x):
    return x.value if hasattr(x, 'value') else x
class Dev:
    def __init__(self, name, cid=None, v5=True, clean=True, will=None, keepalive=60, props=None, cert=None):
        self.msgs = []; self.connack = None; self.disc = None; self.subacks = {}; self.unsubacks = {}; self.pubs = {}
        self.v5 = v5
        self.c = mqtt.Client(client_id=name if cid is None else cid, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else clean, reconnect_on_failure=False)
        self.c.tls_set_context(tls_ctx(cert or name))
        if will: self.c.will_set(*will)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.msgs.append([m.topic, m.payload.decode(errors='replace'), m.qos, int(m.retain)])
        self.c.on_disconnect = self._on_disc
        self.c.on_subscribe = self._on_sub
        self.c.on_unsubscribe = self._on_unsub
        self.c.on_publish = lambda c, u, mid: self.pubs.__setitem__(mid, True)
        try:
            if v5: self.c.connect('127.0.0.1', PORT, keepalive, clean_start=clean, properties=props)
            else: self.c.connect('127.0.0.1', PORT, keepalive)
        except Exception as e:
            self.connack = 'exception: ' + str(e); return
        self.c.loop_start()
        wait(lambda: self.connack is not None or self.disc is not None)
    def _on_connect(self, c, u, flags, rc, props=None): self.connack = val(rc); self.flags = flags
    def _on_disc(self, c, u, rc, props=None): self.disc = val(rc)
    def _on_sub(self, c, u, mid, codes, props=None): self.subacks[mid] = [val(x) for x in codes]
    def _on_unsub(self, c, u, mid, props=None, codes=None): self.unsubacks[mid] = True
    def sub(self, filt, qos=0, props=None):
        r, mid = self.c.subscribe(filt, qos, properties=props) if self.v5 else self.c.subscribe(filt, qos)
        wait(lambda: mid in self.subacks)
        return self.subacks.get(mid)
    def pub(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos, retain, properties=props) if self.v5 else self.c.publish(topic, payload, qos, retain)
        if qos: wait(lambda: info.mid in self.pubs)
        return info.mid in self.pubs if qos else True
    def close(self):
        self.c.disconnect(); self.c.loop_stop()
    def drop(self):
        # Unclean end: close the socket without DISCONNECT.
        self.c.loop_stop(); self.c.socket().close()
def vbi(n):
    out = b''
    while True:
        b = n % 128; n //= 128
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def s16(b): return struct.pack('!H', len(b)) + b
class Raw:
    def __init__(self, name):
        raw = socket.create_connection(('127.0.0.1', PORT), timeout=5)
        self.s = tls_ctx(name).wrap_socket(raw, server_hostname='127.0.0.1')
        self.buf = b''
    def send(self, data): self.s.sendall(data)
    def connect5(self, cid, props=b'\x00', flags=0x02, keepalive=60, extra=b''):
        body = s16(b'MQTT') + bytes([5, flags]) + struct.pack('!H', keepalive) + props + s16(cid.encode()) + extra
        self.send(bytes([0x10]) + vbi(len(body)) + body)
    def connect311(self, cid, flags=0x02, keepalive=60, extra=b''):
        body = s16(b'MQTT') + bytes([4, flags]) + struct.pack('!H', keepalive) + s16(cid.encode()) + extra
        self.send(bytes([0x10]) + vbi(len(body)) + body)
    def packet(self, timeout=3.0):
        # Returns (first_byte, body) or None on close/timeout.
        self.s.settimeout(timeout)
        try:
            while True:
                if len(self.buf) >= 2:
                    mult, n, i = 1, 0, 1
                    while i < len(self.buf):
                        b = self.buf[i]; n += (b & 0x7f) * mult; mult *= 128; i += 1
                        if not b & 0x80: break
                    else:
                        i = None
                    if i is not None and len(self.buf) >= i + n:
                        p = (self.buf[0], self.buf[i:i + n]); self.buf = self.buf[i + n:]; return p
                d = self.s.recv(65536)
                if not d: return None
                self.buf += d
        except (socket.timeout, ssl.SSLError, ConnectionError, OSError):
            return None
    def closed(self, timeout=3.0):
        # True once the gateway has closed the connection (packets before it are skipped).
        end = time.time() + timeout
        while time.time() < end:
            if self.packet(end - time.time()) is None: return True
        return False
)PY";

// GatewayTestEnv owns the whole environment of one test.
class GatewayTestEnv {
 public:
  GatewayTestEnv() {
    char tmpl[] = "/tmp/warden-gw-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    const core::Clock& clock = core::systemClock();
    root_ = std::move(pki::createRootCa("Test Root CA", core::Seconds(86400 * 30), clock).value());
    issuing_ = std::move(pki::createIntermediateCa(root_, "Test Issuing CA", core::Seconds(86400 * 20), 0, clock).value());
    upstream_ca_ = std::move(pki::createRootCa("Test Upstream CA", core::Seconds(86400 * 30), clock).value());
    writeText(path("root.pem"), crypto::certToPem(root_.cert.get()));
    writeText(path("client-ca.pem"), crypto::certToPem(issuing_.cert.get()) + crypto::certToPem(root_.cert.get()));
    writeText(path("upstream-ca.pem"), crypto::certToPem(upstream_ca_.cert.get()));
    pki::LeafProfile server;
    server.common_name = "warden-gateway";
    server.dns_sans = {"localhost"};
    server.ip_sans = {"127.0.0.1"};
    server.server_auth = true;
    server.client_auth = false;
    issueTo(issuing_, server, "gateway", /*with_chain=*/true);
    pki::LeafProfile broker = server;
    broker.common_name = "warden-broker";
    issueTo(upstream_ca_, broker, "broker", false);
    pki::LeafProfile upclient;
    upclient.common_name = "warden-gateway";
    issueTo(upstream_ca_, upclient, "upstream-client", false);

    broker_port_ = freeLoopbackPort();
    startBroker();

    auto store = store::SqliteStore::open(path("warden.db"), clock);
    store_ = std::move(store.value());
    events_ = std::make_unique<monitor::EventLog>(*store_, clock);

    config_.listen_host = "127.0.0.1";
    config_.listen_port = 0;
    config_.upstream_host = "127.0.0.1";
    config_.upstream_port = broker_port_;
    config_.trust_domain = "warden.local";
    config_.server_cert_file = path("gateway.pem");
    config_.server_key_file = path("gateway.key");
    config_.client_ca_file = path("client-ca.pem");
    config_.upstream_ca_file = path("upstream-ca.pem");
    config_.upstream_client_cert_file = path("upstream-client.pem");
    config_.upstream_client_key_file = path("upstream-client.key");
  }

  ~GatewayTestEnv() {
    if (gateway_) {
      std::promise<void> p;
      boost::asio::post(io_, [&] { gateway_->shutdown([&] { p.set_value(); }); });
      p.get_future().wait_for(std::chrono::seconds(5));
    }
    work_.reset();
    io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
    gateway_.reset();
    events_.reset();
    store_.reset();
    stopBroker();
    std::error_code ec;
    if (!::getenv("WARDEN_KEEP_TMP")) std::filesystem::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  const std::string& dir() const { return dir_; }
  GatewayConfig& config() { return config_; }
  uint16_t port() const { return port_; }
  uint16_t brokerPort() const { return broker_port_; }
  Gateway& gateway() { return *gateway_; }
  monitor::EventLog& events() { return *events_; }

  // addDevice registers |name| (state active) and writes NAME.pem/NAME.key
  // with a certificate for it; returns the serial.
  std::string addDevice(const std::string& name, const std::string& role, core::Labels labels = {},
                        store::DeviceState state = store::DeviceState::kActive) {
    auto& d = devices_[name];
    d.name = name;
    d.role = role;
    d.labels = std::move(labels);
    d.state = state;
    std::string serial = issueDeviceCert(name, name, {core::makeSpiffeId("warden.local", core::PrincipalKind::kDevice, name)});
    d.valid_serials.insert(serial);
    return serial;
  }
  // issueDeviceCert writes FILE.pem/FILE.key with a device-profile certificate.
  std::string issueDeviceCert(const std::string& file, const std::string& cn, std::vector<std::string> uris,
                              core::Seconds lifetime = core::Seconds(86400)) {
    pki::LeafProfile p;
    p.common_name = cn;
    p.uri_sans = std::move(uris);
    p.lifetime = lifetime;
    return issueTo(issuing_, p, file, true);
  }
  identity::DeviceEntry& device(const std::string& name) { return devices_[name]; }

  void setPolicy(const std::string& yaml) {
    auto p = policy::Policy::parse(yaml, "test-policy.yaml");
    if (!p) throw std::runtime_error(p.status().toString());
    policy_ = p.value();
  }

  // publish swaps in a snapshot of the current devices and policy.
  void publish() {
    auto fleet = std::make_shared<identity::FleetState>();
    fleet->generation = ++generation_;
    for (auto& [n, d] : devices_) fleet->devices[n] = d;
    auto snap = std::make_shared<DecisionSnapshot>();
    snap->policy = policy_;
    snap->fleet = fleet;
    snap->generation = generation_;
    snapshots_.set(snap);
  }

  // startGateway publishes the snapshot and runs the gateway on its io thread.
  void startGateway() {
    publish();
    gateway_ = std::make_unique<Gateway>(&io_, config_, snapshots_, *events_);
    core::Status st = gateway_->start();
    if (!st.isOk()) throw std::runtime_error(st.toString());
    port_ = gateway_->listenPort();
    work_.emplace(boost::asio::make_work_guard(io_));
    io_thread_ = std::thread([this] { io_.run(); });
  }

  // reevaluate publishes the current state and waits for Gateway::reevaluate's done.
  std::chrono::milliseconds reevaluate() {
    publish();
    auto start = std::chrono::steady_clock::now();
    std::promise<void> p;
    boost::asio::post(io_, [&] { gateway_->reevaluate([&] { p.set_value(); }); });
    p.get_future().wait();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  }

  std::vector<std::string> connectedDevices() {
    std::promise<std::vector<std::string>> p;
    boost::asio::post(io_, [&] { p.set_value(gateway_->connectedDevices()); });
    return p.get_future().get();
  }

  // python runs |code| after kPythonPrelude and returns the OUT dict it fills.
  nlohmann::json python(const std::string& code, int timeout_s = 60) {
    static int n = 0;
    std::string script = path("script" + std::to_string(++n) + ".py");
    writeText(script, std::string(kPythonPrelude) + code + "\nprint('OUT=' + json.dumps(OUT))\nsys.stdout.flush()\nimport os\nos._exit(0)\n");
    std::string cmd = "timeout " + std::to_string(timeout_s) + " /usr/bin/python3 " + script + " " +
                      std::to_string(port_) + " " + dir_ + " 2>" + script + ".err";
    std::string out = run(cmd);
    auto pos = out.rfind("OUT=");
    if (pos == std::string::npos) {
      std::ifstream err(script + ".err");
      std::string e((std::istreambuf_iterator<char>(err)), {});
      throw std::runtime_error("python failed: " + out + "\n" + e);
    }
    return nlohmann::json::parse(out.substr(pos + 4));
  }

  static std::string run(const std::string& cmd) {
    std::string out;
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    ::pclose(f);
    return out;
  }

  // eventsOfType flushes the event log and returns the stored events of |type|.
  std::vector<store::EventRecord> eventsOfType(const std::string& type) {
    events_->flush();
    std::vector<store::EventRecord> out;
    auto all = store_->listEvents(std::nullopt, 100000);
    if (!all) return out;
    for (auto& e : all.value()) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }

 private:
  std::string issueTo(const pki::CaMaterial& ca, const pki::LeafProfile& profile, const std::string& file,
                      bool with_chain) {
    auto key = crypto::generateEcKey();
    auto cert = pki::issueLeaf(ca, key.value().get(), profile, core::systemClock());
    if (!cert) throw std::runtime_error(cert.status().toString());
    std::string pem = crypto::certToPem(cert.value().get());
    if (with_chain) pem += crypto::certToPem(ca.cert.get());
    writeText(path(file + ".pem"), pem);
    writeText(path(file + ".key"), crypto::privateKeyToPem(key.value().get()).value());
    ::chmod(path(file + ".key").c_str(), 0600);
    return crypto::serialHex(cert.value().get());
  }

  void startBroker() {
    std::string conf = "user root\n"
                       "per_listener_settings true\n"
                       "persistence false\n"
                       "log_dest file " + path("mosquitto.log") + "\n"
                       "log_type all\n"
                       "listener " + std::to_string(broker_port_) + " 127.0.0.1\n"
                       "cafile " + path("upstream-ca.pem") + "\n"
                       "certfile " + path("broker.pem") + "\n"
                       "keyfile " + path("broker.key") + "\n"
                       "require_certificate true\n"
                       "use_identity_as_username true\n"
                       "allow_anonymous false\n"
                       "tls_version tlsv1.2\n";
    writeText(path("mosquitto.conf"), conf);
    broker_pid_ = ::fork();
    if (broker_pid_ == 0) {
      ::execlp("mosquitto", "mosquitto", "-c", path("mosquitto.conf").c_str(), nullptr);
      ::_exit(127);
    }
    for (int i = 0; i < 200 && !portAccepts(broker_port_); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void stopBroker() {
    if (broker_pid_ > 0) {
      ::kill(broker_pid_, SIGTERM);
      int status = 0;
      ::waitpid(broker_pid_, &status, 0);
      broker_pid_ = -1;
    }
  }

  std::string dir_;
  pki::CaMaterial root_, issuing_, upstream_ca_;
  uint16_t broker_port_ = 0;
  pid_t broker_pid_ = -1;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<monitor::EventLog> events_;
  GatewayConfig config_;
  SnapshotHolder snapshots_;
  std::shared_ptr<const policy::Policy> policy_;
  std::map<std::string, identity::DeviceEntry> devices_;
  uint64_t generation_ = 0;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread io_thread_;
  std::unique_ptr<Gateway> gateway_;
  uint16_t port_ = 0;
};

}  // namespace warden::gateway::testing

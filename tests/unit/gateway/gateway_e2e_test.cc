// End-to-end tests of the MQTT gateway alone: real Mosquitto upstream, real
// TLS, real MQTT clients (paho MQTT 5 / 3.1.1 and raw sockets for attacks).

#include <gtest/gtest.h>

#include <future>

#include "gateway_test_env.h"

namespace warden::gateway {
namespace {

using nlohmann::json;
using testing::GatewayTestEnv;

constexpr const char* kPolicy = R"(
rules:
  - id: devices-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: sensors-publish
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
  - id: controller-read
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/telemetry/#"]
  - id: controller-command
    effect: permit
    principals: {role: controller}
    actions: [mqtt:publish]
    resources: ["factory/valves/+/cmd"]
  - id: valve-receive
    effect: permit
    principals: {role: valve}
    actions: [mqtt:subscribe, mqtt:receive]
    resources: ["factory/valves/${principal.id}/cmd"]
)";

// The same, without the controller's right to read telemetry.
constexpr const char* kPolicyNoTelemetry = R"(
rules:
  - id: devices-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: sensors-publish
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
)";

// The controller may subscribe to all telemetry but receive only temperatures;
// the sensor may publish but not retain.
constexpr const char* kPolicyReceive = R"(
rules:
  - id: devices-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
  - id: sensors-publish
    effect: permit
    principals: {role: sensor}
    actions: [mqtt:publish]
    resources: ["factory/telemetry/${principal.id}/#"]
  - id: controller-subscribe
    effect: permit
    principals: {role: controller}
    actions: [mqtt:subscribe]
    resources: ["factory/telemetry/#"]
  - id: controller-receive-temp
    effect: permit
    principals: {role: controller}
    actions: [mqtt:receive]
    resources: ["factory/telemetry/+/temp"]
)";

// runBackground starts |body| (after the prelude) as a background python
// client; the returned future yields its OUT dict.
std::future<json> runBackground(GatewayTestEnv& env, const std::string& name, const std::string& body,
                                int timeout_s = 30) {
  std::string script = env.path(name + ".py");
  testing::writeText(script, std::string(testing::kPythonPrelude) + body +
                                 "\nprint('OUT=' + json.dumps(OUT)); sys.stdout.flush()\n");
  std::string cmd = "timeout " + std::to_string(timeout_s) + " /usr/bin/python3 " + script + " " +
                    std::to_string(env.port()) + " " + env.dir();
  return std::async(std::launch::async, [cmd] {
    std::string out = GatewayTestEnv::run(cmd);
    auto pos = out.rfind("OUT=");
    return pos == std::string::npos ? json() : json::parse(out.substr(pos + 4));
  });
}

void waitForFile(GatewayTestEnv& env, const std::string& f) {
  for (int i = 0; i < 500 && !std::filesystem::exists(env.path(f)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

class GatewayE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = std::make_unique<GatewayTestEnv>();
    env_->addDevice("sensor-1", "sensor");
    env_->addDevice("ctl-1", "controller");
    env_->addDevice("valve-1", "valve");
    env_->setPolicy(kPolicy);
    env_->startGateway();
  }
  void TearDown() override { env_.reset(); }

  std::unique_ptr<GatewayTestEnv> env_;
};

TEST_F(GatewayE2eTest, PermittedTrafficFlowsAndDeniedPublishIsAnsweredByTheGateway) {
  json out = env_->python(R"(
ctl = Dev('ctl-1'); OUT['ctl'] = ctl.connack
OUT['sub'] = ctl.sub('factory/telemetry/#', 1)
valve = Dev('valve-1'); OUT['vsub'] = valve.sub('factory/valves/valve-1/cmd', 1)
s = Dev('sensor-1'); OUT['sensor'] = s.connack
OUT['pub_ok'] = s.pub('factory/telemetry/sensor-1/temp', '21.5', 1)
OUT['pub_denied_acked'] = s.pub('factory/valves/valve-1/cmd', 'open', 1)
OUT['pub_q2_denied'] = s.pub('factory/valves/valve-1/cmd', 'open', 2)
wait(lambda: ctl.msgs, 3); time.sleep(0.3)
OUT['ctl_msgs'] = ctl.msgs; OUT['valve_msgs'] = valve.msgs
OUT['sensor_disc'] = s.disc
)");
  EXPECT_EQ(out["ctl"], 0);
  EXPECT_EQ(out["sensor"], 0);
  EXPECT_EQ(out["sub"], json::array({1}));
  EXPECT_EQ(out["vsub"], json::array({1}));
  EXPECT_EQ(out["pub_ok"], true);
  EXPECT_EQ(out["pub_denied_acked"], true);
  EXPECT_EQ(out["pub_q2_denied"], true);
  EXPECT_EQ(out["ctl_msgs"], json::parse(R"([["factory/telemetry/sensor-1/temp","21.5",1,0]])"));
  EXPECT_EQ(out["valve_msgs"], json::array());
  EXPECT_TRUE(out["sensor_disc"].is_null());
  auto denies = env_->eventsOfType("deny");
  ASSERT_GE(denies.size(), 2u);
  EXPECT_EQ(denies[0].action, "mqtt:publish");
  EXPECT_EQ(denies[0].resource, "factory/valves/valve-1/cmd");
  EXPECT_EQ(denies[0].rule, "default-deny");
  EXPECT_EQ(denies[0].principal, "spiffe://warden.local/device/sensor-1");
  EXPECT_EQ(env_->eventsOfType("connect").size(), 3u);
}

TEST_F(GatewayE2eTest, Mqtt311ClientsWork) {
  json out = env_->python(R"(
ctl = Dev('ctl-1', v5=False); OUT['ctl'] = ctl.connack
OUT['sub'] = ctl.sub('factory/telemetry/#', 2)
OUT['sub_denied'] = ctl.sub('factory/valves/#', 1)
s = Dev('sensor-1', v5=False); OUT['sensor'] = s.connack
OUT['q2'] = s.pub('factory/telemetry/sensor-1/temp', 'x', 2)
OUT['q2_denied'] = s.pub('factory/other', 'x', 2)
OUT['q1_denied'] = s.pub('factory/other', 'x', 1)
wait(lambda: ctl.msgs, 3)
OUT['msgs'] = ctl.msgs; OUT['disc'] = s.disc
)");
  EXPECT_EQ(out["ctl"], 0);
  EXPECT_EQ(out["sub"], json::array({2}));
  EXPECT_EQ(out["sub_denied"], json::array({128}));
  EXPECT_EQ(out["q2"], true);
  EXPECT_EQ(out["q2_denied"], true);
  EXPECT_EQ(out["q1_denied"], true);
  EXPECT_EQ(out["msgs"], json::parse(R"([["factory/telemetry/sensor-1/temp","x",2,0]])"));
  EXPECT_TRUE(out["disc"].is_null());
}

TEST_F(GatewayE2eTest, ClientIdMustEqualTheDeviceName) {
  json out = env_->python(R"(
OUT['v5_spoof'] = Dev('sensor-1', cid='ctl-1').connack
OUT['v3_spoof'] = Dev('sensor-1', cid='ctl-1', v5=False).connack
d = Dev('sensor-1', cid=''); OUT['v5_empty'] = d.connack
r = Raw('sensor-1'); r.connect311('', flags=0x00); p = r.packet(); OUT['v3_empty_persistent'] = p[1][1] if p else None
OUT['v3_empty_clean'] = Dev('sensor-1', cid='', v5=False, clean=True).connack
)");
  EXPECT_EQ(out["v5_spoof"], 0x85);
  EXPECT_EQ(out["v3_spoof"], 2);
  EXPECT_EQ(out["v5_empty"], 0);
  EXPECT_EQ(out["v3_empty_persistent"], 2);
  EXPECT_EQ(out["v3_empty_clean"], 0);
}

TEST_F(GatewayE2eTest, SubscribeDecidesEachFilterAndKeepsOrder) {
  json out = env_->python(R"(
ctl = Dev('ctl-1')
r, mid = ctl.c.subscribe([('factory/telemetry/+/temp', 1), ('#', 0), ('factory/+/x', 0), ('$SYS/#', 0), ('$share/g/factory/telemetry/#', 0)])
wait(lambda: mid in ctl.subacks)
OUT['codes'] = ctl.subacks.get(mid)
)");
  EXPECT_EQ(out["codes"], json::parse("[1, 135, 135, 135, 135]"));
}

TEST_F(GatewayE2eTest, RevocationCutsTheLiveSessionWithDisconnect0x87) {
  // The client runs in the background while the test revokes the device.
  std::string script = env_->path("revoke.py");
  testing::writeText(script, std::string(testing::kPythonPrelude) + R"(
s = Dev('sensor-1'); OUT['connack'] = s.connack
open(DIR + '/revoke.ready', 'w').close()
wait(lambda: s.disc is not None, 10)
OUT['disc'] = s.disc
print('OUT=' + json.dumps(OUT)); sys.stdout.flush()
)");
  std::string cmd = "timeout 30 /usr/bin/python3 " + script + " " + std::to_string(env_->port()) + " " + env_->dir();
  std::future<std::string> result = std::async(std::launch::async, [cmd] { return GatewayTestEnv::run(cmd); });
  for (int i = 0; i < 250 && !std::filesystem::exists(env_->path("revoke.ready")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(env_->connectedDevices(), std::vector<std::string>{"sensor-1"});
  env_->device("sensor-1").state = store::DeviceState::kRevoked;
  env_->device("sensor-1").valid_serials.clear();
  auto took = env_->reevaluate();
  EXPECT_LT(took.count(), 2000);
  EXPECT_TRUE(env_->connectedDevices().empty());
  std::string out = result.get();
  json j = json::parse(out.substr(out.rfind("OUT=") + 4));
  EXPECT_EQ(j["connack"], 0);
  EXPECT_EQ(j["disc"], 0x87);
  // A new connection is refused at the TLS layer.
  json again = env_->python("OUT['c'] = Dev('sensor-1').connack\n");
  EXPECT_NE(again["c"], 0);
  auto rejects = env_->eventsOfType("tls_reject");
  ASSERT_FALSE(rejects.empty());
  EXPECT_EQ(rejects.back().reason, "device_revoked");
  auto disconnects = env_->eventsOfType("disconnect");
  ASSERT_FALSE(disconnects.empty());
  EXPECT_EQ(disconnects.back().reason, "revoked");
}

TEST_F(GatewayE2eTest, PolicyChangeSuspendsAndRestoresALiveSubscription) {
  std::string script = env_->path("suspend.py");
  testing::writeText(script, std::string(testing::kPythonPrelude) + R"(
ctl = Dev('ctl-1'); OUT['sub'] = ctl.sub('factory/telemetry/#', 1)
s = Dev('sensor-1')
def step(name):
    open(DIR + '/' + name + '.ready', 'w').close()
    wait(lambda: __import__('os').path.exists(DIR + '/' + name + '.go'), 20)
s.pub('factory/telemetry/sensor-1/a', '1', 1); wait(lambda: len(ctl.msgs) >= 1, 3)
step('suspended')
s.pub('factory/telemetry/sensor-1/b', '2', 1); time.sleep(0.5)
step('restored')
s.pub('factory/telemetry/sensor-1/c', '3', 1); wait(lambda: len(ctl.msgs) >= 2, 3)
OUT['msgs'] = [m[1] for m in ctl.msgs]; OUT['disc'] = ctl.disc
print('OUT=' + json.dumps(OUT)); sys.stdout.flush()
)");
  std::string cmd = "timeout 60 /usr/bin/python3 " + script + " " + std::to_string(env_->port()) + " " + env_->dir();
  std::future<std::string> result = std::async(std::launch::async, [cmd] { return GatewayTestEnv::run(cmd); });
  auto waitFile = [&](const std::string& f) {
    for (int i = 0; i < 500 && !std::filesystem::exists(env_->path(f)); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  waitFile("suspended.ready");
  env_->setPolicy(kPolicyNoTelemetry);
  env_->reevaluate();
  testing::writeText(env_->path("suspended.go"), "");
  waitFile("restored.ready");
  env_->setPolicy(kPolicy);
  env_->reevaluate();
  testing::writeText(env_->path("restored.go"), "");
  std::string out = result.get();
  json j = json::parse(out.substr(out.rfind("OUT=") + 4));
  EXPECT_EQ(j["sub"], json::array({1}));
  EXPECT_EQ(j["msgs"], json::parse(R"(["1", "3"])"));
  EXPECT_TRUE(j["disc"].is_null());
}

TEST_F(GatewayE2eTest, SecondConnectionTakesOverTheSession) {
  json out = env_->python(R"(
a = Dev('sensor-1'); OUT['a'] = a.connack
b = Dev('sensor-1'); OUT['b'] = b.connack
wait(lambda: a.disc is not None, 5)
OUT['a_disc'] = a.disc; OUT['b_disc'] = b.disc
OUT['b_pub'] = b.pub('factory/telemetry/sensor-1/t', 'x', 1)
)");
  EXPECT_EQ(out["a"], 0);
  EXPECT_EQ(out["b"], 0);
  EXPECT_EQ(out["a_disc"], 0x8E);
  EXPECT_TRUE(out["b_disc"].is_null());
  EXPECT_EQ(out["b_pub"], true);
  EXPECT_EQ(env_->eventsOfType("session_takeover").size(), 1u);
}

TEST_F(GatewayE2eTest, WillIsAuthorizedAtConnectAndAgainBeforeItIsSent) {
  json out = env_->python(R"(
OUT['denied'] = Dev('sensor-1', will=('factory/valves/valve-1/cmd', 'open', 1, False)).connack
OUT['retain_denied'] = Dev('sensor-1', will=('factory/telemetry/sensor-1/status', 'gone', 1, True)).connack
ctl = Dev('ctl-1'); ctl.sub('factory/telemetry/#', 1)
s = Dev('sensor-1', will=('factory/telemetry/sensor-1/status', 'gone', 1, False)); OUT['ok'] = s.connack
s.drop()
wait(lambda: ctl.msgs, 5)
OUT['msgs'] = ctl.msgs
)");
  EXPECT_EQ(out["denied"], 0x87);
  EXPECT_EQ(out["retain_denied"], 0x87);
  EXPECT_EQ(out["ok"], 0);
  EXPECT_EQ(out["msgs"], json::parse(R"([["factory/telemetry/sensor-1/status","gone",1,0]])"));
  auto denies = env_->eventsOfType("deny");
  ASSERT_GE(denies.size(), 2u);
  EXPECT_EQ(denies[0].reason, "will_denied");
}

TEST_F(GatewayE2eTest, MalformedAndHostilePacketsCloseTheConnection) {
  json out = env_->python(R"(
# A packet before CONNECT: closed without an answer.
r = Raw('sensor-1'); r.send(b'\x30\x05\x00\x01ax'); OUT['before_connect'] = r.packet()
# Protocol level 3 (MQIsdp) gets return code 1.
r = Raw('sensor-1'); body = s16(b'MQIsdp') + bytes([3, 2, 0, 60]) + s16(b'sensor-1'); r.send(b'\x10' + vbi(len(body)) + body)
p = r.packet(); OUT['mqtt31'] = list(p[1]) if p else None
def connected5():
    r = Raw('sensor-1'); r.connect5('sensor-1'); p = r.packet(); assert p[0] == 0x20 and p[1][1] == 0, p; return r
def disc(r):
    p = r.packet(); return [p[0], p[1][0] if p[1] else 0] if p else None
# Reserved flag bits in SUBSCRIBE.
r = connected5(); r.send(b'\x80\x0a\x00\x01\x00\x00\x04a/b/\x00'); OUT['reserved_flags'] = disc(r)
# A wildcard in a PUBLISH topic.
r = connected5(); t = s16(b'a/+'); r.send(b'\x30' + vbi(len(t) + 1) + t + b'\x00'); OUT['wildcard'] = disc(r)
# Topic alias 0, and above the maximum.
r = connected5(); t = s16(b'factory/telemetry/sensor-1/x'); props = b'\x03\x23\x00\x00'; r.send(b'\x30' + vbi(len(t) + len(props)) + t + props); OUT['alias0'] = disc(r)
r = connected5(); props = b'\x03\x23\x00\x0b'; r.send(b'\x30' + vbi(len(t) + len(props)) + t + props); OUT['alias_big'] = disc(r)
# An empty topic with an unknown alias.
r = connected5(); e = s16(b''); props = b'\x03\x23\x00\x02'; r.send(b'\x30' + vbi(len(e) + len(props)) + e + props); OUT['alias_unknown'] = disc(r)
# A second CONNECT.
r = connected5(); r.connect5('sensor-1'); OUT['second_connect'] = disc(r)
# Over-long packet (Remaining Length above 256 KiB) is refused from the header.
r = connected5(); r.send(b'\x30' + vbi(300 * 1024) + b'\x00'); OUT['too_large'] = disc(r)
# 3.1.1: invalid UTF-8 in the topic closes without a DISCONNECT.
r = Raw('sensor-1'); r.connect311('sensor-1'); p = r.packet(); t = s16(b'a/\xff'); r.send(b'\x30' + vbi(len(t)) + t); OUT['v3_bad_utf8_closed'] = r.closed()
)");
  EXPECT_TRUE(out["before_connect"].is_null());
  EXPECT_EQ(out["mqtt31"], json::parse("[0, 1]"));
  EXPECT_EQ(out["reserved_flags"], json::parse("[224, 129]"));
  EXPECT_EQ(out["wildcard"], json::parse("[224, 144]"));
  EXPECT_EQ(out["alias0"], json::parse("[224, 148]"));
  EXPECT_EQ(out["alias_big"], json::parse("[224, 148]"));
  EXPECT_EQ(out["alias_unknown"], json::parse("[224, 130]"));
  EXPECT_EQ(out["second_connect"], json::parse("[224, 130]"));
  EXPECT_EQ(out["too_large"], json::parse("[224, 149]"));
  EXPECT_EQ(out["v3_bad_utf8_closed"], true);
}

TEST_F(GatewayE2eTest, TopicAliasesEndAtTheGateway) {
  json out = env_->python(R"(
ctl = Dev('ctl-1'); ctl.sub('factory/telemetry/#', 0)
s = Dev('sensor-1')
p = Properties(PacketTypes.PUBLISH); p.TopicAlias = 3
s.pub('factory/telemetry/sensor-1/a', '1', 1, props=p)
p2 = Properties(PacketTypes.PUBLISH); p2.TopicAlias = 3
s.pub('', '2', 1, props=p2)
# Setting an alias on a denied topic still records it; using it stays denied.
p3 = Properties(PacketTypes.PUBLISH); p3.TopicAlias = 4
s.pub('factory/valves/valve-1/cmd', 'x', 1, props=p3)
p4 = Properties(PacketTypes.PUBLISH); p4.TopicAlias = 4
s.pub('', 'y', 1, props=p4)
wait(lambda: len(ctl.msgs) >= 2, 3); time.sleep(0.2)
OUT['msgs'] = ctl.msgs; OUT['disc'] = s.disc
)");
  EXPECT_EQ(out["msgs"], json::parse(R"([["factory/telemetry/sensor-1/a","1",0,0],["factory/telemetry/sensor-1/a","2",0,0]])"));
  EXPECT_TRUE(out["disc"].is_null());
}

TEST_F(GatewayE2eTest, CertificatesThatDoNotNameAnActiveDeviceAreRefused) {
  // A certificate from the right CA whose serial was never recorded for the device.
  env_->issueDeviceCert("sensor-1-unknown", "sensor-1", {"spiffe://warden.local/device/sensor-1"});
  // CN differs from the SPIFFE name.
  env_->issueDeviceCert("bad-cn", "ctl-1", {"spiffe://warden.local/device/sensor-1"});
  json out = env_->python(R"(
OUT['unknown_serial'] = Dev('sensor-1', cert='sensor-1-unknown').connack
OUT['bad_cn'] = Dev('sensor-1', cert='bad-cn').connack
)");
  EXPECT_NE(out["unknown_serial"], 0);
  EXPECT_NE(out["bad_cn"], 0);
  auto rejects = env_->eventsOfType("tls_reject");
  std::vector<std::string> reasons;
  for (auto& e : rejects) reasons.push_back(e.reason);
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "unknown_serial"), reasons.end());
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "bad_identity"), reasons.end());
}

TEST_F(GatewayE2eTest, ShutdownSendsServerShuttingDown) {
  std::string script = env_->path("shutdown.py");
  testing::writeText(script, std::string(testing::kPythonPrelude) + R"(
s = Dev('sensor-1'); OUT['connack'] = s.connack
open(DIR + '/shutdown.ready', 'w').close()
wait(lambda: s.disc is not None, 10)
OUT['disc'] = s.disc
print('OUT=' + json.dumps(OUT)); sys.stdout.flush()
)");
  std::string cmd = "timeout 30 /usr/bin/python3 " + script + " " + std::to_string(env_->port()) + " " + env_->dir();
  std::future<std::string> result = std::async(std::launch::async, [cmd] { return GatewayTestEnv::run(cmd); });
  for (int i = 0; i < 250 && !std::filesystem::exists(env_->path("shutdown.ready")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  env_.reset();  // shutdown, then tear down
  std::string out = result.get();
  json j = json::parse(out.substr(out.rfind("OUT=") + 4));
  EXPECT_EQ(j["disc"], 0x8B);
}

TEST_F(GatewayE2eTest, QuarantineCutsASessionThePolicyNoLongerAllows) {
  auto client = runBackground(*env_, "quarantine", R"(
s = Dev('sensor-1'); OUT['connack'] = s.connack
open(DIR + '/q.ready', 'w').close()
wait(lambda: s.disc is not None, 10)
OUT['disc'] = s.disc
)");
  waitForFile(*env_, "q.ready");
  env_->device("sensor-1").state = store::DeviceState::kQuarantined;
  env_->reevaluate();
  json j = client.get();
  EXPECT_EQ(j["connack"], 0);
  EXPECT_EQ(j["disc"], 0x87);
  auto disconnects = env_->eventsOfType("disconnect");
  ASSERT_FALSE(disconnects.empty());
  EXPECT_EQ(disconnects.back().reason, "quarantined");
  // Quarantined devices still pass TLS, but CONNECT is refused by the policy.
  json again = env_->python("OUT['c'] = Dev('sensor-1').connack\n");
  EXPECT_EQ(again["c"], 0x87);
}

TEST_F(GatewayE2eTest, ReceiveAndRetainAreAuthorizedSeparately) {
  env_->setPolicy(kPolicyReceive);
  env_->reevaluate();
  json out = env_->python(R"(
ctl = Dev('ctl-1'); OUT['sub'] = ctl.sub('factory/telemetry/#', 1)
s = Dev('sensor-1')
s.pub('factory/telemetry/sensor-1/hum', 'h', 1)
s.pub('factory/telemetry/sensor-1/temp', 't', 1)
OUT['retain'] = s.pub('factory/telemetry/sensor-1/temp', 'r', 1, retain=True)
wait(lambda: ctl.msgs, 3); time.sleep(0.3)
OUT['msgs'] = ctl.msgs
)");
  EXPECT_EQ(out["sub"], json::array({1}));
  EXPECT_EQ(out["msgs"], json::parse(R"([["factory/telemetry/sensor-1/temp","t",1,0]])"));
  auto denies = env_->eventsOfType("deny");
  std::vector<std::string> actions;
  for (auto& e : denies) actions.push_back(e.action);
  EXPECT_NE(std::find(actions.begin(), actions.end(), "mqtt:receive"), actions.end());
  EXPECT_NE(std::find(actions.begin(), actions.end(), "mqtt:retain"), actions.end());
}

TEST_F(GatewayE2eTest, PersistentSessionGetsQueuedMessagesOnReconnect) {
  json out = env_->python(R"(
p = Properties(PacketTypes.CONNECT); p.SessionExpiryInterval = 300
c = Dev('ctl-1', clean=True, props=p); OUT['sub'] = c.sub('factory/telemetry/#', 1); c.close(); time.sleep(0.3)
s = Dev('sensor-1'); s.pub('factory/telemetry/sensor-1/temp', 'queued', 1); time.sleep(0.3)
p2 = Properties(PacketTypes.CONNECT); p2.SessionExpiryInterval = 300
c2 = Dev('ctl-1', clean=False, props=p2); OUT['present'] = c2.flags.get('session present')
wait(lambda: c2.msgs, 3); OUT['msgs'] = c2.msgs
)");
  EXPECT_EQ(out["sub"], json::array({1}));
  EXPECT_EQ(out["present"], 1);
  EXPECT_EQ(out["msgs"], json::parse(R"([["factory/telemetry/sensor-1/temp","queued",1,0]])"));
}

TEST_F(GatewayE2eTest, IdleClientIsClosedAfterOneAndAHalfKeepAlives) {
  json out = env_->python(R"(
r = Raw('sensor-1'); r.connect5('sensor-1', keepalive=1); p = r.packet(); OUT['connack'] = list(p[1][:2])
start = time.time(); p = r.packet(5); OUT['disc'] = [p[0], p[1][0]] if p else None; OUT['after'] = time.time() - start
)");
  EXPECT_EQ(out["connack"], json::parse("[0, 0]"));
  EXPECT_EQ(out["disc"], json::parse("[224, 141]"));
  EXPECT_GE(out["after"].get<double>(), 1.2);
  EXPECT_LE(out["after"].get<double>(), 3.0);
}

TEST_F(GatewayE2eTest, MosquittoCommandLineClientsWork) {
  json out = env_->python(R"(
import subprocess
base = ['-h', '127.0.0.1', '-p', str(PORT), '--cafile', DIR + '/root.pem']
def creds(n): return ['--cert', DIR + '/' + n + '.pem', '--key', DIR + '/' + n + '.key', '-i', n]
sub = subprocess.Popen(['mosquitto_sub'] + base + creds('ctl-1') + ['-t', 'factory/telemetry/#', '-C', '1', '-W', '8', '-V', 'mqttv311', '-v'],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(0.7)
ok = subprocess.run(['mosquitto_pub'] + base + creds('sensor-1') + ['-t', 'factory/telemetry/sensor-1/temp', '-m', '22', '-q', '1', '-V', 'mqttv5'],
                    capture_output=True, text=True, timeout=10)
OUT['pub_rc'] = ok.returncode
o, e = sub.communicate(timeout=10)
OUT['sub_out'] = o.strip(); OUT['sub_rc'] = sub.returncode
denied = subprocess.run(['mosquitto_pub'] + base + creds('sensor-1') + ['-t', 'factory/valves/valve-1/cmd', '-m', 'x', '-q', '1', '-V', 'mqttv5'],
                        capture_output=True, text=True, timeout=10)
OUT['denied_err'] = denied.stderr.strip()
spoof = subprocess.run(['mosquitto_pub'] + base + ['--cert', DIR + '/sensor-1.pem', '--key', DIR + '/sensor-1.key', '-i', 'ctl-1', '-t', 'x', '-m', 'x', '-V', 'mqttv5'],
                       capture_output=True, text=True, timeout=10)
OUT['spoof_rc'] = spoof.returncode; OUT['spoof_err'] = spoof.stderr.strip()
)");
  EXPECT_EQ(out["pub_rc"], 0);
  EXPECT_EQ(out["sub_out"], "factory/telemetry/sensor-1/temp 22");
  EXPECT_NE(out["denied_err"].get<std::string>().find("ot authorized"), std::string::npos) << out.dump();
  EXPECT_NE(out["spoof_rc"], 0) << out.dump();
}

TEST_F(GatewayE2eTest, ResumedTlsSessionIsRecheckedAfterRevocation) {
  auto client = runBackground(*env_, "resume", R"(
ctx = tls_ctx('sensor-1')
def conn(session=None):
    s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', PORT), timeout=5), server_hostname='127.0.0.1', session=session)
    body = s16(b'MQTT') + bytes([5, 2, 0, 60, 0]) + s16(b'sensor-1')
    s.sendall(b'\x10' + vbi(len(body)) + body)
    try:
        d = s.recv(100)
    except Exception:
        d = b''
    return s, d
s1, d1 = conn(); OUT['first'] = list(d1[:4]); sess = s1.session; s1.close()
open(DIR + '/resume.ready', 'w').close()
wait(lambda: __import__('os').path.exists(DIR + '/resume.go'), 10)
s2, d2 = conn(sess); OUT['reused'] = s2.session_reused; OUT['second'] = list(d2)
)");
  waitForFile(*env_, "resume.ready");
  env_->device("sensor-1").state = store::DeviceState::kRevoked;
  env_->device("sensor-1").valid_serials.clear();
  env_->reevaluate();
  testing::writeText(env_->path("resume.go"), "");
  json j = client.get();
  ASSERT_EQ(j["first"].size(), 4u) << j.dump();
  EXPECT_EQ(j["first"][0], 0x20) << j.dump();  // CONNACK
  EXPECT_EQ(j["first"][3], 0) << j.dump();     // success
  EXPECT_EQ(j["reused"], true) << j.dump();
  EXPECT_EQ(j["second"], json::array()) << j.dump();
  auto rejects = env_->eventsOfType("tls_reject");
  ASSERT_FALSE(rejects.empty());
  EXPECT_EQ(rejects.back().reason, "device_revoked");
}

TEST_F(GatewayE2eTest, RevokingAnOfflineDevicePurgesItsBrokerSession) {
  json first = env_->python(R"(
p = Properties(PacketTypes.CONNECT); p.SessionExpiryInterval = 300
c = Dev('ctl-1', clean=True, props=p); OUT['sub'] = c.sub('factory/telemetry/#', 1); c.close(); time.sleep(0.3)
)");
  EXPECT_EQ(first["sub"], json::array({1}));
  auto serials = env_->device("ctl-1").valid_serials;
  env_->device("ctl-1").state = store::DeviceState::kRevoked;
  env_->device("ctl-1").valid_serials.clear();
  env_->reevaluate();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the purge runs in the background
  // Only to observe the broker: bring the identity back and resume.
  env_->device("ctl-1").state = store::DeviceState::kActive;
  env_->device("ctl-1").valid_serials = serials;
  env_->reevaluate();
  json out = env_->python(R"(
p = Properties(PacketTypes.CONNECT); p.SessionExpiryInterval = 300
c = Dev('ctl-1', clean=False, props=p); OUT['connack'] = c.connack; OUT['present'] = c.flags.get('session present')
)");
  EXPECT_EQ(out["connack"], 0);
  EXPECT_EQ(out["present"], 0);
}

TEST(GatewayE2eStandaloneTest, UnreachableUpstreamGetsServerUnavailable) {
  GatewayTestEnv env;
  env.addDevice("sensor-1", "sensor");
  env.setPolicy(kPolicy);
  env.config().upstream_port = testing::freeLoopbackPort();  // nothing listens there
  env.startGateway();
  json out = env.python(R"(
OUT['v5'] = Dev('sensor-1').connack
OUT['v3'] = Dev('sensor-1', v5=False).connack
)");
  EXPECT_EQ(out["v5"], 0x88);
  EXPECT_EQ(out["v3"], 3);
}

TEST(GatewayE2eStandaloneTest, SilentClientIsClosedAfterTheConnectTimeout) {
  GatewayTestEnv env;
  env.addDevice("sensor-1", "sensor");
  env.setPolicy(kPolicy);
  env.config().limits.connect_timeout = std::chrono::seconds(1);
  env.startGateway();
  json out = env.python(R"(
r = Raw('sensor-1'); start = time.time(); OUT['closed'] = r.closed(5); OUT['after'] = time.time() - start
)");
  EXPECT_EQ(out["closed"], true);
  EXPECT_LE(out["after"].get<double>(), 3.0);
}

}  // namespace
}  // namespace warden::gateway

namespace warden::gateway {
namespace {

constexpr const char* kPolicyTrust = R"(
rules:
  - id: trusted-connect
    effect: permit
    principals: {kind: device}
    actions: [mqtt:connect]
    resources: ["${principal.id}"]
    when: [principal.trust >= 40]
)";

// The posture engine's trust reaches the policy through the device's
// FleetState entry: a lower score in a new snapshot cuts the live session.
TEST_F(GatewayE2eTest, TrustInTheSnapshotReachesThePolicy) {
  env_->setPolicy(kPolicyTrust);
  env_->device("sensor-1").trust = 80;
  env_->reevaluate();
  auto client = runBackground(*env_, "trust", R"(
s = Dev('sensor-1'); OUT['connack'] = s.connack
open(DIR + '/t.ready', 'w').close()
wait(lambda: s.disc is not None, 10)
OUT['disc'] = s.disc
)");
  waitForFile(*env_, "t.ready");
  env_->device("sensor-1").trust = 30;
  env_->reevaluate();
  json j = client.get();
  EXPECT_EQ(j["connack"], 0);
  EXPECT_EQ(j["disc"], 0x87);
  // Without a score the condition fails closed.
  env_->device("sensor-1").trust.reset();
  env_->reevaluate();
  json again = env_->python("OUT['c'] = Dev('sensor-1').connack\n");
  EXPECT_EQ(again["c"], 0x87);
}

}  // namespace
}  // namespace warden::gateway

// api_server_test.cc: the API server end to end in one process: real TLS,
// real SQLite store, registry, event log and policy; the client is the CLI's
// ApiClient. The gateway is constructed but not started (no MQTT sessions).

#include "api/api_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>

#include "api/api_client.h"
#include "api/est_client.h"
#include "core/file_io.h"
#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "gateway/decision_snapshot.h"
#include "gateway/gateway.h"
#include "identity/registry.h"
#include "monitor/event_log.h"
#include "pki/certificate_authority.h"
#include "pki/csr_attrs.h"
#include "pki/est_body.h"
#include "policy/policy.h"
#include "store/sqlite_store.h"
#include "unit/testing/factory_certs.h"

namespace warden::api {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kTd = "warden.local";

// Worker is the single blocking-work thread of the test server.
class Worker {
 public:
  Worker() : thread_([this] { loop(); }) {}
  ~Worker() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void post(std::function<void()> f) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(f));
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> f;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        f = std::move(queue_.front());
        queue_.pop_front();
      }
      f();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

crypto::X509Ptr issue(const pki::CaMaterial& ca, EVP_PKEY* key, pki::LeafProfile profile) {
  auto cert = pki::issueLeaf(ca, key, profile, core::systemClock());
  EXPECT_TRUE(cert.isOk()) << cert.status().toString();
  return std::move(cert).value();
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("warden-api-test-" + std::to_string(::getpid()) + "-" +
                                        std::to_string(counter_++));
    fs::create_directories(dir_);
    auto store = store::SqliteStore::open((dir_ / "warden.db").string(), core::systemClock());
    ASSERT_TRUE(store.isOk()) << store.status().toString();
    store_ = std::move(store).value();

    auto root = pki::createRootCa("Test Root", std::chrono::hours(24 * 365), core::systemClock());
    ASSERT_TRUE(root.isOk());
    root_ = std::move(root).value();
    auto issuing = pki::createIntermediateCa(root_, "Test Issuing", std::chrono::hours(24 * 365), 0,
                                             core::systemClock());
    ASSERT_TRUE(issuing.isOk());
    issuing_ = std::move(issuing).value();
    ca_pem_ = crypto::certToPem(root_.cert.get()) + crypto::certToPem(issuing_.cert.get());

    // Server certificate.
    auto server_key = crypto::generateEcKey();
    ASSERT_TRUE(server_key.isOk());
    pki::LeafProfile server_profile;
    server_profile.common_name = "localhost";
    server_profile.dns_sans = {"localhost"};
    server_profile.ip_sans = {"127.0.0.1"};
    server_profile.client_auth = false;
    server_profile.server_auth = true;
    auto server_cert = issue(issuing_, server_key->get(), server_profile);
    ASSERT_TRUE(core::writeFileAtomic((dir_ / "server.pem").string(),
                                      crypto::certToPem(server_cert.get()) + crypto::certToPem(issuing_.cert.get()),
                                      0600)
                    .isOk());
    ASSERT_TRUE(core::writeFileAtomic((dir_ / "server.key").string(), *crypto::privateKeyToPem(server_key->get()), 0600)
                    .isOk());

    // Operator certificate, recorded as a user certificate.
    admin_key_ = std::move(crypto::generateEcKey()).value();
    pki::LeafProfile admin_profile;
    admin_profile.common_name = "admin";
    admin_profile.uri_sans = {core::makeSpiffeId(kTd, core::PrincipalKind::kUser, "admin")};
    auto admin_cert = issue(issuing_, admin_key_.get(), admin_profile);
    admin_pem_ = crypto::certToPem(admin_cert.get()) + crypto::certToPem(issuing_.cert.get());
    store::CertRecord rec;
    rec.serial_hex = crypto::serialHex(admin_cert.get());
    rec.device = "admin";
    rec.kind = "user";
    rec.pubkey_fp = crypto::publicKeyFingerprint(admin_key_.get());
    rec.not_before = core::unixSeconds(crypto::notBefore(admin_cert.get()));
    rec.not_after = core::unixSeconds(crypto::notAfter(admin_cert.get()));
    rec.pem = crypto::certToPem(admin_cert.get());
    ASSERT_TRUE(store_->insertCert(rec).isOk());
    ASSERT_TRUE(store_->insertPolicyVersion(policy::defaultPolicyYaml(), "init").isOk());

    registry_ = std::make_unique<identity::Registry>(*store_, core::systemClock());
    events_ = std::make_unique<monitor::EventLog>(*store_, core::systemClock());
    reloadSnapshot();

    gateway::GatewayConfig gw;
    gw.listen_port = 0;
    gateway_ = std::make_unique<gateway::Gateway>(&io_, gw, snapshots_, *events_);

    ApiConfig config;
    config.listen_host = "127.0.0.1";
    config.listen_port = 0;
    config.trust_domain = kTd;
    config.server_cert_file = (dir_ / "server.pem").string();
    config.server_key_file = (dir_ / "server.key").string();
    config.limits.enroll_failures_per_window = 5;
    ApiDeps deps{*registry_, *store_, *events_, issuing_, root_.cert.get(), snapshots_, *gateway_,
                 core::systemClock(), nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    deps.run_blocking = [this](std::function<void()> work, std::function<void()> then) {
      worker_.post([this, work = std::move(work), then = std::move(then)] {
        work();
        boost::asio::post(io_, then);
      });
    };
    deps.publish_change = [this](identity::ChangeScope, std::function<void()> done) {
      worker_.post([this, done = std::move(done)] {
        reloadSnapshot();
        ++publishes_;
        boost::asio::post(io_, done);
      });
    };
    deps.purge_broker_session = [this](const std::string& device, std::function<void()> done) {
      purged_.push_back(device);
      done();
    };
    server_ = std::make_unique<ApiServer>(&io_, config, deps);
    ASSERT_TRUE(server_->start().isOk());
    work_guard_.emplace(io_.get_executor());
    io_thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    if (server_) {
      std::promise<void> stopped;
      boost::asio::post(io_, [&] {
        server_->stop();
        stopped.set_value();
      });
      stopped.get_future().wait();
    }
    work_guard_.reset();
    io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
    server_.reset();
    gateway_.reset();
    events_.reset();
    registry_.reset();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void reloadSnapshot() {
    auto fleet = registry_->loadFleetState();
    ASSERT_TRUE(fleet.isOk());
    auto active = store_->activePolicy();
    ASSERT_TRUE(active.isOk() && active->has_value());
    auto policy = policy::Policy::parse((*active)->text, "policy");
    ASSERT_TRUE(policy.isOk()) << policy.status().toString();
    auto snap = std::make_shared<gateway::DecisionSnapshot>();
    snap->policy = *policy;
    snap->fleet = *fleet;
    snap->generation = (*fleet)->generation;
    snapshots_.set(snap);
  }

  std::unique_ptr<ApiClient> client(bool with_admin_cert, std::string cert_pem = "", std::string key_pem = "") {
    ApiClientOptions o;
    auto url = parseServerUrl("https://127.0.0.1:" + std::to_string(server_->port()));
    EXPECT_TRUE(url.isOk());
    o.server = *url;
    o.tls.trust_pem = ca_pem_;
    if (with_admin_cert) {
      o.tls.cert_pem = admin_pem_;
      o.tls.key_pem = *crypto::privateKeyToPem(admin_key_.get());
    } else if (!cert_pem.empty()) {
      o.tls.cert_pem = cert_pem;
      o.tls.key_pem = key_pem;
    }
    o.io_timeout = std::chrono::seconds(10);
    auto c = ApiClient::create(o);
    EXPECT_TRUE(c.isOk()) << c.status().toString();
    return std::move(c).value();
  }

  HttpResponse send(ApiClient& c, std::string method, std::string target, std::string body = "",
                    std::vector<HttpHeader> headers = {}) {
    HttpRequest req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    req.headers = std::move(headers);
    auto res = c.send(req);
    EXPECT_TRUE(res.isOk()) << res.status().toString();
    return res.isOk() ? std::move(res).value() : HttpResponse{};
  }

  HttpResponse admin(std::string method, std::string target, std::string body = "",
                     std::vector<HttpHeader> headers = {}) {
    auto c = client(true);
    if (!body.empty() && headers.empty()) headers.push_back({"Content-Type", "application/json"});
    return send(*c, std::move(method), std::move(target), std::move(body), std::move(headers));
  }

  // addDevice adds |name| and returns its token.
  std::string addDevice(const std::string& name, const std::string& role = "sensor") {
    auto res = admin("POST", "/v1/devices", json{{"name", name}, {"role", role}}.dump());
    EXPECT_EQ(res.status, 201) << res.body;
    return json::parse(res.body).value("token", "");
  }

  std::string csrFor(EVP_PKEY* key, const std::string& cn) {
    auto csr = buildCsr(key, cn);
    EXPECT_TRUE(csr.isOk());
    return csrBody(csr->get());
  }

  HttpResponse enroll(const std::string& name, const std::string& token, const std::string& body,
                      std::string content_type = "application/pkcs10") {
    auto c = client(false);
    return send(*c, "POST", "/.well-known/est/simpleenroll", body,
                {{"Content-Type", content_type}, {"Authorization", basicAuthorization(name, token)}});
  }

  static inline int counter_ = 0;
  fs::path dir_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_guard_;
  std::thread io_thread_;
  Worker worker_;
  std::unique_ptr<store::Store> store_;
  pki::CaMaterial root_, issuing_;
  std::string ca_pem_, admin_pem_;
  crypto::EvpPkeyPtr admin_key_;
  std::unique_ptr<identity::Registry> registry_;
  std::unique_ptr<monitor::EventLog> events_;
  gateway::SnapshotHolder snapshots_;
  std::unique_ptr<gateway::Gateway> gateway_;
  std::unique_ptr<ApiServer> server_;
  std::atomic<int> publishes_{0};
  std::vector<std::string> purged_;
};

TEST_F(ApiServerTest, HealthNeedsNoCertificate) {
  auto c = client(false);
  auto res = send(*c, "GET", "/healthz");
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(json::parse(res.body)["status"], "ok");
}

TEST_F(ApiServerTest, UnknownPathIs404AndWrongMethodIs405) {
  auto c = client(false);
  EXPECT_EQ(send(*c, "GET", "/nope").status, 404);
  auto res = send(*c, "DELETE", "/v1/devices");
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.header("allow"), "GET, POST");
}

TEST_F(ApiServerTest, AdminRouteWithoutCertificateIs401) {
  auto c = client(false);
  auto res = send(*c, "GET", "/v1/devices");
  EXPECT_EQ(res.status, 401);
  EXPECT_EQ(json::parse(res.body)["error"], "unauthenticated");
}

TEST_F(ApiServerTest, CacertsReturnsRootAndIssuing) {
  auto c = client(false);
  auto res = send(*c, "GET", "/.well-known/est/cacerts");
  ASSERT_EQ(res.status, 200);
  EXPECT_EQ(res.header("content-type"), "application/pkcs7-mime");
  EXPECT_EQ(res.header("content-transfer-encoding"), "base64");
  auto certs = pki::parsePkcs7CertsOnly(res.body);
  ASSERT_TRUE(certs.isOk());
  ASSERT_EQ(certs->size(), 2u);
  EXPECT_EQ(crypto::serialHex((*certs)[0].get()), crypto::serialHex(root_.cert.get()));
}

TEST_F(ApiServerTest, DeviceAddReturnsTokenAndRefusesDuplicates) {
  auto res = admin("POST", "/v1/devices",
                   json{{"name", "temp-1"}, {"role", "sensor"}, {"labels", {{"site", "p1"}}}, {"token_ttl", "2h"}}.dump());
  ASSERT_EQ(res.status, 201) << res.body;
  auto j = json::parse(res.body);
  EXPECT_EQ(j["name"], "temp-1");
  EXPECT_EQ(j["role"], "sensor");
  EXPECT_EQ(j["labels"]["site"], "p1");
  EXPECT_GE(j["token"].get<std::string>().size(), 22u);
  EXPECT_EQ(j["ca_fingerprint"], crypto::caFingerprint(root_.cert.get()));
  EXPECT_TRUE(j["token_expires_at"].is_string());

  auto dup = admin("POST", "/v1/devices", json{{"name", "temp-1"}, {"role", "sensor"}}.dump());
  EXPECT_EQ(dup.status, 409);
  EXPECT_EQ(json::parse(dup.body)["error"], "already_exists");

  auto bad = admin("POST", "/v1/devices", json{{"name", "Temp_1"}, {"role", "sensor"}}.dump());
  EXPECT_EQ(bad.status, 400);
  auto unknown = admin("POST", "/v1/devices", json{{"name", "x"}, {"role", "s"}, {"colour", "red"}}.dump());
  EXPECT_EQ(unknown.status, 400);
}

TEST_F(ApiServerTest, EnrollIssuesCertificateOnceAndShowsDevice) {
  std::string token = addDevice("temp-1");
  auto key = std::move(crypto::generateEcKey()).value();
  std::string body = csrFor(key.get(), "ignored-cn");
  auto res = enroll("temp-1", token, body);
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("content-type"), "application/pkcs7-mime; smime-type=certs-only");
  auto certs = pki::parsePkcs7CertsOnly(res.body);
  ASSERT_TRUE(certs.isOk());
  ASSERT_EQ(certs->size(), 1u);
  X509* leaf = (*certs)[0].get();
  EXPECT_EQ(crypto::commonName(leaf), "temp-1");
  EXPECT_EQ(crypto::uriSans(leaf), std::vector<std::string>{"spiffe://warden.local/device/temp-1"});
  EXPECT_GE(publishes_.load(), 1);

  // The token is single use: the same 401 as any other failure.
  auto again = enroll("temp-1", token, body);
  EXPECT_EQ(again.status, 401);
  EXPECT_EQ(again.header("www-authenticate"), "Basic realm=\"warden\"");
  auto wrong = enroll("temp-1", "not-the-token", body);
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.body, again.body);
  auto unknown = enroll("nobody", "x", body);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(unknown.body, again.body);

  auto show = admin("GET", "/v1/devices/temp-1");
  ASSERT_EQ(show.status, 200);
  auto j = json::parse(show.body);
  EXPECT_EQ(j["state"], "active");
  EXPECT_EQ(j["cert_serial"], crypto::serialHex(leaf));
  EXPECT_EQ(j["connected"], false);
  EXPECT_EQ(admin("GET", "/v1/devices/nobody").status, 404);
  auto list = json::parse(admin("GET", "/v1/devices").body);
  ASSERT_EQ(list["devices"].size(), 1u);
  EXPECT_EQ(list["devices"][0]["spiffe_id"], "spiffe://warden.local/device/temp-1");
}

TEST_F(ApiServerTest, EnrollRejectsWrongTypeJunkAndReusedKeys) {
  std::string t1 = addDevice("a");
  std::string t2 = addDevice("b");
  auto key = std::move(crypto::generateEcKey()).value();
  std::string body = csrFor(key.get(), "a");
  EXPECT_EQ(enroll("a", t1, body, "application/json").status, 415);
  auto junk = enroll("a", t1, "bm90IGEgY3Ny");
  EXPECT_EQ(junk.status, 400);
  EXPECT_FALSE(junk.body.empty());
  ASSERT_EQ(enroll("a", t1, body).status, 200);
  auto reuse = enroll("b", t2, body);
  EXPECT_EQ(reuse.status, 400);
  EXPECT_NE(reuse.body.find("another device"), std::string::npos);
}

TEST_F(ApiServerTest, TokenGuessingIsRateLimitedPerAddress) {
  addDevice("a");
  auto key = std::move(crypto::generateEcKey()).value();
  std::string body = csrFor(key.get(), "a");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(enroll("a", "guess" + std::to_string(i), body).status, 401);
  auto limited = enroll("a", "guess", body);
  EXPECT_EQ(limited.status, 429);
  EXPECT_FALSE(limited.header("retry-after").empty());
}

TEST_F(ApiServerTest, ReenrollNeedsTheDeviceCertificate) {
  std::string token = addDevice("temp-1");
  auto key = std::move(crypto::generateEcKey()).value();
  auto res = enroll("temp-1", token, csrFor(key.get(), "temp-1"));
  ASSERT_EQ(res.status, 200);
  auto certs = std::move(pki::parsePkcs7CertsOnly(res.body)).value();
  std::string cert_pem = crypto::certToPem(certs[0].get()) + crypto::certToPem(issuing_.cert.get());

  auto anonymous = client(false);
  auto key2 = std::move(crypto::generateEcKey()).value();
  auto refused = send(*anonymous, "POST", "/.well-known/est/simplereenroll", csrFor(key2.get(), "temp-1"),
                      {{"Content-Type", "application/pkcs10"}});
  EXPECT_EQ(refused.status, 401);

  auto device = client(false, cert_pem, *crypto::privateKeyToPem(key.get()));
  auto renewed = send(*device, "POST", "/.well-known/est/simplereenroll", csrFor(key2.get(), "temp-1"),
                      {{"Content-Type", "application/pkcs10"}});
  ASSERT_EQ(renewed.status, 200) << renewed.body;
  auto new_certs = std::move(pki::parsePkcs7CertsOnly(renewed.body)).value();
  EXPECT_NE(crypto::serialHex(new_certs[0].get()), crypto::serialHex(certs[0].get()));

  // A device certificate is not an operator certificate.
  auto as_admin = send(*device, "GET", "/v1/devices");
  EXPECT_EQ(as_admin.status, 403);
}

TEST_F(ApiServerTest, RevokeQuarantineReleaseReplyAfterPublishing) {
  std::string token = addDevice("v1", "valve");
  auto key = std::move(crypto::generateEcKey()).value();
  ASSERT_EQ(enroll("v1", token, csrFor(key.get(), "v1")).status, 200);
  int before = publishes_.load();
  auto q = admin("POST", "/v1/devices/v1/quarantine");
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(json::parse(q.body), (json{{"name", "v1"}, {"state", "quarantined"}, {"changed", true}}));
  EXPECT_EQ(publishes_.load(), before + 1);
  auto q2 = admin("POST", "/v1/devices/v1/quarantine");
  EXPECT_EQ(json::parse(q2.body)["changed"], false);
  auto r = admin("POST", "/v1/devices/v1/release");
  EXPECT_EQ(json::parse(r.body)["state"], "active");
  auto rv = admin("POST", "/v1/devices/v1/revoke");
  ASSERT_EQ(rv.status, 200);
  EXPECT_EQ(json::parse(rv.body)["state"], "revoked");
  EXPECT_EQ(purged_, std::vector<std::string>{"v1"});
  EXPECT_EQ(admin("POST", "/v1/devices/v1/release").status, 409);
  EXPECT_EQ(admin("POST", "/v1/devices/nobody/revoke").status, 404);
  EXPECT_EQ(admin("POST", "/v1/devices/v1/token").status, 409);
}

TEST_F(ApiServerTest, PolicyApplyValidatesAndRefusesLockout) {
  auto shown = admin("GET", "/v1/policy");
  ASSERT_EQ(shown.status, 200);
  EXPECT_EQ(json::parse(shown.body)["version"], 1);

  auto invalid = admin("PUT", "/v1/policy", "rules: [", {{"Content-Type", "text/yaml"}, {"X-Warden-Filename", "my.yaml"}});
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(json::parse(invalid.body)["message"].get<std::string>().rfind("my.yaml:", 0), 0u) << invalid.body;

  std::string lockout =
      "rules:\n  - id: x\n    effect: permit\n    principals: {kind: user, id: admin}\n    actions: [\"admin:device.list\"]\n"
      "    resources: [\"*\"]\n";
  auto refused = admin("PUT", "/v1/policy", lockout, {{"Content-Type", "text/yaml"}});
  EXPECT_EQ(refused.status, 409);
  EXPECT_EQ(json::parse(refused.body)["error"], "policy_lockout");

  std::string ok = std::string(policy::defaultPolicyYaml());
  auto applied = admin("PUT", "/v1/policy", ok, {{"Content-Type", "text/yaml"}});
  ASSERT_EQ(applied.status, 200) << applied.body;
  EXPECT_EQ(json::parse(applied.body)["version"], 2);
  auto now = json::parse(admin("GET", "/v1/policy").body);
  EXPECT_EQ(now["text"], ok);
  EXPECT_EQ(now["actor"], "spiffe://warden.local/user/admin");
}

TEST_F(ApiServerTest, PolicyDenialIs403WithRuleAndReason) {
  std::string narrow =
      "rules:\n  - id: ops\n    effect: permit\n    principals: {kind: user, id: admin}\n"
      "    actions: [\"admin:policy.apply\", \"admin:policy.show\", \"admin:events.read\"]\n    resources: [\"*\"]\n";
  ASSERT_EQ(admin("PUT", "/v1/policy", narrow, {{"Content-Type", "text/yaml"}}).status, 200);
  auto denied = admin("GET", "/v1/devices");
  ASSERT_EQ(denied.status, 403);
  auto j = json::parse(denied.body);
  EXPECT_EQ(j["error"], "permission_denied");
  EXPECT_EQ(j["rule"], "default-deny");
  EXPECT_EQ(j["reason"], "no_permit");
}

TEST_F(ApiServerTest, PolicyExplainResolvesNamesAndSpiffeIds) {
  addDevice("ivi-1", "headunit");
  std::string vehicle = std::string(policy::defaultPolicyYaml()) + R"yaml(
  - id: careless
    effect: permit
    principals: {kind: device}
    actions: [mqtt:publish]
    resources: ["#"]
segments:
  head: {role: headunit}
  chassis: {role: brake}
services:
  brakes: {segment: chassis, mqtt: ["vehicle/+/brake/#"]}
)yaml";
  ASSERT_EQ(admin("PUT", "/v1/policy", vehicle, {{"Content-Type", "text/yaml"}}).status, 200);
  json body = {{"principal", "ivi-1"}, {"action", "mqtt:publish"}, {"resource", "vehicle/v1/brake/cmd"},
               {"context", {{"source_ip", "10.0.0.7"}}}};
  auto res = admin("POST", "/v1/policy/explain", body.dump(), {{"Content-Type", "application/json"}});
  ASSERT_EQ(res.status, 200) << res.body;
  auto j = json::parse(res.body);
  EXPECT_EQ(j["decision"], "deny");
  EXPECT_EQ(j["reason"], "no_flow");
  EXPECT_EQ(j["rule"], "default-deny");
  EXPECT_EQ(j["missing_flows"], (json::array({{{"from", "head"}, {"to", "brakes"}, {"action", "mqtt:publish"}}})));
  EXPECT_EQ(j["principal"]["segments"], json::array({"head"}));
  ASSERT_EQ(j["rules"].size(), 1u);
  EXPECT_EQ(j["rules"][0]["id"], "careless");
  EXPECT_EQ(j["rules"][0]["matched"], true);

  body["principal"] = "spiffe://warden.local/device/ivi-1";
  body["resource"] = "media/now";
  auto permit = admin("POST", "/v1/policy/explain", body.dump(), {{"Content-Type", "application/json"}});
  ASSERT_EQ(permit.status, 200) << permit.body;
  EXPECT_EQ(json::parse(permit.body)["decision"], "permit");

  body["principal"] = "admin";
  body["action"] = "admin:policy.apply";
  body["resource"] = "*";
  auto user = admin("POST", "/v1/policy/explain", body.dump(), {{"Content-Type", "application/json"}});
  ASSERT_EQ(user.status, 200) << user.body;
  EXPECT_EQ(json::parse(user.body)["rule"], "operators");

  body["principal"] = "nobody";
  EXPECT_EQ(admin("POST", "/v1/policy/explain", body.dump(), {{"Content-Type", "application/json"}}).status, 404);
  body["principal"] = "ivi-1";
  body["context"] = {{"time", "yesterday"}};
  EXPECT_EQ(admin("POST", "/v1/policy/explain", body.dump(), {{"Content-Type", "application/json"}}).status, 400);
}

TEST_F(ApiServerTest, PolicyHistoryVersionsAndRollback) {
  std::string v1 = json::parse(admin("GET", "/v1/policy").body)["text"];
  std::string v2 = v1 + "  - {id: extra, effect: permit, principals: {kind: device}, actions: [mqtt:publish], resources: [\"a\"]}\n";
  ASSERT_EQ(admin("PUT", "/v1/policy", v2, {{"Content-Type", "text/yaml"}}).status, 200);
  auto history = json::parse(admin("GET", "/v1/policy/versions").body);
  EXPECT_EQ(history["active"], 2);
  ASSERT_EQ(history["versions"].size(), 2u);
  EXPECT_EQ(history["versions"][0]["version"], 2);
  EXPECT_EQ(history["versions"][1]["version"], 1);
  EXPECT_EQ(json::parse(admin("GET", "/v1/policy/versions/1").body)["text"], v1);
  EXPECT_EQ(admin("GET", "/v1/policy/versions/9").status, 404);
  EXPECT_EQ(admin("GET", "/v1/policy/versions/x").status, 400);

  auto rolled = admin("POST", "/v1/policy/rollback", json{{"version", 1}}.dump(), {{"Content-Type", "application/json"}});
  ASSERT_EQ(rolled.status, 200) << rolled.body;
  EXPECT_EQ(json::parse(rolled.body), (json{{"version", 3}, {"from", 1}}));
  EXPECT_EQ(json::parse(admin("GET", "/v1/policy").body)["text"], v1);

  std::string lockout =
      "rules:\n  - id: x\n    effect: permit\n    principals: {kind: user, id: admin}\n    actions: [\"admin:device.list\"]\n"
      "    resources: [\"*\"]\n";
  ASSERT_EQ(admin("PUT", "/v1/policy?force=true", lockout, {{"Content-Type", "text/yaml"}}).status, 200);  // v4
  // Locked out now: the operator may not even roll back.
  EXPECT_EQ(admin("POST", "/v1/policy/rollback", json{{"version", 1}}.dump(), {{"Content-Type", "application/json"}}).status,
            403);
}

TEST_F(ApiServerTest, PolicyDryRunStoresNothingAndListsChanges) {
  addDevice("cam-1", "camera");
  std::string text = std::string(policy::defaultPolicyYaml()) +
                     "  - {id: cams, effect: permit, principals: {role: camera}, actions: [mqtt:subscribe], "
                     "resources: [\"video/#\"]}\n";
  ASSERT_EQ(admin("PUT", "/v1/policy", std::string(policy::defaultPolicyYaml()), {{"Content-Type", "text/yaml"}}).status,
            200);  // v2: the snapshot now holds cam-1
  auto res = admin("PUT", "/v1/policy?dry_run=true", text, {{"Content-Type", "text/yaml"}});
  ASSERT_EQ(res.status, 200) << res.body;
  auto j = json::parse(res.body);
  EXPECT_EQ(j["dry_run"], true);
  EXPECT_EQ(j["would_lock_out"], false);
  EXPECT_EQ(j["changed_principals"], json::array({"cam-1"}));
  ASSERT_FALSE(j["changes"].empty());
  EXPECT_EQ(j["changes"][0]["resource"], "video/#");
  EXPECT_EQ(j["changes"][0]["after"]["decision"], "permit");
  EXPECT_EQ(json::parse(admin("GET", "/v1/policy").body)["version"], 2);  // nothing stored
  auto invalid = admin("PUT", "/v1/policy?dry_run=true", "rules: [", {{"Content-Type", "text/yaml"}});
  EXPECT_EQ(invalid.status, 400);
  std::string lockout =
      "rules:\n  - id: x\n    effect: permit\n    principals: {kind: user, id: admin}\n    actions: [\"admin:device.list\"]\n"
      "    resources: [\"*\"]\n";
  auto locked = admin("PUT", "/v1/policy?dry_run=true", lockout, {{"Content-Type", "text/yaml"}});
  ASSERT_EQ(locked.status, 200);
  EXPECT_EQ(json::parse(locked.body)["would_lock_out"], true);
}

TEST_F(ApiServerTest, RollbackRefusesLockoutUnlessForced) {
  std::string lockout =
      "rules:\n  - id: x\n    effect: permit\n    principals: {kind: user, id: admin}\n"
      "    actions: [\"admin:device.list\", \"admin:policy.apply\"]\n    resources: [\"*\"]\n";
  std::string narrow =
      "rules:\n  - id: x\n    effect: permit\n    principals: {kind: user, id: admin}\n    actions: [\"admin:device.list\"]\n"
      "    resources: [\"*\"]\n";
  ASSERT_EQ(admin("PUT", "/v1/policy", lockout, {{"Content-Type", "text/yaml"}}).status, 200);  // v2 keeps apply
  ASSERT_EQ(admin("PUT", "/v1/policy", narrow, {{"Content-Type", "text/yaml"}}).status, 409);
  ASSERT_EQ(admin("PUT", "/v1/policy", std::string(policy::defaultPolicyYaml()), {{"Content-Type", "text/yaml"}}).status,
            200);  // v3
  // v2 keeps admin:policy.apply: rollback allowed.
  EXPECT_EQ(admin("POST", "/v1/policy/rollback", json{{"version", 2}}.dump(), {{"Content-Type", "application/json"}}).status,
            200);
}

TEST_F(ApiServerTest, EventsLongPollWakesOnANewEvent) {
  events_->flush();
  auto first = json::parse(admin("GET", "/v1/events").body);
  int64_t last = first["last_id"].get<int64_t>();
  auto waiter = std::async(std::launch::async, [&] {
    return admin("GET", "/v1/events?since=" + std::to_string(last) + "&wait=10");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  addDevice("late");
  auto res = waiter.get();
  ASSERT_EQ(res.status, 200);
  auto j = json::parse(res.body);
  ASSERT_FALSE(j["events"].empty());
  EXPECT_EQ(j["events"][0]["type"], "device_add");
  EXPECT_GT(j["events"][0]["id"].get<int64_t>(), last);

  auto empty = admin("GET", "/v1/events?since=" + std::to_string(j["last_id"].get<int64_t>() + 1000) + "&wait=1");
  EXPECT_EQ(empty.status, 200);
  EXPECT_TRUE(json::parse(empty.body)["events"].empty());
  EXPECT_EQ(admin("GET", "/v1/events?wait=99").status, 400);
}

TEST_F(ApiServerTest, OversizedBodyIs413EvenWhileTheClientIsStillSending) {
  // The server answers 413 from Content-Length, then reads and discards the
  // body it refused (bounded) before it closes: a client still writing a
  // body larger than the sockets' buffers reads the 413, not a reset.
  for (size_t size : {size_t{20000}, size_t{4} * 1024 * 1024}) {
    auto c = client(true);
    HttpRequest req;
    req.method = "POST";
    req.target = "/v1/devices";
    req.body = std::string(size, ' ');
    req.headers = {{"Content-Type", "application/json"}};
    auto res = c->send(req);
    ASSERT_TRUE(res.isOk()) << size << " bytes: " << res.status().toString();
    EXPECT_EQ(res->status, 413) << size << " bytes";
  }
}


// --- issue 4: factory identities, manual approval, lifetimes, limits ---------

class FactoryEnrollTest : public ApiServerTest {
 protected:
  void addManufacturer(const std::string& name, const testing::FactoryCert& ca, json extra) {
    json body = {{"name", name}, {"ca_pem", ca.certPem()}, {"role", "sensor"}, {"name_prefix", name + "-"}};
    for (auto it = extra.begin(); it != extra.end(); ++it) body[it.key()] = it.value();
    auto res = admin("POST", "/v1/manufacturers", body.dump());
    ASSERT_EQ(res.status, 201) << res.body;
  }

  // factoryEnroll posts a CSR for |key| with |idevid| as the TLS client certificate.
  HttpResponse factoryEnroll(const testing::FactoryCert& idevid, EVP_PKEY* key,
                             const std::string& path = "/.well-known/est/simpleenroll") {
    auto c = client(false, idevid.certPem(), idevid.keyPem());
    return send(*c, "POST", path, csrFor(key, "ignored"), {{"Content-Type", "application/pkcs10"}});
  }
};

TEST_F(FactoryEnrollTest, FactoryCertificateEnrollsAndNamesTheDevice) {
  auto acme = testing::makeFactoryCa("Acme IDevID CA");
  addManufacturer("acme", acme, {{"serials", {"sn1", "sn2"}}, {"labels", {{"vendor", "acme"}}}, {"cert_ttl", "1h"}});
  auto idevid = testing::makeIdevid(acme, "sn1");
  auto key = std::move(crypto::generateEcKey()).value();
  auto res = factoryEnroll(idevid, key.get());
  ASSERT_EQ(res.status, 200) << res.body;
  auto certs = std::move(pki::parsePkcs7CertsOnly(res.body)).value();
  EXPECT_EQ(crypto::commonName(certs[0].get()), "acme-sn1");
  auto life = crypto::notAfter(certs[0].get()) - std::chrono::system_clock::now();
  EXPECT_LE(life, std::chrono::hours(1) + std::chrono::seconds(5));  // the manufacturer's lifetime
  EXPECT_GT(life, std::chrono::minutes(55));
  auto show = json::parse(admin("GET", "/v1/devices/acme-sn1").body);
  EXPECT_EQ(show["state"], "active");
  EXPECT_EQ(show["labels"]["vendor"], "acme");
  // The same identity again while its certificate is valid: a clone.
  auto key2 = std::move(crypto::generateEcKey()).value();
  auto clone = factoryEnroll(idevid, key2.get());
  EXPECT_EQ(clone.status, 403) << clone.body;
  EXPECT_NE(clone.body.find("clone"), std::string::npos);
  // Not on the allow-list.
  auto stranger = factoryEnroll(testing::makeIdevid(acme, "sn9"), key2.get());
  EXPECT_EQ(stranger.status, 403);
  EXPECT_NE(stranger.body.find("allow-list"), std::string::npos);
}

TEST_F(FactoryEnrollTest, FactoryCertificateIsNeverAnOperatorNorARenewal) {
  auto acme = testing::makeFactoryCa("Acme IDevID CA");
  addManufacturer("acme", acme, {{"auto_register", true}});
  auto idevid = testing::makeIdevid(acme, "sn1");
  auto c = client(false, idevid.certPem(), idevid.keyPem());
  auto as_admin = send(*c, "GET", "/v1/devices");
  EXPECT_EQ(as_admin.status, 403);
  EXPECT_NE(as_admin.body.find("factory certificate"), std::string::npos);
  auto key = std::move(crypto::generateEcKey()).value();
  auto renew = factoryEnroll(idevid, key.get(), "/.well-known/est/simplereenroll");
  EXPECT_EQ(renew.status, 403);
  auto attrs = send(*c, "GET", "/.well-known/est/csrattrs");
  EXPECT_EQ(attrs.status, 200);
  EXPECT_EQ(attrs.header("content-type"), "application/csrattrs");
}

TEST_F(FactoryEnrollTest, LookAlikeAndUnknownCasFailTheHandshake) {
  auto acme = testing::makeFactoryCa("Acme IDevID CA");
  auto lookalike = testing::makeFactoryCa("Acme IDevID CA");
  addManufacturer("acme", acme, {{"auto_register", true}});
  for (const auto* ca : {&lookalike}) {
    auto idevid = testing::makeIdevid(*ca, "sn1");
    auto c = client(false, idevid.certPem(), idevid.keyPem());
    HttpRequest req;
    req.method = "GET";
    req.target = "/.well-known/est/cacerts";
    EXPECT_FALSE(c->send(req).isOk());
  }
  // Removing the manufacturer takes effect for the next handshakes.
  ASSERT_EQ(admin("DELETE", "/v1/manufacturers/acme").status, 200);
  auto key = std::move(crypto::generateEcKey()).value();
  auto idevid = testing::makeIdevid(acme, "sn1");
  auto c = client(false, idevid.certPem(), idevid.keyPem());
  HttpRequest req;
  req.method = "GET";
  req.target = "/healthz";
  EXPECT_FALSE(c->send(req).isOk());
  EXPECT_EQ(admin("DELETE", "/v1/manufacturers/acme").status, 404);
}

TEST_F(FactoryEnrollTest, ManualApprovalBindsTheFirstKey) {
  auto acme = testing::makeFactoryCa("Acme IDevID CA");
  addManufacturer("acme", acme, {{"auto_register", true}, {"approval", "manual"}});
  auto idevid = testing::makeIdevid(acme, "sn1");
  auto key = std::move(crypto::generateEcKey()).value();
  auto first = factoryEnroll(idevid, key.get());
  ASSERT_EQ(first.status, 202) << first.body;
  EXPECT_EQ(first.header("retry-after"), "60");
  auto pending = json::parse(admin("GET", "/v1/enrollments").body)["requests"];
  ASSERT_EQ(pending.size(), 1u);
  const std::string id = pending[0]["id"];
  EXPECT_EQ(pending[0]["device"], "acme-sn1");
  EXPECT_EQ(pending[0]["kind"], "factory");
  EXPECT_EQ(admin("GET", "/v1/devices/acme-sn1").status, 404);  // nothing before issuance
  auto other = std::move(crypto::generateEcKey()).value();
  EXPECT_EQ(factoryEnroll(idevid, other.get()).status, 403);
  EXPECT_EQ(admin("POST", "/v1/enrollments/" + id + "/approve", "{}").status, 200);
  EXPECT_EQ(admin("POST", "/v1/enrollments/" + id + "/approve", "{}").status, 409);
  EXPECT_EQ(factoryEnroll(idevid, other.get()).status, 403);
  auto issued = factoryEnroll(idevid, key.get());
  ASSERT_EQ(issued.status, 200) << issued.body;
  EXPECT_TRUE(json::parse(admin("GET", "/v1/enrollments").body)["requests"].empty());
  EXPECT_EQ(admin("POST", "/v1/enrollments/" + id + "/deny", "{}").status, 409);
  EXPECT_EQ(admin("POST", "/v1/enrollments/nope/deny", "{}").status, 404);
}

TEST_F(FactoryEnrollTest, SuccessfulEnrollmentsAreNeverRateLimited) {
  std::string token = addDevice("busy-nat");
  auto key = std::move(crypto::generateEcKey()).value();
  std::string body = csrFor(key.get(), "busy-nat");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(enroll("busy-nat", "guess" + std::to_string(i), body).status, 401);
  EXPECT_EQ(enroll("busy-nat", "guess", body).status, 429);  // failures are limited ...
  EXPECT_EQ(enroll("busy-nat", token, body).status, 200);     // ... a valid enrollment is not
}

TEST_F(FactoryEnrollTest, DeviceCertTtlBeatsTheFleetLifetime) {
  auto res = admin("POST", "/v1/devices", json{{"name", "short"}, {"role", "sensor"}, {"cert_ttl", "10m"}}.dump());
  ASSERT_EQ(res.status, 201) << res.body;
  EXPECT_EQ(json::parse(res.body)["cert_ttl"], "10m");
  auto key = std::move(crypto::generateEcKey()).value();
  auto issued = enroll("short", json::parse(res.body)["token"], csrFor(key.get(), "short"));
  ASSERT_EQ(issued.status, 200);
  auto certs = std::move(pki::parsePkcs7CertsOnly(issued.body)).value();
  EXPECT_LE(crypto::notAfter(certs[0].get()) - std::chrono::system_clock::now(), std::chrono::minutes(10));
  EXPECT_EQ(admin("PATCH", "/v1/devices/short", json{{"cert_ttl", "31d"}}.dump()).status, 400);
  EXPECT_EQ(admin("PATCH", "/v1/devices/short", json{{"cert_ttl", "2h"}}.dump()).status, 200);
  EXPECT_EQ(json::parse(admin("GET", "/v1/devices/short").body)["cert_ttl"], "2h");
  EXPECT_EQ(admin("PATCH", "/v1/devices/ghost", json{{"cert_ttl", "2h"}}.dump()).status, 404);
  EXPECT_EQ(admin("POST", "/v1/devices", json{{"name", "bad"}, {"role", "s"}, {"cert_ttl", "30s"}}.dump()).status, 400);
}

TEST_F(ApiServerTest, CsrAttrsServerkeygenAndFullcmc) {
  auto c = client(false);
  auto attrs = send(*c, "GET", "/.well-known/est/csrattrs");
  ASSERT_EQ(attrs.status, 200);
  EXPECT_EQ(attrs.header("content-type"), "application/csrattrs");
  EXPECT_EQ(attrs.header("content-transfer-encoding"), "base64");
  auto parsed = pki::parseCsrAttrsBody(attrs.body);
  ASSERT_TRUE(parsed.isOk());
  EXPECT_TRUE(parsed->wantsEcdsaSha256P256());
  EXPECT_TRUE(checkCsrAttrs(*c).isOk());
  EXPECT_EQ(send(*c, "POST", "/.well-known/est/serverkeygen", "x", {{"Content-Type", "application/pkcs10"}}).status,
            501);
  EXPECT_EQ(send(*c, "POST", "/.well-known/est/fullcmc", "x", {{"Content-Type", "application/pkcc"}}).status, 501);
}

}  // namespace
}  // namespace warden::api

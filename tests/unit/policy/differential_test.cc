// Randomized differential test: random policies, principals and requests;
// the compiled engine (tries, per-action lists, memoized segments) and the
// reference evaluator must give identical decisions and explanations.

#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "policy/policy.h"
#include "unit/policy/reference_evaluator.h"

namespace warden::policy {
namespace {

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool coin(int percent = 50) { return below(100) < percent; }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(below(static_cast<int>(v.size())))];
  }

  std::string selector(int segments_defined) {
    std::vector<std::string> keys;
    if (coin(40)) keys.push_back(fmt::format("role: {}", coin() ? pick(roles_) : "[" + pick(roles_) + ", " + pick(roles_) + "]"));
    if (coin(30)) keys.push_back(fmt::format("labels: {{site: {}}}", coin(20) ? "\"*\"" : pick(sites_)));
    if (coin(20)) keys.push_back(fmt::format("kind: {}", coin() ? "device" : "[device, user]"));
    if (coin(15)) keys.push_back(fmt::format("id: {}", pick(selector_ids_)));
    if (segments_defined > 0 && coin(35)) {
      keys.push_back(fmt::format("segment: {}", coin(15) ? std::string("quarantine")
                                                       : fmt::format("seg{}", below(segments_defined))));
    } else if (coin(10)) {
      keys.push_back("segment: quarantine");
    }
    if (keys.empty()) keys.push_back("kind: \"*\"");
    std::string out = "{";
    for (size_t i = 0; i < keys.size(); ++i) out += (i ? ", " : "") + keys[i];
    return out + "}";
  }

  std::string condition(int segments) {
    switch (below(10)) {
      case 0: return fmt::format("principal.trust >= {}", below(100));
      case 1: return "principal.firmware.approved";
      case 2: return fmt::format("context.time in {:02}:00-{:02}:30", below(24), below(24));
      case 3: return fmt::format("context.weekday in [{}]", coin() ? "mon, tue" : "sat, sun, wed");
      case 4: return coin() ? "context.source_ip in 10.0.0.0/8" : "context.source_ip not in [192.168.0.0/16, fd00::/8]";
      case 5: return fmt::format("principal.cert.age < {}h", 1 + below(48));
      case 6: return fmt::format("has principal.labels.{}", coin() ? "site" : "line");
      case 7: return segments > 0 ? fmt::format("seg{} in principal.segments", below(segments)) : "context.mfa";
      case 8: return fmt::format("principal.labels.site {} {}", coin() ? "==" : "!=", pick(sites_));
      default: return coin() ? "context.mfa == true" : "principal.attestation.assurance >= software";
    }
  }

  std::string policy() {
    std::string y;
    int segments = below(5);
    if (coin(30)) y += coin() ? "timezone: Europe/Berlin\n" : "timezone: America/New_York\n";
    if (segments > 0) {
      y += "segments:\n";
      for (int i = 0; i < segments; ++i) y += fmt::format("  seg{}: {}\n", i, selector(i));
    }
    // Services get disjoint top-level topic roots, so they never overlap
    // across segments; several services may share a segment.
    int services = segments > 0 ? below(4) : 0;
    if (services > 0) {
      y += "services:\n";
      for (int i = 0; i < services; ++i) {
        std::string root = roots_[static_cast<size_t>(i)];
        std::string pattern = coin() ? root + "/#" : root + "/+/x";
        y += fmt::format("  svc{}: {{segment: {}, mqtt: [\"{}\"]}}\n", i,
                         coin(15) ? std::string("quarantine") : fmt::format("seg{}", below(segments)), pattern);
      }
      int flows = below(4);
      if (flows > 0) y += "flows:\n";
      for (int i = 0; i < flows; ++i) {
        std::string from = coin(15) ? "quarantine" : fmt::format("seg{}", below(segments));
        std::string to = coin() ? fmt::format("svc{}", below(services)) : fmt::format("seg{}", below(segments));
        y += fmt::format("  - {{from: {}, to: {}, actions: [{}]}}\n", from, to,
                         coin() ? "mqtt:publish" : "mqtt:publish, mqtt:subscribe, mqtt:receive");
      }
    }
    y += "rules:\n";
    // Sometimes more rules per action than the engine scans linearly, so
    // its indexes (topic trie, principal roles) decide the candidates.
    int rules = coin(25) ? 17 + below(30) : 1 + below(8);
    for (int i = 0; i < rules; ++i) {
      bool forbid = coin(30);
      y += fmt::format("  - id: r{}\n    effect: {}\n    principals: {}\n", i, forbid ? "forbid" : "permit",
                       selector(segments));
      if (coin(20)) {
        std::vector<std::string> ids = {"\"${principal.id}\"", "\"*\"", pick(ids_)};
        y += fmt::format("    actions: [mqtt:connect]\n    resources: [{}]\n", pick(ids));
        continue;
      }
      std::vector<std::string> actions = {"mqtt:publish", "mqtt:subscribe", "mqtt:receive", "mqtt:retain"};
      std::string a = pick(actions);
      if (coin(30)) a += ", " + pick(actions);
      if (a.find("mqtt:publish, mqtt:publish") != std::string::npos) a = "mqtt:publish";
      y += fmt::format("    actions: [{}]\n    resources: [", a);
      int n = 1 + below(2);
      for (int j = 0; j < n; ++j) y += (j ? ", \"" : "\"") + pick(patterns_) + "\"";
      y += "]\n";
      if (coin(40)) {
        y += "    when:\n";
        int c = 1 + below(2);
        for (int j = 0; j < c; ++j) y += fmt::format("      - \"{}\"\n", condition(segments));
      }
    }
    return y;
  }

  Principal principal() {
    Principal p;
    p.id = pick(ids_);
    p.kind = coin(85) ? core::PrincipalKind::kDevice : core::PrincipalKind::kUser;
    p.role = coin(80) ? pick(roles_) : "";
    if (coin(70)) p.labels["site"] = pick(sites_);
    if (coin(30)) p.labels["line"] = "l1";
    p.quarantined = coin(15);
    if (coin(60)) p.trust = below(101);
    if (coin(50)) p.firmware_approved = coin();
    if (coin(50)) p.attestation_assurance = static_cast<AttestationAssurance>(below(3));
    if (coin(50)) p.cert_age = std::chrono::hours(below(72));
    return p;
  }

  Context context() {
    Context c;
    if (coin(80)) c.time = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600 + below(86400 * 14)));
    if (coin(70)) c.source_ip = IpAddress::parse(pick(ips_));
    if (coin(50)) c.mfa = coin();
    if (coin(50)) c.protocol = "mqtt";
    return c;
  }

  std::pair<std::string, std::string> request() {
    static const std::vector<std::string> kActions = {"mqtt:publish", "mqtt:subscribe", "mqtt:receive",
                                                      "mqtt:retain", "mqtt:connect"};
    std::string action = pick(kActions);
    if (action == "mqtt:subscribe") return {action, pick(filters_)};
    if (action == "mqtt:connect") return {action, pick(ids_)};
    return {action, pick(topics_)};
  }

 private:
  std::mt19937 rng_;
  std::vector<std::string> ids_ = {"a", "b", "c1", "$x"};
  std::vector<std::string> selector_ids_ = {"a", "b", "c1"};
  std::vector<std::string> roles_ = {"sensor", "controller", "ota"};
  std::vector<std::string> sites_ = {"p1", "p2"};
  std::vector<std::string> roots_ = {"factory", "vehicle", "ota", "cloud"};
  std::vector<std::string> patterns_ = {"#",          "+/x",         "factory/#",          "factory/+/x",
                                        "vehicle/#",  "ota/${principal.id}/#", "cloud/${principal.labels.site}/+",
                                        "factory/a/x", "$SYS/#",     "$share/g/factory/#", "media/#",
                                        "vehicle/+/x"};
  std::vector<std::string> topics_ = {"factory/a/x", "factory/b/y", "vehicle/a/x", "ota/a/x",  "ota/b/q",
                                      "cloud/p1/x",  "cloud/p2/y",  "media/a",     "$SYS/up",  "x",
                                      "a/x",         "factory"};
  std::vector<std::string> filters_ = {"#",         "+/x",          "factory/#",        "factory/+/x", "vehicle/a/x",
                                       "ota/a/#",   "cloud/+/+",    "$SYS/#",           "media/#",     "a/b",
                                       "$share/g/factory/a/x", "$share/h/#", "+/+/x"};
  std::vector<std::string> ips_ = {"10.1.2.3", "192.168.1.1", "fd00::1", "2001:db8::1"};
};

TEST(PolicyDifferential, CompiledEngineAgreesWithReference) {
  int policies = 0;
  int decisions = 0;
  int permits = 0;
  int flows = 0;
  for (uint32_t seed = 1; seed <= 1000; ++seed) {
    Generator g(seed);
    std::string yaml = g.policy();
    auto parsed = Policy::parse(yaml, "random.yaml");
    ASSERT_TRUE(parsed.isOk()) << parsed.status().message() << "\n" << yaml;
    const Policy& policy = **parsed;
    ++policies;
    for (int i = 0; i < 60; ++i) {
      Principal p = g.principal();
      Context ctx = g.context();
      auto [action, resource] = g.request();
      Decision got = policy.authorize(p, action, resource, ctx);
      Decision want = reference::decide(policy, p, action, resource, ctx);
      std::string where = fmt::format("seed {} request {} {} principal {} quarantined {}\n{}", seed, action, resource,
                                      p.id, p.quarantined, yaml);
      ASSERT_EQ(got.permit, want.permit) << where;
      ASSERT_EQ(got.rule, want.rule) << where;
      ASSERT_EQ(got.reason, want.reason) << where;
      ASSERT_EQ(got.flow, want.flow) << where;
      ASSERT_EQ(got.missing_flows, want.missing_flows) << where;
      ASSERT_EQ(got.valid_until, want.valid_until) << where;
      Explanation e = policy.explain(p, action, resource, ctx);
      Explanation we = reference::explain(policy, p, action, resource, ctx);
      ASSERT_EQ(e.decision.reason, we.decision.reason) << where;
      ASSERT_EQ(e.rules.size(), we.rules.size()) << where;
      for (size_t k = 0; k < e.rules.size(); ++k) {
        ASSERT_EQ(e.rules[k].id, we.rules[k].id) << where;
        ASSERT_EQ(e.rules[k].effect, we.rules[k].effect) << where;
        ASSERT_EQ(e.rules[k].matched, we.rules[k].matched) << where;
        ASSERT_EQ(e.rules[k].why_not.empty(), e.rules[k].matched) << where;
      }
      ++decisions;
      permits += got.permit ? 1 : 0;
      flows += got.reason == "no_flow" ? 1 : 0;
    }
  }
  // The generator must exercise both outcomes and the flow step.
  EXPECT_EQ(policies, 1000);
  EXPECT_GT(permits, decisions / 50);
  EXPECT_GT(flows, 50);
}

}  // namespace
}  // namespace warden::policy

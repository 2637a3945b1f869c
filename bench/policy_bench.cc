// policy_bench measures Policy::authorize, the check the gateway runs on
// every MQTT packet, against a 100-rule policy, and in the same binary a
// baseline: comparing the topic with 100 std::strings (what the cheapest
// possible per-packet ACL scan of 100 literal entries costs). Report the
// authorize figures as ratios to BM_Baseline_StringCompare100.
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "policy/policy.h"

namespace {

using warden::core::PrincipalKind;
using warden::policy::Policy;
using warden::policy::Principal;

// hundredRulePolicy: 90 role rules (a permit per role over the device's own
// telemetry and the line's commands), 8 forbids and 2 operator rules. The
// benchmark principal has role role-89, so its permit is the last one looked
// at: the worst case of a linear scan.
std::string hundredRulePolicyYaml() {
  std::string y = "rules:\n";
  for (int i = 0; i < 90; ++i) {
    y += fmt::format(
        "  - id: role-{0}\n    effect: permit\n    principals: {{role: role-{0}, labels: {{site: \"*\"}}}}\n"
        "    actions: [mqtt:publish, mqtt:subscribe, mqtt:receive]\n"
        "    resources: [\"plant/${{principal.labels.site}}/role-{0}/${{principal.id}}/#\", \"lines/l{0}/+/status\"]\n",
        i);
  }
  for (int i = 0; i < 8; ++i) {
    y += fmt::format(
        "  - id: forbid-{0}\n    effect: forbid\n    principals: {{kind: device}}\n    actions: [\"mqtt:*\"]\n"
        "    resources: [\"firmware-{0}/#\"]\n",
        i);
  }
  y +=
      "  - id: operators\n    effect: permit\n    principals: {kind: user, id: admin}\n    actions: [\"admin:*\"]\n"
      "    resources: [\"*\"]\n"
      "  - id: connect\n    effect: permit\n    principals: {kind: device}\n    actions: [mqtt:connect]\n"
      "    resources: [\"${principal.id}\"]\n";
  return y;
}

const Policy& benchPolicy() {
  static std::shared_ptr<const Policy> policy = [] {
    auto p = Policy::parse(hundredRulePolicyYaml(), "bench.yaml");
    if (!p.isOk()) {
      fmt::print(stderr, "{}\n", p.status().message());
      std::abort();
    }
    return *p;
  }();
  return *policy;
}

Principal benchPrincipal() {
  return Principal{"sensor-0042", PrincipalKind::kDevice, "role-89", {{"site", "plant1"}, {"line", "l3"}}, false};
}

void BM_Baseline_StringCompare100(benchmark::State& state) {
  std::vector<std::string> entries;
  for (int i = 0; i < 100; ++i) entries.push_back(fmt::format("plant/plant1/role-{}/sensor-0042/temp", i));
  std::string topic = "plant/plant1/role-89/sensor-0042/temq";  // matches none: all 100 compared
  for (auto _ : state) {
    bool found = false;
    for (const std::string& e : entries) found |= (e == topic);
    benchmark::DoNotOptimize(found);
  }
}
BENCHMARK(BM_Baseline_StringCompare100);

void BM_AuthorizePublishPermit(benchmark::State& state) {
  const Policy& p = benchPolicy();
  Principal who = benchPrincipal();
  for (auto _ : state) {
    auto d = p.authorize(who, "mqtt:publish", "plant/plant1/role-89/sensor-0042/temp");
    benchmark::DoNotOptimize(d);
    if (!d.permit) state.SkipWithError("expected permit");
  }
}
BENCHMARK(BM_AuthorizePublishPermit);

void BM_AuthorizePublishDeny(benchmark::State& state) {
  const Policy& p = benchPolicy();
  Principal who = benchPrincipal();
  for (auto _ : state) {
    auto d = p.authorize(who, "mqtt:publish", "plant/plant1/role-89/sensor-0043/temp");
    benchmark::DoNotOptimize(d);
    if (d.permit) state.SkipWithError("expected deny");
  }
}
BENCHMARK(BM_AuthorizePublishDeny);

void BM_AuthorizeSubscribePermit(benchmark::State& state) {
  const Policy& p = benchPolicy();
  Principal who = benchPrincipal();
  for (auto _ : state) {
    auto d = p.authorize(who, "mqtt:subscribe", "plant/plant1/role-89/sensor-0042/+/x");
    benchmark::DoNotOptimize(d);
    if (!d.permit) state.SkipWithError("expected permit");
  }
}
BENCHMARK(BM_AuthorizeSubscribePermit);

void BM_AuthorizeSubscribeDenyWildcard(benchmark::State& state) {
  const Policy& p = benchPolicy();
  Principal who = benchPrincipal();
  for (auto _ : state) {
    auto d = p.authorize(who, "mqtt:subscribe", "plant/+/role-89/#");
    benchmark::DoNotOptimize(d);
    if (d.permit) state.SkipWithError("expected deny");
  }
}
BENCHMARK(BM_AuthorizeSubscribeDenyWildcard);

void BM_AuthorizeConnect(benchmark::State& state) {
  const Policy& p = benchPolicy();
  Principal who = benchPrincipal();
  for (auto _ : state) {
    auto d = p.authorize(who, "mqtt:connect", "sensor-0042");
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_AuthorizeConnect);

}  // namespace

BENCHMARK_MAIN();

// policy_bench measures Policy::authorize, the check the gateway runs on
// every MQTT packet, against a 100-rule policy, and in the same binary a
// baseline: comparing the topic with 100 std::strings (what the cheapest
// possible per-packet ACL scan of 100 literal entries costs). Report the
// authorize figures as ratios to BM_Baseline_StringCompare100.
//
// BM_Synthetic*: the issue-3 benchmark. One decision at a time, single
// thread, on a synthetic policy of 1,000 rules (900 permits, 100 forbids),
// 100 segments, 100 services and 100 flows, with 10,000 principals: publish
// on concrete topics, half permitted, half denied (no permit, forbidden,
// no_flow), and subscribe (filter-subset checks) separately. Each reports
// p50_ns and p99_ns of single decisions (steady_clock around each call;
// the clock's own cost, about 20 ns, is included).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "gateway/decision_cache.h"
#include "policy/policy.h"
#include "synthetic_policy.h"

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

// --- the synthetic 1,000-rule policy (bench/synthetic_policy.h) -----------

using warden::bench::SyntheticRequest;
using warden::bench::syntheticPolicy;
using warden::bench::syntheticRequests;

// Samples keeps up to 1M single-decision times and reports p50/p99 as
// benchmark counters.
struct Samples {
  Samples() { ns.reserve(1 << 20); }
  void add(std::chrono::steady_clock::duration d) {
    if (ns.size() < ns.capacity()) {
      ns.push_back(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
    }
  }
  void report(benchmark::State& state) {
    if (ns.empty()) return;
    std::sort(ns.begin(), ns.end());
    state.counters["p50_ns"] = ns[ns.size() / 2];
    state.counters["p99_ns"] = ns[ns.size() * 99 / 100];
    state.counters["requests"] = static_cast<double>(ns.size());
  }
  std::vector<uint32_t> ns;
};

void runSynthetic(benchmark::State& state, std::string_view action, const std::vector<SyntheticRequest>& requests) {
  const Policy& policy = syntheticPolicy();
  warden::policy::Context ctx;
  ctx.time = std::chrono::system_clock::time_point(std::chrono::seconds(1772442000));
  Samples samples;
  size_t i = 0;
  for (auto _ : state) {
    const SyntheticRequest& r = requests[i++ & 4095];
    auto start = std::chrono::steady_clock::now();
    auto d = policy.authorize(*r.principal, action, r.resource, ctx);
    auto end = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(d);
    if (d.permit != r.permit) {
      state.SkipWithError("unexpected decision");
      break;
    }
    samples.add(end - start);
  }
  samples.report(state);
}

void BM_SyntheticPublish1000Rules(benchmark::State& state) {
  static const std::vector<SyntheticRequest> requests = syntheticRequests(false, 4096);
  runSynthetic(state, "mqtt:publish", requests);
}
BENCHMARK(BM_SyntheticPublish1000Rules);

void BM_SyntheticSubscribe1000Rules(benchmark::State& state) {
  static const std::vector<SyntheticRequest> requests = syntheticRequests(true, 4096);
  runSynthetic(state, "mqtt:subscribe", requests);
}
BENCHMARK(BM_SyntheticSubscribe1000Rules);

// --- sessions with and without the decision cache ----------------------------
//
// The gateway decides through a per-session DecisionCache (64 entries, dropped
// when the snapshot changes). A device talks on a handful of topics, so its
// session mostly hits. 64 sessions (synthetic principals), 8 topics each (4
// permitted, 4 denied for the three deny reasons), 4,096 requests in a random
// order; the same sequence with the cache on and off.

struct SessionRequest {
  uint32_t session;
  std::string topic;
  bool permit;
};

std::vector<SessionRequest> sessionRequests() {
  constexpr int kSessions = 64;
  const auto& principals = warden::bench::syntheticPrincipals();
  std::vector<std::vector<SyntheticRequest>> topics(kSessions);
  for (int s = 0; s < kSessions; ++s) {
    const Principal& p = principals[static_cast<size_t>(s) * 151 % principals.size()];
    const int seg = std::stoi(p.role.substr(5));
    for (int j = 0; j < 4; ++j) topics[s].push_back({&p, fmt::format("s{}/{}/r{}/temp", seg, p.id, j), true});
    topics[s].push_back({&p, fmt::format("s{}/dev-x/r0/temp", seg), false});                              // no permit
    topics[s].push_back({&p, fmt::format("s{}/{}/forbidden/x", seg, p.id), false});                        // forbidden
    topics[s].push_back({&p, fmt::format("s{}/{}/r0/temp", (seg + 2) % 100, p.id), false});                 // no flow
    topics[s].push_back({&p, fmt::format("s{}/{}/r1/temp", (seg + 3) % 100, p.id), false});                 // no flow
  }
  std::mt19937 rng(7);
  std::vector<SessionRequest> out;
  for (int n = 0; n < 4096; ++n) {
    uint32_t s = rng() % kSessions;
    const SyntheticRequest& r = topics[s][rng() % topics[s].size()];
    out.push_back(SessionRequest{s, r.resource, r.permit});
  }
  return out;
}

void runSessions(benchmark::State& state, bool cached) {
  static const std::vector<SessionRequest> requests = sessionRequests();
  const Policy& policy = syntheticPolicy();
  const auto& principals = warden::bench::syntheticPrincipals();
  std::vector<warden::gateway::DecisionCache> caches(64);
  warden::policy::Context ctx;
  ctx.time = std::chrono::system_clock::time_point(std::chrono::seconds(1772442000));
  Samples samples;
  size_t i = 0;
  for (auto _ : state) {
    const SessionRequest& r = requests[i++ & 4095];
    const Principal& who = principals[static_cast<size_t>(r.session) * 151 % principals.size()];
    auto start = std::chrono::steady_clock::now();
    bool permit;
    if (cached) {
      warden::gateway::DecisionCache& cache = caches[r.session];
      const warden::policy::Decision* d = cache.find("mqtt:publish", r.topic, *ctx.time);
      if (d == nullptr) d = &cache.insert(policy.authorize(who, "mqtt:publish", r.topic, ctx));
      permit = d->permit;
    } else {
      permit = policy.authorize(who, "mqtt:publish", r.topic, ctx).permit;
    }
    auto end = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(permit);
    if (permit != r.permit) {
      state.SkipWithError("unexpected decision");
      break;
    }
    samples.add(end - start);
  }
  samples.report(state);
}

void BM_SessionsPublish1000RulesCacheOff(benchmark::State& state) { runSessions(state, false); }
BENCHMARK(BM_SessionsPublish1000RulesCacheOff);

void BM_SessionsPublish1000RulesCacheOn(benchmark::State& state) { runSessions(state, true); }
BENCHMARK(BM_SessionsPublish1000RulesCacheOn);

}  // namespace

BENCHMARK_MAIN();

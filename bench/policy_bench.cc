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
#include <random>
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

// --- the synthetic 1,000-rule policy -------------------------------------

constexpr int kSegments = 100;
constexpr int kRulesPerSegment = 10;  // 9 permits + 1 forbid
constexpr int kPrincipals = 10000;

std::string syntheticPolicyYaml() {
  std::string y = "segments:\n";
  for (int i = 0; i < kSegments; ++i) y += fmt::format("  seg-{0}: {{role: role-{0}}}\n", i);
  y += "services:\n";
  for (int i = 0; i < kSegments; ++i) y += fmt::format("  svc-{0}: {{segment: seg-{0}, mqtt: [\"s{0}/#\"]}}\n", i);
  y += "flows:\n";
  for (int i = 0; i < kSegments; ++i) {
    y += fmt::format("  - {{from: seg-{}, to: svc-{}, actions: [mqtt:publish]}}\n", i, (i + 1) % kSegments);
  }
  y += "rules:\n";
  for (int i = 0; i < kSegments; ++i) {
    for (int j = 0; j + 1 < kRulesPerSegment; ++j) {
      y += fmt::format(
          "  - id: seg-{0}-r{1}\n    effect: permit\n    principals: {{segment: seg-{0}}}\n"
          "    actions: [mqtt:publish, mqtt:subscribe]\n    resources: [\"s{0}/${{principal.id}}/r{1}/#\"]\n",
          i, j);
    }
    y += fmt::format(
        "  - id: seg-{0}-forbid\n    effect: forbid\n    principals: {{segment: seg-{0}}}\n"
        "    actions: [mqtt:publish]\n    resources: [\"s{0}/+/forbidden/#\"]\n",
        i);
  }
  return y;
}

const Policy& syntheticPolicy() {
  static std::shared_ptr<const Policy> policy = [] {
    auto p = Policy::parse(syntheticPolicyYaml(), "synthetic.yaml");
    if (!p.isOk()) {
      fmt::print(stderr, "{}\n", p.status().message());
      std::abort();
    }
    return *p;
  }();
  return *policy;
}

struct SyntheticRequest {
  const Principal* principal;
  std::string resource;
  bool permit;
};

const std::vector<Principal>& syntheticPrincipals() {
  static const std::vector<Principal> principals = [] {
    std::vector<Principal> out;
    for (int k = 0; k < kPrincipals; ++k) {
      out.push_back(Principal{fmt::format("dev-{}", k), PrincipalKind::kDevice, fmt::format("role-{}", k % kSegments),
                              {{"site", "plant1"}}, false});
    }
    return out;
  }();
  return principals;
}

// syntheticRequests: 4,096 requests, alternately permitted and denied.
std::vector<SyntheticRequest> syntheticRequests(bool subscribe) {
  const auto& principals = syntheticPrincipals();
  std::mt19937 rng(42);
  std::vector<SyntheticRequest> out;
  for (int n = 0; n < 4096; ++n) {
    const Principal& p = principals[rng() % principals.size()];
    int seg = std::stoi(p.role.substr(5));
    int j = static_cast<int>(rng() % (kRulesPerSegment - 1));
    bool permit = n % 2 == 0;
    std::string r;
    if (subscribe) {
      r = permit ? fmt::format("s{}/{}/r{}/+", seg, p.id, j) : fmt::format("s{}/+/r{}/#", seg, j);
    } else if (permit) {
      r = fmt::format("s{}/{}/r{}/temp", seg, p.id, j);
    } else {
      switch (rng() % 3) {
        case 0: r = fmt::format("s{}/dev-x{}/r{}/temp", seg, n, j); break;     // no permit
        case 1: r = fmt::format("s{}/{}/forbidden/x", seg, p.id); break;      // forbidden
        default: r = fmt::format("s{}/{}/r{}/temp", (seg + 2) % kSegments, p.id, j); break;  // no flow
      }
    }
    out.push_back(SyntheticRequest{&p, std::move(r), permit});
  }
  return out;
}

void runSynthetic(benchmark::State& state, std::string_view action, const std::vector<SyntheticRequest>& requests) {
  const Policy& policy = syntheticPolicy();
  warden::policy::Context ctx;
  ctx.time = std::chrono::system_clock::time_point(std::chrono::seconds(1772442000));
  std::vector<uint32_t> samples;
  samples.reserve(1 << 20);
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
    if (samples.size() < samples.capacity()) {
      samples.push_back(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count()));
    }
  }
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  state.counters["p50_ns"] = samples[samples.size() / 2];
  state.counters["p99_ns"] = samples[samples.size() * 99 / 100];
  state.counters["requests"] = static_cast<double>(samples.size());
}

void BM_SyntheticPublish1000Rules(benchmark::State& state) {
  static const std::vector<SyntheticRequest> requests = syntheticRequests(false);
  runSynthetic(state, "mqtt:publish", requests);
}
BENCHMARK(BM_SyntheticPublish1000Rules);

void BM_SyntheticSubscribe1000Rules(benchmark::State& state) {
  static const std::vector<SyntheticRequest> requests = syntheticRequests(true);
  runSynthetic(state, "mqtt:subscribe", requests);
}
BENCHMARK(BM_SyntheticSubscribe1000Rules);

}  // namespace

BENCHMARK_MAIN();

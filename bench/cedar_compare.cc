// cedar_compare: Warden's policy engine and Cedar side by side on the same
// policy and the same requests (the issue-3 benchmark; docs/benchmarks.md).
//
// This program is Warden's half. It writes, into --out DIR:
//   policy.cedar   the synthetic policy translated to Cedar
//   requests.json  the publish requests with the decision Warden takes on each
//   warden.json    Warden's figures: parse time, p50/p99 of single decisions,
//                  decisions per second (one thread, no decision cache)
// and bench/cedar/compare.mjs (node, @cedar-policy/cedar-wasm) is the other
// half: it first checks that Cedar decides every request as Warden did, then
// times Cedar the same way and prints both side by side. scripts/bench runs
// the two in one run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/file_io.h"
#include "policy/policy.h"
#include "synthetic_policy.h"

namespace {

using warden::bench::SyntheticRequest;
using Clock = std::chrono::steady_clock;

int fail(const std::string& what) {
  std::fprintf(stderr, "cedar_compare: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Warden's half of the Warden-vs-Cedar policy benchmark (see bench/cedar/compare.mjs)"};
  std::string out;
  int request_count = 10000;
  long iterations = 1000000;
  app.add_option("--out", out, "directory for policy.cedar, requests.json and warden.json")->required();
  app.add_option("--requests", request_count, "distinct requests (both engines decide each)")->check(CLI::Range(2, 1000000));
  app.add_option("--iterations", iterations, "timed Warden decisions (the requests, cycled)")->check(CLI::Range(1L, 100000000L));
  CLI11_PARSE(app, argc, argv);

  const auto parse_start = Clock::now();
  auto parsed = warden::policy::Policy::parse(warden::bench::syntheticPolicyYaml(), "synthetic.yaml");
  const auto parse_end = Clock::now();
  if (!parsed.isOk()) return fail(parsed.status().message());
  const warden::policy::Policy& policy = **parsed;
  const std::vector<SyntheticRequest> requests = warden::bench::syntheticRequests(false, request_count);

  warden::policy::Context ctx;
  ctx.time = std::chrono::system_clock::time_point(std::chrono::seconds(1772442000));

  // Decisions first: they are what Cedar must reproduce.
  nlohmann::json list = nlohmann::json::array();
  for (const SyntheticRequest& r : requests) {
    warden::policy::Decision d = policy.authorize(*r.principal, "mqtt:publish", r.resource, ctx);
    if (d.permit != r.permit) {
      return fail(fmt::format("Warden decided {} on {} for {}, the workload expects {}", d.permit ? "permit" : "deny",
                              r.resource, r.principal->id, r.permit ? "permit" : "deny"));
    }
    list.push_back({{"principal", r.principal->id},
                    {"role", r.principal->role},
                    {"topic", r.resource},
                    {"decision", d.permit ? "allow" : "deny"},
                    {"reason", d.reason}});
  }

  // Throughput: the requests cycled, no clock inside the loop.
  size_t permits = 0;
  const auto t0 = Clock::now();
  for (long i = 0; i < iterations; ++i) {
    const SyntheticRequest& r = requests[static_cast<size_t>(i) % requests.size()];
    permits += policy.authorize(*r.principal, "mqtt:publish", r.resource, ctx).permit ? 1 : 0;
  }
  const auto t1 = Clock::now();
  const double seconds = std::chrono::duration<double>(t1 - t0).count();

  // Latency: the same again, each decision timed on its own (the clock's own
  // cost, about 20 ns, is included).
  std::vector<uint32_t> samples;
  samples.reserve(static_cast<size_t>(iterations));
  for (long i = 0; i < iterations; ++i) {
    const SyntheticRequest& r = requests[static_cast<size_t>(i) % requests.size()];
    const auto start = Clock::now();
    bool permit = policy.authorize(*r.principal, "mqtt:publish", r.resource, ctx).permit;
    const auto end = Clock::now();
    permits += permit ? 1 : 0;
    samples.push_back(static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count()));
  }
  std::sort(samples.begin(), samples.end());

  nlohmann::json warden_figures = {
      {"engine", "warden"},
      {"rules", warden::bench::kSyntheticSegments * warden::bench::kSyntheticRulesPerSegment},
      {"segments", warden::bench::kSyntheticSegments},
      {"principals", warden::bench::kSyntheticPrincipals},
      {"requests", requests.size()},
      {"iterations", iterations},
      {"parse_ms", std::chrono::duration<double, std::milli>(parse_end - parse_start).count()},
      {"p50_ns", samples[samples.size() / 2]},
      {"p99_ns", samples[samples.size() * 99 / 100]},
      {"per_second", static_cast<double>(iterations) / seconds},
      {"permits", permits}};

  const std::string dir = out + "/";
  for (const auto& [name, text] : {std::pair<std::string, std::string>{"policy.cedar", warden::bench::syntheticPolicyCedar()},
                                   {"requests.json", nlohmann::json{{"requests", list}}.dump()},
                                   {"warden.json", warden_figures.dump(2)}}) {
    if (auto s = warden::core::writeFileAtomic(dir + name, text, 0644); !s.isOk()) return fail(s.message());
  }
  std::printf("%s\n", warden_figures.dump(2).c_str());
  return 0;
}

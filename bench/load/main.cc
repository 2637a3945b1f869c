// main.cc: warden-load, the load generator behind scripts/bench
// (docs/benchmarks.md). Speaks MQTT 3.1.1 over mutual TLS, QoS 0.

#include <charconv>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include "bench/load/load_scenarios.h"

namespace {

using warden::bench::TargetOptions;

// splitHostPort parses "HOST:PORT" into |host| and |port|.
bool splitHostPort(const std::string& text, std::string& host, uint16_t& port) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const char* b = text.data() + colon + 1;
  const char* e = text.data() + text.size();
  auto [p, ec] = std::from_chars(b, e, port);
  return ec == std::errc() && p == e && port != 0;
}

void addTarget(CLI::App* cmd, std::string& target, TargetOptions& t) {
  cmd->add_option("--target", target, "MQTT endpoint HOST:PORT (gateway or broker)")->required();
  cmd->add_option("--certs", t.certs, "directory written by `warden-load provision`")->required();
  cmd->add_option("--ca", t.ca, "CA bundle that verifies the server certificate")->required();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"warden-load: load generator for Warden benchmarks (MQTT 3.1.1, QoS 0, mutual TLS)"};
  app.require_subcommand(1);

  warden::bench::ProvisionOptions prov;
  auto* p = app.add_subcommand("provision", "add N active devices with library-issued certificates (serve stopped)");
  p->add_option("--dir", prov.dir, "Warden data directory")->required();
  p->add_option("--count", prov.count, "number of devices")->required()->check(CLI::Range(1, 1000000));
  p->add_option("--out", prov.out, "directory for NAME.crt, NAME.key and devices.txt")->required();
  p->add_option("--prefix", prov.prefix, "device name prefix (names are PREFIX0, PREFIX1, ...)");
  p->add_option("--role", prov.role, "device role");
  p->add_option("--policy", prov.policy_file, "also store this policy file as the active policy version");
  p->add_flag("--tokens", prov.tokens, "add pending devices and write OUT/tokens.txt for `warden-load enroll`");

  std::string target;
  warden::bench::LatencyOptions lat;
  auto* l = app.add_subcommand("latency", "publish->subscribe latency at a fixed rate (one publisher, one subscriber)");
  addTarget(l, target, lat.target);
  l->add_option("--rate", lat.rate, "messages per second")->check(CLI::Range(1.0, 1e7));
  l->add_option("--duration", lat.duration_s, "seconds")->check(CLI::Range(0.1, 3600.0));
  l->add_option("--payload", lat.payload, "payload bytes (>= 16)")->check(CLI::Range(16, 256 * 1024));
  l->add_option("--cpu-pid", lat.cpu_pids, "read this process's CPU time around the run (repeatable)");

  warden::bench::MaxRateOptions mr;
  auto* m = app.add_subcommand("max-rate", "publish as fast as possible and report the received rate");
  addTarget(m, target, mr.target);
  m->add_option("--duration", mr.duration_s, "seconds")->check(CLI::Range(0.5, 60.0));
  m->add_option("--payload", mr.payload, "payload bytes (>= 16)")->check(CLI::Range(16, 256 * 1024));
  m->add_option("--batch", mr.batch, "PUBLISH packets per write")->check(CLI::Range(1, 1024));

  warden::bench::IdleOptions idle;
  auto* i = app.add_subcommand("idle", "open N idle sessions, print READY, hold until SIGINT/SIGTERM");
  addTarget(i, target, idle.target);
  i->add_option("--count", idle.count, "sessions")->required()->check(CLI::Range(1, 1000000));
  i->add_option("--concurrency", idle.concurrency, "handshakes in flight")->check(CLI::Range(1, 4096));
  i->add_option("--filters", idle.filters, "subscribe each session to bench/<name>/f0..fN-1 (QoS 0)")
      ->check(CLI::Range(0, 100));
  i->add_option("--hold-max", idle.hold_max_s, "give up holding after this many seconds");

  warden::bench::RevokeOptions rev;
  std::string api;
  auto* r = app.add_subcommand("revoke", "open N sessions, revoke each device via the API, time request->close");
  addTarget(r, target, rev.target);
  r->add_option("--api", api, "admin API HOST:PORT or https://HOST:PORT")->required();
  r->add_option("--admin-cert", rev.admin_cert, "operator certificate (D/pki/admin.pem)")->required();
  r->add_option("--admin-key", rev.admin_key, "operator key (D/pki/admin.key)")->required();
  r->add_option("--admin-ca", rev.admin_ca, "CA bundle that verifies the API server")->required();
  r->add_option("--count", rev.count, "sessions (devices are revoked for good)")->required()->check(CLI::Range(1, 100000));

  warden::bench::EnrollLoadOptions enr;
  std::string enroll_api;
  auto* e = app.add_subcommand("enroll", "EST simpleenroll of every device in TOKENS, each over a new TLS connection");
  e->add_option("--api", enroll_api, "EST/API endpoint HOST:PORT or https://HOST:PORT")->required();
  e->add_option("--ca", enr.ca, "CA bundle that verifies the server certificate")->required();
  e->add_option("--tokens", enr.tokens, "OUT/tokens.txt written by `warden-load provision --tokens`")->required();
  e->add_option("--concurrency", enr.concurrency, "enrollments in flight")->check(CLI::Range(1, 4096));
  e->add_option("--cpu-pid", enr.cpu_pids, "read this process's CPU time around the run (repeatable)");

  warden::bench::RenewStormOptions storm;
  std::string storm_api;
  auto* rs = app.add_subcommand(
      "renew-storm",
      "every device in CERTS renews at once (EST simplereenroll over mutual TLS, new key): time to drain, memory");
  rs->add_option("--api", storm_api, "EST/API endpoint HOST:PORT or https://HOST:PORT")->required();
  rs->add_option("--ca", storm.ca, "CA bundle that verifies the server certificate")->required();
  rs->add_option("--certs", storm.certs, "directory written by `warden-load provision` (enrolled devices)")
      ->required();
  rs->add_option("--devices", storm.devices, "renew only the first N devices (default: all)")
      ->check(CLI::Range(0, 1000000));
  rs->add_option("--concurrency", storm.concurrency, "renewals in flight")->check(CLI::Range(1, 4096));
  rs->add_option("--max-seconds", storm.max_seconds, "stop starting renewals after this long (they count as errors)")
      ->check(CLI::Range(1.0, 3600.0));
  rs->add_option("--mem-pid", storm.mem_pid, "the server's pid: VmRSS/VmHWM before and after, peak reset before");
  rs->add_option("--cpu-pid", storm.cpu_pids, "read this process's CPU time around the run (repeatable)");

  warden::bench::AttestCutoffOptions att;
  std::string attest_api;
  auto* a = app.add_subcommand("attest-cutoff",
                               "open N sessions, send each device's tampered evidence, time evidence->session cut");
  addTarget(a, target, att.target);
  a->add_option("--api", attest_api, "API HOST:PORT or https://HOST:PORT")->required();
  a->add_option("--count", att.count, "sessions (needs count+1 devices; they end quarantined)")
      ->required()
      ->check(CLI::Range(1, 100000));
  a->add_option("--trust-domain", att.trust_domain, "the fleet's SPIFFE trust domain");

  CLI11_PARSE(app, argc, argv);

  auto parseTarget = [&](TargetOptions& t) {
    if (!splitHostPort(target, t.host, t.port)) {
      fmt::print(stderr, "warden-load: --target must be HOST:PORT, got '{}'\n", target);
      return false;
    }
    return true;
  };
  if (p->parsed()) return warden::bench::runProvision(prov);
  if (l->parsed()) return parseTarget(lat.target) ? warden::bench::runLatency(lat) : 2;
  if (m->parsed()) return parseTarget(mr.target) ? warden::bench::runMaxRate(mr) : 2;
  if (i->parsed()) return parseTarget(idle.target) ? warden::bench::runIdle(idle) : 2;
  if (e->parsed()) {
    if (enroll_api.rfind("https://", 0) == 0) enroll_api = enroll_api.substr(8);
    while (!enroll_api.empty() && enroll_api.back() == '/') enroll_api.pop_back();
    if (!splitHostPort(enroll_api, enr.api_host, enr.api_port)) {
      fmt::print(stderr, "warden-load: --api must be HOST:PORT, got '{}'\n", enroll_api);
      return 2;
    }
    return warden::bench::runEnroll(enr);
  }
  if (rs->parsed()) {
    if (storm_api.rfind("https://", 0) == 0) storm_api = storm_api.substr(8);
    while (!storm_api.empty() && storm_api.back() == '/') storm_api.pop_back();
    if (!splitHostPort(storm_api, storm.api_host, storm.api_port)) {
      fmt::print(stderr, "warden-load: --api must be HOST:PORT, got '{}'\n", storm_api);
      return 2;
    }
    return warden::bench::runRenewStorm(storm);
  }
  if (a->parsed()) {
    if (!parseTarget(att.target)) return 2;
    if (attest_api.rfind("https://", 0) == 0) attest_api = attest_api.substr(8);
    while (!attest_api.empty() && attest_api.back() == '/') attest_api.pop_back();
    if (!splitHostPort(attest_api, att.api_host, att.api_port)) {
      fmt::print(stderr, "warden-load: --api must be HOST:PORT, got '{}'\n", attest_api);
      return 2;
    }
    return warden::bench::runAttestCutoff(att);
  }
  if (r->parsed()) {
    if (!parseTarget(rev.target)) return 2;
    if (api.rfind("https://", 0) == 0) api = api.substr(8);
    while (!api.empty() && api.back() == '/') api.pop_back();
    if (!splitHostPort(api, rev.api_host, rev.api_port)) {
      fmt::print(stderr, "warden-load: --api must be HOST:PORT, got '{}'\n", api);
      return 2;
    }
    return warden::bench::runRevoke(rev);
  }
  return 2;
}

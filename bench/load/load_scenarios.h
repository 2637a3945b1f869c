#pragma once

// load_scenarios.h: the subcommands of warden-load, the load generator for
// the benchmarks in docs/benchmarks.md. Each returns a process exit code and
// prints one machine-readable "RESULT <name> key=value ..." line that
// scripts/bench parses.

#include <cstdint>
#include <string>
#include <vector>

namespace warden::bench {

struct ProvisionOptions {
  std::string dir, out, prefix = "bench-", role = "bench";
  std::string policy_file;  // optional: stored as the active policy
  int count = 0;
  bool tokens = false;  // pending devices with tokens (OUT/tokens.txt) instead of enrolled ones
};
// runProvision adds |count| active devices with library-issued certificates
// to the store of data dir |dir| (serve must not be running) and writes
// OUT/<name>.crt (leaf + issuing CA), OUT/<name>.key and OUT/devices.txt.
// With |tokens| it adds pending devices and writes OUT/tokens.txt ("NAME
// TOKEN" lines, 0600) for `warden-load enroll`.
int runProvision(const ProvisionOptions& options);

struct TargetOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  std::string certs, ca;
};

struct LatencyOptions {
  TargetOptions target;
  double rate = 1000;
  double duration_s = 10;
  size_t payload = 64;
  std::vector<int> cpu_pids;  // processes whose CPU time is read around the run
};
// runLatency measures publish->subscribe latency of QoS 0 messages sent at
// |rate| per second by one publisher to one subscriber.
int runLatency(const LatencyOptions& options);

struct MaxRateOptions {
  TargetOptions target;
  double duration_s = 3;
  size_t payload = 64;
  int batch = 1;  // PUBLISH packets per write (1 = one TLS write per message, like a device)
};
// runMaxRate publishes as fast as the connection takes it for |duration_s|
// and reports the rate at which the subscriber received.
int runMaxRate(const MaxRateOptions& options);

struct IdleOptions {
  TargetOptions target;
  int count = 0, concurrency = 32;
  int filters = 0;  // each session subscribes to bench/<name>/f0..f<filters-1>
  double hold_max_s = 600;
};
// runIdle opens |count| MQTT sessions, prints "READY ..." and holds them
// until SIGINT/SIGTERM (or |hold_max_s|).
int runIdle(const IdleOptions& options);

struct RevokeOptions {
  TargetOptions target;
  std::string api_host = "127.0.0.1";
  uint16_t api_port = 0;
  std::string admin_cert, admin_key, admin_ca;
  int count = 0;
};
// runRevoke opens |count| sessions, then revokes the devices one by one
// through the admin API and measures request -> socket close.
int runRevoke(const RevokeOptions& options);

struct AttestCutoffOptions {
  TargetOptions target;
  std::string api_host = "127.0.0.1";
  uint16_t api_port = 0;
  std::string trust_domain = "warden.local";
  int count = 0;
};
// runAttestCutoff opens |count| sessions, then for each device submits
// tampered attestation evidence (its signed log signed by another device's
// key) over its own mutual-TLS session to the API and measures evidence
// request -> its MQTT session cut (the policy must give quarantine no MQTT
// rights). Needs |count| + 1 devices (the last one's key forges).
int runAttestCutoff(const AttestCutoffOptions& options);

struct EnrollLoadOptions {
  std::string api_host = "127.0.0.1";
  uint16_t api_port = 0;
  std::string ca, tokens;
  int concurrency = 16;
  std::vector<int> cpu_pids;  // processes whose CPU time is read around the run
};
// runEnroll enrolls every device of |tokens| through EST simpleenroll, each
// over a new TLS connection, |concurrency| at a time, and reports the rate.
int runEnroll(const EnrollLoadOptions& options);

struct RenewStormOptions {
  std::string api_host = "127.0.0.1";
  uint16_t api_port = 0;
  std::string ca, certs;
  int devices = 0;  // 0: every device of CERTS/devices.txt
  int concurrency = 64;
  double max_seconds = 600;  // give up (counting the rest as errors) after this long
  int mem_pid = 0;           // the server: VmRSS/VmHWM read around the storm, its peak reset before
  std::vector<int> cpu_pids;
};
// runRenewStorm has every device of |certs| (written by `warden-load
// provision`) renew at once through EST simplereenroll over mutual TLS with
// its current certificate and a new key, |concurrency| in flight, and
// reports the time to drain, renewals/s, latency, errors and the server's
// memory.
int runRenewStorm(const RenewStormOptions& options);

}  // namespace warden::bench

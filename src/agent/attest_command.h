#pragma once

// attest_command.h: attestation from the agent's point of view — the
// schedule inside `warden-agent run` and the one-shot `warden-agent attest`.
// The rounds themselves are DeviceAttestor's (device_attestor.h).

#include <chrono>
#include <memory>
#include <random>
#include <string>

#include "agent/agent_files.h"
#include "agent/device_key.h"
#include "api/api_client.h"

namespace warden::agent {

class DeviceAttestor;

// AttestationSettings are the attestation options of `run` and `attest`.
struct AttestationSettings {
  std::string tpm;       // TCTI; empty: software evidence signed by the device key
  std::string firmware;  // image measured into PCR 10; empty: an empty log
  std::chrono::seconds interval{60};  // when the server's next_due_s is null
};

// AttestationSchedule runs attestation rounds inside `warden-agent run`:
// next() says when the next round is due, round() runs it and schedules the
// one after (the server's next_due_s, else the interval; after an error, an
// exponential backoff of 5 s to 5 min). It never fails: errors are logged.
class AttestationSchedule {
 public:
  AttestationSchedule(AttestationSettings settings, AgentPaths paths);
  ~AttestationSchedule();

  std::chrono::system_clock::time_point next() const { return next_; }
  void round(const api::ServerUrl& url, const DeviceKeyStore& keys);

 private:
  AttestationSettings settings_;
  AgentPaths paths_;
  std::unique_ptr<DeviceAttestor> attestor_;  // made at the first round (and again after it failed)
  std::chrono::system_clock::time_point next_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

struct AttestOptions {
  std::string dir;
  AttestationSettings settings;
  bool output_json = false;
  std::string log_level = "warn";
};

// runAttest runs one attestation round for the agent directory and prints
// the server's verdict (text, or the verdict JSON with -o json). Exit code
// 0 when the result is ok, 1 when it failed, 2 on any error (the round did
// not complete: no TPM, server unreachable, a refusal).
int runAttest(const AttestOptions& options);

}  // namespace warden::agent

#pragma once

#include <optional>
#include <string>

#include "agent/attest_command.h"

namespace warden::agent {

struct RunOptions {
  std::string dir;                 // agent directory A (written by enroll)
  std::string log_level = "info";
  bool renew_now = false;          // renew at start instead of at 2/3 of the life
  bool once = false;               // exit after the first renewal attempt
  bool keep_key = false;           // reuse the current key instead of a new one
  // Attestation rounds between renewals (not with |once|).
  AttestationSettings attestation;
};

// runAgent keeps the device's certificate renewed through simplereenroll
// (mutual TLS with the current certificate) at 2/3 of its life, retrying
// with exponential backoff and jitter, and refreshes ca.pem from cacerts.
// Between renewals, on the same thread, it attests (AttestationSchedule).
// SIGTERM/SIGINT end it with 0. Returns 2 if A is not an enrolled agent
// directory; with |once|, the exit code of the attempt (0, 1 or 3).
int runAgent(const RunOptions& options);

}  // namespace warden::agent

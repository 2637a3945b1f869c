#pragma once

#include <string>

namespace warden::agent {

struct RunOptions {
  std::string dir;                 // agent directory A (written by enroll)
  std::string log_level = "info";
  bool renew_now = false;          // renew at start instead of at 2/3 of the life
  bool once = false;               // exit after the first renewal attempt
  bool keep_key = false;           // reuse the current key instead of a new one
};

// runAgent keeps the device's certificate renewed through simplereenroll
// (mutual TLS with the current certificate) at 2/3 of its life, retrying
// with exponential backoff and jitter, and refreshes ca.pem from cacerts.
// SIGTERM/SIGINT end it with 0. Returns 2 if A is not an enrolled agent
// directory; with |once|, the exit code of the attempt (0, 1 or 3).
int runAgent(const RunOptions& options);

}  // namespace warden::agent

#pragma once

#include <cstdio>
#include <string>
#include <string_view>

// Messages of `warden-agent` commands that are not log lines: errors and
// progress on stderr, so stdout carries only the result (text or JSON).
namespace warden::agent {

// printError prints "warden-agent: error: |message|" on stderr.
inline void printError(std::string_view message) {
  std::fprintf(stderr, "warden-agent: error: %.*s\n", static_cast<int>(message.size()), message.data());
}

// logInfo prints a progress line on stderr (kept quiet with -o json).
inline void logInfo(bool quiet, std::string_view message) {
  if (quiet) return;
  std::fprintf(stderr, "warden-agent: %.*s\n", static_cast<int>(message.size()), message.data());
}

}  // namespace warden::agent

#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace warden::core {

using SystemTime = std::chrono::system_clock::time_point;
using Seconds = std::chrono::seconds;

// Clock is the one source of wall-clock and monotonic time, injectable so
// that expiry, renewal and rate logic is testable without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual SystemTime now() const = 0;
  virtual std::chrono::steady_clock::time_point steadyNow() const = 0;
};

// systemClock returns the process-wide real clock.
const Clock& systemClock();

// ManualClock is a Clock that only moves when told to (tests).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(SystemTime start) : now_(start), steady_(std::chrono::steady_clock::time_point{}) {}
  SystemTime now() const override { return now_; }
  std::chrono::steady_clock::time_point steadyNow() const override { return steady_; }
  void advance(std::chrono::nanoseconds d) { now_ += std::chrono::duration_cast<SystemTime::duration>(d); steady_ += d; }

 private:
  SystemTime now_;
  std::chrono::steady_clock::time_point steady_;
};

// unixSeconds returns |t| as seconds since the Unix epoch.
int64_t unixSeconds(SystemTime t);
// fromUnixSeconds is the inverse of unixSeconds.
SystemTime fromUnixSeconds(int64_t s);
// formatRfc3339 returns |t| as "2026-11-26T02:21:30Z" (UTC, whole seconds).
std::string formatRfc3339(SystemTime t);

}  // namespace warden::core

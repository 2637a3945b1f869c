#pragma once

// deny_limiter.h: per-session rate limit for `deny` events: at most
// |max_per_window| per window (default 20 per 10 s); the rest are counted and
// reported as one `deny_burst` event with the count once the window has
// closed (or when the session ends).
//
// Use, on the session's strand (not thread-safe):
//   on each deny:   if (auto n = limiter.takeBurst(now)) emit deny_burst(*n);
//                   if (limiter.shouldEmit(now)) emit deny(...);
//   on close:       if (auto n = limiter.finish()) emit deny_burst(*n);
// (onDeny() bundles the first two steps.)

#include <chrono>
#include <cstdint>
#include <optional>

namespace warden::monitor {

class DenyLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct DenyVerdict {
    bool emit_deny = false;                // record this deny as a `deny` event
    std::optional<uint64_t> burst;         // record a `deny_burst` with this count first
  };

  explicit DenyLimiter(uint32_t max_per_window = 20,
                       std::chrono::steady_clock::duration window = std::chrono::seconds(10));

  // shouldEmit counts one deny at |now| and reports whether it may be
  // recorded as a `deny` event (false: it was suppressed and counted).
  bool shouldEmit(TimePoint now);
  // takeBurst returns the number of denies suppressed in windows that have
  // closed by |now| (and resets it), or nullopt if none.
  std::optional<uint64_t> takeBurst(TimePoint now);
  // onDeny is takeBurst(now) followed by shouldEmit(now).
  DenyVerdict onDeny(TimePoint now);
  // finish returns every suppressed deny not yet reported, the current
  // window included (session close), or nullopt if none.
  std::optional<uint64_t> finish();

 private:
  void roll(TimePoint now);

  const uint32_t max_per_window_;
  const std::chrono::steady_clock::duration window_;
  bool window_open_ = false;
  TimePoint window_start_{};
  uint32_t emitted_in_window_ = 0;
  uint64_t suppressed_in_window_ = 0;
  uint64_t closed_suppressed_ = 0;  // from closed windows, not yet taken
};

}  // namespace warden::monitor

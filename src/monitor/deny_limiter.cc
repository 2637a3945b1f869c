#include "monitor/deny_limiter.h"

namespace warden::monitor {

DenyLimiter::DenyLimiter(uint32_t max_per_window, std::chrono::steady_clock::duration window)
    : max_per_window_(max_per_window), window_(window) {}

void DenyLimiter::roll(TimePoint now) {
  // Fixed windows that start at the first deny after the previous one closed.
  if (window_open_ && now - window_start_ >= window_) {
    closed_suppressed_ += suppressed_in_window_;
    window_open_ = false;
    emitted_in_window_ = 0;
    suppressed_in_window_ = 0;
  }
}

bool DenyLimiter::shouldEmit(TimePoint now) {
  roll(now);
  if (!window_open_) {
    window_open_ = true;
    window_start_ = now;
  }
  if (emitted_in_window_ < max_per_window_) {
    ++emitted_in_window_;
    return true;
  }
  ++suppressed_in_window_;
  return false;
}

std::optional<uint64_t> DenyLimiter::takeBurst(TimePoint now) {
  roll(now);
  if (closed_suppressed_ == 0) return std::nullopt;
  uint64_t n = closed_suppressed_;
  closed_suppressed_ = 0;
  return n;
}

DenyLimiter::DenyVerdict DenyLimiter::onDeny(TimePoint now) {
  DenyVerdict v;
  v.burst = takeBurst(now);
  v.emit_deny = shouldEmit(now);
  return v;
}

std::optional<uint64_t> DenyLimiter::finish() {
  uint64_t n = closed_suppressed_ + suppressed_in_window_;
  closed_suppressed_ = 0;
  suppressed_in_window_ = 0;
  emitted_in_window_ = 0;
  window_open_ = false;
  if (n == 0) return std::nullopt;
  return n;
}

}  // namespace warden::monitor

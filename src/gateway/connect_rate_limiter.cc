#include "gateway/connect_rate_limiter.h"

#include <algorithm>

namespace warden::gateway {

bool ConnectRateLimiter::allow(const std::string& address, TimePoint now) {
  if (now - last_prune_ > std::chrono::seconds(60)) prune(now);
  auto [it, inserted] = buckets_.try_emplace(address, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!inserted) {
    double elapsed = std::chrono::duration<double>(now - b.last).count();
    if (elapsed > 0) b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.last = now;
  }
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

void ConnectRateLimiter::prune(TimePoint now) {
  last_prune_ = now;
  // A bucket that would be full again carries no information.
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    double elapsed = std::chrono::duration<double>(now - it->second.last).count();
    if (it->second.tokens + elapsed * rate_ >= burst_) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace warden::gateway

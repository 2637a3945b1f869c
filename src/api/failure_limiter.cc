#include "api/failure_limiter.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace warden::api {

int64_t FailureLimiter::retryAfter(const std::string& source, TimePoint now) {
  auto it = buckets_.find(source);
  if (it == buckets_.end()) return 0;
  Bucket& b = it->second;
  TimePoint end = b.window_start + window_;
  if (now >= end) {
    buckets_.erase(it);
    return 0;
  }
  if (b.failures < max_failures_) return 0;
  auto left = std::chrono::ceil<std::chrono::seconds>(end - now).count();
  return left < 1 ? 1 : left;
}

void FailureLimiter::recordFailure(const std::string& source, TimePoint now) {
  auto it = buckets_.find(source);
  if (it != buckets_.end() && now >= it->second.window_start + window_) {
    buckets_.erase(it);
    it = buckets_.end();
  }
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_sources_) prune(now);
    // Still full: every tracked source failed within the window. Forget the
    // oldest window rather than grow without bound.
    if (buckets_.size() >= max_sources_) {
      auto oldest = buckets_.begin();
      for (auto j = buckets_.begin(); j != buckets_.end(); ++j) {
        if (j->second.window_start < oldest->second.window_start) oldest = j;
      }
      buckets_.erase(oldest);
    }
    it = buckets_.emplace(source, Bucket{now, 0}).first;
  }
  ++it->second.failures;
}

void FailureLimiter::prune(TimePoint now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    if (now >= it->second.window_start + window_) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
}

std::string sourceKey(const std::string& address) {
  std::array<unsigned char, 16> v6{};
  if (inet_pton(AF_INET6, address.c_str(), v6.data()) == 1) {
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char buf[INET6_ADDRSTRLEN] = {};
    if (std::memcmp(v6.data(), kMapped, sizeof(kMapped)) == 0) {
      inet_ntop(AF_INET, v6.data() + 12, buf, sizeof(buf));
      return buf;
    }
    std::fill(v6.begin() + 8, v6.end(), 0);
    inet_ntop(AF_INET6, v6.data(), buf, sizeof(buf));
    return std::string(buf) + "/64";
  }
  return address;
}

}  // namespace warden::api

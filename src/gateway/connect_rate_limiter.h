#pragma once

#include <chrono>
#include <string>
#include <unordered_map>

namespace warden::gateway {

// ConnectRateLimiter caps new connections per source address with a token
// bucket (|rate| per second, |burst| deep). Not thread-safe: it lives on the
// io thread. Idle buckets are forgotten so the map stays bounded by the
// number of recently active addresses.
class ConnectRateLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  ConnectRateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}

  // allow takes one token for |address| at time |now| and reports whether
  // one was available.
  bool allow(const std::string& address, TimePoint now);

  size_t trackedAddresses() const { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens;
    TimePoint last;
  };
  void prune(TimePoint now);

  double rate_, burst_;
  std::unordered_map<std::string, Bucket> buckets_;
  TimePoint last_prune_{};
};

}  // namespace warden::gateway

#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <unordered_map>

namespace warden::api {

// FailureLimiter counts authentication failures per source address in fixed
// windows (e.g. 10 per minute) so that token guessing is slow, without ever
// locking a device name (which would let anyone lock out a device). Not
// thread-safe: the API server uses it on its io thread only.
class FailureLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  FailureLimiter(int max_failures, std::chrono::seconds window, size_t max_sources = 100000)
      : max_failures_(max_failures), window_(window), max_sources_(max_sources) {}

  // retryAfter returns 0 if |source| may try now, else the whole seconds
  // until its window ends (the Retry-After value).
  int64_t retryAfter(const std::string& source, TimePoint now);
  // recordFailure counts one failure of |source|.
  void recordFailure(const std::string& source, TimePoint now);

  size_t trackedSources() const { return buckets_.size(); }

 private:
  struct Bucket {
    TimePoint window_start;
    int failures = 0;
  };
  void prune(TimePoint now);

  int max_failures_;
  std::chrono::seconds window_;
  size_t max_sources_;
  std::unordered_map<std::string, Bucket> buckets_;
};

// sourceKey returns the rate-limit key of a peer address given in textual
// form: an IPv4 address as is (IPv4-mapped IPv6 unwrapped), an IPv6 address
// reduced to its /64 prefix (one host usually owns a whole /64).
std::string sourceKey(const std::string& address);

}  // namespace warden::api

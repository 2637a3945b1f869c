#include "api/failure_limiter.h"

#include <gtest/gtest.h>

namespace warden::api {
namespace {

using std::chrono::seconds;
using TimePoint = FailureLimiter::TimePoint;

TEST(FailureLimiter, AllowsUntilTheLimitThenAsksToRetryAfterTheWindow) {
  FailureLimiter limiter(3, seconds(60));
  TimePoint t0{};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(limiter.retryAfter("10.0.0.1", t0), 0);
    limiter.recordFailure("10.0.0.1", t0);
  }
  EXPECT_EQ(limiter.retryAfter("10.0.0.1", t0), 60);
  EXPECT_EQ(limiter.retryAfter("10.0.0.1", t0 + seconds(59)), 1);
  EXPECT_EQ(limiter.retryAfter("10.0.0.1", t0 + seconds(60)), 0);
}

TEST(FailureLimiter, SourcesAreIndependent) {
  FailureLimiter limiter(1, seconds(60));
  TimePoint t0{};
  limiter.recordFailure("10.0.0.1", t0);
  EXPECT_GT(limiter.retryAfter("10.0.0.1", t0), 0);
  EXPECT_EQ(limiter.retryAfter("10.0.0.2", t0), 0);
}

TEST(FailureLimiter, StaysBounded) {
  FailureLimiter limiter(1, seconds(60), 4);
  TimePoint t0{};
  for (int i = 0; i < 10; ++i) limiter.recordFailure("s" + std::to_string(i), t0 + seconds(i));
  EXPECT_LE(limiter.trackedSources(), 4u);
  EXPECT_GT(limiter.retryAfter("s9", t0 + seconds(9)), 0);
}

TEST(SourceKey, GroupsIpv6ByPrefixAndUnwrapsMappedIpv4) {
  EXPECT_EQ(sourceKey("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(sourceKey("::ffff:192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(sourceKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(sourceKey("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
}

}  // namespace
}  // namespace warden::api

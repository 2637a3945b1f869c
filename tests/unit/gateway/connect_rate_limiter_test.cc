#include "gateway/connect_rate_limiter.h"

#include <gtest/gtest.h>

namespace warden::gateway {
namespace {

using std::chrono::milliseconds;

TEST(ConnectRateLimiterTest, AllowsBurstThenRefills) {
  ConnectRateLimiter limiter(50, 200);
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(limiter.allow("10.0.0.1", t)) << i;
  EXPECT_FALSE(limiter.allow("10.0.0.1", t));
  // Another address has its own bucket.
  EXPECT_TRUE(limiter.allow("10.0.0.2", t));
  // 50/s: after 100 ms five more.
  t += milliseconds(100);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(limiter.allow("10.0.0.1", t)) << i;
  EXPECT_FALSE(limiter.allow("10.0.0.1", t));
}

TEST(ConnectRateLimiterTest, ForgetsIdleAddresses) {
  ConnectRateLimiter limiter(50, 200);
  auto t = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 1000; ++i) (void)limiter.allow("10.0.0." + std::to_string(i), t);
  EXPECT_EQ(limiter.trackedAddresses(), 1000u);
  t += std::chrono::minutes(5);
  (void)limiter.allow("10.1.0.1", t);
  EXPECT_EQ(limiter.trackedAddresses(), 1u);
}

}  // namespace
}  // namespace warden::gateway

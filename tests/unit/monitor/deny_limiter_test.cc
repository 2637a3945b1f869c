#include "monitor/deny_limiter.h"

#include <chrono>

#include <gtest/gtest.h>

namespace warden::monitor {
namespace {

using namespace std::chrono_literals;
using TimePoint = DenyLimiter::TimePoint;

const TimePoint kT0 = TimePoint{} + 1000s;

TEST(DenyLimiterTest, FirstTwentyDeniesInAWindowAreEmitted) {
  DenyLimiter limiter;
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(limiter.shouldEmit(kT0 + std::chrono::milliseconds(i))) << i;
  EXPECT_FALSE(limiter.shouldEmit(kT0 + 1s));
  EXPECT_FALSE(limiter.shouldEmit(kT0 + 9s));
}

TEST(DenyLimiterTest, BurstIsReportedOnceAfterTheWindowCloses) {
  DenyLimiter limiter;
  for (int i = 0; i < 25; ++i) limiter.shouldEmit(kT0);
  EXPECT_EQ(limiter.takeBurst(kT0 + 9s), std::nullopt);  // window still open
  auto burst = limiter.takeBurst(kT0 + 10s);
  ASSERT_TRUE(burst.has_value());
  EXPECT_EQ(*burst, 5u);
  EXPECT_EQ(limiter.takeBurst(kT0 + 11s), std::nullopt);  // taken once
}

TEST(DenyLimiterTest, NewWindowAllowsTwentyAgain) {
  DenyLimiter limiter;
  for (int i = 0; i < 30; ++i) limiter.shouldEmit(kT0);
  auto v = limiter.onDeny(kT0 + 10s);
  ASSERT_TRUE(v.burst.has_value());
  EXPECT_EQ(*v.burst, 10u);
  EXPECT_TRUE(v.emit_deny);
  for (int i = 1; i < 20; ++i) EXPECT_TRUE(limiter.shouldEmit(kT0 + 10s));
  EXPECT_FALSE(limiter.shouldEmit(kT0 + 19s));
}

TEST(DenyLimiterTest, NoBurstWithoutSuppression) {
  DenyLimiter limiter;
  for (int i = 0; i < 20; ++i) EXPECT_TRUE(limiter.shouldEmit(kT0));
  EXPECT_EQ(limiter.takeBurst(kT0 + 60s), std::nullopt);
  EXPECT_EQ(limiter.finish(), std::nullopt);
}

TEST(DenyLimiterTest, FinishReportsTheOpenWindowAndClosedOnes) {
  DenyLimiter limiter;
  for (int i = 0; i < 23; ++i) limiter.shouldEmit(kT0);  // 3 suppressed, window closes later
  for (int i = 0; i < 22; ++i) limiter.shouldEmit(kT0 + 10s);  // new window: 2 suppressed
  auto n = limiter.finish();
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 5u);
  EXPECT_EQ(limiter.finish(), std::nullopt);
}

TEST(DenyLimiterTest, CustomLimits) {
  DenyLimiter limiter(2, 1s);
  EXPECT_TRUE(limiter.shouldEmit(kT0));
  EXPECT_TRUE(limiter.shouldEmit(kT0));
  EXPECT_FALSE(limiter.shouldEmit(kT0));
  auto v = limiter.onDeny(kT0 + 1s);
  EXPECT_EQ(v.burst, std::optional<uint64_t>(1));
  EXPECT_TRUE(v.emit_deny);
}

}  // namespace
}  // namespace warden::monitor

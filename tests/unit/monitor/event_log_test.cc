#include "monitor/event_log.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store/sqlite_store.h"
#include "unit/testing/temp_dir.h"

namespace warden::monitor {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kStart = 1'800'000'000;

class TempDir : public warden::testing::TempDir {
 public:
  TempDir() : warden::testing::TempDir("warden-events") {}
};

Event deny(const std::string& topic) {
  Event e;
  e.type = "deny";
  e.principal = "spiffe://warden.local/device/temp-1";
  e.actor = "spiffe://warden.local/device/temp-1";
  e.action = "mqtt:publish";
  e.resource = topic;
  e.decision = "deny";
  e.rule = "default-deny";
  e.reason = "no_permit";
  return e;
}

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::SqliteStore::open(dir_.file("warden.db"), clock_);
    ASSERT_TRUE(s.isOk()) << s.status().toString();
    store_ = std::move(s).value();
  }

  std::vector<store::EventRecord> all() {
    auto r = store_->listEvents(int64_t{0}, 1'000'000);
    EXPECT_TRUE(r.isOk());
    return r.isOk() ? std::move(r).value() : std::vector<store::EventRecord>{};
  }

  TempDir dir_;
  core::ManualClock clock_{core::fromUnixSeconds(kStart)};
  std::unique_ptr<store::Store> store_;
};

TEST_F(EventLogTest, RecordedEventsAreStoredInOrderAfterFlush) {
  EventLog log(*store_, clock_);
  for (int i = 0; i < 2500; ++i) log.record(deny("t/" + std::to_string(i)));
  log.flush();
  auto events = all();
  ASSERT_EQ(events.size(), 2500u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].resource, "t/" + std::to_string(i));
    EXPECT_EQ(events[i].time, kStart);
    if (i > 0) {
      EXPECT_GT(events[i].id, events[i - 1].id);
    }
  }
  EXPECT_EQ(events[0].reason, "no_permit");
  EXPECT_EQ(events[0].rule, "default-deny");
}

TEST_F(EventLogTest, ConcurrentRecordersLoseNothing) {
  EventLog log(*store_, clock_);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log, t] {
      for (int i = 0; i < 500; ++i) log.record(deny(std::to_string(t) + "/" + std::to_string(i)));
    });
  }
  for (auto& th : threads) th.join();
  log.flush();
  EXPECT_EQ(all().size(), 2000u);
  EXPECT_EQ(log.droppedTotal(), 0u);
}

TEST_F(EventLogTest, DestructorFlushes) {
  {
    EventLog log(*store_, clock_);
    for (int i = 0; i < 100; ++i) log.record(deny("x"));
  }
  EXPECT_EQ(all().size(), 100u);
}

TEST_F(EventLogTest, FollowersSeeCommittedBatchesWithIds) {
  EventLog log(*store_, clock_);
  std::mutex mu;
  std::vector<store::EventRecord> seen;
  bool stored_when_notified = true;
  store::Store* store = store_.get();
  uint64_t id = log.subscribe([&](const std::vector<store::EventRecord>& batch) {
    // The batch is committed before followers hear of it.
    auto last = store->lastEventId();
    std::lock_guard lock(mu);
    if (!last.isOk() || *last < batch.back().id) stored_when_notified = false;
    seen.insert(seen.end(), batch.begin(), batch.end());
  });
  for (int i = 0; i < 10; ++i) log.record(deny(std::to_string(i)));
  log.flush();
  {
    std::lock_guard lock(mu);
    ASSERT_EQ(seen.size(), 10u);
    EXPECT_TRUE(stored_when_notified);
    for (size_t i = 0; i < seen.size(); ++i) {
      EXPECT_EQ(seen[i].resource, std::to_string(i));
      EXPECT_GT(seen[i].id, 0);
    }
  }
  log.unsubscribe(id);
  log.record(deny("after"));
  log.flush();
  std::lock_guard lock(mu);
  EXPECT_EQ(seen.size(), 10u);
}

TEST_F(EventLogTest, SubscriberMayUnsubscribeItself) {
  EventLog log(*store_, clock_);
  std::atomic<int> calls{0};
  uint64_t id = 0;
  id = log.subscribe([&](const std::vector<store::EventRecord>&) {
    ++calls;
    log.unsubscribe(id);
  });
  log.record(deny("a"));
  log.flush();
  log.record(deny("b"));
  log.flush();
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(EventLogTest, OverflowIsCountedAndReportedAsOneEvent) {
  EventLogOptions options;
  options.max_queue = 3;
  EventLog log(*store_, clock_, options);
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> release_f = release.get_future().share();
  std::atomic<bool> first{true};
  log.subscribe([&](const std::vector<store::EventRecord>&) {
    if (first.exchange(false)) {
      entered.set_value();
      release_f.wait();  // hold the writer so the queue fills
    }
  });
  log.record(deny("first"));
  entered.get_future().wait();
  for (int i = 0; i < 8; ++i) log.record(deny("q" + std::to_string(i)));  // 3 queued, 5 dropped
  EXPECT_EQ(log.droppedTotal(), 5u);
  release.set_value();
  log.flush();
  auto events = all();
  ASSERT_EQ(events.size(), 5u);  // first + 3 queued + events_dropped
  EXPECT_EQ(events[0].resource, "first");
  EXPECT_EQ(events[3].resource, "q2");
  EXPECT_EQ(events[4].type, "events_dropped");
  EXPECT_EQ(events[4].reason, "queue_full");
  EXPECT_EQ(events[4].detail["count"], 5);
}

TEST_F(EventLogTest, OldEventsArePrunedAtStartAndHourly) {
  store::EventRecord old;
  old.type = "connect";
  old.time = kStart - 31 * 86400;
  store::EventRecord recent;
  recent.type = "connect";
  recent.time = kStart - 29 * 86400;
  ASSERT_TRUE(store_->appendEvents({old, recent}).isOk());
  EventLog log(*store_, clock_);
  log.record(deny("now"));
  log.flush();
  auto events = all();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].time, recent.time);
  // Two days later (more than one prune interval) the 29-day-old event has aged out.
  clock_.advance(48h);
  log.record(deny("later"));
  log.flush();
  events = all();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].resource, "now");
}

TEST(EventRecordToJsonTest, HasTheDocumentedFields) {
  store::EventRecord r;
  r.id = 7;
  r.time = 1'800'000'000;
  r.type = "deny";
  r.principal = "spiffe://warden.local/device/temp-1";
  r.action = "mqtt:publish";
  r.resource = "factory/valve/v1/cmd";
  r.decision = "deny";
  r.rule = "default-deny";
  r.reason = "no_permit";
  r.detail = nlohmann::json::object();
  nlohmann::json j = eventRecordToJson(r);
  EXPECT_EQ(j["id"], 7);
  EXPECT_EQ(j["time"], "2027-01-15T08:00:00Z");
  for (const char* k : {"type", "principal", "actor", "action", "resource", "decision", "rule", "reason"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  EXPECT_FALSE(j.contains("detail"));
  r.detail = {{"count", 3}};
  EXPECT_EQ(eventRecordToJson(r)["detail"]["count"], 3);
}

}  // namespace
}  // namespace warden::monitor

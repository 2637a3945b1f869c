#include "store/group_commit.h"

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/clock.h"
#include "crypto/crypto.h"
#include "store/sqlite_store.h"
#include "unit/testing/temp_dir.h"

namespace warden::store {
namespace {

using core::Status;

constexpr int64_t kStart = 1'800'000'000;

// ManualWorker stands in for the server's worker hand-off: jobs wait until
// the test runs them, the worker half and the owner half separately, so the
// test sees exactly what happens between "committed" and "answered".
class ManualWorker {
 public:
  GroupCommit::RunBlocking runBlocking() {
    return [this](std::function<void()> work, std::function<void()> then) {
      jobs_.push_back({std::move(work), std::move(then)});
    };
  }
  size_t pending() const { return jobs_.size(); }
  // runWork runs the oldest job's worker half (the transaction).
  void runWork() { jobs_.front().first(); }
  // runThen runs its owner half (the answers) and drops the job.
  void runThen() {
    auto then = std::move(jobs_.front().second);
    jobs_.pop_front();
    then();
  }
  void runOne() {
    runWork();
    runThen();
  }

 private:
  std::deque<std::pair<std::function<void()>, std::function<void()>>> jobs_;
};

IssuanceWrite write(const std::string& device, const std::string& serial) {
  IssuanceWrite w;
  w.kind = IssuanceWrite::Kind::kEnrollWithToken;
  w.device = device;
  w.token_hash_hex = crypto::sha256Hex("token-" + device);
  w.cert.serial_hex = serial;
  w.cert.device = device;
  w.cert.kind = "device";
  w.cert.pubkey_fp = "key-" + serial;
  w.cert.not_before = kStart;
  w.cert.not_after = kStart + 3600;
  w.cert.pem = "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n";
  return w;
}

// RecordingCommit is a commit function that records each batch's devices
// and answers ok (or |fail| for every write).
struct RecordingCommit {
  std::vector<std::vector<std::string>> batches;
  std::optional<Status> fail;
  GroupCommit::CommitFn fn() {
    return [this](const std::vector<IssuanceWrite>& writes) {
      std::vector<std::string> names;
      for (const auto& w : writes) names.push_back(w.device);
      batches.push_back(names);
      return std::vector<Status>(writes.size(), fail ? *fail : Status::ok());
    };
  }
};

TEST(GroupCommitTest, WritesArrivingDuringACommitShareTheNextTransaction) {
  ManualWorker worker;
  RecordingCommit commit;
  GroupCommit gc(commit.fn(), worker.runBlocking(), 64);
  std::vector<std::string> answered;
  auto done = [&](const std::string& name) { return [&, name](Status s) { EXPECT_TRUE(s.isOk()); answered.push_back(name); }; };
  gc.submit(write("a", "01"), done("a"));
  ASSERT_EQ(worker.pending(), 1u);  // "a" alone: nothing was in flight
  gc.submit(write("b", "02"), done("b"));
  gc.submit(write("c", "03"), done("c"));
  gc.submit(write("d", "04"), done("d"));
  EXPECT_EQ(worker.pending(), 1u);  // one transaction in flight at a time
  worker.runOne();
  EXPECT_EQ(answered, (std::vector<std::string>{"a"}));
  ASSERT_EQ(worker.pending(), 1u);
  worker.runOne();
  EXPECT_EQ(answered, (std::vector<std::string>{"a", "b", "c", "d"}));  // submission order
  ASSERT_EQ(commit.batches.size(), 2u);
  EXPECT_EQ(commit.batches[1], (std::vector<std::string>{"b", "c", "d"}));
  EXPECT_EQ(gc.stats().transactions, 2u);
  EXPECT_EQ(gc.stats().writes, 4u);
  EXPECT_EQ(gc.stats().largest_batch, 3u);
  EXPECT_EQ(worker.pending(), 0u);
}

TEST(GroupCommitTest, BatchesAreCappedAtMaxBatch) {
  ManualWorker worker;
  RecordingCommit commit;
  GroupCommit gc(commit.fn(), worker.runBlocking(), 2);
  int answered = 0;
  for (int i = 0; i < 5; ++i) gc.submit(write(fmt::format("d{}", i), fmt::format("{:02}", i)), [&](Status) { ++answered; });
  while (worker.pending() > 0) worker.runOne();
  EXPECT_EQ(answered, 5);
  ASSERT_EQ(commit.batches.size(), 3u);  // [d0] [d1 d2] [d3 d4]
  EXPECT_EQ(commit.batches[1].size(), 2u);
  EXPECT_EQ(commit.batches[2].size(), 2u);
}

TEST(GroupCommitTest, MaxBatchOneCommitsEachWriteAlone) {
  ManualWorker worker;
  RecordingCommit commit;
  GroupCommit gc(commit.fn(), worker.runBlocking(), 1);
  for (int i = 0; i < 3; ++i) gc.submit(write(fmt::format("d{}", i), fmt::format("{:02}", i)), [](Status) {});
  while (worker.pending() > 0) worker.runOne();
  EXPECT_EQ(commit.batches.size(), 3u);
  EXPECT_EQ(gc.stats().largest_batch, 1u);
}

TEST(GroupCommitTest, FailedTransactionFailsEveryWriteOfItsBatchOnly) {
  ManualWorker worker;
  RecordingCommit commit;
  GroupCommit gc(commit.fn(), worker.runBlocking(), 64);
  std::vector<Status> got;
  auto done = [&](Status s) { got.push_back(std::move(s)); };
  gc.submit(write("a", "01"), done);
  gc.submit(write("b", "02"), done);
  gc.submit(write("c", "03"), done);
  worker.runOne();  // [a] ok
  commit.fail = core::internalError("database step: disk I/O error");
  worker.runOne();  // [b c] fail together: nothing of it committed, both told
  commit.fail.reset();
  gc.submit(write("d", "04"), done);
  worker.runOne();  // the next batch is unaffected
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(got[0].isOk());
  EXPECT_EQ(got[1].code(), core::ErrorCode::kInternal);
  EXPECT_EQ(got[2].code(), core::ErrorCode::kInternal);
  EXPECT_TRUE(got[3].isOk());
}

TEST(GroupCommitTest, StoreThatReturnsTooFewStatusesAnswersNobodyAsCommitted) {
  ManualWorker worker;
  GroupCommit gc([](const std::vector<IssuanceWrite>&) { return std::vector<Status>{}; }, worker.runBlocking(), 64);
  std::optional<Status> got;
  gc.submit(write("a", "01"), [&](Status s) { got = s; });
  worker.runOne();
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->isOk());
}

// The crash-safety argument: a request is answered (its certificate leaves
// the server) only from |done|, and |done| runs only after the transaction
// holding its row has committed. Here with the real SQLite store: while the
// transaction has not run, nothing is answered and nothing is in the store;
// when |done| runs, a second connection (what a restarted server would
// open) already sees the row.
TEST(GroupCommitTest, RequestIsAnsweredOnlyAfterItsRowIsCommitted) {
  warden::testing::TempDir dir("warden-gc");
  core::ManualClock clock{core::fromUnixSeconds(kStart)};
  auto opened = SqliteStore::open(dir.file("warden.db"), clock);
  ASSERT_TRUE(opened.isOk()) << opened.status().toString();
  std::unique_ptr<Store> store = std::move(opened).value();
  for (const char* name : {"a", "b", "c"}) {
    DeviceRecord d;
    d.name = name;
    d.role = "sensor";
    ASSERT_TRUE(store->insertDeviceWithToken(d, crypto::sha256Hex(std::string("token-") + name), kStart + 60).isOk());
  }
  ManualWorker worker;
  int commits = 0;
  GroupCommit gc(
      [&](const std::vector<IssuanceWrite>& writes) {
        ++commits;
        return store->commitIssuances(writes);
      },
      worker.runBlocking(), 64);
  // What a server restarted right now would find.
  auto committedElsewhere = [&](const std::string& serial) {
    auto other = SqliteStore::open(dir.file("warden.db"), clock);
    EXPECT_TRUE(other.isOk());
    return other.isOk() && (*other)->findCert(serial).isOk();
  };
  std::vector<std::string> answered;
  auto done = [&](const std::string& serial) {
    return [&, serial](Status s) {
      ASSERT_TRUE(s.isOk()) << s.toString();
      EXPECT_TRUE(committedElsewhere(serial)) << serial << " answered before its commit";
      answered.push_back(serial);
    };
  };
  gc.submit(write("a", "0a"), done("0a"));
  gc.submit(write("b", "0b"), done("0b"));
  gc.submit(write("c", "0c"), done("0c"));
  EXPECT_TRUE(answered.empty());
  EXPECT_FALSE(committedElsewhere("0a"));
  worker.runWork();  // the transaction of [a] commits ...
  EXPECT_TRUE(answered.empty());  // ... and still nobody is answered until the owner runs
  worker.runThen();
  EXPECT_EQ(answered, (std::vector<std::string>{"0a"}));
  EXPECT_FALSE(committedElsewhere("0b"));
  worker.runOne();
  EXPECT_EQ(answered, (std::vector<std::string>{"0a", "0b", "0c"}));
  EXPECT_EQ(commits, 2);  // three requests, two transactions
}

// A write the store refuses inside a batch is answered with its reason; the
// other writes of the batch commit.
TEST(GroupCommitTest, RefusedWriteDoesNotTakeItsBatchDown) {
  warden::testing::TempDir dir("warden-gc");
  core::ManualClock clock{core::fromUnixSeconds(kStart)};
  auto opened = SqliteStore::open(dir.file("warden.db"), clock);
  ASSERT_TRUE(opened.isOk());
  std::unique_ptr<Store> store = std::move(opened).value();
  for (const char* name : {"a", "b"}) {
    DeviceRecord d;
    d.name = name;
    d.role = "sensor";
    ASSERT_TRUE(store->insertDeviceWithToken(d, crypto::sha256Hex(std::string("token-") + name), kStart + 60).isOk());
  }
  ManualWorker worker;
  GroupCommit gc([&](const std::vector<IssuanceWrite>& w) { return store->commitIssuances(w); }, worker.runBlocking(),
                 64);
  std::vector<Status> got;
  auto done = [&](Status s) { got.push_back(std::move(s)); };
  gc.submit(write("a", "01"), done);
  gc.submit(write("a", "02"), done);  // same token again: token_used
  IssuanceWrite bad = write("b", "03");
  bad.token_hash_hex = crypto::sha256Hex("wrong");
  gc.submit(bad, done);
  gc.submit(write("b", "04"), done);
  while (worker.pending() > 0) worker.runOne();
  ASSERT_EQ(got.size(), 4u);
  EXPECT_TRUE(got[0].isOk());
  EXPECT_EQ(got[1].message(), kReasonTokenUsed);
  EXPECT_EQ(got[2].message(), kReasonTokenMismatch);
  EXPECT_TRUE(got[3].isOk()) << got[3].toString();
  EXPECT_TRUE(store->findCert("04").isOk());
  EXPECT_EQ(store->findCert("03").status().code(), core::ErrorCode::kNotFound);
}

}  // namespace
}  // namespace warden::store

// group_commit_bench.cc: what group commit saves in the store alone.
// Renewals are recorded through Store::commitIssuances in batches of 1 (one
// transaction, so one WAL fsync, per renewal: what the server did before
// group commit), 8 and 64, on a database in $TMPDIR (a disk, unless TMPDIR
// points at tmpfs). The batch of 1 is the baseline of the same run; compare
// items_per_second. No TLS, no signing: the cost of making a renewal durable.

#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/clock.h"
#include "store/sqlite_store.h"

namespace {

using warden::store::CertRecord;
using warden::store::DeviceRecord;
using warden::store::IssuanceWrite;

constexpr int kDevices = 64;

CertRecord certFor(const std::string& device, uint64_t n, int64_t now) {
  CertRecord c;
  c.serial_hex = fmt::format("{:032x}", n);
  c.device = device;
  c.kind = "device";
  c.pubkey_fp = fmt::format("sha256:{:064x}", n);
  c.not_before = now;
  c.not_after = now + 86400;
  c.pem = std::string(700, 'A');  // about the size of a P-256 device certificate in PEM
  return c;
}

void BM_RecordRenewals(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const auto base = std::filesystem::temp_directory_path() / fmt::format("warden-gc-bench-{}", ::getpid());
  std::filesystem::create_directories(base);
  const warden::core::Clock& clock = warden::core::systemClock();
  const int64_t now = warden::core::unixSeconds(clock.now());
  {
    auto opened = warden::store::SqliteStore::open((base / "warden.db").string(), clock);
    if (!opened.isOk()) {
      state.SkipWithError(opened.status().toString().c_str());
      return;
    }
    std::unique_ptr<warden::store::Store> store = std::move(opened).value();
    uint64_t serial = 1;
    for (int i = 0; i < kDevices; ++i) {
      DeviceRecord d;
      d.name = fmt::format("d{}", i);
      d.role = "bench";
      const std::string token = fmt::format("{:064x}", i);
      if (!store->insertDeviceWithToken(d, token, now + 3600).isOk() ||
          !store->enrollWithToken(d.name, token, certFor(d.name, serial++, now)).isOk()) {
        state.SkipWithError("cannot set up the devices");
        return;
      }
    }
    std::vector<IssuanceWrite> writes(batch);
    uint64_t transactions = 0;
    for (auto _ : state) {
      for (size_t k = 0; k < batch; ++k) {
        const int i = static_cast<int>(serial % kDevices);
        IssuanceWrite& w = writes[k];
        w.kind = IssuanceWrite::Kind::kRenew;
        w.device = fmt::format("d{}", i);
        w.old_serial = fmt::format("{:032x}", static_cast<uint64_t>(i + 1));  // its enrolled certificate
        w.cert = certFor(w.device, serial++, now);
      }
      std::vector<warden::core::Status> st = store->commitIssuances(writes);
      for (const auto& s : st) {
        if (!s.isOk()) {
          state.SkipWithError(s.toString().c_str());
          break;
        }
      }
      ++transactions;
    }
    state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * batch));
    state.counters["renewals_per_transaction"] = static_cast<double>(batch);
    state.counters["transactions"] = static_cast<double>(transactions);
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
}
BENCHMARK(BM_RecordRenewals)->Arg(1)->Arg(8)->Arg(64)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

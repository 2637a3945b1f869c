#include "store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "crypto/crypto.h"

namespace warden::store {

using core::Result;
using core::Status;

std::string_view enrollRequestStateName(EnrollRequestState state) {
  switch (state) {
    case EnrollRequestState::kPending: return "pending";
    case EnrollRequestState::kApproved: return "approved";
    case EnrollRequestState::kDenied: return "denied";
    case EnrollRequestState::kIssued: return "issued";
  }
  return "unknown";
}

std::string_view deviceStateName(DeviceState state) {
  switch (state) {
    case DeviceState::kPending: return "pending";
    case DeviceState::kActive: return "active";
    case DeviceState::kQuarantined: return "quarantined";
    case DeviceState::kRevoked: return "revoked";
  }
  return "unknown";
}

Result<DeviceState> parseDeviceState(std::string_view text) {
  if (text == "pending") return DeviceState::kPending;
  if (text == "active") return DeviceState::kActive;
  if (text == "quarantined") return DeviceState::kQuarantined;
  if (text == "revoked") return DeviceState::kRevoked;
  return core::invalidArgument(fmt::format("unknown device state '{}'", text));
}

std::string_view caStateName(CaState state) {
  switch (state) {
    case CaState::kActive: return "active";
    case CaState::kRetiring: return "retiring";
    case CaState::kRetired: return "retired";
  }
  return "unknown";
}

Result<CaState> parseCaState(std::string_view text) {
  if (text == "active") return CaState::kActive;
  if (text == "retiring") return CaState::kRetiring;
  if (text == "retired") return CaState::kRetired;
  return core::invalidArgument(fmt::format("unknown CA state '{}'", text));
}

namespace {

// --- RAII over the SQLite C API ---------------------------------------------

struct DbCloser {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

// StmtRelease ends one use of a statement: a statement of the
// StatementCache is reset, its bindings cleared and its entry freed for the
// next user; any other is finalized.
struct StmtRelease {
  std::atomic<bool>* in_use = nullptr;  // the cache entry; nullptr: not cached
  void operator()(sqlite3_stmt* s) const noexcept {
    if (in_use == nullptr) {
      sqlite3_finalize(s);
      return;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    in_use->store(false, std::memory_order_release);
  }
};

Status sqliteStatus(sqlite3* db, int rc, std::string_view what) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  if (rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT) {
    return core::dataLoss(fmt::format("database {}: {} (the file is not a Warden database or is damaged)", what, msg));
  }
  if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
    return core::unavailable(fmt::format("database {}: {} (another process holds the database)", what, msg));
  }
  return core::internalError(fmt::format("database {}: {}", what, msg));
}

// Statement is one prepared statement; binds are 1-based, columns 0-based.
class Statement {
 public:
  Statement() = default;

  static Result<Statement> prepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    Statement st;
    st.db_ = db;
    st.stmt_.reset(raw);
    if (rc != SQLITE_OK) return sqliteStatus(db, rc, "prepare");
    return st;
  }
  // borrow wraps a statement of the StatementCache for one use.
  static Statement borrow(sqlite3* db, sqlite3_stmt* stmt, std::atomic<bool>* in_use) {
    Statement st;
    st.db_ = db;
    st.stmt_ = std::unique_ptr<sqlite3_stmt, StmtRelease>(stmt, StmtRelease{in_use});
    return st;
  }

  Statement& bind(int idx, std::string_view v) {
    remember(sqlite3_bind_text(stmt_.get(), idx, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& bind(int idx, const std::string& v) { return bind(idx, std::string_view(v)); }
  Statement& bind(int idx, const char* v) { return bind(idx, std::string_view(v)); }
  Statement& bind(int idx, int64_t v) {
    remember(sqlite3_bind_int64(stmt_.get(), idx, v));
    return *this;
  }
  Statement& bind(int idx, bool v) { return bind(idx, static_cast<int64_t>(v ? 1 : 0)); }

  // step returns true when a row is available, false when done.
  Result<bool> step() {
    if (bind_rc_ != SQLITE_OK) return sqliteStatus(db_, bind_rc_, "bind");
    int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqliteStatus(db_, rc, "step");
  }
  // run executes a statement that returns no rows.
  Status run() {
    auto r = step();
    if (!r.isOk()) return r.status();
    return Status::ok();
  }
  void reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
  }

  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_.get(), col);
    int n = sqlite3_column_bytes(stmt_.get(), col);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  bool isNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }

 private:
  void remember(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_ = nullptr;
  std::unique_ptr<sqlite3_stmt, StmtRelease> stmt_;
  int bind_rc_ = SQLITE_OK;
};

// StatementCache keeps the compiled form of each SQL text the store runs,
// so a hot path compiles its SQL once per process instead of on every call
// (SQLite's prepare parses and plans the statement: a tenth of the server's
// CPU per enrollment before). A statement is handed to one user at a time;
// a nested use of the same text while it is out (a query inside a loop over
// the same query) gets a private statement. SQLite recompiles a cached
// statement by itself after a schema change.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, entry] : entries_) sqlite3_finalize(entry.stmt);
  }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  Result<Statement> prepare(std::string_view sql) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(sql);
    if (it == entries_.end()) {
      if (entries_.size() >= kMaxEntries) return Statement::prepare(db_, sql);
      sqlite3_stmt* raw = nullptr;
      int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw,
                                  nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(raw);
        return sqliteStatus(db_, rc, "prepare");
      }
      it = entries_.try_emplace(std::string(sql)).first;
      it->second.stmt = raw;
    }
    Entry& entry = it->second;
    bool idle = false;
    if (!entry.in_use.compare_exchange_strong(idle, true, std::memory_order_acquire)) {
      return Statement::prepare(db_, sql);
    }
    return Statement::borrow(db_, entry.stmt, &entry.in_use);
  }

 private:
  // The store's SQL texts are a fixed set (about a hundred); the bound only
  // guards against a future caller that builds texts from data.
  static constexpr size_t kMaxEntries = 512;
  struct Entry {
    sqlite3_stmt* stmt = nullptr;
    std::atomic<bool> in_use{false};
  };
  // Looked up by string_view, without building a std::string per call.
  struct SqlHash {
    using is_transparent = void;
    size_t operator()(std::string_view sql) const noexcept { return std::hash<std::string_view>{}(sql); }
  };
  sqlite3* db_;
  std::mutex mu_;
  // Nodes never move: borrowed flags stay valid.
  std::unordered_map<std::string, Entry, SqlHash, std::equal_to<>> entries_;
};

Status exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  std::unique_ptr<char, decltype(&sqlite3_free)> err_owner(err, &sqlite3_free);
  if (rc != SQLITE_OK) return sqliteStatus(db, rc, "exec");
  return Status::ok();
}

// Transaction is BEGIN IMMEDIATE ... COMMIT; it rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Status begin() {
    WARDEN_RETURN_IF_ERROR(exec(db_, "BEGIN IMMEDIATE"));
    open_ = true;
    return Status::ok();
  }
  Status commit() {
    WARDEN_RETURN_IF_ERROR(exec(db_, "COMMIT"));
    open_ = false;
    return Status::ok();
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

// --- schema -------------------------------------------------------------------

struct Migration {
  int version;
  const char* sql;
};

// Migrations are append-only: never edit one that has shipped.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE devices(
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  labels_json TEXT NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('pending','active','quarantined','revoked')),
  created_at INTEGER NOT NULL
);
CREATE TABLE tokens(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device TEXT NOT NULL REFERENCES devices(name),
  hash TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  used INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL
);
CREATE INDEX tokens_by_device ON tokens(device);
CREATE TABLE certs(
  serial TEXT PRIMARY KEY,
  principal TEXT NOT NULL,
  kind TEXT NOT NULL,
  pubkey_fp TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0,
  revoked_at INTEGER NOT NULL DEFAULT 0,
  pem TEXT NOT NULL
);
CREATE INDEX certs_by_principal ON certs(principal, kind);
CREATE INDEX certs_by_pubkey ON certs(pubkey_fp);
CREATE TABLE policies(
  version INTEGER PRIMARY KEY AUTOINCREMENT,
  text TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  actor TEXT NOT NULL
);
CREATE TABLE events(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time INTEGER NOT NULL,
  type TEXT NOT NULL,
  principal TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  resource TEXT NOT NULL,
  decision TEXT NOT NULL,
  rule TEXT NOT NULL,
  reason TEXT NOT NULL,
  detail_json TEXT NOT NULL
);
CREATE INDEX events_by_time ON events(time);
CREATE TABLE meta(
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql"},
    // 2: where each device says its key lives ('' = not stated, 'file',
    // 'pkcs11', 'tpm2'), a claim recorded at enrollment and renewal.
    {2, R"sql(
ALTER TABLE devices ADD COLUMN key_store_claim TEXT NOT NULL DEFAULT ''
  CHECK(key_store_claim IN ('', 'file', 'pkcs11', 'tpm2'));
)sql"},
    // 3: the CA inventory (named root and issuing CAs with a state), the
    // issuing CA and revocation reason of every certificate. Certificates
    // issued before were all signed by the one issuing CA, which `serve`
    // records as "issuing-1" when it finds the inventory empty.
    {3, R"sql(
CREATE TABLE cas(
  name TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK(kind IN ('root','issuing')),
  state TEXT NOT NULL CHECK(state IN ('active','retiring','retired')),
  key_id TEXT NOT NULL UNIQUE,
  cert_pem TEXT NOT NULL,
  key_ref TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  retired_at INTEGER NOT NULL DEFAULT 0,
  crl_number INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE certs ADD COLUMN issuer TEXT NOT NULL DEFAULT 'issuing-1';
ALTER TABLE certs ADD COLUMN revocation_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX certs_by_issuer ON certs(issuer, not_after);
CREATE INDEX certs_by_not_after ON certs(not_after);
)sql"},
    // 4: issue 4 (enrollment): per-device certificate lifetimes, manufacturers
    // (IDevID trust anchors and serial allow-lists), factory identity
    // bindings and enrollment requests awaiting manual approval.
    {4, R"sql(
ALTER TABLE devices ADD COLUMN cert_ttl INTEGER NOT NULL DEFAULT 0;
CREATE TABLE manufacturers(
  name TEXT PRIMARY KEY,
  ca_pem TEXT NOT NULL,
  role TEXT NOT NULL,
  labels_json TEXT NOT NULL,
  name_prefix TEXT NOT NULL,
  approval TEXT NOT NULL CHECK(approval IN ('', 'auto', 'manual')),
  cert_ttl INTEGER NOT NULL DEFAULT 0,
  auto_register INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE manufacturer_serials(
  manufacturer TEXT NOT NULL REFERENCES manufacturers(name) ON DELETE CASCADE,
  serial_number TEXT NOT NULL,
  PRIMARY KEY(manufacturer, serial_number)
);
CREATE TABLE factory_identities(
  manufacturer TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  device TEXT NOT NULL UNIQUE REFERENCES devices(name),
  created_at INTEGER NOT NULL,
  PRIMARY KEY(manufacturer, serial_number)
);
CREATE TABLE enroll_requests(
  id TEXT PRIMARY KEY,
  device TEXT NOT NULL,
  manufacturer TEXT NOT NULL,
  serial_number TEXT NOT NULL,
  pubkey_fp TEXT NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('pending','approved','denied','issued')),
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  decided_at INTEGER NOT NULL DEFAULT 0,
  decided_by TEXT NOT NULL DEFAULT '',
  remote TEXT NOT NULL DEFAULT ''
);
CREATE INDEX enroll_requests_by_device ON enroll_requests(device, created_at);
)sql"},
    // 5: issue 6 (continuous verification): firmware reference values per
    // device model, each device's posture (last attestation, firmware,
    // quarantine reasons, trust), TPM vendor CAs, and per device the EK its
    // TPM is bound to and the attestation key proven to share that TPM.
    // Events are read per principal for `warden device history`.
    {5, R"sql(
CREATE TABLE firmware_approvals(
  digest TEXT NOT NULL,
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  approved_at INTEGER NOT NULL,
  approved_by TEXT NOT NULL,
  revoked_at INTEGER NOT NULL DEFAULT 0,
  revoked_by TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(digest, model)
);
CREATE TABLE postures(
  device TEXT PRIMARY KEY REFERENCES devices(name),
  attested_at INTEGER NOT NULL DEFAULT 0,
  assurance TEXT NOT NULL DEFAULT '' CHECK(assurance IN ('', 'software', 'tpm')),
  result TEXT NOT NULL DEFAULT '' CHECK(result IN ('', 'ok', 'failed')),
  reason TEXT NOT NULL DEFAULT '',
  detail TEXT NOT NULL DEFAULT '',
  boot TEXT NOT NULL DEFAULT '',
  log_json TEXT NOT NULL DEFAULT '[]',
  last_good_at INTEGER NOT NULL DEFAULT 0,
  last_good_assurance TEXT NOT NULL DEFAULT '' CHECK(last_good_assurance IN ('', 'software', 'tpm')),
  firmware_model TEXT NOT NULL DEFAULT '',
  firmware_version TEXT NOT NULL DEFAULT '',
  firmware_approved INTEGER NOT NULL DEFAULT -1 CHECK(firmware_approved IN (-1, 0, 1)),
  quarantine_reasons TEXT NOT NULL DEFAULT '',
  quarantined_since INTEGER NOT NULL DEFAULT 0,
  trust INTEGER NOT NULL DEFAULT 50 CHECK(trust BETWEEN 0 AND 100),
  updated_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_by_principal ON events(principal, id);
CREATE TABLE tpm_cas(
  fingerprint TEXT PRIMARY KEY,
  subject TEXT NOT NULL,
  pem TEXT NOT NULL,
  not_after INTEGER NOT NULL,
  added_at INTEGER NOT NULL,
  added_by TEXT NOT NULL
);
CREATE TABLE device_tpms(
  device TEXT PRIMARY KEY REFERENCES devices(name),
  ek_fingerprint TEXT NOT NULL UNIQUE,
  ek_source TEXT NOT NULL CHECK(ek_source IN ('vendor_ca', 'operator')),
  ak_public TEXT NOT NULL DEFAULT '',
  ak_name TEXT NOT NULL DEFAULT '',
  ak_registered_at INTEGER NOT NULL DEFAULT 0,
  last_reset_count INTEGER NOT NULL DEFAULT -1
);
)sql"},
    // 6: root CA rollover (issue 4): the cross certificates between an old
    // and a new root (NewWithOld, OldWithNew; RFC 4210 §4.4), published in
    // cacerts while both roots are trusted.
    {6, R"sql(
CREATE TABLE ca_cross_certs(
  name TEXT PRIMARY KEY,
  subject_ca TEXT NOT NULL REFERENCES cas(name),
  issuer_ca TEXT NOT NULL REFERENCES cas(name),
  cert_pem TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
)sql"},
    // 7: the proof that a device key is in its TPM (TPM2_Certify by the AK):
    // the last verdict, tied to the key it was about.
    {7, R"sql(
ALTER TABLE devices ADD COLUMN key_proof_result TEXT NOT NULL DEFAULT ''
  CHECK(key_proof_result IN ('', 'verified', 'failed'));
ALTER TABLE devices ADD COLUMN key_proof_key_fp TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN key_proof_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN key_proof_at INTEGER NOT NULL DEFAULT 0;
)sql"},
    // 8: issue 4 (scale): CRL rebuilds read only the revoked rows of a CA
    // through a partial index whose size is the number of revoked rows.
    {8, R"sql(
CREATE INDEX certs_revoked_by_issuer ON certs(issuer, not_after) WHERE revoked = 1;
)sql"},
};

static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion,
              "kSchemaVersion must equal the number of migrations");

Status unauth(std::string_view reason) { return core::unauthenticated(std::string(reason)); }

std::string labelsToJson(const core::Labels& labels) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : labels) j[k] = v;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<core::Labels> labelsFromJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return core::dataLoss("stored device labels are not a JSON object");
  core::Labels labels;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_string()) return core::dataLoss("stored device label value is not a string");
    labels[it.key()] = it.value().get<std::string>();
  }
  return labels;
}

constexpr const char* kCertColumns =
    "serial, principal, kind, pubkey_fp, not_before, not_after, revoked, revoked_at, pem, issuer, revocation_reason";

CertRecord readCert(const Statement& st) {
  CertRecord c;
  c.serial_hex = st.text(0);
  c.device = st.text(1);
  c.kind = st.text(2);
  c.pubkey_fp = st.text(3);
  c.not_before = st.int64(4);
  c.not_after = st.int64(5);
  c.revoked = st.int64(6) != 0;
  c.revoked_at = st.int64(7);
  c.pem = st.text(8);
  c.issuer = st.text(9);
  c.revocation_reason = st.text(10);
  return c;
}

constexpr const char* kCaColumns = "name, kind, state, key_id, cert_pem, key_ref, created_at, retired_at";

Result<CaRecord> readCa(const Statement& st) {
  CaRecord c;
  c.name = st.text(0);
  c.kind = st.text(1);
  WARDEN_ASSIGN_OR_RETURN(c.state, parseCaState(st.text(2)));
  c.key_id = st.text(3);
  c.cert_pem = st.text(4);
  c.key_ref = st.text(5);
  c.created_at = st.int64(6);
  c.retired_at = st.int64(7);
  return c;
}

constexpr const char* kManufacturerColumns =
    "name, ca_pem, role, labels_json, name_prefix, approval, cert_ttl, auto_register, created_at, "
    "(SELECT COUNT(*) FROM manufacturer_serials s WHERE s.manufacturer = manufacturers.name)";

constexpr const char* kRequestColumns =
    "id, device, manufacturer, serial_number, pubkey_fp, state, created_at, expires_at, decided_at, decided_by, "
    "remote";

constexpr const char* kEventColumns =
    "id, time, type, principal, actor, action, resource, decision, rule, reason, detail_json";

EventRecord readEvent(const Statement& st) {
  EventRecord e;
  e.id = st.int64(0);
  e.time = st.int64(1);
  e.type = st.text(2);
  e.principal = st.text(3);
  e.actor = st.text(4);
  e.action = st.text(5);
  e.resource = st.text(6);
  e.decision = st.text(7);
  e.rule = st.text(8);
  e.reason = st.text(9);
  e.detail = nlohmann::json::parse(st.text(10), nullptr, /*allow_exceptions=*/false);
  if (e.detail.is_discarded()) e.detail = nullptr;
  return e;
}

constexpr const char* kFirmwareColumns = "digest, model, version, approved_at, approved_by, revoked_at, revoked_by";

FirmwareApproval readFirmware(const Statement& st) {
  FirmwareApproval a;
  a.digest = st.text(0);
  a.model = st.text(1);
  a.version = st.text(2);
  a.approved_at = st.int64(3);
  a.approved_by = st.text(4);
  a.revoked_at = st.int64(5);
  a.revoked_by = st.text(6);
  return a;
}

constexpr const char* kPostureColumns =
    "device, attested_at, assurance, result, reason, detail, boot, log_json, last_good_at, last_good_assurance, "
    "firmware_model, firmware_version, firmware_approved, quarantine_reasons, quarantined_since, trust, updated_at";

PostureRecord readPosture(const Statement& st) {
  PostureRecord p;
  p.device = st.text(0);
  p.attested_at = st.int64(1);
  p.assurance = st.text(2);
  p.result = st.text(3);
  p.reason = st.text(4);
  p.detail = st.text(5);
  p.boot = st.text(6);
  p.log_json = st.text(7);
  p.last_good_at = st.int64(8);
  p.last_good_assurance = st.text(9);
  p.firmware_model = st.text(10);
  p.firmware_version = st.text(11);
  p.firmware_approved = static_cast<int>(st.int64(12));
  const std::string reasons = st.text(13);
  size_t start = 0;
  while (start < reasons.size()) {
    size_t comma = reasons.find(',', start);
    if (comma == std::string::npos) comma = reasons.size();
    if (comma > start) p.quarantine_reasons.push_back(reasons.substr(start, comma - start));
    start = comma + 1;
  }
  p.quarantined_since = st.int64(14);
  p.trust = static_cast<int>(st.int64(15));
  p.updated_at = st.int64(16);
  return p;
}

// --- SqliteStoreImpl ------------------------------------------------------------

class SqliteStoreImpl final : public Store {
 public:
  SqliteStoreImpl(DbPtr db, const core::Clock& clock) : db_(std::move(db)), statements_(db_.get()), clock_(clock) {}

  Status migrate();

  Status insertDevice(const DeviceRecord& device) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_RETURN_IF_ERROR(insertDeviceLocked(device));
    return txn.commit();
  }

  Status insertDeviceWithToken(const DeviceRecord& device, std::string_view token_hash_hex,
                               int64_t token_expires_at) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_RETURN_IF_ERROR(insertDeviceLocked(device));
    WARDEN_RETURN_IF_ERROR(insertTokenLocked(device.name, token_hash_hex, token_expires_at));
    return txn.commit();
  }

  Result<DeviceRecord> getDevice(std::string_view name) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(name));
    if (!d) return core::notFound(fmt::format("device '{}' not found", name));
    return std::move(*d);
  }

  Result<std::vector<DeviceRecord>> listDevices() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT name, role, labels_json, state, created_at, key_store_claim, cert_ttl, key_proof_result, key_proof_key_fp, key_proof_reason, key_proof_at FROM devices ORDER BY name"));
    std::vector<DeviceRecord> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      WARDEN_ASSIGN_OR_RETURN(DeviceRecord d, readDevice(st));
      out.push_back(std::move(d));
    }
    return out;
  }

  Status setDeviceKeyStoreClaim(std::string_view name, std::string_view claim) override {
    if (claim != "file" && claim != "pkcs11" && claim != "tpm2") {
      return core::invalidArgument("a key store claim is file, pkcs11 or tpm2");
    }
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE devices SET key_store_claim = ? WHERE name = ?"));
    st.bind(1, claim).bind(2, name);
    WARDEN_RETURN_IF_ERROR(st.run());
    if (sqlite3_changes(db()) == 0) return core::notFound(fmt::format("device '{}' not found", name));
    return Status::ok();
  }

  Status setDeviceKeyProof(std::string_view name, const KeyProof& proof) override {
    if (proof.result != "verified" && proof.result != "failed") {
      return core::invalidArgument("a key proof's result is verified or failed");
    }
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "UPDATE devices SET key_proof_result = ?, key_proof_key_fp = ?, key_proof_reason = ?, key_proof_at = ? "
        "WHERE name = ?"));
    st.bind(1, proof.result).bind(2, proof.key_fp).bind(3, proof.reason).bind(4, proof.at).bind(5, name);
    WARDEN_RETURN_IF_ERROR(st.run());
    if (sqlite3_changes(db()) == 0) return core::notFound(fmt::format("device '{}' not found", name));
    return Status::ok();
  }

  Status setDeviceState(std::string_view name, DeviceState state) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(name));
    if (!d) return core::notFound(fmt::format("device '{}' not found", name));
    if (d->state == DeviceState::kRevoked && state != DeviceState::kRevoked) {
      return core::failedPrecondition(fmt::format("device '{}' is revoked (revocation is final)", name));
    }
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE devices SET state = ? WHERE name = ?"));
    st.bind(1, deviceStateName(state)).bind(2, name);
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Status replaceToken(std::string_view device, std::string_view token_hash_hex, int64_t expires_at) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(device));
    if (!d) return core::notFound(fmt::format("device '{}' not found", device));
    if (d->state == DeviceState::kRevoked) {
      return core::failedPrecondition(fmt::format("device '{}' is revoked and cannot enroll again", device));
    }
    WARDEN_ASSIGN_OR_RETURN(Statement del, prepare("DELETE FROM tokens WHERE device = ? AND used = 0"));
    del.bind(1, device);
    WARDEN_RETURN_IF_ERROR(del.run());
    // A new token starts enrollment afresh: open approval requests (pending,
    // approved or denied) are dropped.
    WARDEN_ASSIGN_OR_RETURN(Statement reqs, prepare(
        "DELETE FROM enroll_requests WHERE device = ? AND state != 'issued'"));
    reqs.bind(1, device);
    WARDEN_RETURN_IF_ERROR(reqs.run());
    WARDEN_RETURN_IF_ERROR(insertTokenLocked(device, token_hash_hex, expires_at));
    return txn.commit();
  }

  Status checkToken(std::string_view device, std::string_view token_hash_hex) override {
    std::lock_guard lock(mu_);
    WARDEN_RETURN_IF_ERROR(checkEnrollableLocked(device).status());
    return matchTokenLocked(device, token_hash_hex).status();
  }

  Status enrollWithToken(std::string_view device, std::string_view token_hash_hex, const CertRecord& cert,
                         std::string_view request_id) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_RETURN_IF_ERROR(enrollWithTokenLocked(device, token_hash_hex, cert, request_id));
    return txn.commit();
  }

  Status renewCert(std::string_view device, std::string_view old_serial, const CertRecord& cert) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_RETURN_IF_ERROR(renewCertLocked(device, old_serial, cert));
    return txn.commit();
  }

  std::vector<Status> commitIssuances(const std::vector<IssuanceWrite>& writes) override {
    std::lock_guard lock(mu_);
    std::vector<Status> out;
    out.reserve(writes.size());
    Transaction txn(db());
    if (Status s = txn.begin(); !s.isOk()) return std::vector<Status>(writes.size(), s);
    for (const IssuanceWrite& w : writes) {
      // A savepoint per write: a refused one is undone alone.
      if (Status s = exec(db(), "SAVEPOINT issuance"); !s.isOk()) return std::vector<Status>(writes.size(), s);
      Status s = applyIssuanceLocked(w);
      if (!s.isOk()) {
        if (Status r = exec(db(), "ROLLBACK TO issuance"); !r.isOk()) return std::vector<Status>(writes.size(), r);
      }
      if (Status r = exec(db(), "RELEASE issuance"); !r.isOk()) return std::vector<Status>(writes.size(), r);
      out.push_back(std::move(s));
    }
    if (Status c = txn.commit(); !c.isOk()) return std::vector<Status>(writes.size(), c);
    return out;
  }

  Status enrollWithTokenLocked(std::string_view device, std::string_view token_hash_hex, const CertRecord& cert,
                               std::string_view request_id) {
    WARDEN_ASSIGN_OR_RETURN(DeviceRecord d, checkEnrollableLocked(device));
    WARDEN_ASSIGN_OR_RETURN(int64_t token_id, matchTokenLocked(device, token_hash_hex));
    CertRecord c = cert;
    c.device = std::string(device);
    c.kind = "device";
    WARDEN_RETURN_IF_ERROR(insertCertLocked(c));
    if (!request_id.empty()) WARDEN_RETURN_IF_ERROR(closeRequestLocked(request_id, device, c.pubkey_fp));
    WARDEN_ASSIGN_OR_RETURN(Statement use, prepare("UPDATE tokens SET used = 1 WHERE id = ?"));
    use.bind(1, token_id);
    WARDEN_RETURN_IF_ERROR(use.run());
    if (d.state == DeviceState::kPending) {
      WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE devices SET state = 'active' WHERE name = ?"));
      st.bind(1, device);
      WARDEN_RETURN_IF_ERROR(st.run());
    }
    return Status::ok();
  }

  Status renewCertLocked(std::string_view device, std::string_view old_serial, const CertRecord& cert) {
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(device));
    if (!d) return unauth(kReasonUnknownDevice);
    if (d->state == DeviceState::kRevoked) return unauth(kReasonDeviceRevoked);
    if (d->state == DeviceState::kPending) return unauth(kReasonDevicePending);
    WARDEN_ASSIGN_OR_RETURN(std::optional<CertRecord> old, findCertLocked(old_serial));
    if (!old || old->device != device || old->kind != "device") return unauth(kReasonUnknownSerial);
    if (old->revoked) return unauth(kReasonCertRevoked);
    if (old->not_after <= now()) return unauth(kReasonCertExpired);
    CertRecord c = cert;
    c.device = std::string(device);
    c.kind = "device";
    return insertCertLocked(c);
  }

  Status applyIssuanceLocked(const IssuanceWrite& w) {
    if (w.kind == IssuanceWrite::Kind::kRenew) {
      WARDEN_RETURN_IF_ERROR(renewCertLocked(w.device, w.old_serial, w.cert));
    } else {
      WARDEN_RETURN_IF_ERROR(enrollWithTokenLocked(w.device, w.token_hash_hex, w.cert, w.request_id));
    }
    if (w.key_store_claim == "file" || w.key_store_claim == "pkcs11" || w.key_store_claim == "tpm2") {
      WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE devices SET key_store_claim = ? WHERE name = ?"));
      st.bind(1, w.key_store_claim).bind(2, w.device);
      WARDEN_RETURN_IF_ERROR(st.run());
    }
    return Status::ok();
  }

  Status insertCert(const CertRecord& cert) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_RETURN_IF_ERROR(insertCertLocked(cert));
    return txn.commit();
  }

  Result<CertRecord> findCert(std::string_view serial_hex) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(std::optional<CertRecord> c, findCertLocked(serial_hex));
    if (!c) return core::notFound(fmt::format("certificate with serial {} not found", serial_hex));
    return std::move(*c);
  }

  Result<std::vector<CertRecord>> listCerts(std::string_view device) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM certs WHERE principal = ? ORDER BY rowid", kCertColumns)));
    st.bind(1, device);
    return collectCerts(st);
  }

  Result<std::optional<CertRecord>> latestCert(std::string_view device) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM certs WHERE principal = ? ORDER BY rowid DESC LIMIT 1", kCertColumns)));
    st.bind(1, device);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<CertRecord>();
    return std::optional<CertRecord>(readCert(st));
  }

  Result<std::vector<CertRecord>> listValidCerts(int64_t now_s) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM certs WHERE revoked = 0 AND not_after > ? ORDER BY rowid", kCertColumns)));
    st.bind(1, now_s);
    return collectCerts(st);
  }

  Result<std::vector<CertRecord>> listValidCertsOf(std::string_view principal, std::string_view kind,
                                                   int64_t now_s) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM certs WHERE principal = ? AND kind = ? AND revoked = 0 AND not_after > ? "
                    "ORDER BY rowid", kCertColumns)));
    st.bind(1, principal);
    st.bind(2, kind);
    st.bind(3, now_s);
    return collectCerts(st);
  }

  Result<bool> revokeDevice(std::string_view device) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(device));
    if (!d) return core::notFound(fmt::format("device '{}' not found", device));
    if (d->state == DeviceState::kRevoked) return false;
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE devices SET state = 'revoked' WHERE name = ?"));
    st.bind(1, device);
    WARDEN_RETURN_IF_ERROR(st.run());
    WARDEN_ASSIGN_OR_RETURN(Statement certs, prepare(
        "UPDATE certs SET revoked = 1, revoked_at = ? WHERE principal = ? AND kind = 'device' AND revoked = 0"));
    certs.bind(1, now()).bind(2, device);
    WARDEN_RETURN_IF_ERROR(certs.run());
    WARDEN_ASSIGN_OR_RETURN(Statement tokens, prepare("DELETE FROM tokens WHERE device = ? AND used = 0"));
    tokens.bind(1, device);
    WARDEN_RETURN_IF_ERROR(tokens.run());
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return true;
  }

  Result<std::pair<CertRecord, bool>> revokeCert(std::string_view serial_hex, std::string_view reason) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(std::optional<CertRecord> c, findCertLocked(serial_hex));
    if (!c) return core::notFound(fmt::format("no certificate with serial {} was issued by this server", serial_hex));
    if (c->revoked) return std::make_pair(std::move(*c), false);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "UPDATE certs SET revoked = 1, revoked_at = ?, revocation_reason = ? WHERE serial = ?"));
    st.bind(1, now()).bind(2, reason).bind(3, serial_hex);
    WARDEN_RETURN_IF_ERROR(st.run());
    WARDEN_ASSIGN_OR_RETURN(std::optional<CertRecord> after, findCertLocked(serial_hex));
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return std::make_pair(std::move(*after), true);
  }

  Result<std::vector<CertRecord>> revokeCertsIssuedBy(std::string_view issuer, std::string_view reason,
                                                      int64_t now_s) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement sel, prepare(
        fmt::format("SELECT {} FROM certs WHERE issuer = ? AND revoked = 0 AND not_after > ? AND kind != 'ocsp' "
                    "ORDER BY rowid",
                          kCertColumns)));
    sel.bind(1, issuer).bind(2, now_s);
    WARDEN_ASSIGN_OR_RETURN(std::vector<CertRecord> certs, collectCerts(sel));
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "UPDATE certs SET revoked = 1, revoked_at = ?, revocation_reason = ? WHERE serial = ?"));
    for (CertRecord& c : certs) {
      st.bind(1, now()).bind(2, reason).bind(3, c.serial_hex);
      WARDEN_RETURN_IF_ERROR(st.run());
      st.reset();
      c.revoked = true;
      c.revoked_at = now();
      c.revocation_reason = std::string(reason);
    }
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return certs;
  }

  Result<std::vector<CertRecord>> listCertsIssuedBy(std::string_view issuer, int64_t not_after_after) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM certs WHERE issuer = ? AND not_after > ? ORDER BY rowid", kCertColumns)));
    st.bind(1, issuer).bind(2, not_after_after);
    return collectCerts(st);
  }

  Result<std::vector<CertRecord>> listRevokedCertsIssuedBy(std::string_view issuer, int64_t not_after_after) override {
    std::lock_guard lock(mu_);
    // "revoked = 1" exactly as in the partial index certs_revoked_by_issuer,
    // so that SQLite can use it.
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(fmt::format("SELECT {} FROM certs INDEXED BY certs_revoked_by_issuer "
                          "WHERE issuer = ? AND not_after > ? AND revoked = 1 ORDER BY rowid", kCertColumns)));
    st.bind(1, issuer).bind(2, not_after_after);
    return collectCerts(st);
  }

  Result<bool> hasUnexpiredCertsIssuedBy(std::string_view issuer, int64_t now_s) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT EXISTS(SELECT 1 FROM certs WHERE issuer = ? AND not_after > ? AND kind != 'ocsp')"));
    st.bind(1, issuer).bind(2, now_s);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    return row && st.int64(0) != 0;
  }

  Result<std::vector<CertRecord>> listCertsExpiring(int64_t from, int64_t to) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM certs WHERE not_after > ? AND not_after <= ? ORDER BY not_after, rowid",
                          kCertColumns)));
    st.bind(1, from).bind(2, to);
    return collectCerts(st);
  }

  Status insertCa(const CaRecord& ca) override {
    std::lock_guard lock(mu_);
    if (ca.name.empty() || ca.key_id.empty() || ca.cert_pem.empty()) {
      return core::invalidArgument("a CA record needs a name, a key id and a certificate");
    }
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement chk, prepare("SELECT name FROM cas WHERE name = ? OR key_id = ?"));
    chk.bind(1, ca.name).bind(2, ca.key_id);
    WARDEN_ASSIGN_OR_RETURN(bool exists, chk.step());
    if (exists) {
      return core::alreadyExists(fmt::format("CA '{}' (or one with the same key) is already in the inventory", ca.name));
    }
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO cas(name, kind, state, key_id, cert_pem, key_ref, created_at, retired_at) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?)"));
    st.bind(1, ca.name).bind(2, ca.kind).bind(3, caStateName(ca.state)).bind(4, ca.key_id).bind(5, ca.cert_pem);
    st.bind(6, ca.key_ref).bind(7, ca.created_at != 0 ? ca.created_at : now()).bind(8, ca.retired_at);
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Result<std::vector<CaRecord>> listCas() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM cas ORDER BY created_at, rowid", kCaColumns)));
    std::vector<CaRecord> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      WARDEN_ASSIGN_OR_RETURN(CaRecord c, readCa(st));
      out.push_back(std::move(c));
    }
    return out;
  }

  Status setCaState(std::string_view name, CaState state) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement sel, prepare("SELECT state FROM cas WHERE name = ?"));
    sel.bind(1, name);
    WARDEN_ASSIGN_OR_RETURN(bool row, sel.step());
    if (!row) return core::notFound(fmt::format("there is no CA '{}' (see `warden ca list`)", name));
    if (sel.text(0) == "retired") return core::failedPrecondition(fmt::format("CA '{}' is retired already", name));
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE cas SET state = ?, retired_at = ? WHERE name = ?"));
    st.bind(1, caStateName(state)).bind(2, state == CaState::kRetired ? now() : int64_t{0}).bind(3, name);
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Status insertCrossCert(const CrossCertRecord& cross) override {
    std::lock_guard lock(mu_);
    if (cross.name.empty() || cross.cert_pem.empty()) return core::invalidArgument("a cross certificate needs a name and a PEM");
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    for (const std::string& ca : {cross.subject_ca, cross.issuer_ca}) {
      WARDEN_ASSIGN_OR_RETURN(Statement chk, prepare("SELECT name FROM cas WHERE name = ? AND kind = 'root'"));
      chk.bind(1, ca);
      WARDEN_ASSIGN_OR_RETURN(bool found, chk.step());
      if (!found) return core::notFound(fmt::format("there is no root CA '{}' in the inventory", ca));
    }
    WARDEN_ASSIGN_OR_RETURN(Statement dup, prepare("SELECT name FROM ca_cross_certs WHERE name = ?"));
    dup.bind(1, cross.name);
    WARDEN_ASSIGN_OR_RETURN(bool exists, dup.step());
    if (exists) return core::alreadyExists(fmt::format("cross certificate '{}' is already recorded", cross.name));
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO ca_cross_certs(name, subject_ca, issuer_ca, cert_pem, created_at) VALUES(?, ?, ?, ?, ?)"));
    st.bind(1, cross.name).bind(2, cross.subject_ca).bind(3, cross.issuer_ca).bind(4, cross.cert_pem);
    st.bind(5, cross.created_at != 0 ? cross.created_at : now());
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Result<std::vector<CrossCertRecord>> listCrossCerts() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT name, subject_ca, issuer_ca, cert_pem, created_at FROM ca_cross_certs ORDER BY created_at, rowid"));
    std::vector<CrossCertRecord> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      CrossCertRecord c;
      c.name = st.text(0);
      c.subject_ca = st.text(1);
      c.issuer_ca = st.text(2);
      c.cert_pem = st.text(3);
      c.created_at = st.int64(4);
      out.push_back(std::move(c));
    }
    return out;
  }

  Result<int64_t> nextCrlNumber(std::string_view name) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE cas SET crl_number = crl_number + 1 WHERE name = ?"));
    st.bind(1, name);
    WARDEN_RETURN_IF_ERROR(st.run());
    if (sqlite3_changes(db()) == 0) return core::notFound(fmt::format("there is no CA '{}'", name));
    WARDEN_ASSIGN_OR_RETURN(Statement sel, prepare("SELECT crl_number FROM cas WHERE name = ?"));
    sel.bind(1, name);
    WARDEN_ASSIGN_OR_RETURN(bool row, sel.step());
    if (!row) return core::internalError("CRL number vanished");
    int64_t n = sel.int64(0);
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return n;
  }

  Result<bool> pubkeyCertifiedToOtherDevice(std::string_view pubkey_fp, std::string_view device) override {
    std::lock_guard lock(mu_);
    return keyHeldByOtherLocked(pubkey_fp, device, "device");
  }

  Status setDeviceCertTtl(std::string_view device, int64_t ttl_s) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(device));
    if (!d) return core::notFound(fmt::format("device '{}' not found", device));
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE devices SET cert_ttl = ? WHERE name = ?"));
    st.bind(1, ttl_s).bind(2, device);
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Result<CertTtls> certTtls(std::string_view device) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("SELECT d.cert_ttl, COALESCE(m.cert_ttl, 0) FROM devices d "
              "LEFT JOIN factory_identities f ON f.device = d.name "
              "LEFT JOIN manufacturers m ON m.name = f.manufacturer WHERE d.name = ?"));
    st.bind(1, device);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    CertTtls out;
    if (row) {
      out.device_s = st.int64(0);
      out.manufacturer_s = st.int64(1);
    }
    return out;
  }

  Status insertManufacturer(const ManufacturerRecord& m) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(std::optional<ManufacturerRecord> existing, findManufacturerLocked(m.name));
    if (existing) return core::alreadyExists(fmt::format("manufacturer '{}' already exists", m.name));
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO manufacturers(name, ca_pem, role, labels_json, name_prefix, approval, cert_ttl, "
        "auto_register, created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    st.bind(1, m.name).bind(2, m.ca_pem).bind(3, m.role).bind(4, labelsToJson(m.labels)).bind(5, m.name_prefix);
    st.bind(6, m.approval).bind(7, m.cert_ttl_s).bind(8, m.auto_register).bind(9, m.created_at != 0 ? m.created_at : now());
    WARDEN_RETURN_IF_ERROR(st.run());
    WARDEN_ASSIGN_OR_RETURN(Statement ser, prepare(
        "INSERT OR IGNORE INTO manufacturer_serials(manufacturer, serial_number) VALUES(?, ?)"));
    for (const std::string& serial : m.serials) {
      ser.bind(1, m.name).bind(2, serial);
      WARDEN_RETURN_IF_ERROR(ser.run());
      ser.reset();
    }
    return txn.commit();
  }

  Result<std::optional<ManufacturerRecord>> getManufacturer(std::string_view name) override {
    std::lock_guard lock(mu_);
    return findManufacturerLocked(name);
  }

  Result<std::vector<ManufacturerRecord>> listManufacturers() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM manufacturers ORDER BY name", kManufacturerColumns)));
    std::vector<ManufacturerRecord> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      WARDEN_ASSIGN_OR_RETURN(ManufacturerRecord m, readManufacturer(st));
      out.push_back(std::move(m));
    }
    return out;
  }

  Result<bool> deleteManufacturer(std::string_view name) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement ser, prepare("DELETE FROM manufacturer_serials WHERE manufacturer = ?"));
    ser.bind(1, name);
    WARDEN_RETURN_IF_ERROR(ser.run());
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM manufacturers WHERE name = ?"));
    st.bind(1, name);
    WARDEN_RETURN_IF_ERROR(st.run());
    bool deleted = sqlite3_changes(db()) > 0;
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return deleted;
  }

  Status insertTpmCa(const TpmCaRecord& ca) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO tpm_cas(fingerprint, subject, pem, not_after, added_at, added_by) "
        "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(fingerprint) DO NOTHING"));
    st.bind(1, ca.fingerprint).bind(2, ca.subject).bind(3, ca.pem).bind(4, ca.not_after);
    st.bind(5, ca.added_at != 0 ? ca.added_at : now()).bind(6, ca.added_by);
    WARDEN_RETURN_IF_ERROR(st.run());
    if (sqlite3_changes(db()) == 0) {
      return core::alreadyExists(fmt::format("TPM vendor CA {} is already trusted", ca.fingerprint));
    }
    return Status::ok();
  }

  Result<std::vector<TpmCaRecord>> listTpmCas() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT fingerprint, subject, pem, not_after, added_at, added_by FROM tpm_cas ORDER BY added_at, fingerprint"));
    std::vector<TpmCaRecord> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.push_back(TpmCaRecord{st.text(0), st.text(1), st.text(2), st.int64(3), st.int64(4), st.text(5)});
    }
    return out;
  }

  Result<bool> deleteTpmCa(std::string_view fingerprint) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM tpm_cas WHERE fingerprint = ?"));
    st.bind(1, fingerprint);
    WARDEN_RETURN_IF_ERROR(st.run());
    return sqlite3_changes(db()) > 0;
  }

  Result<std::optional<DeviceTpmRecord>> getDeviceTpm(std::string_view device) override {
    std::lock_guard lock(mu_);
    return deviceTpmLocked(device);
  }

  Result<std::optional<std::string>> deviceOfEk(std::string_view ek_fingerprint) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("SELECT device FROM device_tpms WHERE ek_fingerprint = ?"));
    st.bind(1, ek_fingerprint);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(st.text(0));
  }

  Status bindDeviceEk(std::string_view device, std::string_view ek_fingerprint) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> dev, findDeviceLocked(device));
    if (!dev) return core::notFound(fmt::format("device '{}' not found", device));
    WARDEN_RETURN_IF_ERROR(checkEkFreeLocked(device, ek_fingerprint));
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceTpmRecord> current, deviceTpmLocked(device));
    if (current && current->ek_fingerprint != ek_fingerprint && !current->ak_name.empty()) {
      return core::alreadyExists(fmt::format(
          "device '{}' is bound to the TPM with EK {} and has an attestation key; remove that binding first "
          "(warden tpm-ek remove {})", device, current->ek_fingerprint, device));
    }
    if (current && current->ek_fingerprint == ek_fingerprint) return txn.commit();
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT OR REPLACE INTO device_tpms(device, ek_fingerprint, ek_source) VALUES(?, ?, 'operator')"));
    st.bind(1, device).bind(2, ek_fingerprint);
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Status registerAk(const DeviceTpmRecord& t) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_RETURN_IF_ERROR(checkEkFreeLocked(t.device, t.ek_fingerprint));
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceTpmRecord> current, deviceTpmLocked(t.device));
    if (current && current->ek_fingerprint != t.ek_fingerprint) {
      return core::alreadyExists(fmt::format("device '{}' is bound to another TPM (EK {})", t.device,
                                             current->ek_fingerprint));
    }
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT OR REPLACE INTO device_tpms(device, ek_fingerprint, ek_source, ak_public, ak_name, "
        "ak_registered_at, last_reset_count) VALUES(?, ?, ?, ?, ?, ?, -1)"));
    st.bind(1, t.device).bind(2, t.ek_fingerprint).bind(3, t.ek_source).bind(4, t.ak_public).bind(5, t.ak_name);
    st.bind(6, t.ak_registered_at != 0 ? t.ak_registered_at : now());
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Status setLastResetCount(std::string_view device, int64_t reset_count) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE device_tpms SET last_reset_count = ? WHERE device = ?"));
    st.bind(1, reset_count).bind(2, device);
    WARDEN_RETURN_IF_ERROR(st.run());
    if (sqlite3_changes(db()) == 0) return core::notFound(fmt::format("device '{}' has no TPM binding", device));
    return Status::ok();
  }

  Result<bool> deleteDeviceTpm(std::string_view device) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM device_tpms WHERE device = ?"));
    st.bind(1, device);
    WARDEN_RETURN_IF_ERROR(st.run());
    return sqlite3_changes(db()) > 0;
  }

  Result<bool> manufacturerAllowsSerial(std::string_view name, std::string_view serial_number) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT 1 FROM manufacturer_serials WHERE manufacturer = ? AND serial_number = ?"));
    st.bind(1, name).bind(2, serial_number);
    return st.step();
  }

  Result<std::optional<std::string>> factoryDevice(std::string_view manufacturer,
                                                   std::string_view serial_number) override {
    std::lock_guard lock(mu_);
    return factoryDeviceLocked(manufacturer, serial_number);
  }

  Status enrollFactory(const FactoryEnrollment& e, const CertRecord& cert) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    const std::string& name = e.device.name;
    WARDEN_ASSIGN_OR_RETURN(std::optional<std::string> bound, factoryDeviceLocked(e.manufacturer, e.serial_number));
    if (!e.rebootstrap) {
      if (bound) return core::alreadyExists(std::string(kReasonDuplicateIdentity));
      WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> existing, findDeviceLocked(name));
      if (existing) return core::alreadyExists(std::string(kReasonNameTaken));
      DeviceRecord d = e.device;
      d.state = DeviceState::kActive;
      WARDEN_RETURN_IF_ERROR(insertDeviceLocked(d));
      WARDEN_ASSIGN_OR_RETURN(Statement bind, prepare(
          "INSERT INTO factory_identities(manufacturer, serial_number, device, created_at) VALUES(?, ?, ?, ?)"));
      bind.bind(1, e.manufacturer).bind(2, e.serial_number).bind(3, name).bind(4, now());
      WARDEN_RETURN_IF_ERROR(bind.run());
    } else {
      if (!bound || *bound != name) return core::alreadyExists(std::string(kReasonDuplicateIdentity));
      WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(name));
      if (!d) return unauth(kReasonUnknownDevice);
      if (d->state == DeviceState::kRevoked) return unauth(kReasonDeviceRevoked);
      WARDEN_ASSIGN_OR_RETURN(bool valid, hasValidCertLocked(name));
      if (valid) return core::alreadyExists(std::string(kReasonDuplicateIdentity));
      WARDEN_ASSIGN_OR_RETURN(Statement old, prepare(
          "UPDATE certs SET revoked = 1, revoked_at = ? WHERE principal = ? AND kind = 'device' AND revoked = 0"));
      old.bind(1, now()).bind(2, name);
      WARDEN_RETURN_IF_ERROR(old.run());
      if (d->state == DeviceState::kPending) {
        WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE devices SET state = 'active' WHERE name = ?"));
        st.bind(1, name);
        WARDEN_RETURN_IF_ERROR(st.run());
      }
    }
    CertRecord c = cert;
    c.device = name;
    c.kind = "device";
    WARDEN_RETURN_IF_ERROR(insertCertLocked(c));
    if (!e.request_id.empty()) WARDEN_RETURN_IF_ERROR(closeRequestLocked(e.request_id, name, c.pubkey_fp));
    return txn.commit();
  }

  Result<bool> hasValidCert(std::string_view device) override {
    std::lock_guard lock(mu_);
    return hasValidCertLocked(device);
  }

  Status insertEnrollRequest(const EnrollRequestRecord& r) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO enroll_requests(id, device, manufacturer, serial_number, pubkey_fp, state, created_at, "
        "expires_at, remote) VALUES(?, ?, ?, ?, ?, 'pending', ?, ?, ?)"));
    st.bind(1, r.id).bind(2, r.device).bind(3, r.manufacturer).bind(4, r.serial_number).bind(5, r.pubkey_fp);
    st.bind(6, r.created_at != 0 ? r.created_at : now()).bind(7, r.expires_at).bind(8, r.remote);
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Result<std::optional<EnrollRequestRecord>> openEnrollRequest(std::string_view device) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM enroll_requests WHERE device = ? AND state != 'issued' AND expires_at > ? "
                    "ORDER BY created_at DESC, rowid DESC LIMIT 1",
                          kRequestColumns)));
    st.bind(1, device).bind(2, now());
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<EnrollRequestRecord>();
    WARDEN_ASSIGN_OR_RETURN(EnrollRequestRecord r, readRequest(st));
    return std::optional<EnrollRequestRecord>(std::move(r));
  }

  Result<std::vector<EnrollRequestRecord>> listEnrollRequests() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM enroll_requests WHERE state IN ('pending', 'approved') AND expires_at > ? "
                    "ORDER BY created_at, rowid",
                          kRequestColumns)));
    st.bind(1, now());
    std::vector<EnrollRequestRecord> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      WARDEN_ASSIGN_OR_RETURN(EnrollRequestRecord r, readRequest(st));
      out.push_back(std::move(r));
    }
    return out;
  }

  Result<EnrollRequestRecord> decideEnrollRequest(std::string_view id, bool approve, std::string_view actor) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement find, prepare(
        fmt::format("SELECT {} FROM enroll_requests WHERE id = ?", kRequestColumns)));
    find.bind(1, id);
    WARDEN_ASSIGN_OR_RETURN(bool row, find.step());
    if (!row) return core::notFound(fmt::format("no enrollment request '{}'; `warden device pending` lists them", id));
    WARDEN_ASSIGN_OR_RETURN(EnrollRequestRecord r, readRequest(find));
    if (r.expires_at <= now()) {
      return core::notFound(fmt::format("enrollment request '{}' expired; the device must ask again", id));
    }
    switch (r.state) {
      case EnrollRequestState::kIssued:
        return core::failedPrecondition(fmt::format("enrollment request '{}' was already completed", id));
      case EnrollRequestState::kDenied:
        return core::failedPrecondition(fmt::format("enrollment request '{}' was denied", id));
      case EnrollRequestState::kApproved:
        if (approve) return core::failedPrecondition(fmt::format("enrollment request '{}' is already approved", id));
        break;
      case EnrollRequestState::kPending:
        break;
    }
    r.state = approve ? EnrollRequestState::kApproved : EnrollRequestState::kDenied;
    r.decided_at = now();
    r.decided_by = std::string(actor);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "UPDATE enroll_requests SET state = ?, decided_at = ?, decided_by = ? WHERE id = ?"));
    st.bind(1, enrollRequestStateName(r.state)).bind(2, r.decided_at).bind(3, r.decided_by).bind(4, id);
    WARDEN_RETURN_IF_ERROR(st.run());
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return r;
  }

  Result<int64_t> insertPolicyVersion(std::string_view text, std::string_view actor) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("INSERT INTO policies(text, created_at, actor) VALUES(?, ?, ?)"));
    st.bind(1, text).bind(2, now()).bind(3, actor);
    WARDEN_RETURN_IF_ERROR(st.run());
    int64_t version = sqlite3_last_insert_rowid(db());
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return version;
  }

  // policyVersionFromRow reads a "version, text, created_at, actor" row.
  static PolicyVersion policyVersionFromRow(Statement& st) {
    PolicyVersion p;
    p.version = st.int64(0);
    p.text = st.text(1);
    p.created_at = st.int64(2);
    p.actor = st.text(3);
    return p;
  }

  Result<std::optional<PolicyVersion>> activePolicy() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT version, text, created_at, actor FROM policies ORDER BY version DESC LIMIT 1"));
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<PolicyVersion>();
    return std::optional<PolicyVersion>(policyVersionFromRow(st));
  }

  Result<std::optional<PolicyVersion>> policyVersion(int64_t version) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT version, text, created_at, actor FROM policies WHERE version = ?"));
    st.bind(1, version);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<PolicyVersion>();
    return std::optional<PolicyVersion>(policyVersionFromRow(st));
  }

  Result<std::vector<PolicyVersion>> listPolicyVersions(size_t limit) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT version, created_at, actor FROM policies ORDER BY version DESC LIMIT ?"));
    st.bind(1, static_cast<int64_t>(limit));
    std::vector<PolicyVersion> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      PolicyVersion p;
      p.version = st.int64(0);
      p.created_at = st.int64(1);
      p.actor = st.text(2);
      out.push_back(std::move(p));
    }
    return out;
  }

  Result<std::vector<EventRecord>> appendEvents(std::vector<EventRecord> batch) override {
    std::lock_guard lock(mu_);
    if (batch.empty()) return batch;
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO events(time, type, principal, actor, action, resource, decision, rule, reason, detail_json) "
        "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    for (EventRecord& e : batch) {
      if (e.time == 0) e.time = now();
      std::string detail = e.detail.is_null() ? std::string("{}")
                                              : e.detail.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      st.bind(1, e.time).bind(2, e.type).bind(3, e.principal).bind(4, e.actor).bind(5, e.action);
      st.bind(6, e.resource).bind(7, e.decision).bind(8, e.rule).bind(9, e.reason).bind(10, detail);
      WARDEN_RETURN_IF_ERROR(st.run());
      e.id = sqlite3_last_insert_rowid(db());
      st.reset();
    }
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return batch;
  }

  Result<std::vector<EventRecord>> listEvents(std::optional<int64_t> since_id, size_t limit) override {
    std::lock_guard lock(mu_);
    std::vector<EventRecord> out;
    if (limit == 0) return out;
    const int64_t lim = static_cast<int64_t>(std::min<size_t>(limit, static_cast<size_t>(INT64_MAX)));
    std::string sql =
        since_id ? fmt::format("SELECT {} FROM events WHERE id > ? ORDER BY id ASC LIMIT ?", kEventColumns)
                 : fmt::format("SELECT * FROM (SELECT {} FROM events ORDER BY id DESC LIMIT ?) ORDER BY id ASC",
                               kEventColumns);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(sql));
    if (since_id) {
      st.bind(1, *since_id).bind(2, lim);
    } else {
      st.bind(1, lim);
    }
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.push_back(readEvent(st));
    }
    return out;
  }

  Result<int64_t> lastEventId() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("SELECT COALESCE(MAX(id), 0) FROM events"));
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    return row ? st.int64(0) : int64_t{0};
  }

  Result<int64_t> pruneEvents(int64_t before_time) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("DELETE FROM events WHERE time < ?"));
    st.bind(1, before_time);
    WARDEN_RETURN_IF_ERROR(st.run());
    int64_t n = sqlite3_changes(db());
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return n;
  }

  // --- firmware and posture ---------------------------------------------
  Result<bool> approveFirmware(const FirmwareApproval& a) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement find, prepare(
        "SELECT version, revoked_at FROM firmware_approvals WHERE digest = ? AND model = ?"));
    find.bind(1, a.digest).bind(2, a.model);
    WARDEN_ASSIGN_OR_RETURN(bool row, find.step());
    if (row && find.int64(1) == 0) {
      if (find.text(0) == a.version) return false;
      return core::failedPrecondition(fmt::format("{} is already approved for model '{}' as version '{}': revoke "
                                                  "that approval first to record another version",
                                                  a.digest, a.model, find.text(0)));
    }
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO firmware_approvals(digest, model, version, approved_at, approved_by) VALUES(?, ?, ?, ?, ?) "
        "ON CONFLICT(digest, model) DO UPDATE SET version = excluded.version, approved_at = "
        "excluded.approved_at, approved_by = excluded.approved_by, revoked_at = 0, revoked_by = ''"));
    st.bind(1, a.digest).bind(2, a.model).bind(3, a.version).bind(4, a.approved_at != 0 ? a.approved_at : now());
    st.bind(5, a.approved_by);
    WARDEN_RETURN_IF_ERROR(st.run());
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return true;
  }

  Result<std::vector<FirmwareApproval>> revokeFirmwareApproval(std::string_view digest,
                                                               std::optional<std::string_view> model,
                                                               std::string_view actor) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    std::string where = "digest = ? AND revoked_at = 0";
    if (model) where += " AND model = ?";
    WARDEN_ASSIGN_OR_RETURN(Statement sel, prepare(
        fmt::format("SELECT {} FROM firmware_approvals WHERE {} ORDER BY model", kFirmwareColumns, where)));
    sel.bind(1, digest);
    if (model) sel.bind(2, *model);
    std::vector<FirmwareApproval> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, sel.step());
      if (!row) break;
      out.push_back(readFirmware(sel));
    }
    if (out.empty()) {
      return core::notFound(fmt::format("{} is not an approved firmware digest{}", digest,
                                        model ? fmt::format(" for model '{}'", *model) : std::string()));
    }
    const int64_t t = now();
    WARDEN_ASSIGN_OR_RETURN(Statement upd, prepare(
        "UPDATE firmware_approvals SET revoked_at = ?, revoked_by = ? WHERE digest = ? AND model = ?"));
    for (FirmwareApproval& a : out) {
      upd.bind(1, t).bind(2, actor).bind(3, a.digest).bind(4, a.model);
      WARDEN_RETURN_IF_ERROR(upd.run());
      upd.reset();
      a.revoked_at = t;
      a.revoked_by = std::string(actor);
    }
    WARDEN_RETURN_IF_ERROR(txn.commit());
    return out;
  }

  Result<std::vector<FirmwareApproval>> listFirmware() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM firmware_approvals ORDER BY model, digest", kFirmwareColumns)));
    std::vector<FirmwareApproval> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.push_back(readFirmware(st));
    }
    return out;
  }

  Status savePosture(const PostureRecord& p, std::optional<DeviceState> state) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(p.device));
    if (!d) return core::notFound(fmt::format("device '{}' not found", p.device));
    if (state) {
      const bool movable = (d->state == DeviceState::kActive || d->state == DeviceState::kQuarantined) &&
                           (*state == DeviceState::kActive || *state == DeviceState::kQuarantined);
      if (!movable) {
        return core::failedPrecondition(fmt::format("device '{}' is {}: posture moves only active and quarantined "
                                                    "devices",
                                                    p.device, deviceStateName(d->state)));
      }
      WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("UPDATE devices SET state = ? WHERE name = ?"));
      st.bind(1, deviceStateName(*state)).bind(2, p.device);
      WARDEN_RETURN_IF_ERROR(st.run());
    }
    std::string reasons;
    for (const std::string& r : p.quarantine_reasons) reasons += (reasons.empty() ? "" : ",") + r;
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("INSERT OR REPLACE INTO postures({}) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "?, ?)",
                          kPostureColumns)));
    st.bind(1, p.device).bind(2, p.attested_at).bind(3, p.assurance).bind(4, p.result).bind(5, p.reason);
    st.bind(6, p.detail).bind(7, p.boot).bind(8, p.log_json).bind(9, p.last_good_at).bind(10, p.last_good_assurance);
    st.bind(11, p.firmware_model).bind(12, p.firmware_version).bind(13, static_cast<int64_t>(p.firmware_approved));
    st.bind(14, reasons).bind(15, p.quarantined_since).bind(16, static_cast<int64_t>(p.trust));
    st.bind(17, p.updated_at != 0 ? p.updated_at : now());
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

  Result<std::optional<PostureRecord>> getPosture(std::string_view device) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM postures WHERE device = ?", kPostureColumns)));
    st.bind(1, device);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<PostureRecord>();
    return std::optional<PostureRecord>(readPosture(st));
  }

  Result<std::vector<PostureRecord>> listPostures() override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM postures ORDER BY device", kPostureColumns)));
    std::vector<PostureRecord> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.push_back(readPosture(st));
    }
    return out;
  }

  Result<std::vector<EventRecord>> listEventsAbout(std::string_view principal, size_t limit) override {
    std::lock_guard lock(mu_);
    std::vector<EventRecord> out;
    if (limit == 0) return out;
    const int64_t lim = static_cast<int64_t>(std::min<size_t>(limit, static_cast<size_t>(INT64_MAX)));
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT * FROM (SELECT {} FROM events WHERE principal = ? ORDER BY id DESC LIMIT ?) "
                    "ORDER BY id ASC",
                          kEventColumns)));
    st.bind(1, principal).bind(2, lim);
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.push_back(readEvent(st));
    }
    return out;
  }

  Result<std::optional<std::string>> getMeta(std::string_view key) override {
    std::lock_guard lock(mu_);
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("SELECT value FROM meta WHERE key = ?"));
    st.bind(1, key);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(st.text(0));
  }

  Status setMeta(std::string_view key, std::string_view value) override {
    std::lock_guard lock(mu_);
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    st.bind(1, key).bind(2, value);
    WARDEN_RETURN_IF_ERROR(st.run());
    return txn.commit();
  }

 private:
  sqlite3* db() const { return db_.get(); }
  // prepare returns the cached statement for |sql| (StatementCache).
  Result<Statement> prepare(std::string_view sql) { return statements_.prepare(sql); }
  int64_t now() const { return core::unixSeconds(clock_.now()); }

  Result<DeviceRecord> readDevice(const Statement& st) {
    DeviceRecord d;
    d.name = st.text(0);
    d.role = st.text(1);
    WARDEN_ASSIGN_OR_RETURN(d.labels, labelsFromJson(st.text(2)));
    WARDEN_ASSIGN_OR_RETURN(d.state, parseDeviceState(st.text(3)));
    d.created_at = st.int64(4);
    d.key_store_claim = st.text(5);
    d.cert_ttl_s = st.int64(6);
    d.key_proof.result = st.text(7);
    d.key_proof.key_fp = st.text(8);
    d.key_proof.reason = st.text(9);
    d.key_proof.at = st.int64(10);
    return d;
  }

  Result<std::optional<DeviceRecord>> findDeviceLocked(std::string_view name) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT name, role, labels_json, state, created_at, key_store_claim, cert_ttl, key_proof_result, key_proof_key_fp, key_proof_reason, key_proof_at FROM devices WHERE name = ?"));
    st.bind(1, name);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<DeviceRecord>();
    WARDEN_ASSIGN_OR_RETURN(DeviceRecord d, readDevice(st));
    return std::optional<DeviceRecord>(std::move(d));
  }

  Status insertDeviceLocked(const DeviceRecord& device) {
    if (!core::isValidName(device.name)) {
      return core::invalidArgument(fmt::format("invalid device name '{}'", device.name));
    }
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> existing, findDeviceLocked(device.name));
    if (existing) {
      return core::alreadyExists(fmt::format(
          "device name '{}' is already taken (names are never reused, even after revocation)", device.name));
    }
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO devices(name, role, labels_json, state, created_at, cert_ttl) VALUES(?, ?, ?, ?, ?, ?)"));
    st.bind(1, device.name).bind(2, device.role).bind(3, labelsToJson(device.labels));
    st.bind(4, deviceStateName(device.state)).bind(5, device.created_at != 0 ? device.created_at : now());
    st.bind(6, device.cert_ttl_s);
    return st.run();
  }

  Result<ManufacturerRecord> readManufacturer(const Statement& st) {
    ManufacturerRecord m;
    m.name = st.text(0);
    m.ca_pem = st.text(1);
    m.role = st.text(2);
    WARDEN_ASSIGN_OR_RETURN(m.labels, labelsFromJson(st.text(3)));
    m.name_prefix = st.text(4);
    m.approval = st.text(5);
    m.cert_ttl_s = st.int64(6);
    m.auto_register = st.int64(7) != 0;
    m.created_at = st.int64(8);
    m.serial_count = st.int64(9);
    return m;
  }

  Result<std::optional<ManufacturerRecord>> findManufacturerLocked(std::string_view name) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        fmt::format("SELECT {} FROM manufacturers WHERE name = ?", kManufacturerColumns)));
    st.bind(1, name);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<ManufacturerRecord>();
    WARDEN_ASSIGN_OR_RETURN(ManufacturerRecord m, readManufacturer(st));
    return std::optional<ManufacturerRecord>(std::move(m));
  }

  Result<std::optional<DeviceTpmRecord>> deviceTpmLocked(std::string_view device) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT device, ek_fingerprint, ek_source, ak_public, ak_name, ak_registered_at, last_reset_count "
        "FROM device_tpms WHERE device = ?"));
    st.bind(1, device);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<DeviceTpmRecord>();
    return std::optional<DeviceTpmRecord>(
        DeviceTpmRecord{st.text(0), st.text(1), st.text(2), st.text(3), st.text(4), st.int64(5), st.int64(6)});
  }

  // checkEkFreeLocked refuses an EK bound to a device other than |device|.
  Status checkEkFreeLocked(std::string_view device, std::string_view ek_fingerprint) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("SELECT device FROM device_tpms WHERE ek_fingerprint = ?"));
    st.bind(1, ek_fingerprint);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (row && st.text(0) != device) {
      return core::alreadyExists(fmt::format("the TPM with EK {} is bound to another device; one TPM binds to one device",
                                             ek_fingerprint));
    }
    return Status::ok();
  }

  Result<std::optional<std::string>> factoryDeviceLocked(std::string_view manufacturer, std::string_view serial) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT device FROM factory_identities WHERE manufacturer = ? AND serial_number = ?"));
    st.bind(1, manufacturer).bind(2, serial);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(st.text(0));
  }

  Result<bool> hasValidCertLocked(std::string_view device) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT 1 FROM certs WHERE principal = ? AND kind = 'device' AND revoked = 0 AND not_after > ? LIMIT 1"));
    st.bind(1, device).bind(2, now());
    return st.step();
  }

  static Result<EnrollRequestRecord> readRequest(const Statement& st) {
    EnrollRequestRecord r;
    r.id = st.text(0);
    r.device = st.text(1);
    r.manufacturer = st.text(2);
    r.serial_number = st.text(3);
    r.pubkey_fp = st.text(4);
    std::string state = st.text(5);
    if (state == "pending") {
      r.state = EnrollRequestState::kPending;
    } else if (state == "approved") {
      r.state = EnrollRequestState::kApproved;
    } else if (state == "denied") {
      r.state = EnrollRequestState::kDenied;
    } else if (state == "issued") {
      r.state = EnrollRequestState::kIssued;
    } else {
      return core::dataLoss(fmt::format("stored enrollment request state '{}' is unknown", state));
    }
    r.created_at = st.int64(6);
    r.expires_at = st.int64(7);
    r.decided_at = st.int64(8);
    r.decided_by = st.text(9);
    r.remote = st.text(10);
    return r;
  }

  // closeRequestLocked marks approved request |id| of |device| for key
  // |pubkey_fp| issued (inside the issuing transaction).
  Status closeRequestLocked(std::string_view id, std::string_view device, std::string_view pubkey_fp) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "UPDATE enroll_requests SET state = 'issued' WHERE id = ? AND device = ? AND pubkey_fp = ? "
        "AND state = 'approved' AND expires_at > ?"));
    st.bind(1, id).bind(2, device).bind(3, pubkey_fp).bind(4, now());
    WARDEN_RETURN_IF_ERROR(st.run());
    if (sqlite3_changes(db()) != 1) {
      return core::failedPrecondition(fmt::format("enrollment request '{}' is not approved for this key", id));
    }
    return Status::ok();
  }

  Status insertTokenLocked(std::string_view device, std::string_view hash_hex, int64_t expires_at) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO tokens(device, hash, expires_at, used, created_at) VALUES(?, ?, ?, 0, ?)"));
    st.bind(1, device).bind(2, hash_hex).bind(3, expires_at).bind(4, now());
    return st.run();
  }

  // checkEnrollableLocked returns the device if it may enroll with a token.
  Result<DeviceRecord> checkEnrollableLocked(std::string_view device) {
    WARDEN_ASSIGN_OR_RETURN(std::optional<DeviceRecord> d, findDeviceLocked(device));
    if (!d) return unauth(kReasonUnknownDevice);
    if (d->state == DeviceState::kRevoked) return unauth(kReasonDeviceRevoked);
    return std::move(*d);
  }

  // matchTokenLocked returns the id of |device|'s usable token whose hash
  // equals |hash_hex|. Every stored hash is compared in constant time (no
  // early exit), so timing reveals at most how many tokens exist.
  Result<int64_t> matchTokenLocked(std::string_view device, std::string_view hash_hex) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT id, hash, expires_at, used FROM tokens WHERE device = ? ORDER BY id"));
    st.bind(1, device);
    bool any = false;
    std::optional<int64_t> match_id;
    int64_t match_expires = 0;
    bool match_used = false;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      any = true;
      std::string stored = st.text(1);
      if (crypto::constantTimeEquals(stored, hash_hex) && stored.size() == hash_hex.size()) {
        match_id = st.int64(0);
        match_expires = st.int64(2);
        match_used = st.int64(3) != 0;
      }
    }
    if (!any) return unauth(kReasonNoToken);
    if (!match_id) return unauth(kReasonTokenMismatch);
    if (match_used) return unauth(kReasonTokenUsed);
    if (match_expires <= now()) return unauth(kReasonTokenExpired);
    return *match_id;
  }

  Result<std::optional<CertRecord>> findCertLocked(std::string_view serial_hex) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(fmt::format("SELECT {} FROM certs WHERE serial = ?", kCertColumns)));
    st.bind(1, serial_hex);
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return std::optional<CertRecord>();
    return std::optional<CertRecord>(readCert(st));
  }

  Result<bool> keyHeldByOtherLocked(std::string_view pubkey_fp, std::string_view principal, std::string_view kind) {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT 1 FROM certs WHERE pubkey_fp = ? AND NOT (principal = ? AND kind = ?) LIMIT 1"));
    st.bind(1, pubkey_fp).bind(2, principal).bind(3, kind);
    return st.step();
  }

  Status insertCertLocked(const CertRecord& c) {
    if (c.serial_hex.empty() || c.device.empty() || c.kind.empty()) {
      return core::invalidArgument("certificate record needs a serial, a principal and a kind");
    }
    if (!c.pubkey_fp.empty()) {
      WARDEN_ASSIGN_OR_RETURN(bool reused, keyHeldByOtherLocked(c.pubkey_fp, c.device, c.kind));
      if (reused) return core::alreadyExists(std::string(kReasonKeyReuse));
    }
    WARDEN_ASSIGN_OR_RETURN(std::optional<CertRecord> existing, findCertLocked(c.serial_hex));
    if (existing) return core::alreadyExists(std::string(kReasonSerialCollision));
    std::string issuer = c.issuer;
    if (issuer.empty()) {
      WARDEN_ASSIGN_OR_RETURN(issuer, issuerOfLocked(c.pem));
    }
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "INSERT INTO certs(serial, principal, kind, pubkey_fp, not_before, not_after, revoked, revoked_at, pem, "
        "issuer, revocation_reason) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    st.bind(1, c.serial_hex).bind(2, c.device).bind(3, c.kind).bind(4, c.pubkey_fp).bind(5, c.not_before);
    st.bind(6, c.not_after).bind(7, c.revoked).bind(8, c.revoked_at).bind(9, c.pem).bind(10, issuer);
    st.bind(11, c.revocation_reason);
    return st.run();
  }

  // issuerOfLocked names the CA of the inventory whose key identifier is the
  // AKI of the certificate |pem|. With an empty inventory (a store used
  // without CAs, e.g. in tests) it returns ""; a certificate that no CA of a
  // non-empty inventory signed is refused (fail closed).
  Result<std::string> issuerOfLocked(const std::string& pem) {
    WARDEN_ASSIGN_OR_RETURN(Statement count, prepare("SELECT COUNT(*) FROM cas"));
    WARDEN_ASSIGN_OR_RETURN(bool row, count.step());
    if (!row || count.int64(0) == 0) return std::string();
    auto cert = crypto::certFromPem(pem);
    if (!cert.isOk()) return core::invalidArgument("the certificate record holds no readable PEM certificate");
    std::string aki = crypto::authorityKeyIdHex(cert->get());
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("SELECT name FROM cas WHERE key_id = ?"));
    st.bind(1, aki);
    WARDEN_ASSIGN_OR_RETURN(bool found, st.step());
    if (!found) {
      return core::failedPrecondition(
          "the certificate was not signed by a CA of the inventory (`warden ca list`): refusing to record it");
    }
    return st.text(0);
  }

  Result<std::vector<CertRecord>> collectCerts(Statement& st) {
    std::vector<CertRecord> out;
    while (true) {
      WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.push_back(readCert(st));
    }
    return out;
  }

  std::mutex mu_;
  DbPtr db_;
  StatementCache statements_;  // after db_: finalized before the connection closes
  const core::Clock& clock_;
};

Status SqliteStoreImpl::migrate() {
  std::lock_guard lock(mu_);
  WARDEN_RETURN_IF_ERROR(exec(db(),
                              "CREATE TABLE IF NOT EXISTS schema_migrations("
                              "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"));
  int64_t current = 0;
  {
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations"));
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (row) current = st.int64(0);
  }
  if (current > kSchemaVersion) {
    return core::failedPrecondition(fmt::format(
        "the database schema is version {} but this warden knows only up to {}: it was written by a newer "
        "warden; upgrade warden (the database was not changed)",
        current, kSchemaVersion));
  }
  if (current == 0) {
    // A database with tables but no migration record is not ours.
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT IN "
        "('schema_migrations', 'sqlite_sequence')"));
    WARDEN_ASSIGN_OR_RETURN(bool row, st.step());
    if (row && st.int64(0) != 0) {
      return core::dataLoss("the database has tables but no Warden schema version: it is not a Warden database");
    }
  }
  for (const Migration& m : kMigrations) {
    if (m.version <= current) continue;
    Transaction txn(db());
    WARDEN_RETURN_IF_ERROR(txn.begin());
    WARDEN_RETURN_IF_ERROR(exec(db(), m.sql));
    WARDEN_ASSIGN_OR_RETURN(Statement st, prepare("INSERT INTO schema_migrations(version, applied_at) VALUES(?, ?)"));
    st.bind(1, static_cast<int64_t>(m.version)).bind(2, now());
    WARDEN_RETURN_IF_ERROR(st.run());
    WARDEN_RETURN_IF_ERROR(txn.commit());
  }
  return Status::ok();
}

// createPrivateFile makes sure |path| exists with mode 0600 before SQLite
// opens it (SQLite would otherwise create it with the umask's mode, and its
// -wal and -shm files copy the database file's mode).
Status createPrivateFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return core::unavailable(fmt::format("cannot open database file {}: {}", path, std::strerror(errno)));
  }
  struct stat st {};
  Status result = Status::ok();
  if (::fstat(fd, &st) != 0) {
    result = core::unavailable(fmt::format("cannot stat database file {}: {}", path, std::strerror(errno)));
  } else if ((st.st_mode & 077) != 0 && ::fchmod(fd, 0600) != 0) {
    result = core::permissionDenied(fmt::format("database file {} is readable by others and cannot be made 0600: {}",
                                                path, std::strerror(errno)));
  }
  ::close(fd);
  return result;
}

}  // namespace

Result<std::unique_ptr<Store>> SqliteStore::open(const std::string& path, const core::Clock& clock) {
  WARDEN_RETURN_IF_ERROR(createPrivateFile(path));
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) return sqliteStatus(db.get(), rc, fmt::format("open {}", path));
  sqlite3_extended_result_codes(db.get(), 0);
  sqlite3_busy_timeout(db.get(), 5000);
  {
    // journal_mode returns a row; sqlite3_exec discards it. It also is the
    // first read of the file, so a non-database fails here.
    Status s = exec(db.get(), "PRAGMA journal_mode=WAL");
    if (!s.isOk()) return s;
  }
  WARDEN_RETURN_IF_ERROR(exec(db.get(), "PRAGMA synchronous=FULL"));
  WARDEN_RETURN_IF_ERROR(exec(db.get(), "PRAGMA foreign_keys=ON"));
  WARDEN_RETURN_IF_ERROR(exec(db.get(), "PRAGMA busy_timeout=5000"));
  auto store = std::make_unique<SqliteStoreImpl>(std::move(db), clock);
  WARDEN_RETURN_IF_ERROR(store->migrate());
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace warden::store

#pragma once

// sqlite_store.h: Store on SQLite 3 (C API): WAL, synchronous=FULL, foreign
// keys, busy_timeout, versioned migrations in schema_migrations.

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "store/store.h"

namespace warden::store {

// kSchemaVersion is the newest schema version this binary knows.
inline constexpr int kSchemaVersion = 8;

class SqliteStore {
 public:
  // open opens (creating it with mode 0600 if absent) the database at |path|,
  // applies missing migrations and returns the Store. It refuses a database
  // whose schema is newer than kSchemaVersion (kFailedPrecondition: "upgrade
  // warden") and a file that is not a Warden database (kDataLoss). |clock|
  // must outlive the store; it supplies created_at and expiry checks.
  static core::Result<std::unique_ptr<Store>> open(const std::string& path, const core::Clock& clock);
};

}  // namespace warden::store

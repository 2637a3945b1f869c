#pragma once

// ca_inventory.h: the CA inventory of a data directory as `serve`, `init`
// and the `warden ca` commands use it: recording CAs in the store, loading
// the CaSet that a running server trusts and signs with, and the trust
// bundle file (D/pki/ca-bundle.pem).

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "pki/ca_set.h"
#include "pki/pki_files.h"
#include "store/store.h"

namespace warden::server {

// caRecordFor makes the inventory record of CA |name| (kind "root" or
// "issuing") from its certificate; |key_ref| is where its key is ("" for
// the root).
core::Result<store::CaRecord> caRecordFor(const std::string& name, const std::string& kind, X509* cert,
                                          const std::string& key_ref);

// bootstrapCaInventory records the CAs of a data directory made before the
// inventory existed: D/pki/root.pem as "root" and D/pki/issuing.pem as the
// active "issuing-1" (key D/pki/issuing.key). A no-op when the inventory is
// not empty.
core::Status bootstrapCaInventory(store::Store& store, const pki::PkiPaths& paths);

// loadCaSet reads the inventory and loads the root certificate and every
// issuing CA that is not retired (keys through pki::loadCaKey), the active
// one first. kFailedPrecondition if there is no active issuing CA.
core::Result<std::shared_ptr<const pki::CaSet>> loadCaSet(store::Store& store, const std::string& pki_url);

// writeCaBundle writes |set|'s root and issuing CA certificates to
// D/pki/ca-bundle.pem (what the CLI and the gateway trust).
core::Status writeCaBundle(const std::string& dir, const pki::CaSet& set);

}  // namespace warden::server

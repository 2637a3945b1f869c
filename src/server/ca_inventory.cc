#include "server/ca_inventory.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/file_io.h"
#include "crypto/crypto.h"
#include "pki/ca_key.h"
#include "server/server_pki.h"

namespace warden::server {

core::Result<store::CaRecord> caRecordFor(const std::string& name, const std::string& kind, X509* cert,
                                          const std::string& key_ref) {
  store::CaRecord r;
  r.name = name;
  r.kind = kind;
  r.state = store::CaState::kActive;
  r.key_id = crypto::subjectKeyIdHex(cert);
  if (r.key_id.empty()) return core::invalidArgument(fmt::format("CA '{}' has no subject key identifier", name));
  r.cert_pem = crypto::certToPem(cert);
  r.key_ref = key_ref;
  return r;
}

core::Status bootstrapCaInventory(store::Store& store, const pki::PkiPaths& paths) {
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::CaRecord> cas, store.listCas());
  if (!cas.empty()) return core::Status::ok();
  WARDEN_ASSIGN_OR_RETURN(std::string root_pem, core::readFile(paths.root_cert(), 1024 * 1024));
  WARDEN_ASSIGN_OR_RETURN(std::string issuing_pem, core::readFile(paths.issuing_cert(), 1024 * 1024));
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr root, crypto::certFromPem(root_pem));
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr issuing, crypto::certFromPem(issuing_pem));
  WARDEN_ASSIGN_OR_RETURN(store::CaRecord r, caRecordFor("root", "root", root.get(), ""));
  WARDEN_RETURN_IF_ERROR(store.insertCa(r));
  std::error_code ec;
  std::string key_ref = std::filesystem::absolute(paths.issuing_key(), ec).lexically_normal().string();
  if (ec) return core::internalError("cannot resolve the issuing CA key path: " + ec.message());
  WARDEN_ASSIGN_OR_RETURN(store::CaRecord i, caRecordFor("issuing-1", "issuing", issuing.get(), key_ref));
  return store.insertCa(i);
}

core::Result<std::shared_ptr<const pki::CaSet>> loadCaSet(store::Store& store, const std::string& pki_url) {
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::CaRecord> cas, store.listCas());
  auto set = std::make_shared<pki::CaSet>();
  std::vector<std::shared_ptr<const pki::CaMaterial>> retiring;
  std::set<std::string> trusted_roots;
  for (auto it = cas.rbegin(); it != cas.rend(); ++it) {  // newest first
    const store::CaRecord& ca = *it;
    if (ca.kind == "root") {
      if (ca.state == store::CaState::kRetired) continue;
      WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr cert, crypto::certFromPem(ca.cert_pem));
      if (ca.state == store::CaState::kActive && !set->root) {
        set->root = std::move(cert);
      } else {
        set->previous_roots.push_back(std::move(cert));
      }
      trusted_roots.insert(ca.name);
      continue;
    }
    if (ca.state == store::CaState::kRetired) continue;
    auto loaded = pki::loadCa(ca.name, ca.cert_pem, ca.key_ref, pki_url);
    if (!loaded.isOk()) {
      return core::Status(loaded.status().code(),
                          fmt::format("cannot load issuing CA '{}': {}", ca.name, loaded.status().message()));
    }
    if (ca.key_ref.rfind("pkcs11:", 0) == 0) {
      spdlog::info("issuing CA key held by pkcs11 ({}: {})", ca.name, ca.key_ref);
    }
    auto material = std::make_shared<const pki::CaMaterial>(std::move(loaded).value());
    if (ca.state == store::CaState::kActive && set->issuing.empty()) {
      set->issuing.push_back(std::move(material));
    } else {
      retiring.push_back(std::move(material));
    }
  }
  if (!set->root) return core::failedPrecondition("the CA inventory has no root CA");
  if (set->issuing.empty()) {
    return core::failedPrecondition("the CA inventory has no active issuing CA: run `warden ca rotate`");
  }
  for (auto& r : retiring) set->issuing.push_back(std::move(r));
  // Cross certificates are published while both of their roots are trusted.
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::CrossCertRecord> cross, store.listCrossCerts());
  for (const store::CrossCertRecord& c : cross) {
    if (!trusted_roots.contains(c.subject_ca) || !trusted_roots.contains(c.issuer_ca)) continue;
    WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr cert, crypto::certFromPem(c.cert_pem));
    set->cross.push_back(std::move(cert));
  }
  // RFC 7030 §4.1.3 order: NewWithOld last among the root certificates, so
  // OldWithNew (the new root signing the old one) comes first.
  std::stable_partition(set->cross.begin(), set->cross.end(), [&](const crypto::X509Ptr& c) {
    return X509_NAME_cmp(X509_get_subject_name(c.get()), X509_get_subject_name(set->root.get())) != 0;
  });
  return std::shared_ptr<const pki::CaSet>(std::move(set));
}

core::Status writeCaBundle(const std::string& dir, const pki::CaSet& set) {
  return core::writeFileAtomic(caBundlePath(dir), set.trustBundlePem(), 0644);
}

}  // namespace warden::server

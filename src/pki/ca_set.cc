#include "pki/ca_set.h"

#include <openssl/x509.h>

#include "crypto/crypto.h"

namespace warden::pki {

std::vector<X509*> CaSet::trustCerts() const {
  std::vector<X509*> out;
  if (root) out.push_back(root.get());
  for (const auto& r : previous_roots) out.push_back(r.get());
  for (const auto& ca : issuing) out.push_back(ca->cert.get());
  return out;
}

std::vector<X509*> CaSet::caCerts() const {
  std::vector<X509*> out;
  if (root) out.push_back(root.get());
  for (const auto& r : previous_roots) out.push_back(r.get());
  for (const auto& c : cross) out.push_back(c.get());
  for (const auto& ca : issuing) out.push_back(ca->cert.get());
  return out;
}

X509* CaSet::rootLink() const {
  if (!root) return nullptr;
  X509* link = nullptr;
  for (const auto& c : cross) {
    if (X509_NAME_cmp(X509_get_subject_name(c.get()), X509_get_subject_name(root.get())) == 0) link = c.get();
  }
  return link;
}

std::string CaSet::trustBundlePem() const { return crypto::certsToPem(trustCerts()); }

}  // namespace warden::pki

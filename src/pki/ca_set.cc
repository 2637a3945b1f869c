#include "pki/ca_set.h"

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

std::string CaSet::trustBundlePem() const { return crypto::certsToPem(trustCerts()); }

}  // namespace warden::pki

#pragma once

// revocation_snapshot.h: what the PKI listener publishes for third parties,
// as one immutable snapshot rebuilt on the worker (on revocation, before a
// CRL's nextUpdate, on rotation) and swapped atomically.

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "crypto/openssl_ptr.h"
#include "pki/ocsp_responder.h"

namespace warden::pki {

// PublishedCa is one CA as the listener serves it: /pki/<name>.crt,
// /pki/<name>.crl(.pem) and, for issuing CAs, OCSP through its responder.
struct PublishedCa {
  std::string name;
  crypto::X509Ptr cert;
  std::string cert_der;
  std::string crl_der, crl_pem;  // empty if no CRL is available (a root CRL never signed)
  core::SystemTime crl_next_update{};
  crypto::X509Ptr responder_cert;  // null for the root
  crypto::EvpPkeyPtr responder_key;
};

struct RevocationSnapshot {
  std::vector<std::shared_ptr<const PublishedCa>> cas;

  // find returns the CA called |name| or nullptr.
  const PublishedCa* find(std::string_view name) const {
    for (const auto& c : cas) {
      if (c->name == name) return c.get();
    }
    return nullptr;
  }
  // ocspIssuers returns the CAs that have a responder (pointers into this snapshot).
  std::vector<OcspIssuer> ocspIssuers() const {
    std::vector<OcspIssuer> out;
    for (const auto& c : cas) {
      if (c->responder_cert && c->responder_key) {
        out.push_back({c->name, c->cert.get(), c->responder_cert.get(), c->responder_key.get()});
      }
    }
    return out;
  }
};

class RevocationSnapshotHolder {
 public:
  std::shared_ptr<const RevocationSnapshot> get() const { return current_.load(std::memory_order_acquire); }
  void set(std::shared_ptr<const RevocationSnapshot> s) { current_.store(std::move(s), std::memory_order_release); }

 private:
  std::atomic<std::shared_ptr<const RevocationSnapshot>> current_;
};

}  // namespace warden::pki

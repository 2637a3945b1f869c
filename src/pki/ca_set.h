#pragma once

// ca_set.h: the CAs a running server trusts and signs with, as one immutable
// snapshot swapped atomically on rotation and retirement (readers never
// lock).

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pki/certificate_authority.h"

namespace warden::pki {

// CaSet is the root certificate (its key stays offline) and every issuing CA
// that is not retired: the active one first, then retiring ones, newest
// first. Certificates chained to any of them verify; only the active one
// issues. During a root rollover (RFC 4210 §4.4) |root| is the new root,
// |previous_roots| the old one(s) still trusted until their last issuing CA
// is retired, and |cross| the cross certificates between them (NewWithOld,
// OldWithNew).
struct CaSet {
  crypto::X509Ptr root;
  std::vector<crypto::X509Ptr> previous_roots;
  std::vector<crypto::X509Ptr> cross;
  std::vector<std::shared_ptr<const CaMaterial>> issuing;

  // active returns the CA that issues new certificates (nullptr if none).
  const CaMaterial* active() const { return issuing.empty() ? nullptr : issuing.front().get(); }
  std::shared_ptr<const CaMaterial> activeShared() const { return issuing.empty() ? nullptr : issuing.front(); }
  // trustCerts returns the roots and every issuing CA certificate (not
  // owned): what verifies clients and what D/pki/ca-bundle.pem holds.
  std::vector<X509*> trustCerts() const;
  // caCerts returns trustCerts() plus the cross certificates (not owned):
  // what EST cacerts returns (RFC 7030 §4.1.3: NewWithNew, OldWithOld,
  // OldWithNew, NewWithOld, then the issuing CAs).
  std::vector<X509*> caCerts() const;
  // rootLink returns the cross certificate that certifies |root| under an
  // older root (its NewWithOld; not owned), or nullptr outside a rollover:
  // what the gateway presents after the issuing CA so that a client still
  // pinning the old root reaches the new one.
  X509* rootLink() const;
  // trustBundlePem returns trustCerts() as PEM.
  std::string trustBundlePem() const;
};

// CaSetHolder holds the current CaSet.
class CaSetHolder {
 public:
  CaSetHolder() = default;
  CaSetHolder(const CaSetHolder&) = delete;
  CaSetHolder& operator=(const CaSetHolder&) = delete;

  std::shared_ptr<const CaSet> get() const { return current_.load(std::memory_order_acquire); }
  void set(std::shared_ptr<const CaSet> set) { current_.store(std::move(set), std::memory_order_release); }

 private:
  std::atomic<std::shared_ptr<const CaSet>> current_;
};

}  // namespace warden::pki

#pragma once

// revocation_publisher.h: builds what the PKI listener serves (CRLs, CA
// certificates, OCSP responders) from the CA inventory and the store. Runs
// on the worker thread only: it reads the store and signs.

#include <map>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "pki/ocsp_responder.h"
#include "pki/pki_files.h"
#include "pki/revocation_snapshot.h"
#include "server/config.h"
#include "store/store.h"

namespace warden::server {

// kOcspResponderLifetime: RFC-wise nothing forbids longer, but a responder
// certificate with id-pkix-ocsp-nocheck cannot be revoked, so it is short.
inline constexpr core::Seconds kOcspResponderLifetime{7 * 86400};
// A responder certificate is replaced when less than this is left.
inline constexpr core::Seconds kOcspResponderRenewBefore{2 * 86400};

class RevocationPublisher {
 public:
  RevocationPublisher(store::Store& store, const ServerConfig& config, const core::Clock& clock);

  // rebuild makes a new snapshot. With |remake_crls| every issuing CA's CRL
  // is signed anew (after a revocation); otherwise a CRL is remade only when
  // half its validity has passed. The root CRL is re-read from
  // D/pki/crl/root.crl every time. Responder certificates are renewed when
  // they near expiry. Retired CAs stay published until their last
  // certificate has expired.
  core::Result<std::shared_ptr<const pki::RevocationSnapshot>> rebuild(bool remake_crls);

  // status answers OCSP for serial |serial_hex| of CA |ca|: revoked (with
  // time and reason), good if unexpired, unknown otherwise (never issued
  // by |ca|, or expired).
  pki::OcspStatus status(const std::string& ca, const std::string& serial_hex);

  // nextDue returns when the next rebuild(false) has something to do.
  core::SystemTime nextDue() const { return next_due_; }

 private:
  struct IssuingState {
    std::shared_ptr<const pki::CaMaterial> ca;
    std::shared_ptr<const pki::PublishedCa> published;  // last published (CRL + responder)
    core::SystemTime crl_made{};
  };

  core::Result<std::shared_ptr<const pki::PublishedCa>> publishIssuing(const store::CaRecord& record,
                                                                       bool remake_crl);

  store::Store& store_;
  const ServerConfig& config_;
  const core::Clock& clock_;
  pki::PkiPaths paths_;
  std::map<std::string, IssuingState> issuing_;
  core::SystemTime next_due_{};
};

}  // namespace warden::server

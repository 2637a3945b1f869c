#include "server/revocation_publisher.h"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/file_io.h"
#include "crypto/crypto.h"
#include "pki/ca_key.h"
#include "pki/revocation_list.h"

namespace warden::server {

namespace {

constexpr size_t kMaxRootCrlBytes = 1024 * 1024;

std::shared_ptr<pki::PublishedCa> basePublication(const std::string& name, X509* cert) {
  auto p = std::make_shared<pki::PublishedCa>();
  p->name = name;
  p->cert.reset(X509_dup(cert));
  p->cert_der = crypto::certToDer(cert);
  return p;
}

}  // namespace

RevocationPublisher::RevocationPublisher(store::Store& store, const ServerConfig& config, const core::Clock& clock)
    : store_(store), config_(config), clock_(clock), paths_(config.dir) {}

core::Result<std::shared_ptr<const pki::RevocationSnapshot>> RevocationPublisher::rebuild(bool remake_crls) {
  const core::SystemTime now = clock_.now();
  next_due_ = now + std::chrono::seconds(60);  // the root CRL file is re-read at least every minute
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::CaRecord> cas, store_.listCas());
  auto snapshot = std::make_shared<pki::RevocationSnapshot>();
  for (const store::CaRecord& record : cas) {
    if (record.kind == "root") {
      WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr cert, crypto::certFromPem(record.cert_pem));
      auto p = basePublication(record.name, cert.get());
      const std::string crl_file = paths_.root_crl(record.name);
      auto der = core::readFile(crl_file, kMaxRootCrlBytes);
      if (der.isOk()) {
        auto crl = pki::crlFromDer(der.value());
        if (crl.isOk()) {
          p->crl_der = der.value();
          p->crl_pem = pki::crlToPem(crl->get());
          p->crl_next_update = pki::crlNextUpdate(crl->get());
          if (p->crl_next_update < now) {
            spdlog::warn("pki: the root CRL ({}) has passed its nextUpdate: sign a new one with `warden ca crl "
                         "--root --root-key FILE`",
                         crl_file);
          }
        } else {
          spdlog::warn("pki: {} is not a DER CRL; the root CRL is not published", crl_file);
        }
      }
      snapshot->cas.push_back(std::move(p));
      continue;
    }
    auto published = publishIssuing(record, remake_crls);
    if (!published.isOk()) {
      // One CA's failure must not take the others' revocation data down.
      spdlog::error("pki: cannot publish CRL/OCSP of CA '{}': {}", record.name, published.status().message());
      auto it = issuing_.find(record.name);
      if (it != issuing_.end() && it->second.published) snapshot->cas.push_back(it->second.published);
      continue;
    }
    if (*published) snapshot->cas.push_back(*published);
  }
  return std::shared_ptr<const pki::RevocationSnapshot>(std::move(snapshot));
}

core::Result<std::shared_ptr<const pki::PublishedCa>> RevocationPublisher::publishIssuing(
    const store::CaRecord& record, bool remake_crl) {
  const core::SystemTime now = clock_.now();
  const int64_t now_s = core::unixSeconds(now);
  if (record.state == store::CaState::kRetired) {
    WARDEN_ASSIGN_OR_RETURN(bool any, store_.hasUnexpiredCertsIssuedBy(record.name, now_s));
    if (!any) {
      issuing_.erase(record.name);  // nothing left to answer for
      return std::shared_ptr<const pki::PublishedCa>();
    }
  }
  IssuingState& state = issuing_[record.name];
  if (!state.ca) {
    WARDEN_ASSIGN_OR_RETURN(pki::CaMaterial ca, pki::loadCa(record.name, record.cert_pem, record.key_ref, config_.pkiUrl()));
    state.ca = std::make_shared<const pki::CaMaterial>(std::move(ca));
  }
  const auto validity = std::chrono::seconds(config_.crl_validity_s);
  bool crl_due = remake_crl || !state.published || state.published->crl_der.empty() ||
                 now >= state.crl_made + validity / 2;
  bool responder_due = !state.published || !state.published->responder_cert ||
                       crypto::notAfter(state.published->responder_cert.get()) - now < kOcspResponderRenewBefore;
  if (!crl_due && !responder_due) {
    next_due_ = std::min(next_due_, state.crl_made + validity / 2);
    return state.published;
  }
  auto p = basePublication(record.name, state.ca->cert.get());
  if (crl_due) {
    // Only revoked, unexpired rows are read (an index of revoked rows): a
    // rebuild costs O(revoked), not O(issued). Expired entries are left out
    // (RFC 5280 §3.3).
    WARDEN_ASSIGN_OR_RETURN(std::vector<store::CertRecord> revoked, store_.listRevokedCertsIssuedBy(record.name, now_s));
    std::vector<pki::RevokedEntry> entries;
    entries.reserve(revoked.size());
    for (const store::CertRecord& c : revoked) {
      auto reason = pki::parseCrlReason(c.revocation_reason);
      entries.push_back({c.serial_hex, core::fromUnixSeconds(c.revoked_at), reason.isOk() ? *reason : pki::kNoReason});
    }
    WARDEN_ASSIGN_OR_RETURN(int64_t number, store_.nextCrlNumber(record.name));
    WARDEN_ASSIGN_OR_RETURN(crypto::X509CrlPtr crl, pki::makeCrl(*state.ca, entries, number, now, now + validity));
    p->crl_der = pki::crlToDer(crl.get());
    p->crl_pem = pki::crlToPem(crl.get());
    p->crl_next_update = now + validity;
    state.crl_made = now;
  } else {
    p->crl_der = state.published->crl_der;
    p->crl_pem = state.published->crl_pem;
    p->crl_next_update = state.published->crl_next_update;
  }
  if (responder_due) {
    // RFC 6960 §4.2.2.2: a delegated responder, issued by the CA itself, so
    // the CA key signs only certificates and CRLs.
    WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, crypto::generateEcKey());
    pki::LeafProfile profile;
    profile.common_name = fmt::format("{} OCSP Responder", record.name);
    profile.ocsp_signing = true;
    profile.lifetime = kOcspResponderLifetime;
    WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr cert, pki::issueLeaf(*state.ca, key.get(), profile, clock_));
    store::CertRecord rec;
    rec.serial_hex = crypto::serialHex(cert.get());
    rec.device = fmt::format("ocsp-{}", record.name);
    rec.kind = "ocsp";
    rec.pubkey_fp = crypto::publicKeyFingerprint(X509_get0_pubkey(cert.get()));
    rec.not_before = core::unixSeconds(crypto::notBefore(cert.get()));
    rec.not_after = core::unixSeconds(crypto::notAfter(cert.get()));
    rec.pem = crypto::certToPem(cert.get());
    rec.issuer = record.name;
    WARDEN_RETURN_IF_ERROR(store_.insertCert(rec));
    p->responder_cert = std::move(cert);
    p->responder_key = std::move(key);
  } else {
    p->responder_cert.reset(X509_dup(state.published->responder_cert.get()));
    EVP_PKEY_up_ref(state.published->responder_key.get());
    p->responder_key.reset(state.published->responder_key.get());
  }
  next_due_ = std::min(next_due_, state.crl_made + validity / 2);
  next_due_ = std::min(next_due_, crypto::notAfter(p->responder_cert.get()) - kOcspResponderRenewBefore);
  state.published = p;
  return state.published;
}

pki::OcspStatus RevocationPublisher::status(const std::string& ca, const std::string& serial_hex) {
  pki::OcspStatus out;
  auto cert = store_.findCert(serial_hex);
  if (!cert.isOk() || cert->issuer != ca) return out;  // unknown: not issued by this CA
  if (cert->revoked) {
    out.status = pki::OcspCertStatus::kRevoked;
    out.revoked_at = core::fromUnixSeconds(cert->revoked_at);
    auto reason = pki::parseCrlReason(cert->revocation_reason);
    out.reason = reason.isOk() ? *reason : pki::kNoReason;
    return out;
  }
  if (cert->not_after > core::unixSeconds(clock_.now())) out.status = pki::OcspCertStatus::kGood;
  return out;
}

}  // namespace warden::server

#pragma once

// ocsp_responder.h: OCSP answers (RFC 6960) signed by a delegated responder
// certificate of each issuing CA (the CA key signs only certificates and
// CRLs). No I/O: the server looks statuses up in the store.

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "pki/ocsp_request.h"
#include "pki/revocation_list.h"

namespace warden::pki {

// OcspIssuer is an issuing CA with its current responder. Nothing is owned.
struct OcspIssuer {
  std::string name;  // the CA's name in the inventory
  X509* ca_cert = nullptr;
  X509* responder_cert = nullptr;
  EVP_PKEY* responder_key = nullptr;
};

enum class OcspCertStatus { kGood, kRevoked, kUnknown };

// OcspStatus is what the responder says about one serial.
struct OcspStatus {
  OcspCertStatus status = OcspCertStatus::kUnknown;
  core::SystemTime revoked_at{};
  int reason = kNoReason;
};

// matchOcspIssuer returns the index in |issuers| of the CA that every CertID
// of |request| names (issuerNameHash and issuerKeyHash, SHA-1 or SHA-256),
// or -1 if some CertID names a CA that is not among them (the answer is then
// "unauthorized", RFC 6960 §2.3).
int matchOcspIssuer(const ParsedOcspRequest& request, const std::vector<OcspIssuer>& issuers);

// makeOcspResponse returns the DER of a successful OCSPResponse for
// |request| with one SingleResponse per CertID (|statuses| in the same
// order), thisUpdate |now|, nextUpdate |next_update|, the request's nonce
// echoed, signed by |issuer|'s responder key and carrying its certificate.
core::Result<std::string> makeOcspResponse(const ParsedOcspRequest& request, const OcspIssuer& issuer,
                                           const std::vector<OcspStatus>& statuses, core::SystemTime now,
                                           core::SystemTime next_update);

// ocspErrorResponse returns the DER of an unsigned OCSPResponse with
// responseStatus |status| (OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
// _INTERNALERROR, _TRYLATER or _UNAUTHORIZED).
std::string ocspErrorResponse(int status);

}  // namespace warden::pki

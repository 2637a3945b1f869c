#pragma once

// revocation_list.h: CRLReason names and X.509 v2 CRLs (RFC 5280 §5) signed
// by a CA. No I/O: the server decides when a CRL is made and where it goes.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "crypto/openssl_ptr.h"
#include "pki/certificate_authority.h"

namespace warden::pki {

// kNoReason is the reason code of a revocation without a stated reason (the
// CRL entry and the OCSP answer then carry none).
inline constexpr int kNoReason = -1;

// parseCrlReason maps an RFC 5280 §5.3.1 CRLReason name accepted by `warden
// cert revoke` (unspecified, keyCompromise, caCompromise, affiliationChanged,
// superseded, cessationOfOperation, privilegeWithdrawn) to its code;
// kInvalidArgument listing them otherwise. "" maps to kNoReason.
core::Result<int> parseCrlReason(std::string_view name);
// crlReasonName is the inverse ("" for kNoReason and unknown codes).
std::string_view crlReasonName(int code);

// RevokedEntry is one line of a CRL.
struct RevokedEntry {
  std::string serial_hex;  // lowercase hex, as crypto::serialHex
  core::SystemTime revoked_at{};
  int reason = kNoReason;  // unspecified (0) is written as no reason (RFC 5280 §5.3.1)
};

// makeCrl builds a v2 CRL for |ca| listing |entries|, with thisUpdate
// |this_update|, nextUpdate |next_update|, the CRL number |crl_number| and
// the CA's authority key identifier, signed with the CA's key.
// kInvalidArgument for a bad serial or an empty validity.
core::Result<crypto::X509CrlPtr> makeCrl(const CaMaterial& ca, const std::vector<RevokedEntry>& entries,
                                         int64_t crl_number, core::SystemTime this_update,
                                         core::SystemTime next_update);

// crlToDer / crlToPem encode a CRL.
std::string crlToDer(X509_CRL* crl);
std::string crlToPem(X509_CRL* crl);
// crlFromDer parses a DER CRL (kInvalidArgument otherwise).
core::Result<crypto::X509CrlPtr> crlFromDer(std::string_view der);
// crlNextUpdate returns a CRL's nextUpdate (the epoch if it has none).
core::SystemTime crlNextUpdate(X509_CRL* crl);

}  // namespace warden::pki

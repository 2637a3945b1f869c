#include "pki/revocation_list.h"

#include <array>
#include <chrono>
#include <ctime>
#include <utility>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "crypto/crypto.h"
#include "crypto/ocsp_ptr.h"

namespace warden::pki {
namespace {

constexpr std::array<std::pair<std::string_view, int>, 7> kReasons = {{
    {"unspecified", 0},
    {"keyCompromise", 1},
    {"caCompromise", 2},
    {"affiliationChanged", 3},
    {"superseded", 4},
    {"cessationOfOperation", 5},
    {"privilegeWithdrawn", 9},
}};

std::time_t toTimeT(core::SystemTime t) { return std::chrono::system_clock::to_time_t(t); }

core::Result<crypto::Asn1IntegerPtr> serialFromHex(const std::string& hex) {
  if (hex.empty() || hex.size() > 40) return core::invalidArgument("a certificate serial must be 1-40 hex digits");
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return core::invalidArgument("a certificate serial must be hex digits");
    }
  }
  BIGNUM* raw = nullptr;
  if (BN_hex2bn(&raw, hex.c_str()) == 0) return core::invalidArgument("bad serial");
  crypto::BignumPtr bn(raw);
  crypto::Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial) return core::internalError("cannot encode serial");
  return serial;
}

}  // namespace

core::Result<int> parseCrlReason(std::string_view name) {
  if (name.empty()) return kNoReason;
  for (const auto& [n, code] : kReasons) {
    if (n == name) return code;
  }
  std::string list;
  for (const auto& [n, code] : kReasons) {
    if (!list.empty()) list.push_back('|');
    list.append(n);
  }
  return core::invalidArgument(fmt::format("unknown revocation reason '{}': use {}", name.substr(0, 64), list));
}

std::string_view crlReasonName(int code) {
  for (const auto& [n, c] : kReasons) {
    if (c == code) return n;
  }
  return "";
}

core::Result<crypto::X509CrlPtr> makeCrl(const CaMaterial& ca, const std::vector<RevokedEntry>& entries,
                                         int64_t crl_number, core::SystemTime this_update,
                                         core::SystemTime next_update) {
  if (!ca.cert || !ca.key) return core::invalidArgument("CA material is incomplete");
  if (next_update <= this_update) return core::invalidArgument("a CRL's nextUpdate must follow its thisUpdate");
  if (crl_number <= 0) return core::invalidArgument("a CRL number must be positive");
  crypto::X509CrlPtr crl(X509_CRL_new());
  if (!crl || X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get())) != 1) {
    return core::internalError("cannot allocate CRL");
  }
  crypto::Asn1TimePtr last(ASN1_TIME_set(nullptr, toTimeT(this_update)));
  crypto::Asn1TimePtr next(ASN1_TIME_set(nullptr, toTimeT(next_update)));
  if (!last || !next || X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
    return core::internalError("cannot set CRL validity");
  }
  for (const RevokedEntry& e : entries) {
    WARDEN_ASSIGN_OR_RETURN(crypto::Asn1IntegerPtr serial, serialFromHex(e.serial_hex));
    crypto::X509RevokedPtr rev(X509_REVOKED_new());
    crypto::Asn1TimePtr when(ASN1_TIME_set(nullptr, toTimeT(e.revoked_at)));
    if (!rev || !when || X509_REVOKED_set_serialNumber(rev.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(rev.get(), when.get()) != 1) {
      return core::internalError("cannot build CRL entry");
    }
    if (e.reason > 0) {  // RFC 5280 §5.3.1: no reasonCode rather than unspecified
      crypto::Asn1EnumeratedPtr code(ASN1_ENUMERATED_new());
      if (!code || ASN1_ENUMERATED_set(code.get(), e.reason) != 1 ||
          X509_REVOKED_add1_ext_i2d(rev.get(), NID_crl_reason, code.get(), 0, 0) != 1) {
        return core::internalError("cannot add CRL entry reason");
      }
    }
    if (X509_CRL_add0_revoked(crl.get(), rev.get()) != 1) return core::internalError("cannot add CRL entry");
    rev.release();
  }
  crypto::Asn1IntegerPtr number(ASN1_INTEGER_new());
  if (!number || ASN1_INTEGER_set_int64(number.get(), crl_number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    return core::internalError("cannot add CRL number");
  }
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(ca.cert.get());
  if (ski == nullptr) return core::invalidArgument("the CA certificate has no subject key identifier");
  crypto::AuthorityKeyIdPtr akid(AUTHORITY_KEYID_new());
  if (!akid) return core::internalError("cannot allocate AKI");
  akid->keyid = ASN1_OCTET_STRING_dup(ski);
  if (akid->keyid == nullptr || X509_CRL_add1_ext_i2d(crl.get(), NID_authority_key_identifier, akid.get(), 0, 0) != 1) {
    return core::internalError("cannot add CRL authority key identifier");
  }
  if (X509_CRL_sort(crl.get()) != 1) return core::internalError("cannot sort CRL");
  if (X509_CRL_sign(crl.get(), ca.key.get(), signingDigestFor(ca.key.get())) <= 0) {
    return core::internalError("cannot sign CRL: " + crypto::openSslErrorString());
  }
  return crl;
}

std::string crlToDer(X509_CRL* crl) {
  unsigned char* out = nullptr;
  int len = i2d_X509_CRL(crl, &out);
  if (len <= 0) return {};
  crypto::OpenSslBytesPtr owned(out);
  return std::string(reinterpret_cast<const char*>(out), static_cast<size_t>(len));
}

std::string crlToPem(X509_CRL* crl) {
  crypto::BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl) != 1) return {};
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

core::Result<crypto::X509CrlPtr> crlFromDer(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  crypto::X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
  if (!crl || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    ERR_clear_error();
    return core::invalidArgument("not a DER CRL");
  }
  return crl;
}

core::SystemTime crlNextUpdate(X509_CRL* crl) {
  const ASN1_TIME* t = X509_CRL_get0_nextUpdate(crl);
  if (t == nullptr) return core::SystemTime{};
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return core::SystemTime{};
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace warden::pki

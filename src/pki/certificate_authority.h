#pragma once

// certificate_authority.h: creating CAs and issuing leaf certificates. The
// server decides every field of an issued certificate; nothing is copied from
// a request.

#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "crypto/openssl_ptr.h"

namespace warden::pki {

using crypto::EvpPkeyPtr;
using crypto::X509Ptr;

// CaMaterial is a CA certificate and its private key, with the CA's name in
// the inventory ("root", "issuing-1", ...) and the base URL under which its
// CRL, certificate and OCSP responder are published ("" if none).
struct CaMaterial {
  X509Ptr cert;
  EvpPkeyPtr key;
  std::string name;
  std::string pki_url;
};

// LeafProfile is everything the server decides about an issued leaf.
struct LeafProfile {
  std::string common_name;            // device name / "admin" / "warden-gateway"
  std::vector<std::string> uri_sans;  // e.g. spiffe://td/device/name
  std::vector<std::string> dns_sans;  // server certs
  std::vector<std::string> ip_sans;   // server certs ("127.0.0.1", "::1")
  bool client_auth = true, server_auth = false;
  // ocsp_signing makes an OCSP responder certificate (RFC 6960 §4.2.2.2):
  // EKU id-kp-OCSPSigning only and id-pkix-ocsp-nocheck; client_auth and
  // server_auth are then ignored.
  bool ocsp_signing = false;
  core::Seconds lifetime{86400};
};

// isValidPkiUrl reports whether |url| may be written into certificates as
// the PKI base URL: "http://" (RFC 5280 §4.2.1.13: CRLs over plain HTTP),
// printable ASCII without spaces, commas or quotes, no query, at most 200
// characters, no trailing '/'.
bool isValidPkiUrl(std::string_view url);

// createRootCa makes a self-signed CA certificate named |common_name| for
// |key| (an EC P-256 key generated here if null; a key-store key otherwise,
// see keystore/key_store.h): CA:TRUE critical, KU keyCertSign|cRLSign
// critical, SKI, notBefore now-5min, notAfter now+|lifetime|.
core::Result<CaMaterial> createRootCa(std::string_view common_name, core::Seconds lifetime,
                                      const core::Clock& clock, EvpPkeyPtr key = nullptr);

// createIntermediateCa makes a CA certificate named |cn| for |key| (EC
// P-256 generated here if null) signed by |parent|: CA:TRUE pathlen:|path_len| critical (path_len < 0:
// no pathlen), KU keyCertSign|cRLSign critical, SKI, AKI; notAfter is clamped
// to the parent's notAfter.
core::Result<CaMaterial> createIntermediateCa(const CaMaterial& parent, std::string_view cn,
                                              core::Seconds lifetime, int path_len,
                                              const core::Clock& clock, EvpPkeyPtr key = nullptr);

// When the issuer has a pki_url U, the certificate names its revocation
// sources: CRL distribution point U/pki/<issuer name>.crl and AIA caIssuers
// U/pki/<issuer name>.crt, plus (leaves only, the root has no responder)
// OCSP U/ocsp.
//
// issueLeaf signs |subject_key| (only the public key is used) with |issuer|:
// 16-byte random positive serial (caller may retry on collision), notBefore
// now-5min, notAfter min(now+lifetime, issuer notAfter), KU digitalSignature
// critical, EKU per profile, basicConstraints CA:FALSE critical, SKI, AKI,
// SANs per profile. kInvalidArgument for an empty CN, a bad IP SAN or no EKU;
// kFailedPrecondition if the issuer has already expired.
core::Result<X509Ptr> issueLeaf(const CaMaterial& issuer, EVP_PKEY* subject_key,
                                const LeafProfile& profile, const core::Clock& clock);

// verifyChain checks |leaf| against |trust_anchors| (self-signed roots) with
// |intermediates| as untrusted helpers, at time |at|. kUnauthenticated with
// OpenSSL's reason on failure. Purpose checks are left to the caller.
core::Status verifyChain(X509* leaf, const std::vector<X509*>& intermediates,
                         const std::vector<X509*>& trust_anchors, core::SystemTime at);

// signingDigestFor returns the digest that Warden signs with under
// |issuer_key|: SHA-384 for P-384 and larger keys, SHA-256 otherwise.
const EVP_MD* signingDigestFor(EVP_PKEY* issuer_key);

// caMaterialFromPem loads a CA certificate + key pair and checks that they match.
core::Result<CaMaterial> caMaterialFromPem(std::string_view cert_pem, std::string_view key_pem);
// caMaterialFromKey pairs a CA certificate with |key| (from any key store)
// and checks that the certificate's public key is |key|'s.
core::Result<CaMaterial> caMaterialFromKey(std::string_view cert_pem, EvpPkeyPtr key);

}  // namespace warden::pki

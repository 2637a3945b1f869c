#pragma once

// manufacturer_anchors.h: manufacturer CAs as trust anchors for factory
// identities (IEEE 802.1AR IDevIDs) on a TLS server, separate from the
// server's own trust store. No Asio.
//
// The API listener's SSL_CTX keeps the fleet's root + issuing CA in its own
// store. installManufacturerAnchors adds a certificate-verify callback that,
// when a client certificate does not verify against that store, tries each
// manufacturer's anchors on their own, so a factory certificate completes
// the handshake. Which anchor validated a client certificate is then decided
// after the handshake (full or resumed handshakes alike: verifiedByOwnStore
// for a full one the context's own store verified, classifyClientCertificate
// otherwise), and each endpoint accepts only the anchors it allows.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/status.h"
#include "crypto/openssl_ptr.h"

namespace warden::pki {

// ClientAnchor says which trust anchor validated a TLS client certificate.
struct ClientAnchor {
  enum class Kind { kNone, kFleet, kManufacturer } kind = Kind::kNone;
  std::string manufacturer;  // for kManufacturer
};

// ManufacturerCa is one manufacturer's anchors as stored (PEM).
struct ManufacturerCa {
  std::string manufacturer;
  std::string ca_pem;
};

// ManufacturerAnchors holds one X509_STORE per manufacturer. Thread-safe:
// replace() may run while handshakes verify.
class ManufacturerAnchors {
 public:
  // replace installs |cas|; a manufacturer whose PEM does not parse is
  // skipped and reported in the returned status (the others still apply).
  core::Status replace(const std::vector<ManufacturerCa>& cas);
  // verify returns the manufacturer whose anchors alone verify |leaf| (with
  // the peer's |untrusted| chain, may be null) for TLS client use, now;
  // nullopt if none does. The anchor must be byte-identical to a stored CA
  // certificate: a look-alike CA with the same name but another key fails.
  std::optional<std::string> verify(X509* leaf, STACK_OF(X509)* untrusted) const;
  size_t size() const;

 private:
  struct Entry {
    std::string manufacturer;
    crypto::X509StorePtr store;
  };
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<const Entry>> entries_;
};

// checkManufacturerCa checks |pem| as a manufacturer's CA file: 1-16
// certificates, each a CA (basicConstraints cA TRUE). kInvalidArgument with
// the reason otherwise.
core::Status checkManufacturerCa(std::string_view pem);

// installManufacturerAnchors lets client certificates chaining to |anchors|
// complete handshakes on |ctx| (a server context with SSL_VERIFY_PEER). The
// context keeps |anchors| alive.
core::Status installManufacturerAnchors(SSL_CTX* ctx, std::shared_ptr<ManufacturerAnchors> anchors);

// verifiedByOwnStore reports whether |ssl| completed a full (not resumed)
// handshake in which its client chain verified against its SSL_CTX's own
// store (set by the callback installManufacturerAnchors installs). A
// server whose SSL_CTX store holds exactly its fleet's CAs, and that has
// not replaced the context since the connection began, then knows the
// anchor is the fleet's without verifying the chain again.
bool verifiedByOwnStore(SSL* ssl);

// classifyClientCertificate decides which anchor validates |leaf| (with the
// peer's |chain|, may be null): |fleet| (the server's own CAs) first, then
// |anchors|. kNone if neither does: the caller must then ignore the
// certificate (fail closed).
ClientAnchor classifyClientCertificate(X509* leaf, STACK_OF(X509)* chain, X509_STORE* fleet,
                                       const ManufacturerAnchors* anchors);

// subjectSerialNumber returns the subject serialNumber (OID 2.5.4.5) of
// |cert| as UTF-8, "" if absent or not convertible.
std::string subjectSerialNumber(X509* cert);

}  // namespace warden::pki

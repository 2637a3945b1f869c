#pragma once

// cross_certificate.h: root CA rollover (RFC 4210 §4.4, RFC 7030 §4.1.3).
// A cross certificate carries one root's subject name and public key and is
// signed by another root's key: NewWithOld lets a party that trusts only
// the old root verify the new one, OldWithNew does the reverse. A party
// pinned to a root moves its pin to a newer root only through a NewWithOld
// that verifies under the pinned root (selectRoots).

#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "pki/certificate_authority.h"

namespace warden::pki {

// makeCrossCertificate returns a CA certificate for |subject_root|'s
// subject name, public key and subject key identifier, issued and signed by
// |signer| (another root): CA:TRUE critical, KU keyCertSign|cRLSign
// critical, AKI = the signer's key id, notBefore now-5min, notAfter the
// earlier of both roots' notAfter. kInvalidArgument if |subject_root| is
// not a self-signed CA certificate or has the signer's key.
core::Result<X509Ptr> makeCrossCertificate(const CaMaterial& signer, X509* subject_root, const core::Clock& clock);

// isSelfSignedRoot reports whether |cert| is self-issued, verifies under
// its own key and is a CA certificate.
bool isSelfSignedRoot(X509* cert);

// checkCrossCertificate checks everything that makes |cross| a link from
// |signer_root| to |subject_root| at time |at|: a CA certificate whose
// subject name and public key are |subject_root|'s, whose issuer name is
// |signer_root|'s subject, whose signature verifies under |signer_root|'s
// key, and which is within its validity. kUnauthenticated naming the first
// check that failed.
core::Status checkCrossCertificate(X509* cross, X509* subject_root, X509* signer_root, core::SystemTime at);

// RootSelection is what a party pinned to one root believes of a cacerts
// answer (or any bag of CA certificates).
struct RootSelection {
  X509Ptr pinned;  // the self-signed root whose crypto::caFingerprint is the pin
  // successor is a newer self-signed root (later notBefore) accepted through
  // |successor_link|, a NewWithOld that checkCrossCertificate accepts with
  // the pinned root as signer; null if there is none. The newest wins.
  X509Ptr successor;
  X509Ptr successor_link;
  // older are self-signed roots older than the pinned one, cross-certified
  // by it (an OldWithNew): still trusted during the overlap.
  std::vector<X509Ptr> older;
  // refused says, for each newer self-signed root that has no valid
  // NewWithOld, "subject: reason". Those roots are not believed.
  std::vector<std::string> refused;
};

// selectRoots finds in |certs| the root pinned by |pin| (sha256:HEX of its
// DER) and the roots linked to it as described in RootSelection, at time
// |at|. kUnauthenticated if no self-signed root has the pin. Nothing in
// |certs| but the pinned root is trusted on its own.
core::Result<RootSelection> selectRoots(const std::vector<X509Ptr>& certs, std::string_view pin, core::SystemTime at);

}  // namespace warden::pki

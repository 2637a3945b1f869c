#include "pki/cross_certificate.h"

#include <ctime>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "crypto/crypto.h"

namespace warden::pki {
namespace {

using core::Result;
using core::Status;

X509Ptr share(X509* c) {
  X509_up_ref(c);
  return X509Ptr(c);
}

// subjectText names a certificate in messages; the CN is the operator's
// own text ("<td> Warden Root CA 2"), printable characters only.
std::string subjectText(X509* c) {
  std::string cn = crypto::commonName(c);
  std::string out;
  for (char ch : cn.substr(0, 64)) out.push_back(static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f ? '?' : ch);
  return out.empty() ? "(no CN)" : out;
}

bool withinValidity(X509* c, core::SystemTime at) {
  std::time_t t = std::chrono::system_clock::to_time_t(at);
  return X509_cmp_time(X509_get0_notBefore(c), &t) < 0 && X509_cmp_time(X509_get0_notAfter(c), &t) > 0;
}

}  // namespace

bool isSelfSignedRoot(X509* cert) {
  if (cert == nullptr) return false;
  bool ok = X509_check_issued(cert, cert) == X509_V_OK && X509_verify(cert, X509_get0_pubkey(cert)) == 1 &&
            X509_check_ca(cert) == 1;
  ERR_clear_error();
  return ok;
}

Status checkCrossCertificate(X509* cross, X509* subject_root, X509* signer_root, core::SystemTime at) {
  if (cross == nullptr || subject_root == nullptr || signer_root == nullptr) {
    return core::unauthenticated("cross certificate: nothing to check");
  }
  if (X509_NAME_cmp(X509_get_subject_name(cross), X509_get_subject_name(subject_root)) != 0) {
    return core::unauthenticated("the cross certificate's subject is not the new root's");
  }
  EVP_PKEY* cross_key = X509_get0_pubkey(cross);
  if (cross_key == nullptr || EVP_PKEY_eq(cross_key, X509_get0_pubkey(subject_root)) != 1) {
    return core::unauthenticated("the cross certificate certifies another key than the new root's");
  }
  if (X509_NAME_cmp(X509_get_issuer_name(cross), X509_get_subject_name(signer_root)) != 0) {
    return core::unauthenticated("the cross certificate was not issued by the pinned root (issuer name differs)");
  }
  int verified = X509_verify(cross, X509_get0_pubkey(signer_root));
  ERR_clear_error();
  if (verified != 1) return core::unauthenticated("the cross certificate's signature does not verify under the pinned root");
  // X509_check_ca also caches the extensions; 1 means CA:TRUE with
  // keyCertSign if KU is present.
  if (X509_check_ca(cross) != 1) return core::unauthenticated("the cross certificate is not a CA certificate");
  if (!withinValidity(cross, at)) return core::unauthenticated("the cross certificate is expired or not yet valid");
  if (!withinValidity(subject_root, at)) return core::unauthenticated("the new root is expired or not yet valid");
  return Status::ok();
}

Result<RootSelection> selectRoots(const std::vector<X509Ptr>& certs, std::string_view pin, core::SystemTime at) {
  RootSelection out;
  std::vector<X509*> roots;
  for (const auto& c : certs) {
    if (!c || !isSelfSignedRoot(c.get())) continue;
    if (!out.pinned && crypto::caFingerprint(c.get()) == pin) {
      out.pinned = share(c.get());
    } else {
      roots.push_back(c.get());
    }
  }
  if (!out.pinned) {
    return core::unauthenticated(fmt::format(
        "the server's CA certificates do not include the root with the pinned fingerprint {}; check --ca-fingerprint "
        "(warden device add prints it) and --server",
        pin));
  }
  X509* pinned = out.pinned.get();
  const core::SystemTime pinned_since = crypto::notBefore(pinned);
  for (X509* root : roots) {
    if (X509_cmp(root, pinned) == 0) continue;  // the pinned root twice
    // A link is a cross certificate in the answer that checks out; the first
    // reason a candidate failed is what the refusal reports.
    auto link = [&](X509* subject, X509* signer, std::string* why) -> X509* {
      for (const auto& c : certs) {
        if (!c || c.get() == subject || isSelfSignedRoot(c.get())) continue;
        if (X509_NAME_cmp(X509_get_subject_name(c.get()), X509_get_subject_name(subject)) != 0 &&
            EVP_PKEY_eq(X509_get0_pubkey(c.get()), X509_get0_pubkey(subject)) != 1) {
          continue;  // not even claiming to be this root
        }
        Status s = checkCrossCertificate(c.get(), subject, signer, at);
        if (s.isOk()) return c.get();
        if (why->empty()) *why = s.message();
      }
      return nullptr;
    };
    std::string why;
    if (crypto::notBefore(root) > pinned_since) {
      X509* new_with_old = link(root, pinned, &why);
      if (new_with_old == nullptr) {
        out.refused.push_back(fmt::format("{}: {}", subjectText(root),
                                          why.empty() ? "no cross certificate (NewWithOld) signed by the pinned root"
                                                      : why));
        continue;
      }
      if (!out.successor || crypto::notBefore(root) > crypto::notBefore(out.successor.get())) {
        out.successor = share(root);
        out.successor_link = share(new_with_old);
      }
    } else if (link(root, pinned, &why) != nullptr) {
      out.older.push_back(share(root));  // an OldWithNew from the pinned root
    }
  }
  return out;
}

}  // namespace warden::pki

#pragma once

// Test helpers for unit_pki: CSRs built in-process, temporary directories.

#include <cstdlib>
#include <filesystem>
#include <string>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "crypto/crypto.h"
#include "crypto/openssl_ptr.h"

namespace warden::pki::testing {

// makeCsr returns a PKCS#10 request for |key| signed with |md| (nullptr for
// Ed25519), with subject CN=|cn| and, if |san| is set, a requested
// subjectAltName extension (e.g. "URI:spiffe://td/device/other").
inline crypto::X509ReqPtr makeCsr(EVP_PKEY* key, const EVP_MD* md, const char* cn = "requested-cn",
                                  const char* san = nullptr) {
  crypto::X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), X509_REQ_VERSION_1);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_REQ_set_pubkey(req.get(), key);
  if (san != nullptr) {
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san);
    sk_X509_EXTENSION_push(exts, ext);
    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  X509_REQ_sign(req.get(), key, md);
  return req;
}

inline std::string csrDer(X509_REQ* req) {
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(req, &der);
  crypto::OpenSslBytesPtr owned(der);
  return std::string(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
}

// estBody returns the EST wire form: base64 DER, 64-column lines, CRLF.
inline std::string estBody(X509_REQ* req) {
  std::string b64 = crypto::base64EncodeWrapped(csrDer(req));
  std::string crlf;
  for (char c : b64) {
    if (c == '\n') crlf += "\r\n";
    else crlf.push_back(c);
  }
  return crlf;
}

inline crypto::EvpPkeyPtr keygen(const char* type, const char* param = nullptr) {
  if (std::string(type) == "RSA") return crypto::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}));
  if (param != nullptr) return crypto::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, type, param));
  return crypto::EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
}

// TempDir is a directory removed with everything in it when it goes out of scope.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "warden-pki-test-XXXXXX").string();
    char* made = mkdtemp(tmpl.data());
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace warden::pki::testing

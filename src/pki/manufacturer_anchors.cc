#include "pki/manufacturer_anchors.h"

#include <openssl/err.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <fmt/format.h>

#include "crypto/crypto.h"

namespace warden::pki {
namespace {

constexpr size_t kMaxManufacturerCas = 16;

struct AnchorsHolder {
  std::shared_ptr<ManufacturerAnchors> anchors;
};

void freeHolder(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<AnchorsHolder*>(ptr); }

int holderIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeHolder);
  return index;
}

// verifyWith runs one chain verification of |leaf| against |store| for TLS
// client use at the current time.
bool verifyWith(X509_STORE* store, X509* leaf, STACK_OF(X509)* untrusted) {
  crypto::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, leaf, untrusted) != 1) {
    ERR_clear_error();
    return false;
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT);
  X509_VERIFY_PARAM_set_depth(param, 3);
  bool ok = X509_verify_cert(ctx.get()) == 1;
  ERR_clear_error();
  return ok;
}

// ownStoreIndex is the SSL ex_data slot that records a full handshake whose
// client chain verified against the SSL_CTX's own store.
int ownStoreIndex() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// verifyClientCallback replaces X509_verify_cert for the server's client
// certificates: the SSL_CTX's own store first, then the manufacturers'.
int verifyClientCallback(X509_STORE_CTX* ctx, void* arg) {
  auto* holder = static_cast<AnchorsHolder*>(arg);
  if (X509_verify_cert(ctx) == 1) {
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
    // Any non-null pointer marks it; the slot holds no object.
    if (ssl != nullptr && ownStoreIndex() >= 0) SSL_set_ex_data(ssl, ownStoreIndex(), ssl);
    return 1;
  }
  const int err = X509_STORE_CTX_get_error(ctx);
  if (holder != nullptr && holder->anchors) {
    X509* leaf = X509_STORE_CTX_get0_cert(ctx);
    STACK_OF(X509)* untrusted = X509_STORE_CTX_get0_untrusted(ctx);
    if (leaf != nullptr && holder->anchors->verify(leaf, untrusted)) {
      ERR_clear_error();
      X509_STORE_CTX_set_error(ctx, X509_V_OK);
      return 1;
    }
  }
  X509_STORE_CTX_set_error(ctx, err);
  return 0;
}

}  // namespace


core::Status checkManufacturerCa(std::string_view pem) {
  auto certs = crypto::certsFromPem(pem);
  if (!certs.isOk()) return core::invalidArgument("the CA file holds no PEM certificate");
  if (certs->size() > kMaxManufacturerCas) {
    return core::invalidArgument(fmt::format("the CA file holds more than {} certificates", kMaxManufacturerCas));
  }
  for (const auto& c : *certs) {
    if (X509_check_ca(c.get()) == 0) {
      return core::invalidArgument(fmt::format("'{}' in the CA file is not a CA certificate (basicConstraints cA)",
                                               crypto::commonName(c.get())));
    }
  }
  return core::Status::ok();
}

core::Status ManufacturerAnchors::replace(const std::vector<ManufacturerCa>& cas) {
  std::vector<std::shared_ptr<const Entry>> next;
  std::string failed;
  for (const ManufacturerCa& ca : cas) {
    auto certs = crypto::certsFromPem(ca.ca_pem);
    crypto::X509StorePtr store(X509_STORE_new());
    bool ok = certs.isOk() && store != nullptr;
    if (ok) {
      for (const auto& c : *certs) ok = ok && X509_STORE_add_cert(store.get(), c.get()) == 1;
      // A manufacturer's intermediate CA may be the anchor itself.
      ok = ok && X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN) == 1;
    }
    ERR_clear_error();
    if (!ok) {
      failed += (failed.empty() ? "" : ", ") + ca.manufacturer;
      continue;
    }
    auto e = std::make_shared<Entry>();
    e->manufacturer = ca.manufacturer;
    e->store = std::move(store);
    next.push_back(std::move(e));
  }
  {
    std::lock_guard lock(mu_);
    entries_ = std::move(next);
  }
  if (!failed.empty()) return core::invalidArgument("unreadable manufacturer CA certificates: " + failed);
  return core::Status::ok();
}

std::optional<std::string> ManufacturerAnchors::verify(X509* leaf, STACK_OF(X509)* untrusted) const {
  std::vector<std::shared_ptr<const Entry>> entries;
  {
    std::lock_guard lock(mu_);
    entries = entries_;
  }
  for (const auto& e : entries) {
    if (verifyWith(e->store.get(), leaf, untrusted)) return e->manufacturer;
  }
  return std::nullopt;
}

size_t ManufacturerAnchors::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

core::Status installManufacturerAnchors(SSL_CTX* ctx, std::shared_ptr<ManufacturerAnchors> anchors) {
  if (ctx == nullptr || holderIndex() < 0) return core::internalError("cannot install manufacturer anchors");
  auto* holder = new AnchorsHolder{std::move(anchors)};
  if (SSL_CTX_set_ex_data(ctx, holderIndex(), holder) != 1) {
    delete holder;
    return core::internalError("cannot attach manufacturer anchors");
  }
  SSL_CTX_set_cert_verify_callback(ctx, verifyClientCallback, holder);
  return core::Status::ok();
}

bool verifiedByOwnStore(SSL* ssl) {
  return ssl != nullptr && ownStoreIndex() >= 0 && SSL_session_reused(ssl) == 0 &&
         SSL_get_ex_data(ssl, ownStoreIndex()) != nullptr && SSL_get_verify_result(ssl) == X509_V_OK;
}

ClientAnchor classifyClientCertificate(X509* leaf, STACK_OF(X509)* chain, X509_STORE* fleet,
                                       const ManufacturerAnchors* anchors) {
  ClientAnchor out;
  if (leaf == nullptr) return out;
  if (fleet != nullptr && verifyWith(fleet, leaf, chain)) {
    out.kind = ClientAnchor::Kind::kFleet;
    return out;
  }
  if (anchors != nullptr) {
    if (auto m = anchors->verify(leaf, chain)) {
      out.kind = ClientAnchor::Kind::kManufacturer;
      out.manufacturer = *m;
    }
  }
  return out;
}

std::string subjectSerialNumber(X509* cert) {
  X509_NAME* name = cert != nullptr ? X509_get_subject_name(cert) : nullptr;
  if (name == nullptr) return {};
  int idx = X509_NAME_get_index_by_NID(name, NID_serialNumber, -1);
  if (idx < 0) return {};
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) {
    ERR_clear_error();
    return {};
  }
  crypto::OpenSslBytesPtr owned(utf8);
  return std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(len));
}

}  // namespace warden::pki

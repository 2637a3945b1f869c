#include "pki/tls_config.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <fmt/format.h>

#include "core/file_io.h"
#include "crypto/crypto.h"

namespace warden::pki {
namespace {

using core::Result;
using core::Status;
using crypto::SslCtxPtr;

constexpr size_t kMaxPemFileBytes = 1024 * 1024;
constexpr unsigned char kSessionIdContext[] = "warden";

// TicketKey is one session-ticket key: a public 16-byte name, an AES-256 key
// and an HMAC-SHA256 key (the OpenSSL ticket format).
struct TicketKey {
  std::array<unsigned char, 16> name{};
  std::array<unsigned char, 32> aes_key{};
  std::array<unsigned char, 32> hmac_key{};
};

TicketKey newTicketKey() {
  TicketKey k;
  std::string bytes = crypto::randomBytes(16 + 32 + 32);
  std::memcpy(k.name.data(), bytes.data(), 16);
  std::memcpy(k.aes_key.data(), bytes.data() + 16, 32);
  std::memcpy(k.hmac_key.data(), bytes.data() + 48, 32);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return k;
}

// TicketKeyRing holds the current ticket key and the previous one. A new key
// encrypts every ticket after a rotation; the previous key only decrypts (and
// asks OpenSSL to renew the ticket), so a ticket survives at most two
// rotation periods in theory and SSL_CTX_set_timeout (1 h) in practice.
class TicketKeyRing {
 public:
  explicit TicketKeyRing(const core::Clock& clock) : clock_(clock), current_(newTicketKey()), rotated_at_(clock.steadyNow()) {}
  ~TicketKeyRing() {
    OPENSSL_cleanse(&current_, sizeof current_);
    if (previous_) OPENSSL_cleanse(&*previous_, sizeof *previous_);
  }

  // forEncryption returns the key to encrypt with, rotating first if due.
  TicketKey forEncryption() {
    std::lock_guard lock(mu_);
    rotateIfDueLocked();
    return current_;
  }

  // forDecryption looks |name| up; |is_current| says whether it is the current key.
  std::optional<TicketKey> forDecryption(const unsigned char* name, bool& is_current) {
    std::lock_guard lock(mu_);
    rotateIfDueLocked();
    if (CRYPTO_memcmp(name, current_.name.data(), current_.name.size()) == 0) {
      is_current = true;
      return current_;
    }
    if (previous_ && CRYPTO_memcmp(name, previous_->name.data(), previous_->name.size()) == 0) {
      is_current = false;
      return previous_;
    }
    return std::nullopt;
  }

  void rotateNow() {
    std::lock_guard lock(mu_);
    rotateLocked();
  }

 private:
  void rotateIfDueLocked() {
    if (clock_.steadyNow() - rotated_at_ >= std::chrono::seconds(kTicketKeyRotationSeconds)) rotateLocked();
  }
  void rotateLocked() {
    previous_ = current_;
    current_ = newTicketKey();
    rotated_at_ = clock_.steadyNow();
  }

  const core::Clock& clock_;
  std::mutex mu_;
  TicketKey current_;
  std::optional<TicketKey> previous_;
  std::chrono::steady_clock::time_point rotated_at_;
};

void freeTicketKeyRing(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/, long /*argl*/, void* /*argp*/) {
  delete static_cast<TicketKeyRing*>(ptr);
}

int ticketKeyRingIndex() {
  static const int index = [] {
    int i = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, freeTicketKeyRing);
    if (i < 0) {
      std::fprintf(stderr, "warden: cannot allocate SSL_CTX ex_data index\n");
      std::abort();
    }
    return i;
  }();
  return index;
}

const EVP_CIPHER* ticketCipher() {
  static const EVP_CIPHER* cipher = [] {
    EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
    if (c == nullptr) {
      std::fprintf(stderr, "warden: AES-256-CBC is unavailable from OpenSSL providers\n");
      std::abort();
    }
    return c;
  }();
  return cipher;
}

int setTicketMacKey(EVP_MAC_CTX* mac_ctx, TicketKey& key) {
  OSSL_PARAM params[3];
  char digest[] = "SHA256";
  params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac_key.data(), key.hmac_key.size());
  params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
  params[2] = OSSL_PARAM_construct_end();
  return EVP_MAC_CTX_set_params(mac_ctx, params);
}

// ticketKeyCallback implements SSL_CTX_set_tlsext_ticket_key_evp_cb: returns
// 1 (use), 2 (use, but renew the ticket), 0 (unknown key: full handshake),
// -1 (error).
int ticketKeyCallback(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cipher_ctx,
                      EVP_MAC_CTX* mac_ctx, int enc) {
  auto* ring = static_cast<TicketKeyRing*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticketKeyRingIndex()));
  if (ring == nullptr) return -1;
  if (enc == 1) {
    TicketKey key = ring->forEncryption();
    const int iv_len = EVP_CIPHER_get_iv_length(ticketCipher());
    if (RAND_bytes(iv, iv_len) != 1) return -1;
    std::memcpy(key_name, key.name.data(), key.name.size());
    int ok = EVP_EncryptInit_ex2(cipher_ctx, ticketCipher(), key.aes_key.data(), iv, nullptr) == 1 &&
             setTicketMacKey(mac_ctx, key) == 1;
    OPENSSL_cleanse(&key, sizeof key);
    return ok ? 1 : -1;
  }
  bool is_current = false;
  std::optional<TicketKey> key = ring->forDecryption(key_name, is_current);
  if (!key) return 0;
  int ok = EVP_DecryptInit_ex2(cipher_ctx, ticketCipher(), key->aes_key.data(), iv, nullptr) == 1 &&
           setTicketMacKey(mac_ctx, *key) == 1;
  OPENSSL_cleanse(&*key, sizeof *key);
  if (!ok) return -1;
  return is_current ? 1 : 2;
}

Result<std::vector<crypto::X509Ptr>> loadTrustBundle(const TlsFiles& files) {
  std::string pem;
  std::string what = "in-memory trust bundle";
  if (!files.trust_bundle_file.empty()) {
    WARDEN_ASSIGN_OR_RETURN(pem, core::readFile(files.trust_bundle_file, kMaxPemFileBytes));
    what = files.trust_bundle_file;
  } else {
    pem = files.trust_bundle_pem;
  }
  auto certs = crypto::certsFromPem(pem);
  if (!certs) return core::invalidArgument(fmt::format("{}: {}", what, certs.status().message()));
  return std::move(certs).value();
}

Status applyPolicy(SSL_CTX* ctx) {
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return core::internalError("cannot set TLS minimum version");
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) return core::internalError("cannot set TLS 1.2 cipher list");
  if (SSL_CTX_set_ciphersuites(ctx, kTls13Suites) != 1) return core::internalError("cannot set TLS 1.3 suites");
  if (SSL_CTX_set1_groups_list(ctx, kTlsGroups) != 1) return core::internalError("cannot set TLS groups");
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_verify_depth(ctx, 3);
  // Encrypted keys would otherwise prompt on the terminal; Warden keys are unencrypted 0600 files.
  SSL_CTX_set_default_passwd_cb(ctx, [](char*, int, int, void*) { return 0; });
  return Status::ok();
}

Status loadOwnChain(SSL_CTX* ctx, const TlsFiles& files) {
  if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_chain_file.c_str()) != 1) {
    return core::invalidArgument(fmt::format("{}: cannot load certificate chain: {}", files.cert_chain_file,
                                             crypto::openSslErrorString()));
  }
  auto key_pem = core::readFile(files.key_file, 64 * 1024);
  if (!key_pem) return core::invalidArgument(fmt::format("{}: {}", files.key_file, key_pem.status().message()));
  auto key = crypto::privateKeyFromPem(*key_pem);
  OPENSSL_cleanse(key_pem->data(), key_pem->size());
  if (!key) return core::invalidArgument(fmt::format("{}: {}", files.key_file, key.status().message()));
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), key->get()) != 1) {
    ERR_clear_error();
    return core::invalidArgument(
        fmt::format("{} does not match the certificate in {}", files.key_file, files.cert_chain_file));
  }
  if (SSL_CTX_use_PrivateKey(ctx, key->get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return core::invalidArgument(
        fmt::format("{}: cannot use private key: {}", files.key_file, crypto::openSslErrorString()));
  }
  return Status::ok();
}

Status addTrustAnchors(SSL_CTX* ctx, const std::vector<crypto::X509Ptr>& anchors, bool advertise_client_cas) {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const auto& cert : anchors) {
    if (X509_STORE_add_cert(store, cert.get()) != 1) {
      return core::internalError("cannot add trust anchor: " + crypto::openSslErrorString());
    }
    // Tell clients which CAs we accept, so curl/mosquitto pick the right cert.
    if (advertise_client_cas && SSL_CTX_add_client_CA(ctx, cert.get()) != 1) {
      return core::internalError("cannot add client CA name: " + crypto::openSslErrorString());
    }
  }
  return Status::ok();
}

}  // namespace

Result<SslCtxPtr> makeServerTlsContext(const TlsFiles& files, ClientCertMode mode, const core::Clock& clock) {
  if (files.cert_chain_file.empty() || files.key_file.empty()) {
    return core::invalidArgument("a TLS server needs a certificate chain file and a key file");
  }
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return core::internalError("cannot create SSL_CTX: " + crypto::openSslErrorString());
  WARDEN_RETURN_IF_ERROR(applyPolicy(ctx.get()));
  WARDEN_RETURN_IF_ERROR(loadOwnChain(ctx.get(), files));
  WARDEN_ASSIGN_OR_RETURN(auto anchors, loadTrustBundle(files));
  WARDEN_RETURN_IF_ERROR(addTrustAnchors(ctx.get(), anchors, /*advertise_client_cas=*/true));

  int verify = SSL_VERIFY_PEER;
  if (mode == ClientCertMode::kRequire) verify |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx.get(), verify, nullptr);
  // Required for resumption when client certificates are verified.
  if (SSL_CTX_set_session_id_context(ctx.get(), kSessionIdContext, sizeof kSessionIdContext - 1) != 1) {
    return core::internalError("cannot set session id context");
  }
  // Resumption only through stateless tickets (no per-session server memory);
  // sessions live at most 1 h and ticket keys rotate every 30 min.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_timeout(ctx.get(), kTlsSessionLifetimeSeconds);
  // One TLS 1.3 ticket per handshake, not OpenSSL's two: a device holds one
  // connection at a time, and each ticket costs an encryption and a MAC.
  if (SSL_CTX_set_num_tickets(ctx.get(), 1) != 1) return core::internalError("cannot set the number of tickets");
  auto* ring = new TicketKeyRing(clock);  // owned by the SSL_CTX ex_data from here on
  if (SSL_CTX_set_ex_data(ctx.get(), ticketKeyRingIndex(), ring) != 1) {
    delete ring;
    return core::internalError("cannot attach ticket keys");
  }
  if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx.get(), ticketKeyCallback) != 1) {
    return core::internalError("cannot install the ticket key callback");
  }
  return ctx;
}

Result<SslCtxPtr> makeClientTlsContext(const TlsFiles& files, bool allow_no_trust_anchors) {
  if (files.cert_chain_file.empty() != files.key_file.empty()) {
    return core::invalidArgument("a TLS client certificate needs both a chain file and a key file");
  }
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return core::internalError("cannot create SSL_CTX: " + crypto::openSslErrorString());
  WARDEN_RETURN_IF_ERROR(applyPolicy(ctx.get()));
  if (!files.cert_chain_file.empty()) WARDEN_RETURN_IF_ERROR(loadOwnChain(ctx.get(), files));
  bool has_bundle = !files.trust_bundle_file.empty() || !files.trust_bundle_pem.empty();
  if (has_bundle) {
    WARDEN_ASSIGN_OR_RETURN(auto anchors, loadTrustBundle(files));
    WARDEN_RETURN_IF_ERROR(addTrustAnchors(ctx.get(), anchors, /*advertise_client_cas=*/false));
  } else if (!allow_no_trust_anchors) {
    return core::invalidArgument("a TLS client needs a trust bundle to verify the server");
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  return ctx;
}

Status rotateTicketKeysNow(SSL_CTX* ctx) {
  if (ctx == nullptr) return core::invalidArgument("no SSL_CTX");
  auto* ring = static_cast<TicketKeyRing*>(SSL_CTX_get_ex_data(ctx, ticketKeyRingIndex()));
  if (ring == nullptr) return core::invalidArgument("SSL_CTX has no Warden ticket keys");
  ring->rotateNow();
  return Status::ok();
}

}  // namespace warden::pki

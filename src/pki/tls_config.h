#pragma once

// tls_config.h: Warden's TLS policy as plain OpenSSL SSL_CTX objects (no
// Asio). Policy: TLS 1.2 minimum; TLS 1.2 suites ECDHE-ECDSA/ECDHE-RSA with
// AES-GCM or CHACHA20-POLY1305 only; TLS 1.3 suites TLS_AES_128_GCM_SHA256,
// TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256; groups X25519, P-256,
// P-384; no compression; no renegotiation; SSL_MODE_RELEASE_BUFFERS; verify
// depth 3. Server contexts issue session tickets that live at most 1 h and
// whose keys rotate every 30 min (the previous key still decrypts).
//
// Asio adoption (gateway/api/agent code only):
//   WARDEN_ASSIGN_OR_RETURN(crypto::SslCtxPtr raw, pki::makeServerTlsContext(files, mode));
//   boost::asio::ssl::context ctx(raw.release());  // asio now owns and frees it
// Do not call ctx.set_options/set_verify_mode etc. afterwards: the policy is
// already applied. The ticket-key ring lives in the SSL_CTX's ex_data and is
// freed with it.
//
// Client contexts do NOT check the peer's name: set it per connection with
// SSL_set1_host(ssl, host) (IP literals: X509_VERIFY_PARAM_set1_ip_asc), or in
// Asio `stream.set_verify_callback(boost::asio::ssl::host_name_verification(host))`.

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "crypto/openssl_ptr.h"

namespace warden::pki {

// TlsFiles names the PEM files a TLS endpoint uses. Empty means "none".
struct TlsFiles {
  std::string cert_chain_file;  // own leaf first, then intermediates
  std::string key_file;         // own private key (must match the leaf)
  // Trust anchors for the peer: for the gateway/API, issuing CA(s) + root;
  // for the upstream connection, the upstream CA only.
  std::string trust_bundle_file;
  // Alternative in-memory trust bundle (PEM), used when trust_bundle_file is empty.
  std::string trust_bundle_pem;
};

enum class ClientCertMode {
  kRequire,  // handshake fails without a valid client certificate (MQTT listener)
  kRequest,  // asked for and verified if sent; absence is allowed (API/EST listener)
};

// kTls12Ciphers / kTls13Suites / kTlsGroups are the exact policy strings.
inline constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305";
inline constexpr const char* kTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
inline constexpr const char* kTlsGroups = "X25519:P-256:P-384";
inline constexpr long kTlsSessionLifetimeSeconds = 3600;
inline constexpr int kTicketKeyRotationSeconds = 1800;

// makeServerTlsContext builds a server SSL_CTX with Warden's policy, the
// own chain + key from |files| (both required) and the trust bundle (required)
// for verifying clients per |mode|. Peer-state checks (revocation, device
// state, serial) are the caller's job after every handshake, full or resumed.
// |clock| drives ticket-key rotation and must outlive the context.
// kInvalidArgument naming the file on a missing/bad file or a key mismatch.
core::Result<crypto::SslCtxPtr> makeServerTlsContext(const TlsFiles& files, ClientCertMode mode,
                                                     const core::Clock& clock = core::systemClock());

// makeClientTlsContext builds a client SSL_CTX with Warden's policy that
// verifies the server against the trust bundle (required unless
// |allow_no_trust_anchors|, for callers that install their own verify
// callback, e.g. the agent's pinned-fingerprint first contact), and presents
// the own chain + key if |files| names them (both or neither).
core::Result<crypto::SslCtxPtr> makeClientTlsContext(const TlsFiles& files,
                                                     bool allow_no_trust_anchors = false);

// rotateTicketKeysNow forces a ticket-key rotation on a context made by
// makeServerTlsContext (tests, or on a signal). The previous key stays valid
// for decryption only. Returns kInvalidArgument for other contexts.
core::Status rotateTicketKeysNow(SSL_CTX* ctx);

}  // namespace warden::pki

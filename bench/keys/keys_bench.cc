// warden-keys-bench: what hardware-held keys cost, each against a file key
// measured in the same run (docs/benchmarks.md, "Hardware-held keys").
//
//   warden-keys-bench sign --pkcs11-uri URI [--seconds S]
//       device certificates issued per second by an issuing CA whose key is
//       in a PKCS#11 token (SoftHSM2 in the benchmark) vs a file key.
//   warden-keys-bench tls --tpm TCTI --dir DIR [--seconds S]
//       full TLS 1.3 handshakes per second (mutual TLS, no resumption, in
//       memory: no sockets) with the client key in a TPM 2.0 (swtpm behind
//       tpm2-abrmd) vs a file key. The server uses a file key in both runs.
//
// Prints one "RESULT ..." line per measurement. bench/keys/run.py starts
// SoftHSM2 and swtpm and runs both.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/clock.h"
#include "crypto/crypto.h"
#include "keystore/key_store.h"
#include "keystore/pkcs11_key_store.h"
#include "keystore/tpm2_key_store.h"
#include "pki/certificate_authority.h"

namespace {

using namespace warden;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "warden-keys-bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T must(core::Result<T> r, const char* what) {
  if (!r.isOk()) die(std::string(what) + ": " + r.status().message());
  return std::move(r).value();
}

std::string arg(int argc, char** argv, std::string_view name, std::string def = "") {
  for (int i = 2; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  if (def.empty()) die("missing " + std::string(name));
  return def;
}

// rate runs |op| for |seconds| (after 3 warm-up calls) and returns ops/s.
template <typename F>
double rate(double seconds, F&& op) {
  for (int i = 0; i < 3; ++i) op();
  auto start = Clock::now();
  auto deadline = start + std::chrono::duration<double>(seconds);
  long n = 0;
  while (Clock::now() < deadline) {
    op();
    ++n;
  }
  return n / std::chrono::duration<double>(Clock::now() - start).count();
}

pki::LeafProfile deviceProfile(const std::string& name) {
  pki::LeafProfile p;
  p.common_name = name;
  p.uri_sans = {"spiffe://bench.local/device/" + name};
  return p;
}

int runSign(int argc, char** argv) {
  double seconds = std::stod(arg(argc, argv, "--seconds", "3"));
  std::string uri = arg(argc, argv, "--pkcs11-uri");
  const core::Clock& clock = core::systemClock();
  pki::CaMaterial root = must(pki::createRootCa("Bench Root", core::Seconds(86400 * 365), clock), "root CA");
  keystore::Pkcs11KeyStore hsm;
  keystore::PrivateKey hsm_key = must(hsm.generate(uri), "CA key in the token");
  pki::CaMaterial hsm_ca = must(pki::createIntermediateCa(root, "Bench Issuing (HSM)", core::Seconds(86400 * 30), 0,
                                                          clock, hsm_key.release()),
                                "HSM issuing CA");
  pki::CaMaterial file_ca =
      must(pki::createIntermediateCa(root, "Bench Issuing (file)", core::Seconds(86400 * 30), 0, clock), "file CA");
  crypto::EvpPkeyPtr device = must(crypto::generateEcKey(), "device key");
  pki::LeafProfile profile = deviceProfile("bench-device");
  auto issueWith = [&](const pki::CaMaterial& ca) {
    return [&] { must(pki::issueLeaf(ca, device.get(), profile, clock), "issue"); };
  };
  double file_rate = rate(seconds, issueWith(file_ca));
  double hsm_rate = rate(seconds, issueWith(hsm_ca));
  std::printf("RESULT sign file_certs_per_s=%.0f pkcs11_softhsm_certs_per_s=%.0f ratio_pkcs11_vs_file=%.3f\n",
              file_rate, hsm_rate, hsm_rate / file_rate);
  return 0;
}

// Tls holds one server context and one client context.
struct Tls {
  crypto::SslCtxPtr server, client;
};

crypto::SslCtxPtr makeCtx(bool server, X509* cert, EVP_PKEY* key, X509* ca) {
  crypto::SslCtxPtr ctx(SSL_CTX_new_ex(nullptr, crypto::signingPropertyQuery(key),
                                       server ? TLS_server_method() : TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  if (SSL_CTX_use_certificate(ctx.get(), cert) != 1 || SSL_CTX_use_PrivateKey(ctx.get(), key) != 1) {
    die("cannot use the certificate/key: " + crypto::openSslErrorString());
  }
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return ctx;
}

// handshake runs one full TLS 1.3 handshake between fresh SSLs over a BIO pair.
void handshake(const Tls& tls) {
  crypto::SslPtr s(SSL_new(tls.server.get())), c(SSL_new(tls.client.get()));
  BIO *cb = nullptr, *sb = nullptr;
  BIO_new_bio_pair(&cb, 0, &sb, 0);
  SSL_set_bio(c.get(), cb, cb);
  SSL_set_bio(s.get(), sb, sb);
  SSL_set_connect_state(c.get());
  SSL_set_accept_state(s.get());
  bool c_done = false, s_done = false;
  for (int round = 0; round < 20 && !(c_done && s_done); ++round) {
    if (!c_done) {
      int r = SSL_do_handshake(c.get());
      if (r == 1) c_done = true;
      else if (SSL_get_error(c.get(), r) != SSL_ERROR_WANT_READ) die("client handshake: " + crypto::openSslErrorString());
    }
    if (!s_done) {
      int r = SSL_do_handshake(s.get());
      if (r == 1) s_done = true;
      else if (SSL_get_error(s.get(), r) != SSL_ERROR_WANT_READ) die("server handshake: " + crypto::openSslErrorString());
    }
  }
  // TLS 1.3: the server verifies the client's certificate after the client
  // finished; one read lets it process the client's Finished.
  char byte;
  SSL_read(s.get(), &byte, 1);
  if (!c_done || !s_done || SSL_version(c.get()) != TLS1_3_VERSION) die("handshake did not complete with TLS 1.3");
}

int runTls(int argc, char** argv) {
  double seconds = std::stod(arg(argc, argv, "--seconds", "3"));
  std::string tcti = arg(argc, argv, "--tpm");
  std::string dir = arg(argc, argv, "--dir");
  const core::Clock& clock = core::systemClock();
  pki::CaMaterial ca = must(pki::createRootCa("Bench CA", core::Seconds(86400 * 365), clock), "CA");
  crypto::EvpPkeyPtr server_key = must(crypto::generateEcKey(), "server key");
  pki::LeafProfile server_profile;
  server_profile.common_name = "bench-server";
  server_profile.dns_sans = {"localhost"};
  server_profile.client_auth = false;
  server_profile.server_auth = true;
  crypto::X509Ptr server_cert = must(pki::issueLeaf(ca, server_key.get(), server_profile, clock), "server cert");

  auto tpm = must(keystore::Tpm2KeyStore::create(tcti), "TPM key store");
  keystore::PrivateKey tpm_key = must(tpm->generate(dir + "/tpm-client.pem"), "TPM client key");
  crypto::X509Ptr tpm_cert = must(pki::issueLeaf(ca, tpm_key.get(), deviceProfile("tpm"), clock), "TPM client cert");
  crypto::EvpPkeyPtr file_key = must(crypto::generateEcKey(), "file client key");
  crypto::X509Ptr file_cert = must(pki::issueLeaf(ca, file_key.get(), deviceProfile("file"), clock), "file cert");

  Tls with_file{makeCtx(true, server_cert.get(), server_key.get(), ca.cert.get()),
                makeCtx(false, file_cert.get(), file_key.get(), ca.cert.get())};
  Tls with_tpm{makeCtx(true, server_cert.get(), server_key.get(), ca.cert.get()),
               makeCtx(false, tpm_cert.get(), tpm_key.get(), ca.cert.get())};
  double file_rate = rate(seconds, [&] { handshake(with_file); });
  double tpm_rate = rate(seconds, [&] { handshake(with_tpm); });
  std::printf("RESULT tls13 file_client_key_handshakes_per_s=%.1f tpm_client_key_handshakes_per_s=%.1f "
              "ratio_tpm_vs_file=%.4f\n",
              file_rate, tpm_rate, tpm_rate / file_rate);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr);  // see src/agent/main.cc
  if (argc < 2) die("usage: warden-keys-bench sign --pkcs11-uri URI | tls --tpm TCTI --dir DIR [--seconds S]");
  std::string_view mode = argv[1];
  if (mode == "sign") return runSign(argc, argv);
  if (mode == "tls") return runTls(argc, argv);
  die("unknown mode " + std::string(mode));
}

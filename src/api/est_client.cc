#include "api/est_client.h"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "crypto/crypto.h"
#include "pki/cross_certificate.h"
#include "core/names.h"
#include "pki/csr_attrs.h"
#include "pki/est_body.h"

namespace warden::api {
namespace {

using core::Result;
using core::Status;

std::string firstLine(std::string_view s) {
  s = s.substr(0, std::min({s.find('\n'), s.find('\r'), s.size()}));
  std::string out;
  for (char c : s.substr(0, 300)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
  }
  return out;
}

// estStatus maps a non-200 EST answer to a Status (401/403: the token or the
// certificate was refused; 400: the CSR was refused).
Status estStatus(const HttpResponse& resp, std::string_view what) {
  std::string body = firstLine(resp.body);
  std::string detail = body.empty() ? fmt::format("HTTP {}", resp.status) : fmt::format("HTTP {}: {}", resp.status, body);
  switch (resp.status) {
    case 401:
    case 403:
      return core::unauthenticated(fmt::format("{} refused: {}", what, detail));
    case 400:
    case 415:
      return core::invalidArgument(fmt::format("{} rejected the request: {}", what, detail));
    case 429: {
      std::string retry(resp.header("retry-after"));
      return core::resourceExhausted(fmt::format("{}: too many failures, retry after {} s ({})", what,
                                                 retry.empty() ? "a while" : retry, detail));
    }
    default:
      return core::internalError(fmt::format("{} failed: {}", what, detail));
  }
}

}  // namespace

std::vector<X509*> CaChain::certs() const {
  std::vector<X509*> all;
  all.push_back(root.get());
  for (const auto& c : other_roots) all.push_back(c.get());
  for (const auto& c : intermediates) all.push_back(c.get());
  return all;
}

std::string CaChain::pem() const { return crypto::certsToPem(certs()); }

std::string CaChain::pin() const { return root ? crypto::caFingerprint(root.get()) : std::string(); }

namespace {

// signCsr signs |req| with SHA-256, on the provider that holds |key| (a
// TPM key signs inside the TPM, see crypto::signingPropertyQuery).
bool signCsr(X509_REQ* req, EVP_PKEY* key) {
  crypto::EvpMdCtxPtr md(EVP_MD_CTX_new());
  return md && EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", nullptr, crypto::signingPropertyQuery(key), key,
                                     nullptr) == 1 &&
         X509_REQ_sign_ctx(req, md.get()) > 0;
}

}  // namespace

Result<crypto::X509ReqPtr> buildCsr(EVP_PKEY* key, std::string_view common_name) {
  crypto::X509ReqPtr req(X509_REQ_new());
  if (!req) return core::internalError("X509_REQ_new failed");
  crypto::X509NamePtr name(X509_NAME_new());
  std::string cn(common_name);
  if (!name || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1,
                                 -1, 0) != 1 ||
      X509_REQ_set_subject_name(req.get(), name.get()) != 1 || X509_REQ_set_pubkey(req.get(), key) != 1 ||
      !signCsr(req.get(), key)) {
    return core::internalError("cannot build the certificate request: " + crypto::openSslErrorString());
  }
  return req;
}

std::string csrBody(X509_REQ* csr) {
  unsigned char* der = nullptr;
  int len = i2d_X509_REQ(csr, &der);
  if (len <= 0) return {};
  crypto::OpenSslBytesPtr owned(der);
  return crypto::base64EncodeWrapped(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len)));
}

Result<CaChain> selectPinnedChain(std::vector<crypto::X509Ptr> certs, std::string_view pin, core::SystemTime at) {
  WARDEN_ASSIGN_OR_RETURN(pki::RootSelection roots, pki::selectRoots(certs, pin, at));
  CaChain chain;
  chain.refused_roots = std::move(roots.refused);
  if (roots.successor) {
    chain.previous_pin = std::string(pin);
    chain.root = std::move(roots.successor);
    chain.other_roots.push_back(std::move(roots.pinned));
  } else {
    chain.root = std::move(roots.pinned);
  }
  for (auto& r : roots.older) chain.other_roots.push_back(std::move(r));
  // Keep only CA certificates that verify up to a trusted root. ca.pem is a
  // trust store, so no other self-signed certificate may enter it.
  crypto::X509StorePtr store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), chain.root.get()) != 1) return core::internalError("X509_STORE failed");
  for (const auto& r : chain.other_roots) {
    if (X509_STORE_add_cert(store.get(), r.get()) != 1) return core::internalError("X509_STORE failed");
  }
  crypto::StackOfX509Ptr untrusted(sk_X509_new_null());
  if (!untrusted) return core::internalError("out of memory");
  for (auto& c : certs) {
    if (c && X509_up_ref(c.get()) == 1) sk_X509_push(untrusted.get(), c.get());
  }
  for (auto& c : certs) {
    if (!c || pki::isSelfSignedRoot(c.get())) continue;
    crypto::X509StoreCtxPtr vctx(X509_STORE_CTX_new());
    if (!vctx || X509_STORE_CTX_init(vctx.get(), store.get(), c.get(), untrusted.get()) != 1) {
      return core::internalError("X509_STORE_CTX_init failed");
    }
    X509_STORE_CTX_set_time(vctx.get(), 0, std::chrono::system_clock::to_time_t(at));
    X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(vctx.get()), X509_PURPOSE_ANY);
    if (X509_verify_cert(vctx.get()) == 1 && X509_check_ca(c.get()) != 0) chain.intermediates.push_back(std::move(c));
  }
  ERR_clear_error();
  return chain;
}

Result<std::vector<crypto::X509Ptr>> fetchCaCerts(ApiClient& client) {
  HttpRequest req;
  req.method = "GET";
  req.target = "/.well-known/est/cacerts";
  req.headers.push_back({"Accept", "application/pkcs7-mime"});
  WARDEN_ASSIGN_OR_RETURN(HttpResponse resp, client.send(req));
  if (resp.status != 200) return estStatus(resp, "GET /.well-known/est/cacerts");
  auto certs = pki::parsePkcs7CertsOnly(resp.body);
  if (!certs.isOk()) return core::dataLoss("the server's CA certificates are unreadable: " + certs.status().message());
  return std::move(certs).value();
}

namespace {

// csrRequest is the POST of a PKCS#10 request (simpleenroll, simplereenroll).
HttpRequest csrRequest(std::string_view path, const std::string& csr_base64, std::optional<std::string> authorization,
                       std::vector<HttpHeader> extra_headers) {
  HttpRequest req;
  req.method = "POST";
  req.target = std::string(path);
  req.headers.push_back({"Content-Type", "application/pkcs10"});
  req.headers.push_back({"Accept", "application/pkcs7-mime"});
  if (authorization) req.headers.push_back({"Authorization", std::move(*authorization)});
  for (auto& h : extra_headers) req.headers.push_back(std::move(h));
  req.body = csr_base64;
  return req;
}

}  // namespace

Result<crypto::X509Ptr> requestCertificate(ApiClient& client, std::string_view path, const std::string& csr_base64,
                                           std::optional<std::string> authorization,
                                           std::vector<HttpHeader> extra_headers) {
  HttpRequest req = csrRequest(path, csr_base64, std::move(authorization), std::move(extra_headers));
  WARDEN_ASSIGN_OR_RETURN(HttpResponse resp, client.send(req));
  if (resp.status != 200) return estStatus(resp, fmt::format("POST {}", path));
  auto certs = pki::parsePkcs7CertsOnly(resp.body);
  if (!certs.isOk()) return core::dataLoss("the issued certificate is unreadable: " + certs.status().message());
  return std::move(certs.value().front());
}

Result<EnrollAnswer> sendEnrollRequest(ApiClient& client, std::string_view path, const std::string& csr_base64,
                                       std::optional<std::string> authorization, std::vector<HttpHeader> extra_headers) {
  HttpRequest req = csrRequest(path, csr_base64, std::move(authorization), std::move(extra_headers));
  WARDEN_ASSIGN_OR_RETURN(HttpResponse resp, client.send(req));
  EnrollAnswer out;
  if (resp.status == 202) {
    // RFC 7030 §4.2.3: retry later with the same request.
    int64_t secs = 60;
    std::string_view v = resp.header("retry-after");
    if (!v.empty() && v.size() <= 6 && v.find_first_not_of("0123456789") == std::string_view::npos) {
      secs = std::stoll(std::string(v));
    }
    out.retry_after = std::chrono::seconds(secs);
    out.message = firstLine(resp.body);
    return out;
  }
  if (resp.status != 200) return estStatus(resp, fmt::format("POST {}", path));
  auto certs = pki::parsePkcs7CertsOnly(resp.body);
  if (!certs.isOk()) return core::dataLoss("the issued certificate is unreadable: " + certs.status().message());
  out.cert = std::move(certs.value().front());
  return out;
}

Status checkCsrAttrs(ApiClient& client) {
  HttpRequest req;
  req.method = "GET";
  req.target = "/.well-known/est/csrattrs";
  req.headers.push_back({"Accept", "application/csrattrs"});
  WARDEN_ASSIGN_OR_RETURN(HttpResponse resp, client.send(req));
  if (resp.status == 404 || resp.status == 501 || resp.status == 204) return Status::ok();  // RFC 7030 §4.5.2
  if (resp.status != 200) return estStatus(resp, "GET /.well-known/est/csrattrs");
  auto attrs = pki::parseCsrAttrsBody(resp.body);
  if (!attrs.isOk()) return core::dataLoss("the server's CSR attributes are unreadable: " + attrs.status().message());
  if (attrs->attributes.empty() || attrs->wantsEcdsaSha256P256()) return Status::ok();
  return core::failedPrecondition(
      "the server's csrattrs ask for something other than an EC P-256 key signed with ECDSA-SHA256, which is all this "
      "agent makes");
}

std::string basicAuthorization(std::string_view user, std::string_view password) {
  std::string plain = fmt::format("{}:{}", user, password);
  std::string out = "Basic " + crypto::base64Encode(plain);
  std::fill(plain.begin(), plain.end(), '\0');
  return out;
}

Status checkIssuedCertificate(X509* leaf, EVP_PKEY* key, std::string_view device, const CaChain& chain) {
  if (EVP_PKEY_eq(X509_get0_pubkey(leaf), key) != 1) {
    return core::dataLoss("the issued certificate does not certify the key generated for this request");
  }
  if (device.empty() ? !core::isValidName(crypto::commonName(leaf)) : crypto::commonName(leaf) != device) {
    return core::dataLoss(fmt::format("the issued certificate names '{}', not '{}'", firstLine(crypto::commonName(leaf)), device));
  }
  crypto::X509StorePtr store(X509_STORE_new());
  crypto::StackOfX509Ptr untrusted(sk_X509_new_null());
  crypto::X509StoreCtxPtr vctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !vctx || X509_STORE_add_cert(store.get(), chain.root.get()) != 1) {
    return core::internalError("X509_STORE failed");
  }
  for (const auto& c : chain.intermediates) {
    if (X509_up_ref(c.get()) == 1) sk_X509_push(untrusted.get(), c.get());
  }
  if (X509_STORE_CTX_init(vctx.get(), store.get(), leaf, untrusted.get()) != 1) return core::internalError("X509_STORE_CTX_init failed");
  X509_VERIFY_PARAM_set_purpose(X509_STORE_CTX_get0_param(vctx.get()), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(vctx.get()) != 1) {
    int e = X509_STORE_CTX_get_error(vctx.get());
    ERR_clear_error();
    return core::dataLoss(fmt::format("the issued certificate does not chain to the pinned root: {}", X509_verify_cert_error_string(e)));
  }
  return Status::ok();
}

X509* issuerOf(X509* leaf, const CaChain& chain) {
  for (const auto& c : chain.intermediates) {
    if (X509_check_issued(c.get(), leaf) == X509_V_OK) return c.get();
  }
  return nullptr;
}

core::SystemTime renewalTime(X509* cert, std::optional<core::SystemTime> obtained_at, double jitter) {
  auto nb = crypto::notBefore(cert);
  auto na = crypto::notAfter(cert);
  if (obtained_at && *obtained_at > nb) nb = std::min(*obtained_at, na);
  if (na <= nb) return nb;
  const auto life = na - nb;
  const double j = std::clamp(jitter, 0.0, 0.999999);
  const auto early = std::chrono::duration_cast<core::SystemTime::duration>(life * (0.1 * j));
  return nb + life * 2 / 3 - early;
}

std::chrono::milliseconds backoffDelay(int attempt, double unit_random) {
  constexpr double kBaseMs = 5000, kMaxMs = 300000;
  double ms = kBaseMs * std::pow(2.0, std::clamp(attempt, 0, 20));
  ms = std::min(ms, kMaxMs);
  double jitter = 0.8 + 0.4 * std::clamp(unit_random, 0.0, 0.999999);
  return std::chrono::milliseconds(static_cast<int64_t>(ms * jitter));
}

}  // namespace warden::api

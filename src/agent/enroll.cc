#include "agent/enroll.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstdio>
#include <sys/stat.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/agent_files.h"
#include "agent/agent_output.h"
#include "api/admin_client.h"
#include "api/api_client.h"
#include "api/est_client.h"
#include "core/file_io.h"
#include "core/names.h"
#include "crypto/crypto.h"

namespace warden::agent {
namespace {

using core::Result;
using core::Status;

std::vector<crypto::X509Ptr> copies(const api::CaChain& chain) {
  std::vector<crypto::X509Ptr> out;
  X509_up_ref(chain.root.get());
  out.emplace_back(chain.root.get());
  for (const auto& c : chain.intermediates) {
    X509_up_ref(c.get());
    out.emplace_back(c.get());
  }
  return out;
}

// localFailure marks a failure on this machine (files), which must not be
// mistaken for an unreachable server (exit 3).
Status localFailure(const Status& s) { return core::failedPrecondition(s.message()); }

struct Enrolled {
  crypto::X509Ptr leaf;
  std::string serial;
  std::string name;  // the device name (from the certificate after a factory enrollment)
};

// pendingKeyPath is where a key waits while its request awaits approval:
// only the key of the first request can complete it, also after a restart.
std::string pendingKeyPath(const std::string& dir) { return dir + "/pending-key.pem"; }

// loadOrMakeKey reuses a key left by an enrollment that awaited approval.
Result<crypto::EvpPkeyPtr> loadOrMakeKey(const std::string& dir, bool quiet) {
  auto pem = core::readFile(pendingKeyPath(dir), 64 * 1024);
  if (pem.isOk()) {
    auto key = crypto::privateKeyFromPem(*pem);
    std::fill(pem->begin(), pem->end(), '\0');
    if (key.isOk()) {
      logInfo(quiet, "reusing the key of the enrollment request that awaits approval");
      return key;
    }
  }
  return crypto::generateEcKey();
}

Status keepPendingKey(const std::string& dir, EVP_PKEY* key) {
  if (core::readFile(pendingKeyPath(dir), 64 * 1024).isOk()) return Status::ok();
  Status s = core::makePrivateDir(dir);
  if (!s.isOk()) return localFailure(s);
  WARDEN_ASSIGN_OR_RETURN(std::string pem, crypto::privateKeyToPem(key));
  Status written = core::writeFileAtomic(pendingKeyPath(dir), pem, 0600);
  std::fill(pem.begin(), pem.end(), '\0');
  return written.isOk() ? written : localFailure(written);
}

Result<Enrolled> enroll(const EnrollOptions& o, const api::ServerUrl& url, bool& token_sent) {
  const bool factory = !o.idevid_cert.empty();
  std::string idevid_pem, idevid_key_pem;
  std::string csr_name = o.name;
  if (factory) {
    auto cert = core::readFile(o.idevid_cert, 256 * 1024);
    if (!cert.isOk()) return localFailure(Status(cert.status().code(), "--idevid: " + cert.status().message()));
    auto key = core::readFile(o.idevid_key, 64 * 1024);
    if (!key.isOk()) return localFailure(Status(key.status().code(), "--idevid-key: " + key.status().message()));
    idevid_pem = std::move(cert).value();
    idevid_key_pem = std::move(key).value();
    auto leaf = crypto::certFromPem(idevid_pem);
    if (!leaf.isOk()) return localFailure(core::invalidArgument("--idevid holds no PEM certificate"));
    csr_name = crypto::commonName(leaf->get());  // ignored by the server, which names the device
    if (csr_name.empty()) csr_name = "idevid";
  }
  // 1. First contact: complete the handshake provisionally and fetch the CA
  //    certificates; nothing secret is sent on this connection.
  api::ApiClientOptions bootstrap;
  bootstrap.server = url;
  bootstrap.tls.provisional = true;
  WARDEN_ASSIGN_OR_RETURN(auto first, api::ApiClient::create(bootstrap));
  WARDEN_ASSIGN_OR_RETURN(auto ca_certs, api::fetchCaCerts(*first));
  // 2. The pin decides: the root with the pinned fingerprint, and the
  //    server's own chain must lead to it for the host we dialled.
  WARDEN_ASSIGN_OR_RETURN(api::CaChain chain, api::selectPinnedChain(std::move(ca_certs), o.ca_fingerprint));
  WARDEN_RETURN_IF_ERROR(api::verifyChainWithPin(first->peerChain(), copies(chain), o.ca_fingerprint, url));
  logInfo(o.output_json, fmt::format("server {} verified against the pinned root CA {}", url.text, o.ca_fingerprint));

  // 3. simpleenroll over a connection verified against the pinned root,
  //    with the factory certificate as TLS client certificate if given.
  api::ApiClientOptions verified;
  verified.server = url;
  verified.tls.trust_pem = chain.pem();
  verified.tls.cert_pem = idevid_pem;
  verified.tls.key_pem = idevid_key_pem;
  std::fill(idevid_key_pem.begin(), idevid_key_pem.end(), '\0');
  {
    // RFC 7030 §4.5: what the server wants in a CSR (this agent makes P-256 / ECDSA-SHA256).
    WARDEN_ASSIGN_OR_RETURN(auto attrs_client, api::ApiClient::create(verified));
    WARDEN_RETURN_IF_ERROR(api::checkCsrAttrs(*attrs_client));
  }

  // 4. The key is made here and never leaves the device.
  WARDEN_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, loadOrMakeKey(o.dir, o.output_json));
  WARDEN_ASSIGN_OR_RETURN(crypto::X509ReqPtr csr, api::buildCsr(key.get(), csr_name));
  const std::string csr_body = api::csrBody(csr.get());
  std::optional<std::string> authorization;
  if (!factory) authorization = api::basicAuthorization(o.name, o.token);
  token_sent = true;
  const auto deadline = std::chrono::steady_clock::now() + o.approval_timeout;
  crypto::X509Ptr leaf;
  for (;;) {
    WARDEN_ASSIGN_OR_RETURN(auto client, api::ApiClient::create(verified));
    WARDEN_ASSIGN_OR_RETURN(api::EnrollAnswer answer,
                            api::sendEnrollRequest(*client, "/.well-known/est/simpleenroll", csr_body, authorization));
    if (answer.cert) {
      leaf = std::move(answer.cert);
      break;
    }
    // 202: the request awaits an operator. Keep the key (only it can
    // complete the request) and retry as told, within the bound.
    WARDEN_RETURN_IF_ERROR(keepPendingKey(o.dir, key.get()));
    auto wait = std::clamp(*answer.retry_after, std::chrono::seconds(1), std::chrono::seconds(300));
    if (std::chrono::steady_clock::now() + wait > deadline) {
      return core::failedPrecondition(fmt::format(
          "the enrollment request still awaits approval ({}); run the same command again later: the key is kept in {}",
          answer.message, pendingKeyPath(o.dir)));
    }
    logInfo(o.output_json, fmt::format("{}; retrying in {} s", answer.message, wait.count()));
    std::this_thread::sleep_for(wait);
  }
  WARDEN_RETURN_IF_ERROR(api::checkIssuedCertificate(leaf.get(), key.get(), factory ? "" : o.name, chain));
  const std::string name = crypto::commonName(leaf.get());

  // 5. Write A: key 0600, cert = leaf + issuing CA, ca = root + issuing CA.
  X509* issuer = api::issuerOf(leaf.get(), chain);
  std::vector<X509*> cert_chain{leaf.get()};
  if (issuer != nullptr) cert_chain.push_back(issuer);
  WARDEN_ASSIGN_OR_RETURN(std::string key_pem, crypto::privateKeyToPem(key.get()));
  AgentPaths paths(o.dir);
  Status s = core::makePrivateDir(o.dir);
  if (s.isOk() && ::chmod(o.dir.c_str(), 0700) != 0) s = core::failedPrecondition("cannot chmod 0700");
  if (!s.isOk()) return localFailure(Status(s.code(), fmt::format("cannot create {}: {}", o.dir, s.message())));
  std::string cert_pem = crypto::certsToPem(cert_chain);
  std::string config = renderAgentConfig({url.text, name, o.ca_fingerprint});
  Status written = core::writeFileAtomic(paths.key(), key_pem, 0600);
  std::fill(key_pem.begin(), key_pem.end(), '\0');
  if (written.isOk()) written = core::writeFileAtomic(paths.cert(), cert_pem, 0644);
  if (written.isOk()) written = core::writeFileAtomic(paths.ca(), chain.pem(), 0644);
  if (written.isOk()) written = core::writeFileAtomic(paths.config(), config, 0644);
  if (!written.isOk()) return localFailure(written);
  std::remove(pendingKeyPath(o.dir).c_str());
  Enrolled out;
  out.serial = crypto::serialHex(leaf.get());
  out.name = name;
  out.leaf = std::move(leaf);
  return out;
}

}  // namespace

int runEnroll(const EnrollOptions& options) {
  EnrollOptions o = options;
  std::transform(o.ca_fingerprint.begin(), o.ca_fingerprint.end(), o.ca_fingerprint.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  auto url = api::parseServerUrl(o.server);
  Status invalid;
  if (!url.isOk()) {
    invalid = url.status();
  } else if (!o.idevid_cert.empty() || !o.idevid_key.empty()) {
    if (o.idevid_cert.empty() || o.idevid_key.empty()) {
      invalid = core::invalidArgument("--idevid and --idevid-key go together (the factory certificate and its key)");
    } else if (!o.name.empty() || !o.token.empty()) {
      invalid = core::invalidArgument(
          "give either --idevid/--idevid-key (factory identity) or --name/--token (one-time token), not both");
    }
  } else if (!core::isValidName(o.name)) {
    invalid = o.name.empty() ? core::invalidArgument("give --name and --token, or --idevid and --idevid-key")
                             : core::checkName("device name", o.name);
  } else if (o.token.empty() || o.token.size() > 512 ||
             o.token.find_first_of(" \t\r\n:") != std::string::npos) {
    invalid = core::invalidArgument("--token must be the one-time token printed by `warden device add` or `warden device token`");
  } else if (!api::isValidFingerprint(o.ca_fingerprint)) {
    invalid = core::invalidArgument("--ca-fingerprint must read sha256: followed by 64 hex digits (printed by `warden device add`)");
  } else if (o.dir.empty()) {
    invalid = core::invalidArgument("--dir is required");
  }
  if (!invalid.isOk()) {
    printError(invalid.message());
    return api::kExitUsage;
  }

  bool token_sent = false;
  auto result = enroll(o, *url, token_sent);
  if (!result.isOk()) {
    const Status& s = result.status();
    std::string hint;
    switch (s.code()) {
      case core::ErrorCode::kUnavailable:
      case core::ErrorCode::kDeadlineExceeded:
        hint = fmt::format("cannot reach the Warden API at {}: {}. Is `warden serve` running and --server right?", url->text,
                           s.message());
        break;
      case core::ErrorCode::kUnauthenticated:
        hint = o.idevid_cert.empty()
                   ? fmt::format("enrollment at {} refused: {}. A token works once and expires; get a new one with "
                                 "`warden device token {}`.",
                                 url->text, s.message(), o.name)
                   : fmt::format("factory enrollment at {} refused: {}. Is the manufacturer trusted (`warden "
                                 "manufacturer list`) and this serialNumber allowed?",
                                 url->text, s.message());
        if (!token_sent) {
          hint = fmt::format("refusing to enroll at {}: {}. The token was not sent.", url->text, s.message());
        }
        break;
      default:
        hint = fmt::format("enrollment failed: {}", s.message());
    }
    printError(hint);
    return api::exitCodeFor(s);
  }

  X509* leaf = result->leaf.get();
  std::vector<std::string> uris = crypto::uriSans(leaf);
  const std::string name = result->name;
  nlohmann::json j = {
      {"name", name},
      {"spiffe_id", uris.empty() ? nlohmann::json(nullptr) : nlohmann::json(uris.front())},
      {"server", url->text},
      {"dir", o.dir},
      {"cert_serial", result->serial},
      {"cert_not_after", core::formatRfc3339(crypto::notAfter(leaf))},
      {"renew_at", core::formatRfc3339(api::renewalTime(leaf, core::systemClock().now()))},
      {"ca_fingerprint", o.ca_fingerprint},
  };
  if (o.output_json) {
    std::fputs((j.dump() + "\n").c_str(), stdout);
  } else {
    AgentPaths p(o.dir);
    std::fputs(fmt::format("enrolled {} ({})\n"
                           "  certificate serial {} valid until {} (renewal due {})\n"
                           "  key:         {} (0600, generated on this device)\n"
                           "  certificate: {} (leaf + issuing CA)\n"
                           "  CA bundle:   {} (root + issuing CA)\n"
                           "keep it renewed with: warden-agent run --dir {}\n",
                           name, j["spiffe_id"].is_null() ? "no SPIFFE ID" : j["spiffe_id"].get<std::string>(),
                           result->serial, j["cert_not_after"].get<std::string>(), j["renew_at"].get<std::string>(),
                           p.key(), p.cert(), p.ca(), o.dir)
                   .c_str(),
               stdout);
  }
  std::fflush(stdout);
  return api::kExitOk;
}

}  // namespace warden::agent

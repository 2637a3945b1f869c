#include "agent/attest_command.h"

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "agent/agent_output.h"
#include "agent/device_attestor.h"
#include "api/admin_client.h"
#include "api/est_client.h"
#include "core/file_io.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "keystore/tss2_private_key.h"

namespace warden::agent {

namespace {

using core::Result;
using core::Status;
using SystemClock = std::chrono::system_clock;

// ClientAttestationApi posts JSON over the agent's mutual-TLS ApiClient.
class ClientAttestationApi final : public AttestationApi {
 public:
  explicit ClientAttestationApi(api::ApiClient& client) : client_(client) {}

  Result<Reply> post(std::string_view path, const nlohmann::json& body) override {
    api::HttpRequest request;
    request.method = "POST";
    request.target = std::string(path);
    request.headers.push_back({"Content-Type", "application/json"});
    request.headers.push_back({"Accept", "application/json"});
    request.body = body.dump();
    WARDEN_ASSIGN_OR_RETURN(api::HttpResponse response, client_.send(request));
    Reply reply;
    reply.status = response.status;
    if (!response.body.empty()) {
      reply.body = nlohmann::json::parse(response.body, nullptr, /*allow_exceptions=*/false);
      if (reply.body.is_discarded()) reply.body = nullptr;
    }
    return reply;
  }

 private:
  api::ApiClient& client_;
};

// Session is what one round needs from the agent directory: an mTLS client
// with the current certificate and key, and the identity for software
// evidence. Made per round: the certificate may have been renewed.
struct Session {
  std::unique_ptr<api::ApiClient> client;
  keystore::PrivateKey key;
  std::string spiffe_id;
  std::string tpm_key_pem;  // the TSS2 PRIVATE KEY blob (key store tpm2)
};

Result<Session> openSession(const AgentPaths& paths, const api::ServerUrl& url, const DeviceKeyStore& keys) {
  WARDEN_ASSIGN_OR_RETURN(std::string ca_pem, core::readFile(paths.ca(), 256 * 1024));
  WARDEN_ASSIGN_OR_RETURN(std::string cert_pem, core::readFile(paths.cert(), 256 * 1024));
  WARDEN_ASSIGN_OR_RETURN(crypto::X509Ptr leaf, crypto::certFromPem(cert_pem));
  const std::vector<std::string> uris = crypto::uriSans(leaf.get());
  if (uris.empty()) return core::failedPrecondition(paths.cert() + ": the certificate has no SPIFFE ID");
  WARDEN_ASSIGN_OR_RETURN(keystore::PrivateKey key, keys.current());
  api::ApiClientOptions opts;
  opts.server = url;
  opts.tls.trust_pem = ca_pem;
  opts.tls.cert_pem = cert_pem;
  opts.tls.key = key.shared();
  WARDEN_ASSIGN_OR_RETURN(std::unique_ptr<api::ApiClient> client, api::ApiClient::create(opts));
  std::string tpm_key_pem;
  if (keys.kind() == keystore::KeyStoreKind::kTpm2) {
    WARDEN_ASSIGN_OR_RETURN(tpm_key_pem, core::readFile(paths.key(), keystore::kMaxTss2PemBytes));
  }
  return Session{std::move(client), std::move(key), uris.front(), std::move(tpm_key_pem)};
}

Result<Verdict> attestWith(DeviceAttestor& attestor, const AgentPaths& paths, const api::ServerUrl& url,
                           const DeviceKeyStore& keys) {
  WARDEN_ASSIGN_OR_RETURN(Session session, openSession(paths, url, keys));
  ClientAttestationApi api(*session.client);
  return attestor.attestOnce(api, DeviceIdentity{session.key.get(), session.spiffe_id, session.tpm_key_pem});
}

std::string verdictLine(const Verdict& v) {
  return fmt::format("result={} reason={} state={} trust={}", v.result, v.reason.empty() ? "-" : v.reason,
                     v.state.empty() ? "-" : v.state, v.trust ? std::to_string(*v.trust) : "-");
}

}  // namespace

AttestationSchedule::AttestationSchedule(AttestationSettings settings, AgentPaths paths)
    : settings_(std::move(settings)), paths_(std::move(paths)), next_(SystemClock::now()),
      rng_(std::random_device{}()) {}

AttestationSchedule::~AttestationSchedule() = default;

void AttestationSchedule::round(const api::ServerUrl& url, const DeviceKeyStore& keys) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  auto retry = [&](const Status& s) {
    const auto delay = api::backoffDelay(failures_++, unit(rng_));
    spdlog::warn("attestation failed: {}; retrying in {} s", s.message(),
                 std::chrono::duration_cast<std::chrono::seconds>(delay).count());
    next_ = SystemClock::now() + delay;
  };
  if (!attestor_) {
    auto made = DeviceAttestor::create(paths_.dir, settings_.tpm, settings_.firmware);
    if (!made.isOk()) return retry(made.status());
    attestor_ = std::move(made).value();
  }
  auto verdict = attestWith(*attestor_, paths_, url, keys);
  if (!verdict.isOk()) {
    if (verdict.status().code() == core::ErrorCode::kUnimplemented) {
      // Not an outage: the server lacks attestation. Ask again at the interval.
      spdlog::warn("attestation: {}; trying again in {} s", verdict.status().message(), settings_.interval.count());
      next_ = SystemClock::now() + settings_.interval;
      return;
    }
    // A TPM error may have left the ESAPI context unusable (tpm2-abrmd
    // restarted, the TPM reset): start over at the next round. The TPM's
    // resetCount then decides whether the log is resumed. Transport
    // failures say nothing about the TPM.
    const core::ErrorCode code = verdict.status().code();
    if (attestor_->hasTpm() && code != core::ErrorCode::kUnavailable && code != core::ErrorCode::kDeadlineExceeded &&
        code != core::ErrorCode::kUnauthenticated) {
      attestor_.reset();
    }
    return retry(verdict.status());
  }
  failures_ = 0;
  const std::chrono::seconds wait =
      verdict->next_due_s ? std::chrono::seconds(*verdict->next_due_s) : settings_.interval;
  if (verdict->ok) {
    spdlog::info("attestation: {}; next in {} s", verdictLine(*verdict), wait.count());
  } else {
    spdlog::warn("attestation: {}; next in {} s", verdictLine(*verdict), wait.count());
  }
  next_ = SystemClock::now() + wait;
}

int runAttest(const AttestOptions& options) {
  core::initLogging(options.log_level);
  AgentPaths paths(options.dir);
  auto opened = openEnrolledAgent(paths, api::kExitUsage);
  if (auto* exit_code = std::get_if<int>(&opened)) return *exit_code;
  EnrolledAgent& agent = std::get<EnrolledAgent>(opened);
  auto attestor = DeviceAttestor::create(paths.dir, options.settings.tpm, options.settings.firmware);
  if (!attestor.isOk()) {
    printError(attestor.status().message());
    return api::kExitUsage;
  }
  auto verdict = attestWith(**attestor, paths, agent.url, agent.keys);
  if (!verdict.isOk()) {
    printError(fmt::format("attestation did not complete: {}", verdict.status().message()));
    return api::kExitUsage;
  }
  if (options.output_json) {
    std::printf("%s\n", verdict->body.dump().c_str());
  } else {
    std::printf("%s (%s evidence, %zu measurements)\n", verdictLine(*verdict).c_str(),
                (*attestor)->hasTpm() ? "tpm2-quote" : "signed-log", (*attestor)->measuredBoot().log().size());
  }
  return verdict->ok ? api::kExitOk : api::kExitFailed;
}

}  // namespace warden::agent

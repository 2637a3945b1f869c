// The device's attestation endpoints (/attest/v1/...) and the operator's
// TPM trust (/v1/tpm-cas, /v1/devices/{name}/ek). The wire format and the
// checks are specified in docs/attestation.md; the TPM structures are
// checked by src/trust (quote.h, credential.h), posture and trust by
// trust::PostureEngine.

#include <algorithm>

#include <fmt/format.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "api/api_json.h"
#include "api/api_server_impl.h"
#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "gateway/decision_snapshot.h"
#include "gateway/peer_identity.h"
#include "monitor/event.h"
#include "trust/certify.h"
#include "trust/credential.h"
#include "trust/evidence.h"
#include "trust/posture.h"
#include "trust/quote.h"

namespace warden::api {
namespace {

using nlohmann::json;

constexpr auto kNonceLife = std::chrono::seconds(30);
constexpr auto kCredentialLife = std::chrono::seconds(60);
// A consumed nonce is remembered this long, so that a replay is told apart
// (nonce_reused) from a nonce that was never issued (nonce_unknown).
constexpr auto kConsumedMemory = std::chrono::minutes(10);
constexpr size_t kSpentPerDevice = 16;
constexpr size_t kMaxTpmCaCerts = 16;

std::string_view assuranceName(policy::AttestationAssurance a) {
  switch (a) {
    case policy::AttestationAssurance::kTpm: return "tpm";
    case policy::AttestationAssurance::kSoftware: return "software";
    case policy::AttestationAssurance::kNone: break;
  }
  return "none";
}

// decodeField reads the base64 string field |key| of |body|; |optional|
// fields may be absent (empty result).
core::Result<std::string> decodeField(const json& body, std::string_view key, bool optional, size_t max_bytes) {
  auto it = body.find(std::string(key));
  if (it == body.end() || it->is_null()) {
    if (optional) return std::string();
    return core::invalidArgument(fmt::format("'{}' is required", key));
  }
  if (!it->is_string()) return core::invalidArgument(fmt::format("'{}' must be a base64 string", key));
  const std::string& text = it->get_ref<const std::string&>();
  if (text.size() > max_bytes * 4 / 3 + 4) return core::invalidArgument(fmt::format("'{}' is too large", key));
  auto bytes = crypto::base64Decode(text, /*allow_whitespace=*/false);
  if (!bytes.isOk()) return core::invalidArgument(fmt::format("'{}' is not standard base64", key));
  if (bytes->empty()) return core::invalidArgument(fmt::format("'{}' is empty", key));
  return std::move(bytes).value();
}

// readCaBundle parses a PEM bundle of 1-16 CA certificates.
core::Result<std::vector<crypto::X509Ptr>> readCaBundle(std::string_view pem) {
  auto certs = crypto::certsFromPem(pem);
  if (!certs.isOk()) return core::invalidArgument(fmt::format("'pem': {}", certs.status().message()));
  if (certs->size() > kMaxTpmCaCerts) {
    return core::invalidArgument(fmt::format("at most {} certificates per TPM vendor CA bundle", kMaxTpmCaCerts));
  }
  for (const auto& cert : *certs) {
    if (X509_check_ca(cert.get()) != 1) {
      return core::invalidArgument("a TPM vendor CA must be a CA certificate (basicConstraints CA:TRUE)");
    }
  }
  return std::move(certs).value();
}

// subjectText is the certificate's subject as one RFC 2253 line.
std::string subjectText(X509* cert) {
  crypto::BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

json tpmCaToJson(const store::TpmCaRecord& ca) {
  return {{"fingerprint", ca.fingerprint},
          {"subject", ca.subject},
          {"not_after", core::formatRfc3339(core::fromUnixSeconds(ca.not_after))},
          {"added_at", core::formatRfc3339(core::fromUnixSeconds(ca.added_at))},
          {"added_by", ca.added_by}};
}

// ekKeyFromPem reads an EK given by the operator: a certificate or a public
// key (SubjectPublicKeyInfo), PEM.
core::Result<crypto::EvpPkeyPtr> ekKeyFromPem(std::string_view pem) {
  crypto::BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  crypto::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert) {
    EVP_PKEY* key = X509_get0_pubkey(cert.get());
    if (!key) return core::invalidArgument("the EK certificate has no usable public key");
    EVP_PKEY_up_ref(key);
    return crypto::EvpPkeyPtr(key);
  }
  ERR_clear_error();
  crypto::BioPtr bio2(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  crypto::EvpPkeyPtr key(PEM_read_bio_PUBKEY(bio2.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!key) return core::invalidArgument("'ek' must be a PEM certificate or PEM public key (BEGIN PUBLIC KEY)");
  return key;
}

}  // namespace

// ---------------------------------------------------------------------------
// Device side

std::variant<gateway::PeerIdentity, ServerResponse> ApiServer::Impl::authenticateAttester(const PeerInfo& peer,
                                                                                         std::string_view action) {
  auto snapshot = deps_.snapshot.get();
  X509* fleet_cert = peer.anchor.kind == pki::ClientAnchor::Kind::kFleet ? peer.cert.get() : nullptr;
  gateway::PeerIdentity id = gateway::checkDevicePeer(fleet_cert, peer.verify_result,
                                                      snapshot ? snapshot->fleet.get() : nullptr,
                                                      config_.trust_domain, deps_.clock.now());
  if (id.ok) return id;
  // A failure that merely names a device is an event, never a posture change.
  recordEvent(monitor::event_type::kAttestationRefused, "", "", std::string(action), id.device, "deny", "", id.reason,
              {{"remote", peer.remote}, {"message", id.detail}});
  return errorResponse(http::status::unauthorized, "unauthenticated",
                       "attestation requires the device's current, valid Warden certificate as the TLS client "
                       "certificate");
}

ServerResponse ApiServer::Impl::attestRefusal(std::string_view type, const std::string& device, const PeerInfo& peer,
                                              std::string_view action, std::string_view reason, http::status status,
                                              const std::string& message) {
  recordEvent(type, deviceSpiffeId(device), deviceSpiffeId(device), std::string(action), device, "deny", "",
              std::string(reason), {{"remote", peer.remote}, {"message", message}});
  return errorResponse(status, reason, message);
}

void ApiServer::Impl::pruneAttestState() {
  const core::SystemTime now = deps_.clock.now();
  std::erase_if(pending_aks_, [&](const auto& kv) { return kv.second.expires_at <= now; });
}

void ApiServer::Impl::rememberSpentNonce(const std::string& device, std::string nonce, core::SystemTime now) {
  std::deque<SpentNonce>& spent = spent_nonces_[device];
  spent.push_back(SpentNonce{std::move(nonce), now + kConsumedMemory});
  // Bounded per device, so a device asking for nonces in a loop costs memory
  // for kSpentPerDevice of them, not for every one it ever got.
  while (spent.size() > kSpentPerDevice || (!spent.empty() && spent.front().forget_at <= now)) spent.pop_front();
}

bool ApiServer::Impl::nonceWasSpent(const std::string& device, const std::string& nonce, core::SystemTime now) const {
  auto it = spent_nonces_.find(device);
  if (it == spent_nonces_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(),
                     [&](const SpentNonce& s) { return s.forget_at > now && s.text == nonce; });
}

asio::awaitable<ServerResponse> ApiServer::Impl::attestChallenge(const ServerRequest& req, const PeerInfo& peer) {
  constexpr std::string_view kAction = "attest:challenge";
  auto auth = authenticateAttester(peer, kAction);
  if (auto* res = std::get_if<ServerResponse>(&auth)) co_return std::move(*res);
  const gateway::PeerIdentity id = std::get<gateway::PeerIdentity>(auth);
  auto body = parseJsonBody(req, /*required=*/false);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {}); !s.isOk()) co_return statusResponse(s);

  const std::string device = id.device;
  auto work = [this, device]() { return deps_.store.getDeviceTpm(device); };
  auto tpm = co_await onWorker(work);
  if (!tpm.isOk()) co_return statusResponse(tpm.status());
  const trust::AttestationPlan plan = deps_.posture->plan(device);

  pruneAttestState();
  const core::SystemTime now = deps_.clock.now();
  AttestNonce& slot = attest_nonces_[device];
  if (!slot.text.empty()) rememberSpentNonce(device, slot.text, now);  // replaced by the new one
  slot.raw = crypto::randomBytes(32);
  slot.text = crypto::base64UrlEncode(slot.raw);
  slot.expires_at = now + kNonceLife;

  json out = {{"nonce", slot.text},
              {"expires_at", core::formatRfc3339(slot.expires_at)},
              {"pcrs", json::array({10})},
              {"pcr_bank", "sha256"},
              {"next_due_s", plan.required ? json(plan.interval.count()) : json(nullptr)},
              {"min_assurance", plan.min_assurance ? json(assuranceName(*plan.min_assurance)) : json(nullptr)},
              {"ak_registered", tpm->has_value() && !(*tpm)->ak_name.empty()}};
  co_return jsonResponse(http::status::ok, out);
}

asio::awaitable<ServerResponse> ApiServer::Impl::attestEvidence(const ServerRequest& req, const PeerInfo& peer) {
  constexpr std::string_view kAction = "attest:evidence";
  auto auth = authenticateAttester(peer, kAction);
  if (auto* res = std::get_if<ServerResponse>(&auth)) co_return std::move(*res);
  const gateway::PeerIdentity id = std::get<gateway::PeerIdentity>(auth);
  const std::string device = id.device;
  auto refuse = [&](std::string_view reason, const std::string& message) {
    return attestRefusal(monitor::event_type::kAttestationRefused, device, peer, kAction, reason,
                         http::status::bad_request, message);
  };

  // Whatever follows, the device's outstanding nonce is spent: one try per nonce.
  pruneAttestState();
  const core::SystemTime now = deps_.clock.now();
  std::optional<AttestNonce> outstanding;
  if (auto it = attest_nonces_.find(device); it != attest_nonces_.end()) {
    outstanding = std::move(it->second);
    attest_nonces_.erase(it);
    rememberSpentNonce(device, outstanding->text, now);
  }

  if (mediaType(req[http::field::content_type]) != "application/json") {
    co_return refuse(monitor::reason::kMalformedEvidence, "Content-Type must be application/json");
  }
  auto parsed = trust::parseEvidence(req.body());
  if (!parsed.isOk()) {
    co_return refuse(monitor::reason::kMalformedEvidence, parsed.status().message());
  }
  const trust::Evidence ev = std::move(parsed).value();
  if (!outstanding || !crypto::constantTimeEquals(outstanding->text, ev.nonce)) {
    if (nonceWasSpent(device, ev.nonce, now)) {
      co_return refuse(monitor::reason::kNonceReused,
                       "this nonce was already used; ask for a new one (POST /attest/v1/challenge)");
    }
    co_return refuse(monitor::reason::kNonceUnknown, "unknown nonce; ask for one with POST /attest/v1/challenge");
  }
  if (outstanding->expires_at <= now) {
    co_return refuse(monitor::reason::kNonceExpired, "the nonce expired (it lives 30 s); ask for a new one");
  }

  struct Loaded {
    std::optional<store::DeviceTpmRecord> tpm;
    store::KeyProof key_proof;
  };
  auto load = [this, device]() -> core::Result<Loaded> {
    Loaded l;
    WARDEN_ASSIGN_OR_RETURN(l.tpm, deps_.store.getDeviceTpm(device));
    WARDEN_ASSIGN_OR_RETURN(store::DeviceRecord record, deps_.store.getDevice(device));
    l.key_proof = std::move(record.key_proof);
    return l;
  };
  auto loaded = co_await onWorker(load);
  if (!loaded.isOk()) co_return statusResponse(loaded.status());
  const std::optional<store::DeviceTpmRecord>* tpm = &loaded->tpm;
  const bool has_ak = tpm->has_value() && !(*tpm)->ak_name.empty();

  trust::AttestationReport report;
  report.device = device;
  report.at = now;
  report.log = ev.log;
  if (ev.kind == trust::EvidenceKind::kTpm2Quote) {
    if (!has_ak) {
      co_return refuse(monitor::reason::kAkNotRegistered,
                       "this device has no registered attestation key; register one with POST /attest/v1/ak");
    }
    report.assurance = policy::AttestationAssurance::kTpm;
    auto ak_public = crypto::base64Decode((*tpm)->ak_public, false);
    if (!ak_public.isOk()) co_return statusResponse(core::internalError("stored AK is not base64"));
    trust::QuoteExpectation expect;
    expect.nonce = outstanding->raw;
    expect.pcr = 10;
    expect.ak_public = *ak_public;
    if ((*tpm)->last_reset_count >= 0) expect.min_reset_count = static_cast<uint32_t>((*tpm)->last_reset_count);
    trust::QuoteResult q = trust::verifyQuote(ev, expect);
    report.ok = q.check.ok;
    report.reason = q.check.reason;
    report.detail = q.check.detail;
    report.boot = fmt::format("tpm:{}", q.reset_count);
    if (q.check.ok) {
      const int64_t reset_count = q.reset_count;
      auto save = [this, device, reset_count]() { return deps_.store.setLastResetCount(device, reset_count); };
      auto saved = co_await onWorker(save);
      if (!saved.isOk()) co_return statusResponse(saved);
      // The quote is authentic; now where the device key lives.
      EVP_PKEY* device_key = peer.cert ? X509_get0_pubkey(peer.cert.get()) : nullptr;
      const std::string key_fp = device_key ? crypto::publicKeyFingerprint(device_key) : std::string();
      if (ev.key_certify) {
        trust::KeyCertifyExpectation kexpect{outstanding->raw, *ak_public, device_key};
        const trust::Check k = trust::verifyKeyCertify(*ev.key_certify, kexpect);
        store::KeyProof proof{k.ok ? std::string(trust::kKeyInTpmVerified) : std::string(trust::kKeyInTpmFailed),
                              key_fp, k.reason, core::unixSeconds(now)};
        const bool newly_verified =
            k.ok && !(loaded->key_proof.result == trust::kKeyInTpmVerified && loaded->key_proof.key_fp == key_fp);
        auto record = [this, device, proof]() { return deps_.store.setDeviceKeyProof(device, proof); };
        auto recorded = co_await onWorker(record);
        if (!recorded.isOk()) co_return statusResponse(recorded);
        if (!k.ok) {
          // A proof that the key is in the TPM which does not hold fails the
          // attestation: the device misstates where its key lives.
          report.ok = false;
          report.reason = k.reason;
          report.detail = k.detail;
        } else if (newly_verified) {
          recordEvent(monitor::event_type::kKeyVerified, deviceSpiffeId(device), deviceSpiffeId(device),
                      std::string(kAction), device, "", "", std::string(monitor::reason::kKeyInTpm),
                      {{"key", "sha256:" + key_fp}, {"ak_name", (*tpm)->ak_name}});
        }
      } else if (loaded->key_proof.result == trust::kKeyInTpmFailed && loaded->key_proof.key_fp == key_fp &&
                 !key_fp.empty()) {
        // Leaving the proof out does not answer a failed one.
        report.ok = false;
        report.reason = std::string(trust::kReasonKeyUnproven);
        report.detail = fmt::format("the last proof that this device's key is in its TPM failed ({}); only a valid "
                                    "key_certify for this key, or a new key, clears it",
                                    loaded->key_proof.reason);
      }
    }
  } else {
    report.assurance = policy::AttestationAssurance::kSoftware;
    report.boot = "sw:" + ev.boot_id;
    EVP_PKEY* key = peer.cert ? X509_get0_pubkey(peer.cert.get()) : nullptr;
    trust::Check c = trust::verifySignedLog(ev, outstanding->text, id.spiffe_id, key);
    report.ok = c.ok;
    report.reason = c.reason;
    report.detail = c.detail;
    if (c.ok && has_ak) {
      report.ok = false;
      report.reason = std::string(monitor::reason::kAssuranceDowngrade);
      report.detail = "a device with a registered TPM attestation key sent software evidence";
    }
  }
  co_return co_await applyAttestation(report);
}

asio::awaitable<void> ApiServer::Impl::failAttestation(const std::string& device, std::string_view reason,
                                                       const std::string& detail) {
  trust::AttestationReport report;
  report.device = device;
  report.at = deps_.clock.now();
  report.assurance = policy::AttestationAssurance::kTpm;
  report.reason = std::string(reason);
  report.detail = detail;
  co_await recordAttestation(report);
}

asio::awaitable<trust::PostureReply> ApiServer::Impl::recordAttestation(const trust::AttestationReport& report) {
  auto reply = std::make_shared<trust::PostureReply>();
  trust::PostureEngine* posture = deps_.posture;
  std::function<void(std::function<void()>)> start = [posture, report, reply](std::function<void()> done) {
    posture->record(report, [reply, done](trust::PostureReply r) {
      *reply = std::move(r);
      done();
    });
  };
  co_await awaitCallback(start, std::chrono::milliseconds(0), "posture update");
  co_return std::move(*reply);
}

asio::awaitable<ServerResponse> ApiServer::Impl::applyAttestation(const trust::AttestationReport& report) {
  const trust::PostureReply reply = co_await recordAttestation(report);
  json out = {{"result", reply.result},
              {"reason", reply.reason},
              {"state", reply.state},
              {"trust", reply.trust},
              {"next_due_s", reply.next_due_s ? json(*reply.next_due_s) : json(nullptr)}};
  co_return jsonResponse(http::status::ok, out);
}

asio::awaitable<ServerResponse> ApiServer::Impl::attestAk(const ServerRequest& req, const PeerInfo& peer) {
  constexpr std::string_view kAction = "attest:ak";
  auto auth = authenticateAttester(peer, kAction);
  if (auto* res = std::get_if<ServerResponse>(&auth)) co_return std::move(*res);
  const gateway::PeerIdentity id = std::get<gateway::PeerIdentity>(auth);
  const std::string device = id.device;
  auto refuse = [&](std::string_view reason, http::status status, const std::string& message) {
    return attestRefusal(monitor::event_type::kAkRegister, device, peer, kAction, reason, status, message);
  };

  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return refuse(monitor::reason::kMalformedEvidence, http::status::bad_request, body.status().message());
  if (auto s = checkKnownKeys(*body, {"ek_public", "ek_cert", "ak_public"}); !s.isOk()) {
    co_return refuse(monitor::reason::kMalformedEvidence, http::status::bad_request, s.message());
  }
  auto ek_public = decodeField(*body, "ek_public", false, 4096);
  auto ek_cert = decodeField(*body, "ek_cert", true, 8192);
  auto ak_public = decodeField(*body, "ak_public", false, 4096);
  for (const auto* r : {&ek_public, &ek_cert, &ak_public}) {
    if (!r->isOk()) co_return refuse(monitor::reason::kMalformedEvidence, http::status::bad_request, r->status().message());
  }
  auto ak_name = trust::checkAkPublic(*ak_public);
  if (!ak_name.isOk()) {
    co_return refuse(monitor::reason::kAkInvalid, http::status::bad_request,
                     fmt::format("the attestation key is not acceptable: {}", ak_name.status().message()));
  }
  auto ek_fp = trust::ekFingerprint(*ek_public);
  if (!ek_fp.isOk()) {
    co_return refuse(monitor::reason::kMalformedEvidence, http::status::bad_request,
                     fmt::format("'ek_public': {}", ek_fp.status().message()));
  }

  struct Lookup {
    std::optional<store::DeviceTpmRecord> own;
    std::optional<std::string> ek_owner;
    std::string vendor_cas;
  };
  const std::string fp = *ek_fp;
  auto load = [this, device, fp]() -> core::Result<Lookup> {
    Lookup l;
    WARDEN_ASSIGN_OR_RETURN(l.own, deps_.store.getDeviceTpm(device));
    WARDEN_ASSIGN_OR_RETURN(l.ek_owner, deps_.store.deviceOfEk(fp));
    WARDEN_ASSIGN_OR_RETURN(std::vector<store::TpmCaRecord> cas, deps_.store.listTpmCas());
    for (const auto& ca : cas) l.vendor_cas += ca.pem;
    return l;
  };
  auto looked = co_await onWorker(load);
  if (!looked.isOk()) co_return statusResponse(looked.status());

  // One EK, one device; one device, one TPM. Either mismatch is a device
  // presenting a TPM that is not its own: attestation failed.
  const bool ek_elsewhere = looked->ek_owner && *looked->ek_owner != device;
  const bool other_tpm = looked->own && looked->own->ek_fingerprint != fp && !looked->own->ak_name.empty();
  if (ek_elsewhere || other_tpm) {
    const std::string message = ek_elsewhere ? "this TPM's endorsement key is bound to another device"
                                             : "this device is bound to another TPM";
    co_await failAttestation(device, monitor::reason::kForeignTpm, message);
    co_return refuse(monitor::reason::kEkInUse, http::status::forbidden, message);
  }
  std::string source;
  if (looked->own && looked->own->ek_fingerprint == fp) {
    source = looked->own->ek_source;  // registered by the operator (or an earlier AK)
  } else if (!ek_cert->empty()) {
    core::Status verified = looked->vendor_cas.empty()
                                ? core::failedPrecondition("no TPM vendor CA is trusted (warden tpm-ca add FILE)")
                                : trust::verifyEkCertificate(*ek_cert, *ek_public, looked->vendor_cas);
    if (!verified.isOk()) {
      co_return refuse(monitor::reason::kEkUntrusted, http::status::forbidden,
                       fmt::format("the EK certificate is not trusted: {}", verified.message()));
    }
    source = "vendor_ca";
  } else {
    co_return refuse(monitor::reason::kEkUntrusted, http::status::forbidden,
                     "the EK is neither certified by a trusted TPM vendor CA nor registered for this device; send "
                     "'ek_cert', or have the operator run `warden tpm-ek add " + device + " EK.pem`");
  }

  const std::string secret = crypto::randomBytes(32);
  auto credential = trust::makeCredential(*ek_public, *ak_name, secret);
  if (!credential.isOk()) {
    co_return refuse(monitor::reason::kMalformedEvidence, http::status::bad_request,
                     fmt::format("cannot make a credential for this EK: {}", credential.status().message()));
  }
  pruneAttestState();
  PendingAk& pending = pending_aks_[device];
  pending.record = store::DeviceTpmRecord{device, fp, source, crypto::base64Encode(*ak_public),
                                         crypto::hexEncode(*ak_name), 0, -1};
  pending.secret = secret;
  pending.expires_at = deps_.clock.now() + kCredentialLife;
  co_return jsonResponse(http::status::ok, {{"credential_blob", crypto::base64Encode(credential->credential_blob)},
                                            {"encrypted_secret", crypto::base64Encode(credential->encrypted_secret)},
                                            {"expires_at", core::formatRfc3339(pending.expires_at)}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::attestAkActivate(const ServerRequest& req, const PeerInfo& peer) {
  constexpr std::string_view kAction = "attest:ak.activate";
  auto auth = authenticateAttester(peer, kAction);
  if (auto* res = std::get_if<ServerResponse>(&auth)) co_return std::move(*res);
  const gateway::PeerIdentity id = std::get<gateway::PeerIdentity>(auth);
  const std::string device = id.device;
  auto refuse = [&](std::string_view reason, http::status status, const std::string& message) {
    return attestRefusal(monitor::event_type::kAkRegister, device, peer, kAction, reason, status, message);
  };
  pruneAttestState();
  auto it = pending_aks_.find(device);
  if (it == pending_aks_.end()) {
    co_return refuse(monitor::reason::kActivationFailed, http::status::bad_request,
                     "no credential is pending for this device (it lives 60 s and allows one try); start again with "
                     "POST /attest/v1/ak");
  }
  const PendingAk pending = std::move(it->second);
  pending_aks_.erase(it);  // one try
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return refuse(monitor::reason::kMalformedEvidence, http::status::bad_request, body.status().message());
  if (auto s = checkKnownKeys(*body, {"secret"}); !s.isOk()) {
    co_return refuse(monitor::reason::kMalformedEvidence, http::status::bad_request, s.message());
  }
  auto secret = decodeField(*body, "secret", false, 64);
  if (!secret.isOk()) co_return refuse(monitor::reason::kMalformedEvidence, http::status::bad_request, secret.status().message());
  if (!crypto::constantTimeEquals(*secret, pending.secret)) {
    // Only a TPM holding both the EK and the AK recovers the secret.
    const std::string message = "credential activation failed: the attestation key is not in the TPM of this "
                                "endorsement key";
    co_await failAttestation(device, monitor::reason::kForeignTpm, message);
    co_return refuse(monitor::reason::kActivationFailed, http::status::forbidden, message);
  }
  store::DeviceTpmRecord record = pending.record;
  record.ak_registered_at = core::unixSeconds(deps_.clock.now());
  auto work = [this, record]() { return deps_.store.registerAk(record); };
  auto stored = co_await onWorker(work);
  if (!stored.isOk()) {
    if (stored.code() == core::ErrorCode::kAlreadyExists) {
      co_return refuse(monitor::reason::kEkInUse, http::status::conflict, stored.message());
    }
    co_return statusResponse(stored);
  }
  recordEvent(monitor::event_type::kAkRegister, deviceSpiffeId(device), deviceSpiffeId(device), std::string(kAction),
              device, "permit", "", std::string(monitor::reason::kAkRegistered),
              {{"remote", peer.remote}, {"ak_name", record.ak_name}, {"ek", record.ek_fingerprint},
               {"ek_source", record.ek_source}});
  co_return jsonResponse(http::status::ok, {{"ak_name", record.ak_name}, {"ek", record.ek_fingerprint}});
}

// ---------------------------------------------------------------------------
// Operator side

asio::awaitable<ServerResponse> ApiServer::Impl::tpmCaList() {
  auto work = [this]() { return deps_.store.listTpmCas(); };
  auto list = co_await onWorker(work);
  if (!list.isOk()) co_return statusResponse(list.status());
  json out = json::array();
  for (const auto& ca : *list) out.push_back(tpmCaToJson(ca));
  co_return jsonResponse(http::status::ok, {{"tpm_cas", std::move(out)}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::tpmCaAdd(const OperatorIdentity& op, const ServerRequest& req) {
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {"pem"}); !s.isOk()) co_return statusResponse(s);
  if (!body->contains("pem") || !(*body)["pem"].is_string()) {
    co_return statusResponse(core::invalidArgument("'pem' (the vendor CA certificates, PEM) is required"));
  }
  auto certs = readCaBundle((*body)["pem"].get_ref<const std::string&>());
  if (!certs.isOk()) co_return statusResponse(certs.status());
  std::vector<store::TpmCaRecord> records;
  const int64_t now = core::unixSeconds(deps_.clock.now());
  for (const auto& cert : *certs) {
    store::TpmCaRecord r;
    r.fingerprint = crypto::caFingerprint(cert.get());
    r.subject = subjectText(cert.get());
    r.pem = crypto::certToPem(cert.get());
    r.not_after = core::unixSeconds(crypto::notAfter(cert.get()));
    r.added_at = now;
    r.added_by = op.spiffe_id;
    if (r.not_after <= now) {
      co_return statusResponse(core::invalidArgument(fmt::format("the CA certificate '{}' has expired", r.subject)));
    }
    records.push_back(std::move(r));
  }
  auto work = [this, records]() -> core::Result<std::vector<bool>> {
    std::vector<bool> added;
    for (const auto& r : records) {
      core::Status s = deps_.store.insertTpmCa(r);
      if (!s.isOk() && s.code() != core::ErrorCode::kAlreadyExists) return s;
      added.push_back(s.isOk());
    }
    return added;
  };
  auto added = co_await onWorker(work);
  if (!added.isOk()) co_return statusResponse(added.status());
  json out = json::array();
  for (size_t i = 0; i < records.size(); ++i) {
    json view = tpmCaToJson(records[i]);
    view["added"] = static_cast<bool>((*added)[i]);
    if ((*added)[i]) {
      recordEvent(monitor::event_type::kTpmCaAdd, "", op.spiffe_id, "admin:tpm-ca.add", records[i].fingerprint,
                  "permit", op.rule, std::string(monitor::reason::kPermitted), {{"subject", records[i].subject}});
    }
    out.push_back(std::move(view));
  }
  co_return jsonResponse(http::status::created, {{"tpm_cas", std::move(out)}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::tpmCaRemove(const OperatorIdentity& op, const std::string& fingerprint) {
  if (!trust::parseDigestText(fingerprint)) {
    co_return statusResponse(core::invalidArgument("a TPM vendor CA is named by its fingerprint, sha256:<64 hex>"));
  }
  auto work = [this, fingerprint]() { return deps_.store.deleteTpmCa(fingerprint); };
  auto removed = co_await onWorker(work);
  if (!removed.isOk()) co_return statusResponse(removed.status());
  if (!*removed) {
    co_return errorResponse(http::status::not_found, "not_found",
                            fmt::format("no TPM vendor CA {}; `warden tpm-ca list` shows them", fingerprint));
  }
  recordEvent(monitor::event_type::kTpmCaRemove, "", op.spiffe_id, "admin:tpm-ca.remove", fingerprint, "permit",
              op.rule, std::string(monitor::reason::kPermitted));
  co_return jsonResponse(http::status::ok, {{"fingerprint", fingerprint}, {"removed", true}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::deviceEkSet(const OperatorIdentity& op, const std::string& name,
                                                             const ServerRequest& req) {
  auto body = parseJsonBody(req, /*required=*/true);
  if (!body.isOk()) co_return statusResponse(body.status());
  if (auto s = checkKnownKeys(*body, {"ek"}); !s.isOk()) co_return statusResponse(s);
  if (!body->contains("ek") || !(*body)["ek"].is_string()) {
    co_return statusResponse(core::invalidArgument("'ek' (the EK certificate or public key, PEM) is required"));
  }
  auto key = ekKeyFromPem((*body)["ek"].get_ref<const std::string&>());
  if (!key.isOk()) co_return statusResponse(key.status());
  const std::string fp = "sha256:" + crypto::publicKeyFingerprint(key->get());
  auto work = [this, name, fp]() { return deps_.store.bindDeviceEk(name, fp); };
  auto bound = co_await onWorker(work);
  if (!bound.isOk()) co_return statusResponse(bound);
  recordEvent(monitor::event_type::kDeviceSet, deviceSpiffeId(name), op.spiffe_id, "admin:device.set", name, "permit",
              op.rule, std::string(monitor::reason::kPermitted), {{"ek", fp}});
  co_return jsonResponse(http::status::ok, {{"device", name}, {"ek", fp}});
}

asio::awaitable<ServerResponse> ApiServer::Impl::deviceEkRemove(const OperatorIdentity& op, const std::string& name) {
  auto work = [this, name]() { return deps_.store.deleteDeviceTpm(name); };
  auto removed = co_await onWorker(work);
  if (!removed.isOk()) co_return statusResponse(removed.status());
  if (!*removed) {
    co_return errorResponse(http::status::not_found, "not_found", fmt::format("device '{}' has no TPM binding", name));
  }
  recordEvent(monitor::event_type::kDeviceSet, deviceSpiffeId(name), op.spiffe_id, "admin:device.set", name, "permit",
              op.rule, std::string(monitor::reason::kPermitted), {{"ek", nullptr}});
  co_return jsonResponse(http::status::ok, {{"device", name}, {"removed", true}});
}

}  // namespace warden::api

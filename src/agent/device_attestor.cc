#include "agent/device_attestor.h"

#include <sys/stat.h>

#include <cstdio>

#include <fmt/format.h>
#include <openssl/crypto.h>

#include "core/file_io.h"
#include "core/log.h"
#include "crypto/crypto.h"
#include "keystore/tss2_private_key.h"
#include "trust/credential.h"
#include "trust/evidence.h"

namespace warden::agent {

namespace {

using core::Result;
using core::Status;
using nlohmann::json;

constexpr size_t kMaxBlobBytes = 4096;

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

// replyError turns a non-200 reply into a Status naming the endpoint and the
// server's {error, message}.
Status replyError(std::string_view path, const AttestationApi::Reply& reply) {
  std::string code = "error";
  std::string message;
  if (reply.body.is_object()) {
    if (auto e = reply.body.find("error"); e != reply.body.end() && e->is_string()) code = e->get<std::string>();
    if (auto m = reply.body.find("message"); m != reply.body.end() && m->is_string()) message = m->get<std::string>();
  }
  std::string text = fmt::format("POST {}: {} {}{}{}", path, reply.status, code.substr(0, 64),
                                 message.empty() ? "" : ": ", message.substr(0, 512));
  if (reply.status == 404) {
    return core::unimplemented(text + " (the server has no attestation endpoints: upgrade it)");
  }
  return core::failedPrecondition(text);
}

Result<json> postOk(AttestationApi& api, std::string_view path, const json& body) {
  WARDEN_ASSIGN_OR_RETURN(AttestationApi::Reply reply, api.post(path, body));
  if (reply.status != 200) return replyError(path, reply);
  if (!reply.body.is_object()) return core::dataLoss(fmt::format("POST {}: the reply is not a JSON object", path));
  return std::move(reply.body);
}

Result<std::string> stringIn(const json& body, std::string_view path, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_string()) {
    return core::dataLoss(fmt::format("POST {}: the reply has no string '{}'", path, name));
  }
  return it->get<std::string>();
}

Result<std::string> base64In(const json& body, std::string_view path, const char* name) {
  WARDEN_ASSIGN_OR_RETURN(std::string text, stringIn(body, path, name));
  auto decoded = crypto::base64Decode(text, /*allow_whitespace=*/false);
  if (!decoded.isOk() || decoded->size() > kMaxBlobBytes) {
    return core::dataLoss(fmt::format("POST {}: '{}' is not base64 of at most {} bytes", path, name, kMaxBlobBytes));
  }
  return std::move(decoded).value();
}

struct Challenge {
  std::string nonce;      // as sent (base64url)
  std::string nonce_raw;  // 32 bytes
  bool ak_registered = false;
  std::string min_assurance;  // "tpm", "software" or "" (null)
};

Result<Challenge> challenge(AttestationApi& api) {
  constexpr std::string_view kPath = "/attest/v1/challenge";
  WARDEN_ASSIGN_OR_RETURN(json body, postOk(api, kPath, json::object()));
  Challenge out;
  WARDEN_ASSIGN_OR_RETURN(out.nonce, stringIn(body, kPath, "nonce"));
  auto raw = crypto::base64UrlDecode(out.nonce);
  if (!raw.isOk() || raw->size() != trust::kNonceBytes) {
    return core::dataLoss("POST /attest/v1/challenge: 'nonce' is not base64url of 32 bytes");
  }
  out.nonce_raw = std::move(raw).value();
  auto registered = body.find("ak_registered");
  out.ak_registered = registered != body.end() && registered->is_boolean() && registered->get<bool>();
  if (auto a = body.find("min_assurance"); a != body.end() && a->is_string()) out.min_assurance = a->get<std::string>();
  // This agent measures PCR 10 of the SHA-256 bank and nothing else; a
  // server asking for another selection would fail every quote.
  auto pcrs = body.find("pcrs");
  if (pcrs != body.end() && *pcrs != json::array({10})) {
    return core::failedPrecondition("POST /attest/v1/challenge: the server asks for PCRs " + pcrs->dump() +
                                    "; this agent measures only PCR 10");
  }
  auto bank = body.find("pcr_bank");
  if (bank != body.end() && *bank != "sha256") {
    return core::failedPrecondition("POST /attest/v1/challenge: the server asks for PCR bank " + bank->dump() +
                                    "; this agent extends only the SHA-256 bank");
  }
  return out;
}

// signPayload signs |payload| with SHA-256 by the device key (DER ECDSA, or
// RSA PKCS#1 v1.5), on the provider holding the key.
Result<std::string> signPayload(EVP_PKEY* key, std::string_view payload) {
  crypto::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(payload.data());
  if (!ctx ||
      EVP_DigestSignInit_ex(ctx.get(), nullptr, "SHA256", nullptr, crypto::signingPropertyQuery(key), key, nullptr) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, payload.size()) != 1) {
    return core::failedPrecondition("signing the measurement log with the device key failed: " +
                                    crypto::openSslErrorString());
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in, payload.size()) != 1) {
    return core::failedPrecondition("signing the measurement log with the device key failed: " +
                                    crypto::openSslErrorString());
  }
  sig.resize(len);
  return sig;
}

Result<Verdict> parseVerdict(json body) {
  constexpr std::string_view kPath = "/attest/v1/evidence";
  Verdict v;
  WARDEN_ASSIGN_OR_RETURN(v.result, stringIn(body, kPath, "result"));
  if (v.result != "ok" && v.result != "failed") {
    return core::dataLoss("POST /attest/v1/evidence: 'result' is neither \"ok\" nor \"failed\"");
  }
  v.ok = v.result == "ok";
  if (auto r = body.find("reason"); r != body.end() && r->is_string()) v.reason = r->get<std::string>();
  if (auto s = body.find("state"); s != body.end() && s->is_string()) v.state = s->get<std::string>();
  if (auto t = body.find("trust"); t != body.end() && t->is_number_integer()) v.trust = t->get<int64_t>();
  if (auto n = body.find("next_due_s"); n != body.end() && n->is_number_integer() && n->get<int64_t>() > 0) {
    v.next_due_s = n->get<int64_t>();
  }
  v.body = std::move(body);
  return v;
}

}  // namespace

Result<std::unique_ptr<DeviceAttestor>> DeviceAttestor::create(const std::string& dir, const std::string& tcti,
                                                               const std::string& firmware) {
  std::unique_ptr<DeviceAttestor> attestor(new DeviceAttestor(AttestorFiles(dir)));
  if (!tcti.empty()) {
    WARDEN_ASSIGN_OR_RETURN(attestor->tpm_, TpmAttestor::open(tcti));
    WARDEN_RETURN_IF_ERROR(attestor->loadOrCreateAk());
  }
  WARDEN_ASSIGN_OR_RETURN(attestor->boot_, MeasuredBoot::start(attestor->files_.log(), attestor->tpm_.get(), firmware));
  return attestor;
}

Status DeviceAttestor::loadOrCreateAk() {
  if (exists(files_.akPublic()) && exists(files_.akPrivate())) {
    auto pub = core::readFile(files_.akPublic(), kMaxBlobBytes);
    auto priv = core::readFile(files_.akPrivate(), kMaxBlobBytes);
    if (pub.isOk() && priv.isOk()) {
      AkBlobs blobs{std::move(pub).value(), std::move(priv).value()};
      auto name = trust::checkAkPublic(blobs.public_area);
      Status loaded = name.isOk() ? tpm_->loadAk(blobs) : name.status();
      if (loaded.isOk()) {
        ak_ = std::move(blobs);
        ak_name_hex_ = crypto::hexEncode(*name);
        return Status::ok();
      }
      spdlog::warn("the attestation key in {} is unusable ({}); creating a new one", files_.dir, loaded.message());
    }
  }
  WARDEN_ASSIGN_OR_RETURN(AkBlobs blobs, tpm_->createAk());
  WARDEN_ASSIGN_OR_RETURN(std::string name, trust::checkAkPublic(blobs.public_area));
  WARDEN_RETURN_IF_ERROR(tpm_->loadAk(blobs));
  // The old registration record names another AK: remove it first.
  std::remove(files_.akRegistered().c_str());
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(files_.akPrivate(), blobs.private_area, 0600));
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(files_.akPublic(), blobs.public_area, 0600));
  ak_ = std::move(blobs);
  ak_name_hex_ = crypto::hexEncode(name);
  spdlog::info("created an attestation key under the EK (name {})", ak_name_hex_);
  return Status::ok();
}

Status DeviceAttestor::registerAk(AttestationApi& api) {
  WARDEN_ASSIGN_OR_RETURN(std::string ek_public, tpm_->ekPublic());
  WARDEN_ASSIGN_OR_RETURN(std::optional<std::string> ek_cert, tpm_->ekCertificate());
  json request = {{"ek_public", crypto::base64Encode(ek_public)}, {"ak_public", crypto::base64Encode(ak_.public_area)}};
  if (ek_cert) request["ek_cert"] = crypto::base64Encode(*ek_cert);
  spdlog::info("registering the attestation key {} ({})", ak_name_hex_,
               ek_cert ? "EK certificate from the TPM" : "no EK certificate: the operator must have registered the EK");
  WARDEN_ASSIGN_OR_RETURN(json credential, postOk(api, "/attest/v1/ak", request));
  WARDEN_ASSIGN_OR_RETURN(std::string blob, base64In(credential, "/attest/v1/ak", "credential_blob"));
  WARDEN_ASSIGN_OR_RETURN(std::string secret_wrapped, base64In(credential, "/attest/v1/ak", "encrypted_secret"));
  WARDEN_ASSIGN_OR_RETURN(std::string secret, tpm_->activateCredential(blob, secret_wrapped));
  const json activate = {{"secret", crypto::base64Encode(secret)}};
  OPENSSL_cleanse(secret.data(), secret.size());
  WARDEN_ASSIGN_OR_RETURN(json activated, postOk(api, "/attest/v1/ak/activate", activate));
  WARDEN_ASSIGN_OR_RETURN(std::string ak_name, stringIn(activated, "/attest/v1/ak/activate", "ak_name"));
  if (ak_name != ak_name_hex_) {
    return core::dataLoss(fmt::format("the server registered AK name {}, not this AK's {}", ak_name.substr(0, 80),
                                      ak_name_hex_));
  }
  WARDEN_RETURN_IF_ERROR(core::writeFileAtomic(files_.akRegistered(), ak_name_hex_ + "\n", 0600));
  spdlog::info("attestation key {} registered", ak_name_hex_);
  return Status::ok();
}

json DeviceAttestor::keyCertify(const std::string& tpm_key_pem, const std::string& nonce) {
  auto key = keystore::parseTss2PrivateKeyPem(tpm_key_pem);
  if (!key.isOk()) {
    spdlog::warn("cannot prove that the device key is in the TPM: {}", key.status().message());
    return nullptr;
  }
  auto proof = tpm_->certifyKey(key->parent, key->key_public, key->key_private, nonce);
  if (!proof.isOk()) {
    spdlog::warn("cannot prove that the device key is in the TPM: {}", proof.status().message());
    return nullptr;
  }
  return {{"attest", crypto::base64Encode(proof->attest)},
          {"signature", crypto::base64Encode(proof->signature)},
          {"public", crypto::base64Encode(proof->key_public)}};
}

Result<Verdict> DeviceAttestor::attestOnce(AttestationApi& api, const DeviceIdentity& identity) {
  auto measured = boot_->refresh();
  if (!measured.isOk()) {
    // The image may be mid-replacement; attest what was measured so far.
    spdlog::warn("{}", measured.status().message());
  }
  WARDEN_ASSIGN_OR_RETURN(Challenge ch, challenge(api));
  json body;
  if (tpm_ != nullptr) {
    auto recorded = core::readFile(files_.akRegistered(), 256);
    const bool registered_here = recorded.isOk() && *recorded == ak_name_hex_ + "\n";
    if (!ch.ak_registered || !registered_here) {
      WARDEN_RETURN_IF_ERROR(registerAk(api));
      // The registration may outlast the nonce's 30 s: ask again.
      WARDEN_ASSIGN_OR_RETURN(ch, challenge(api));
    }
    WARDEN_ASSIGN_OR_RETURN(TpmQuote q, tpm_->quote(ch.nonce_raw));
    body = {{"nonce", ch.nonce},
            {"kind", "tpm2-quote"},
            {"quote", crypto::base64Encode(q.quote)},
            {"signature", crypto::base64Encode(q.signature)},
            {"log", trust::logToJson(boot_->log())}};
    // Every round: the key may have been renewed since the last one.
    if (!identity.tpm_key_pem.empty()) {
      json proof = keyCertify(identity.tpm_key_pem, ch.nonce_raw);
      if (!proof.is_null()) body["key_certify"] = std::move(proof);
    }
  } else {
    if (ch.min_assurance == "tpm") {
      spdlog::warn("the server requires TPM attestation of this device; without --tpm this agent can only send "
                   "software evidence, which will be judged assurance_insufficient");
    }
    if (identity.key == nullptr || identity.spiffe_id.empty()) {
      return core::failedPrecondition("software attestation needs the device key and its certificate's SPIFFE ID");
    }
    const json payload = {{"nonce", ch.nonce},
                          {"spiffe_id", identity.spiffe_id},
                          {"boot_id", boot_->bootId()},
                          {"log", trust::logToJson(boot_->log())}};
    const std::string payload_text = payload.dump();
    WARDEN_ASSIGN_OR_RETURN(std::string signature, signPayload(identity.key, payload_text));
    body = {{"nonce", ch.nonce},
            {"kind", "signed-log"},
            {"payload", crypto::base64Encode(payload_text)},
            {"signature", crypto::base64Encode(signature)}};
  }
  WARDEN_ASSIGN_OR_RETURN(json reply, postOk(api, "/attest/v1/evidence", body));
  return parseVerdict(std::move(reply));
}

}  // namespace warden::agent

#include "identity/registry.h"

#include <utility>

#include <fmt/format.h>

#include "crypto/crypto.h"

namespace warden::identity {

using core::Result;
using core::Status;

namespace {

// kMaxSerialAttempts bounds re-issuing on a (practically impossible) 128-bit
// serial collision.
constexpr int kMaxSerialAttempts = 3;
// kMaxTokenLength: longer presented tokens are not even hashed.
constexpr size_t kMaxTokenLength = 1024;

Status checkLabels(const core::Labels& labels) {
  for (const auto& [k, v] : labels) {
    if (!core::isValidLabelKey(k)) {
      return core::invalidArgument(fmt::format(
          "invalid label key '{}': use 1-63 of a-z 0-9 - . _, starting and ending with a letter or digit", k));
    }
    if (!core::isValidLabelValue(v)) {
      return core::invalidArgument(fmt::format("invalid value for label '{}': use 1-63 of A-Z a-z 0-9 . _ -", k));
    }
  }
  return Status::ok();
}

Result<core::Seconds> checkTtl(std::optional<core::Seconds> ttl) {
  core::Seconds t = ttl.value_or(kDefaultTokenTtl);
  if (t.count() <= 0 || t > kMaxTokenTtl) {
    return core::invalidArgument(fmt::format("token TTL must be between 1s and {} (got {}s)",
                                             core::formatDuration(kMaxTokenTtl.count()), t.count()));
  }
  return t;
}

}  // namespace

std::string hashToken(std::string_view token) { return crypto::sha256Hex(token); }

Registry::Registry(store::Store& store, const core::Clock& clock) : store_(store), clock_(clock) {}

Result<NewDevice> Registry::addDevice(std::string_view name, std::string_view role, const core::Labels& labels,
                                      std::optional<core::Seconds> token_ttl, int64_t cert_ttl_s) {
  WARDEN_RETURN_IF_ERROR(core::checkName("device name", name));
  WARDEN_RETURN_IF_ERROR(core::checkName("role", role));
  WARDEN_RETURN_IF_ERROR(checkLabels(labels));
  WARDEN_ASSIGN_OR_RETURN(core::Seconds ttl, checkTtl(token_ttl));
  const int64_t now = core::unixSeconds(clock_.now());
  NewDevice out;
  out.record.name = std::string(name);
  out.record.role = std::string(role);
  out.record.labels = labels;
  out.record.state = store::DeviceState::kPending;
  out.record.created_at = now;
  out.record.cert_ttl_s = cert_ttl_s;
  out.token = crypto::base64UrlEncode(crypto::randomBytes(kTokenRandomBytes));
  out.token_expires_at = now + ttl.count();
  WARDEN_RETURN_IF_ERROR(store_.insertDeviceWithToken(out.record, hashToken(out.token), out.token_expires_at));
  return out;
}

Result<NewToken> Registry::newToken(std::string_view name, std::optional<core::Seconds> ttl) {
  WARDEN_ASSIGN_OR_RETURN(core::Seconds t, checkTtl(ttl));
  NewToken out;
  out.token = crypto::base64UrlEncode(crypto::randomBytes(kTokenRandomBytes));
  out.expires_at = core::unixSeconds(clock_.now()) + t.count();
  WARDEN_RETURN_IF_ERROR(store_.replaceToken(name, hashToken(out.token), out.expires_at));
  return out;
}

Result<IssuedCert> Registry::issue(std::string_view name, EVP_PKEY* subject_key, const LeafIssuer& issuer) {
  if (subject_key == nullptr) return core::invalidArgument("no public key to certify");
  const std::string fp = crypto::publicKeyFingerprint(subject_key);
  WARDEN_ASSIGN_OR_RETURN(bool reused, store_.pubkeyCertifiedToOtherDevice(fp, name));
  if (reused) return core::alreadyExists(std::string(store::kReasonKeyReuse));
  auto leaf = issuer(subject_key, std::string(name));
  if (!leaf.isOk()) return leaf.status();
  IssuedCert out;
  out.cert = std::move(leaf->cert);
  out.record.issuer = std::move(leaf->ca_name);
  X509* x = out.cert.get();
  out.record.serial_hex = crypto::serialHex(x);
  out.record.device = std::string(name);
  out.record.kind = "device";
  out.record.pubkey_fp = fp;
  out.record.not_before = core::unixSeconds(crypto::notBefore(x));
  out.record.not_after = core::unixSeconds(crypto::notAfter(x));
  out.record.pem = crypto::certToPem(x);
  return out;
}

Result<IssuedCert> Registry::enroll(std::string_view name, std::string_view token, EVP_PKEY* subject_key,
                                    const LeafIssuer& issuer, std::string_view request_id) {
  if (token.empty()) return core::unauthenticated(std::string(store::kReasonTokenMismatch));
  if (token.size() > kMaxTokenLength) return core::unauthenticated(std::string(store::kReasonTokenMismatch));
  const std::string hash = hashToken(token);
  // Pre-check so that a bad token never costs a signature; the enrolling
  // transaction checks again and consumes the token atomically.
  WARDEN_RETURN_IF_ERROR(store_.checkToken(name, hash));
  for (int attempt = 1;; ++attempt) {
    WARDEN_ASSIGN_OR_RETURN(IssuedCert issued, issue(name, subject_key, issuer));
    Status s = store_.enrollWithToken(name, hash, issued.record, request_id);
    if (s.isOk()) return issued;
    if (s.code() == core::ErrorCode::kAlreadyExists && s.message() == store::kReasonSerialCollision &&
        attempt < kMaxSerialAttempts) {
      continue;
    }
    return s;
  }
}

Result<IssuedCert> Registry::enrollFactory(const store::FactoryEnrollment& enrollment, EVP_PKEY* subject_key,
                                           const LeafIssuer& issuer) {
  const std::string& name = enrollment.device.name;
  WARDEN_RETURN_IF_ERROR(core::checkName("device name", name));
  for (int attempt = 1;; ++attempt) {
    WARDEN_ASSIGN_OR_RETURN(IssuedCert issued, issue(name, subject_key, issuer));
    Status s = store_.enrollFactory(enrollment, issued.record);
    if (s.isOk()) return issued;
    if (s.code() == core::ErrorCode::kAlreadyExists && s.message() == store::kReasonSerialCollision &&
        attempt < kMaxSerialAttempts) {
      continue;
    }
    return s;
  }
}

Result<IssuedCert> Registry::renew(std::string_view name, std::string_view old_serial, EVP_PKEY* subject_key,
                                   const LeafIssuer& issuer) {
  for (int attempt = 1;; ++attempt) {
    WARDEN_ASSIGN_OR_RETURN(IssuedCert issued, issue(name, subject_key, issuer));
    Status s = store_.renewCert(name, old_serial, issued.record);
    if (s.isOk()) return issued;
    if (s.code() == core::ErrorCode::kAlreadyExists && s.message() == store::kReasonSerialCollision &&
        attempt < kMaxSerialAttempts) {
      continue;
    }
    return s;
  }
}

Result<PreparedIssue> Registry::prepareEnroll(std::string_view name, std::string_view token, EVP_PKEY* subject_key,
                                              const LeafIssuer& issuer, std::string_view request_id,
                                              std::string_view key_store_claim) {
  if (token.empty() || token.size() > kMaxTokenLength) {
    return core::unauthenticated(std::string(store::kReasonTokenMismatch));
  }
  std::string hash = hashToken(token);
  // A bad token never costs a signature.
  WARDEN_RETURN_IF_ERROR(store_.checkToken(name, hash));
  WARDEN_ASSIGN_OR_RETURN(IssuedCert issued, issue(name, subject_key, issuer));
  PreparedIssue out;
  out.write.kind = store::IssuanceWrite::Kind::kEnrollWithToken;
  out.write.device = std::string(name);
  out.write.token_hash_hex = std::move(hash);
  out.write.request_id = std::string(request_id);
  out.write.key_store_claim = std::string(key_store_claim);
  out.write.cert = issued.record;
  out.issued = std::move(issued);
  return out;
}

Result<PreparedIssue> Registry::prepareRenew(std::string_view name, std::string_view old_serial, EVP_PKEY* subject_key,
                                             const LeafIssuer& issuer, std::string_view key_store_claim) {
  WARDEN_ASSIGN_OR_RETURN(IssuedCert issued, issue(name, subject_key, issuer));
  PreparedIssue out;
  out.write.kind = store::IssuanceWrite::Kind::kRenew;
  out.write.device = std::string(name);
  out.write.old_serial = std::string(old_serial);
  out.write.key_store_claim = std::string(key_store_claim);
  out.write.cert = issued.record;
  out.issued = std::move(issued);
  return out;
}

Result<bool> Registry::revoke(std::string_view name) { return store_.revokeDevice(name); }

Result<bool> Registry::quarantine(std::string_view name) {
  WARDEN_ASSIGN_OR_RETURN(store::DeviceRecord d, store_.getDevice(name));
  switch (d.state) {
    case store::DeviceState::kPending:
      return core::failedPrecondition(fmt::format("device '{}' has not enrolled yet", name));
    case store::DeviceState::kRevoked:
      return core::failedPrecondition(fmt::format("device '{}' is revoked", name));
    case store::DeviceState::kQuarantined:
      return false;
    case store::DeviceState::kActive:
      break;
  }
  WARDEN_RETURN_IF_ERROR(store_.setDeviceState(name, store::DeviceState::kQuarantined));
  return true;
}

Result<bool> Registry::release(std::string_view name) {
  WARDEN_ASSIGN_OR_RETURN(store::DeviceRecord d, store_.getDevice(name));
  switch (d.state) {
    case store::DeviceState::kPending:
      return core::failedPrecondition(fmt::format("device '{}' has not enrolled yet", name));
    case store::DeviceState::kRevoked:
      return core::failedPrecondition(fmt::format("device '{}' is revoked", name));
    case store::DeviceState::kActive:
      return false;
    case store::DeviceState::kQuarantined:
      break;
  }
  WARDEN_RETURN_IF_ERROR(store_.setDeviceState(name, store::DeviceState::kActive));
  return true;
}

Result<std::shared_ptr<const FleetState>> Registry::loadFleetState() {
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::DeviceRecord> devices, store_.listDevices());
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::CertRecord> certs,
                          store_.listValidCerts(core::unixSeconds(clock_.now())));
  WARDEN_ASSIGN_OR_RETURN(std::vector<store::PostureRecord> postures, store_.listPostures());
  auto state = std::make_shared<FleetState>();
  const uint64_t generation = generation_.fetch_add(1) + 1;
  for (store::DeviceRecord& d : devices) {
    DeviceEntry e;
    e.name = d.name;
    e.role = std::move(d.role);
    e.labels = std::move(d.labels);
    e.state = d.state;
    e.revision = generation;
    applyPosture(e, nullptr);
    state->devices.emplace(std::move(d.name), std::move(e));
  }
  for (const store::PostureRecord& p : postures) {
    if (state->devices.count(p.device) != 0) applyPosture(state->devices[p.device], &p);
  }
  for (store::CertRecord& c : certs) {
    if (c.kind == "device") {
      if (state->devices.count(c.device) != 0) state->devices[c.device].valid_serials.insert(std::move(c.serial_hex));
    } else if (c.kind == "user") {
      state->user_serials.emplace(std::move(c.serial_hex), std::move(c.device));
    }
  }
  state->generation = generation;
  return std::shared_ptr<const FleetState>(std::move(state));
}

void Registry::applyPosture(DeviceEntry& e, const store::PostureRecord* p) const {
  if (p == nullptr) {
    e.trust = default_trust_;
    e.firmware_approved.reset();
    e.attestation_assurance.clear();
    e.last_good_attestation = 0;
    return;
  }
  e.trust = p->trust;
  e.firmware_approved = p->firmware_approved < 0 ? std::nullopt : std::optional<bool>(p->firmware_approved == 1);
  e.attestation_assurance = p->last_good_assurance;
  e.last_good_attestation = p->last_good_at;
}

Result<std::shared_ptr<const FleetState>> Registry::updateFleetState(const FleetState& previous,
                                                                     const std::vector<std::string>& devices) {
  auto state = std::make_shared<FleetState>(previous);
  const int64_t now = core::unixSeconds(clock_.now());
  const uint64_t generation = generation_.fetch_add(1) + 1;
  for (const std::string& name : devices) {
    auto d = store_.getDevice(name);
    if (!d.isOk()) {
      if (d.status().code() != core::ErrorCode::kNotFound) return d.status();
      state->devices.erase(name);
      continue;
    }
    DeviceEntry e;
    e.name = d->name;
    e.role = std::move(d->role);
    e.labels = std::move(d->labels);
    e.state = d->state;
    e.revision = generation;
    WARDEN_ASSIGN_OR_RETURN(std::vector<store::CertRecord> certs, store_.listValidCertsOf(name, "device", now));
    for (store::CertRecord& c : certs) e.valid_serials.insert(std::move(c.serial_hex));
    WARDEN_ASSIGN_OR_RETURN(std::optional<store::PostureRecord> posture, store_.getPosture(name));
    applyPosture(e, posture ? &*posture : nullptr);
    state->devices.emplace(name, std::move(e));
  }
  state->generation = generation;
  return std::shared_ptr<const FleetState>(std::move(state));
}

}  // namespace warden::identity

#include "trust/evidence.h"

#include <algorithm>
#include <cstring>
#include <initializer_list>

#include <fmt/format.h>

#include "crypto/crypto.h"

namespace warden::trust {

namespace {

using core::invalidArgument;
using core::Result;
using nlohmann::json;

// kMaxJsonDepth bounds nesting before the parser sees the body: the deepest
// valid evidence is body > log > entry (and the payload is parsed on its own).
constexpr int kMaxJsonDepth = 8;
constexpr size_t kMaxSpiffeIdBytes = 2048;
constexpr size_t kBootIdHexChars = 32;
// A marshalled TPMS_ATTEST of a quote is a few hundred bytes; a marshalled
// TPMT_SIGNATURE or DER signature at most ~520 (RSA 4096).
constexpr size_t kMaxQuoteBytes = 4096;
constexpr size_t kMaxSignatureBytes = 1024;
// A marshalled TPM2B_PUBLIC: ~90 bytes for ECC P-256, ~600 for RSA 4096 with
// a policy digest.
constexpr size_t kMaxPublicBytes = 1024;

// jsonDepthWithin reports whether |text| nests arrays/objects at most
// |limit| deep (brackets inside strings do not count). It keeps the JSON
// parser and every later recursive walk off deep, hostile input.
bool jsonDepthWithin(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

Result<json> parseObject(std::string_view text, std::string_view what) {
  if (!jsonDepthWithin(text, kMaxJsonDepth)) {
    return invalidArgument(fmt::format("{} nests deeper than {} levels", what, kMaxJsonDepth));
  }
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded() || !value.is_object()) return invalidArgument(fmt::format("{} must be a JSON object", what));
  return value;
}

core::Status checkFields(const json& object, std::string_view what, std::initializer_list<std::string_view> known) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      std::string list;
      for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return invalidArgument(
          fmt::format("{}: unknown field '{}'; known fields: {}", what, it.key().substr(0, 64), list));
    }
  }
  return core::Status::ok();
}

Result<std::string> stringField(const json& object, std::string_view what, const char* name, size_t max_bytes) {
  auto it = object.find(name);
  if (it == object.end()) return invalidArgument(fmt::format("{}: '{}' is required", what, name));
  if (!it->is_string()) return invalidArgument(fmt::format("{}: '{}' must be a string", what, name));
  const std::string& value = it->get_ref<const std::string&>();
  if (value.size() > max_bytes) {
    return invalidArgument(fmt::format("{}: '{}' is longer than {} bytes", what, name, max_bytes));
  }
  return value;
}

Result<std::string> base64Field(const json& object, std::string_view what, const char* name, size_t max_decoded) {
  WARDEN_ASSIGN_OR_RETURN(std::string text, stringField(object, what, name, (max_decoded + 2) / 3 * 4));
  auto decoded = crypto::base64Decode(text, /*allow_whitespace=*/false);
  if (!decoded.isOk()) return invalidArgument(fmt::format("{}: '{}' is not standard base64", what, name));
  if (decoded->empty()) return invalidArgument(fmt::format("{}: '{}' is empty", what, name));
  return std::move(decoded).value();
}

Result<std::string> nonceField(const json& object, std::string_view what) {
  WARDEN_ASSIGN_OR_RETURN(std::string nonce, stringField(object, what, "nonce", 64));
  auto raw = crypto::base64UrlDecode(nonce);
  if (!raw.isOk() || raw->size() != kNonceBytes) {
    return invalidArgument(
        fmt::format("{}: 'nonce' must be the challenge's nonce: base64url without padding of {} bytes", what, kNonceBytes));
  }
  return nonce;
}

bool isLowerHex(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// parseSignedLogPayload fills the payload fields of |ev| from the decoded
// payload JSON {nonce, spiffe_id, boot_id, log}.
core::Status parseSignedLogPayload(Evidence& ev) {
  constexpr std::string_view kWhat = "evidence payload";
  WARDEN_ASSIGN_OR_RETURN(json payload, parseObject(ev.payload, kWhat));
  WARDEN_RETURN_IF_ERROR(checkFields(payload, kWhat, {"nonce", "spiffe_id", "boot_id", "log"}));
  WARDEN_ASSIGN_OR_RETURN(ev.payload_nonce, nonceField(payload, kWhat));
  WARDEN_ASSIGN_OR_RETURN(ev.spiffe_id, stringField(payload, kWhat, "spiffe_id", kMaxSpiffeIdBytes));
  if (ev.spiffe_id.rfind("spiffe://", 0) != 0) {
    return invalidArgument("evidence payload: 'spiffe_id' must be a spiffe:// ID");
  }
  WARDEN_ASSIGN_OR_RETURN(ev.boot_id, stringField(payload, kWhat, "boot_id", kBootIdHexChars));
  if (ev.boot_id.size() != kBootIdHexChars || !isLowerHex(ev.boot_id)) {
    return invalidArgument(fmt::format("evidence payload: 'boot_id' must be {} lowercase hex characters", kBootIdHexChars));
  }
  auto log = payload.find("log");
  if (log == payload.end()) return invalidArgument("evidence payload: 'log' is required");
  WARDEN_ASSIGN_OR_RETURN(ev.log, parseLog(*log));
  return core::Status::ok();
}

// parseKeyCertify parses the optional `key_certify` object of a tpm2-quote.
Result<KeyCertify> parseKeyCertify(const json& value) {
  constexpr std::string_view kWhat = "evidence key_certify";
  if (!value.is_object()) return invalidArgument("evidence: 'key_certify' must be an object {attest, signature, public}");
  WARDEN_RETURN_IF_ERROR(checkFields(value, kWhat, {"attest", "signature", "public"}));
  KeyCertify out;
  WARDEN_ASSIGN_OR_RETURN(out.attest, base64Field(value, kWhat, "attest", kMaxQuoteBytes));
  WARDEN_ASSIGN_OR_RETURN(out.signature, base64Field(value, kWhat, "signature", kMaxSignatureBytes));
  WARDEN_ASSIGN_OR_RETURN(out.key_public, base64Field(value, kWhat, "public", kMaxPublicBytes));
  return out;
}

}  // namespace

std::string_view evidenceKindName(EvidenceKind kind) {
  return kind == EvidenceKind::kTpm2Quote ? "tpm2-quote" : "signed-log";
}

Result<std::vector<Measurement>> parseLog(const json& log) {
  if (!log.is_array()) return invalidArgument("'log' must be an array of measurements");
  if (log.size() > kMaxLogEntries) {
    return invalidArgument(fmt::format("'log' has {} entries; at most {} are accepted", log.size(), kMaxLogEntries));
  }
  std::vector<Measurement> out;
  out.reserve(log.size());
  for (size_t i = 0; i < log.size(); ++i) {
    const json& entry = log[i];
    const std::string what = fmt::format("log entry {}", i);
    if (!entry.is_object()) return invalidArgument(what + " must be an object {pcr, digest, type, name}");
    WARDEN_RETURN_IF_ERROR(checkFields(entry, what, {"pcr", "digest", "type", "name"}));
    Measurement m;
    auto pcr = entry.find("pcr");
    if (pcr == entry.end() || !pcr->is_number_unsigned() || pcr->get<uint64_t>() != 10) {
      return invalidArgument(what + ": 'pcr' must be 10 (the only PCR measured)");
    }
    m.pcr = 10;
    WARDEN_ASSIGN_OR_RETURN(std::string digest, stringField(entry, what, "digest", 7 + 64));
    auto parsed = parseDigestText(digest);
    if (!parsed) return invalidArgument(what + ": 'digest' must be sha256: followed by 64 hex digits");
    m.digest = *parsed;
    WARDEN_ASSIGN_OR_RETURN(m.type, stringField(entry, what, "type", 16));
    if (m.type != "firmware") return invalidArgument(what + ": 'type' must be \"firmware\"");
    if (entry.contains("name")) {
      WARDEN_ASSIGN_OR_RETURN(m.name, stringField(entry, what, "name", kMaxMeasurementNameBytes));
    }
    out.push_back(std::move(m));
  }
  return out;
}

Result<Evidence> parseEvidence(std::string_view body) {
  constexpr std::string_view kWhat = "evidence";
  if (body.size() > kMaxEvidenceBytes) {
    return invalidArgument(fmt::format("evidence is larger than {} bytes", kMaxEvidenceBytes));
  }
  WARDEN_ASSIGN_OR_RETURN(json root, parseObject(body, kWhat));
  Evidence ev;
  WARDEN_ASSIGN_OR_RETURN(std::string kind, stringField(root, kWhat, "kind", 16));
  if (kind == "tpm2-quote") {
    ev.kind = EvidenceKind::kTpm2Quote;
    WARDEN_RETURN_IF_ERROR(checkFields(root, kWhat, {"nonce", "kind", "quote", "signature", "log", "key_certify"}));
    WARDEN_ASSIGN_OR_RETURN(ev.nonce, nonceField(root, kWhat));
    WARDEN_ASSIGN_OR_RETURN(ev.quote, base64Field(root, kWhat, "quote", kMaxQuoteBytes));
    WARDEN_ASSIGN_OR_RETURN(ev.signature, base64Field(root, kWhat, "signature", kMaxSignatureBytes));
    auto log = root.find("log");
    if (log == root.end()) return invalidArgument("evidence: 'log' is required (an empty array if nothing was measured)");
    WARDEN_ASSIGN_OR_RETURN(ev.log, parseLog(*log));
    if (auto kc = root.find("key_certify"); kc != root.end() && !kc->is_null()) {
      WARDEN_ASSIGN_OR_RETURN(ev.key_certify, parseKeyCertify(*kc));
    }
  } else if (kind == "signed-log") {
    ev.kind = EvidenceKind::kSignedLog;
    WARDEN_RETURN_IF_ERROR(checkFields(root, kWhat, {"nonce", "kind", "payload", "signature", "log"}));
    WARDEN_ASSIGN_OR_RETURN(ev.nonce, nonceField(root, kWhat));
    WARDEN_ASSIGN_OR_RETURN(ev.payload_b64, stringField(root, kWhat, "payload", (kMaxEvidenceBytes + 2) / 3 * 4));
    auto payload = crypto::base64Decode(ev.payload_b64, /*allow_whitespace=*/false);
    if (!payload.isOk() || payload->empty()) return invalidArgument("evidence: 'payload' is not standard base64");
    ev.payload = std::move(payload).value();
    WARDEN_ASSIGN_OR_RETURN(ev.signature, base64Field(root, kWhat, "signature", kMaxSignatureBytes));
    WARDEN_RETURN_IF_ERROR(parseSignedLogPayload(ev));
    // A top-level log is redundant; if present it must say the same thing.
    if (auto log = root.find("log"); log != root.end()) {
      WARDEN_ASSIGN_OR_RETURN(std::vector<Measurement> top, parseLog(*log));
      if (top != ev.log) return invalidArgument("evidence: the top-level 'log' differs from the signed payload's");
    }
  } else {
    return invalidArgument("evidence: 'kind' must be \"tpm2-quote\" or \"signed-log\"");
  }
  return ev;
}

Digest replayPcr(const std::vector<Measurement>& log, uint32_t pcr) {
  Digest value{};
  std::string buffer(2 * value.size(), '\0');
  for (const Measurement& m : log) {
    if (m.pcr != pcr) continue;
    std::memcpy(buffer.data(), value.data(), value.size());
    std::memcpy(buffer.data() + value.size(), m.digest.data(), m.digest.size());
    const std::string next = crypto::sha256(buffer);
    std::memcpy(value.data(), next.data(), value.size());
  }
  return value;
}

json logToJson(const std::vector<Measurement>& log) {
  json out = json::array();
  for (const Measurement& m : log) {
    out.push_back({{"pcr", m.pcr}, {"digest", digestText(m.digest)}, {"type", m.type}, {"name", m.name}});
  }
  return out;
}

}  // namespace warden::trust

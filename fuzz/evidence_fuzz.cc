// evidence_fuzz exercises parseEvidence (src/trust/evidence.h), the parser of
// POST /attest/v1/evidence bodies, and checks what a parsed body promises:
// limits hold, the nonce is 32 bytes, a key_certify comes only with a quote,
// the log round-trips through its wire form, and a body rebuilt from the
// result parses to the same evidence.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "crypto/crypto.h"
#include "trust/evidence.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace warden::trust;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  auto ev = parseEvidence(body);
  if (!ev.isOk()) {
    check(ev.status().code() == warden::core::ErrorCode::kInvalidArgument);
    return 0;
  }
  check(body.size() <= kMaxEvidenceBytes);
  check(ev->log.size() <= kMaxLogEntries);
  auto nonce = warden::crypto::base64UrlDecode(ev->nonce);
  check(nonce.isOk() && nonce->size() == kNonceBytes);
  for (const Measurement& m : ev->log) check(m.pcr == 10 && m.type == "firmware" && m.name.size() <= 255);

  auto log = parseLog(logToJson(ev->log));
  check(log.isOk() && *log == ev->log);
  (void)replayPcr(ev->log);

  nlohmann::json again = {{"nonce", ev->nonce}, {"kind", std::string(evidenceKindName(ev->kind))}};
  if (ev->kind == EvidenceKind::kTpm2Quote) {
    check(!ev->quote.empty() && !ev->signature.empty());
    again["quote"] = warden::crypto::base64Encode(ev->quote);
    again["signature"] = warden::crypto::base64Encode(ev->signature);
    again["log"] = logToJson(ev->log);
    if (ev->key_certify) {
      check(!ev->key_certify->attest.empty() && !ev->key_certify->signature.empty() &&
            !ev->key_certify->key_public.empty());
      again["key_certify"] = {{"attest", warden::crypto::base64Encode(ev->key_certify->attest)},
                              {"signature", warden::crypto::base64Encode(ev->key_certify->signature)},
                              {"public", warden::crypto::base64Encode(ev->key_certify->key_public)}};
    }
  } else {
    check(!ev->key_certify);
    check(warden::crypto::base64Encode(ev->payload) == ev->payload_b64);
    check(ev->boot_id.size() == 32);
    again["payload"] = ev->payload_b64;
    again["signature"] = warden::crypto::base64Encode(ev->signature);
  }
  auto reparsed = parseEvidence(again.dump());
  check(reparsed.isOk());
  check(reparsed->kind == ev->kind && reparsed->nonce == ev->nonce && reparsed->quote == ev->quote &&
        reparsed->signature == ev->signature && reparsed->payload == ev->payload && reparsed->log == ev->log &&
        reparsed->spiffe_id == ev->spiffe_id && reparsed->boot_id == ev->boot_id &&
        reparsed->key_certify == ev->key_certify);
  return 0;
}

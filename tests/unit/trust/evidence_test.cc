#include "trust/evidence.h"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "crypto/crypto.h"

namespace warden::trust {
namespace {

using nlohmann::json;

Digest digestOf(std::string_view image) {
  const std::string raw = crypto::sha256(image);
  Digest d{};
  std::copy(raw.begin(), raw.end(), d.begin());
  return d;
}

std::vector<Measurement> sampleLog() {
  Measurement a;
  a.digest = digestOf("bootloader-1.0");
  a.name = "boot.bin";
  Measurement b;
  b.digest = digestOf("gateway-fw-2.1.0");
  b.name = "gateway-fw-2.1.0.bin";
  return {a, b};
}

std::string nonceText() { return crypto::base64UrlEncode(std::string(32, '\x5a')); }

json quoteBody() {
  return {{"nonce", nonceText()},
          {"kind", "tpm2-quote"},
          {"quote", crypto::base64Encode("quote-bytes")},
          {"signature", crypto::base64Encode("sig-bytes")},
          {"log", logToJson(sampleLog())}};
}

json signedPayload() {
  return {{"nonce", nonceText()},
          {"spiffe_id", "spiffe://example.org/device/sensor-1"},
          {"boot_id", std::string(32, 'a')},
          {"log", logToJson(sampleLog())}};
}

json signedBody(const json& payload) {
  return {{"nonce", nonceText()},
          {"kind", "signed-log"},
          {"payload", crypto::base64Encode(payload.dump())},
          {"signature", crypto::base64Encode("sig")}};
}

std::string errorOf(const json& body) {
  auto ev = parseEvidence(body.dump());
  EXPECT_FALSE(ev.isOk()) << body.dump();
  if (ev.isOk()) return "";
  EXPECT_EQ(ev.status().code(), core::ErrorCode::kInvalidArgument);
  return ev.status().message();
}

TEST(ReplayPcr, EmptyLogIsAllZero) { EXPECT_EQ(replayPcr({}), Digest{}); }

TEST(ReplayPcr, ExtendsInOrderFromZero) {
  const auto log = sampleLog();
  std::string pcr(32, '\0');
  for (const auto& m : log) pcr = crypto::sha256(pcr + std::string(m.digest.begin(), m.digest.end()));
  const Digest replayed = replayPcr(log);
  EXPECT_EQ(std::string(replayed.begin(), replayed.end()), pcr);
  auto reversed = log;
  std::swap(reversed[0], reversed[1]);
  EXPECT_NE(replayPcr(reversed), replayed);
}

TEST(ReplayPcr, IgnoresOtherPcrs) {
  auto log = sampleLog();
  log[1].pcr = 11;
  EXPECT_EQ(replayPcr(log), replayPcr({log[0]}));
}

TEST(LogToJson, RoundTripsThroughParseLog) {
  const auto log = sampleLog();
  const json wire = logToJson(log);
  ASSERT_EQ(wire.size(), 2u);
  EXPECT_EQ(wire[0]["pcr"], 10);
  EXPECT_EQ(wire[0]["digest"], digestText(log[0].digest));
  EXPECT_EQ(wire[0]["type"], "firmware");
  EXPECT_EQ(wire[0]["name"], "boot.bin");
  auto parsed = parseLog(wire);
  ASSERT_TRUE(parsed.isOk()) << parsed.status().message();
  EXPECT_EQ(*parsed, log);
}

TEST(ParseEvidence, AcceptsAQuote) {
  auto ev = parseEvidence(quoteBody().dump());
  ASSERT_TRUE(ev.isOk()) << ev.status().message();
  EXPECT_EQ(ev->kind, EvidenceKind::kTpm2Quote);
  EXPECT_EQ(ev->nonce, nonceText());
  EXPECT_EQ(ev->quote, "quote-bytes");
  EXPECT_EQ(ev->signature, "sig-bytes");
  EXPECT_EQ(ev->log, sampleLog());
}

TEST(ParseEvidence, AcceptsASignedLog) {
  const json payload = signedPayload();
  auto ev = parseEvidence(signedBody(payload).dump());
  ASSERT_TRUE(ev.isOk()) << ev.status().message();
  EXPECT_EQ(ev->kind, EvidenceKind::kSignedLog);
  EXPECT_EQ(ev->payload, payload.dump());
  EXPECT_EQ(ev->payload_b64, crypto::base64Encode(payload.dump()));
  EXPECT_EQ(ev->payload_nonce, nonceText());
  EXPECT_EQ(ev->spiffe_id, "spiffe://example.org/device/sensor-1");
  EXPECT_EQ(ev->boot_id, std::string(32, 'a'));
  EXPECT_EQ(ev->log, sampleLog());
}

TEST(ParseEvidence, SignedLogTopLevelLogMustEqualThePayloads) {
  json body = signedBody(signedPayload());
  body["log"] = logToJson(sampleLog());
  EXPECT_TRUE(parseEvidence(body.dump()).isOk());
  body["log"] = logToJson({sampleLog()[0]});
  EXPECT_NE(errorOf(body).find("differs"), std::string::npos);
}

TEST(ParseEvidence, RefusesMalformedBodies) {
  EXPECT_FALSE(parseEvidence("").isOk());
  EXPECT_FALSE(parseEvidence("[]").isOk());
  EXPECT_FALSE(parseEvidence("{\"kind\":").isOk());
  EXPECT_NE(errorOf(json{{"kind", "tpm3"}}).find("'kind'"), std::string::npos);

  json body = quoteBody();
  body["extra"] = 1;
  EXPECT_NE(errorOf(body).find("unknown field 'extra'"), std::string::npos);
  body = quoteBody();
  body.erase("log");
  EXPECT_NE(errorOf(body).find("'log' is required"), std::string::npos);
  body = quoteBody();
  body["quote"] = "not base64!";
  EXPECT_NE(errorOf(body).find("'quote'"), std::string::npos);
  body = quoteBody();
  body["signature"] = "";
  EXPECT_NE(errorOf(body).find("'signature'"), std::string::npos);
  body = quoteBody();
  body["nonce"] = crypto::base64UrlEncode(std::string(16, 'x'));
  EXPECT_NE(errorOf(body).find("'nonce'"), std::string::npos);
  body = quoteBody();
  body["nonce"] = crypto::base64Encode(std::string(32, '\xff'));  // padded standard base64
  EXPECT_NE(errorOf(body).find("'nonce'"), std::string::npos);
  body = quoteBody();
  body["quote"] = crypto::base64Encode(std::string(5000, 'q'));
  EXPECT_NE(errorOf(body).find("'quote'"), std::string::npos);
}

TEST(ParseEvidence, RefusesMalformedLogEntries) {
  auto withEntry = [](json entry) {
    json body = quoteBody();
    body["log"] = json::array({entry});
    return body;
  };
  const json good = logToJson(sampleLog())[0];
  json e = good;
  e["pcr"] = 7;
  EXPECT_NE(errorOf(withEntry(e)).find("'pcr'"), std::string::npos);
  e = good;
  e["pcr"] = "10";
  EXPECT_NE(errorOf(withEntry(e)).find("'pcr'"), std::string::npos);
  e = good;
  e["digest"] = "sha1:" + std::string(40, 'a');
  EXPECT_NE(errorOf(withEntry(e)).find("'digest'"), std::string::npos);
  e = good;
  e["digest"] = "sha256:" + std::string(63, 'a');
  EXPECT_NE(errorOf(withEntry(e)).find("'digest'"), std::string::npos);
  e = good;
  e["type"] = "kernel";
  EXPECT_NE(errorOf(withEntry(e)).find("'type'"), std::string::npos);
  e = good;
  e["name"] = std::string(256, 'n');
  EXPECT_NE(errorOf(withEntry(e)).find("'name'"), std::string::npos);
  e = good;
  e["when"] = "now";
  EXPECT_NE(errorOf(withEntry(e)).find("unknown field 'when'"), std::string::npos);
  EXPECT_NE(errorOf(withEntry(json("entry"))).find("log entry 0"), std::string::npos);
  json body = quoteBody();
  body["log"] = json::object();
  EXPECT_NE(errorOf(body).find("array"), std::string::npos);
}

TEST(ParseEvidence, EnforcesTheLogEntryLimit) {
  json log = json::array();
  const json entry = logToJson(sampleLog())[0];
  for (size_t i = 0; i < kMaxLogEntries; ++i) log.push_back(entry);
  json body = quoteBody();
  body["log"] = log;
  EXPECT_TRUE(parseEvidence(body.dump()).isOk());
  body["log"].push_back(entry);
  EXPECT_NE(errorOf(body).find("at most 1024"), std::string::npos);
}

TEST(ParseEvidence, EnforcesTheSizeAndDepthLimits) {
  json body = quoteBody();
  body["log"][0]["name"] = std::string(kMaxEvidenceBytes, 'n');
  auto big = parseEvidence(body.dump());
  ASSERT_FALSE(big.isOk());
  EXPECT_NE(big.status().message().find("larger than"), std::string::npos);
  const std::string deep = "{\"kind\":" + std::string(10000, '[') + std::string(10000, ']') + "}";
  auto nested = parseEvidence(deep);
  ASSERT_FALSE(nested.isOk());
  EXPECT_NE(nested.status().message().find("deeper"), std::string::npos);
  // Brackets inside strings are text, not nesting.
  body = quoteBody();
  body["log"][0]["name"] = std::string(200, '[');
  EXPECT_TRUE(parseEvidence(body.dump()).isOk());
}

TEST(ParseEvidence, RefusesMalformedSignedPayloads) {
  json payload = signedPayload();
  payload["boot_id"] = "short";
  EXPECT_NE(errorOf(signedBody(payload)).find("'boot_id'"), std::string::npos);
  payload = signedPayload();
  payload["spiffe_id"] = "device/sensor-1";
  EXPECT_NE(errorOf(signedBody(payload)).find("'spiffe_id'"), std::string::npos);
  payload = signedPayload();
  payload.erase("log");
  EXPECT_NE(errorOf(signedBody(payload)).find("'log'"), std::string::npos);
  payload = signedPayload();
  payload["uptime"] = 5;
  EXPECT_NE(errorOf(signedBody(payload)).find("unknown field 'uptime'"), std::string::npos);
  json body = signedBody(signedPayload());
  body["payload"] = crypto::base64Encode("not json");
  EXPECT_NE(errorOf(body).find("payload"), std::string::npos);
  body = signedBody(signedPayload());
  body["quote"] = crypto::base64Encode("q");
  EXPECT_NE(errorOf(body).find("unknown field 'quote'"), std::string::npos);
}

json keyCertify() {
  return {{"attest", crypto::base64Encode("attest-bytes")},
          {"signature", crypto::base64Encode("ak-sig")},
          {"public", crypto::base64Encode("key-public")}};
}

TEST(Evidence, QuoteWithoutKeyCertifyStillParses) {
  auto ev = parseEvidence(quoteBody().dump());
  ASSERT_TRUE(ev.isOk()) << ev.status().message();
  EXPECT_FALSE(ev->key_certify.has_value());
  json body = quoteBody();
  body["key_certify"] = nullptr;
  ev = parseEvidence(body.dump());
  ASSERT_TRUE(ev.isOk()) << ev.status().message();
  EXPECT_FALSE(ev->key_certify.has_value());
}

TEST(Evidence, QuoteCarriesKeyCertify) {
  json body = quoteBody();
  body["key_certify"] = keyCertify();
  auto ev = parseEvidence(body.dump());
  ASSERT_TRUE(ev.isOk()) << ev.status().message();
  ASSERT_TRUE(ev->key_certify.has_value());
  EXPECT_EQ(ev->key_certify->attest, "attest-bytes");
  EXPECT_EQ(ev->key_certify->signature, "ak-sig");
  EXPECT_EQ(ev->key_certify->key_public, "key-public");
}

TEST(Evidence, MalformedKeyCertifyIsRefused) {
  json body = quoteBody();
  body["key_certify"] = "attest";
  EXPECT_NE(errorOf(body).find("key_certify"), std::string::npos);
  for (const char* field : {"attest", "signature", "public"}) {
    body["key_certify"] = keyCertify();
    body["key_certify"].erase(field);
    EXPECT_NE(errorOf(body).find(field), std::string::npos) << field;
    body["key_certify"] = keyCertify();
    body["key_certify"][field] = "not base64!";
    EXPECT_NE(errorOf(body).find(field), std::string::npos) << field;
  }
  body["key_certify"] = keyCertify();
  body["key_certify"]["name"] = crypto::base64Encode("x");
  EXPECT_NE(errorOf(body).find("unknown field 'name'"), std::string::npos);
  body["key_certify"] = keyCertify();
  body["key_certify"]["public"] = crypto::base64Encode(std::string(1100, 'k'));
  EXPECT_NE(errorOf(body).find("longer than"), std::string::npos);
}

TEST(Evidence, KeyCertifyOnlyWithAQuote) {
  json body = signedBody(signedPayload());
  body["key_certify"] = keyCertify();
  EXPECT_NE(errorOf(body).find("unknown field 'key_certify'"), std::string::npos);
}

}  // namespace
}  // namespace warden::trust

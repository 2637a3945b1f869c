#include "pki/csr_attrs.h"

#include <cstdint>
#include <span>

#include <fmt/format.h>

#include "core/byte_reader.h"
#include "crypto/crypto.h"

namespace warden::pki {
namespace {

constexpr uint8_t kTagOid = 0x06;
constexpr uint8_t kTagSequence = 0x30;
constexpr uint8_t kTagSet = 0x31;
constexpr size_t kMaxEntries = 64;
constexpr size_t kMaxValues = 16;
constexpr size_t kMaxOidBytes = 64;

// The fixed answer (RFC 7030 §4.5.2's example shape):
//   30 21                                   CsrAttrs
//     06 08 2a8648ce3d040302                ecdsa-with-SHA256
//     30 15                                 Attribute
//       06 07 2a8648ce3d0201                id-ecPublicKey
//       31 0a 06 08 2a8648ce3d030107        { secp256r1 }
constexpr uint8_t kWardenCsrAttrs[] = {
    0x30, 0x21, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x30, 0x15, 0x06, 0x07, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x02, 0x01, 0x31, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
};

// Tlv is one DER element: its tag and its content as a sub-reader.
struct Tlv {
  uint8_t tag = 0;
  core::ByteReader content;
};

// readTlv reads one DER element with a definite length (X.690 §8.1.3, DER
// §10.1: minimal length octets). Only low tag numbers are used here.
core::Status readTlv(core::ByteReader& in, Tlv& out) {
  uint8_t tag = 0, len0 = 0;
  if (!in.readU8(tag) || !in.readU8(len0)) return core::invalidArgument("csrattrs: truncated element");
  if ((tag & 0x1f) == 0x1f) return core::invalidArgument("csrattrs: high tag numbers are not expected");
  size_t len = len0;
  if (len0 & 0x80) {
    size_t n = len0 & 0x7f;
    if (n == 0) return core::invalidArgument("csrattrs: indefinite length is not DER");
    if (n > 3) return core::invalidArgument("csrattrs: element is too long");
    len = 0;
    for (size_t i = 0; i < n; ++i) {
      uint8_t b = 0;
      if (!in.readU8(b)) return core::invalidArgument("csrattrs: truncated length");
      if (i == 0 && b == 0) return core::invalidArgument("csrattrs: length is not minimal (not DER)");
      len = (len << 8) | b;
    }
    if (len < 0x80) return core::invalidArgument("csrattrs: length is not minimal (not DER)");
  }
  out.tag = tag;
  if (!in.readSub(len, out.content)) return core::invalidArgument("csrattrs: element is longer than its container");
  return core::Status::ok();
}

core::Result<std::string> readOid(const Tlv& tlv) {
  if (tlv.tag != kTagOid) return core::invalidArgument("csrattrs: expected an OBJECT IDENTIFIER");
  if (tlv.content.empty() || tlv.content.remaining() > kMaxOidBytes) {
    return core::invalidArgument("csrattrs: OBJECT IDENTIFIER has a bad length");
  }
  std::string text = oidToText(core::asStringView(tlv.content.rest()));
  if (text.empty()) return core::invalidArgument("csrattrs: malformed OBJECT IDENTIFIER");
  return text;
}

}  // namespace

bool CsrRequirements::wantsEcdsaSha256P256() const {
  bool sig = false, key = false;
  for (const CsrAttribute& a : attributes) {
    if (!a.is_attribute && a.oid == kOidEcdsaWithSha256) sig = true;
    if (a.is_attribute && a.oid == kOidEcPublicKey) {
      for (const std::string& v : a.values) key = key || v == kOidSecp256r1;
    }
  }
  return sig && key;
}

std::string csrAttrsDer() { return std::string(reinterpret_cast<const char*>(kWardenCsrAttrs), sizeof kWardenCsrAttrs); }

std::string csrAttrsBody() { return crypto::base64EncodeWrapped(csrAttrsDer()); }

std::string oidToText(std::string_view content) {
  if (content.empty()) return {};
  std::string out;
  uint64_t value = 0;
  bool first = true;
  bool fresh = true;  // at the start of a component
  for (char ch : content) {
    auto b = static_cast<uint8_t>(ch);
    if (fresh && b == 0x80) return {};  // non-minimal (X.690 §8.19.2)
    if (value > (UINT64_MAX >> 8)) return {};
    value = (value << 7) | (b & 0x7f);
    fresh = false;
    if (b & 0x80) continue;
    if (first) {
      // X.690 §8.19.4: the first octets hold 40 * X + Y.
      uint64_t x = value < 40 ? 0 : value < 80 ? 1 : 2;
      out = fmt::format("{}.{}", x, value - 40 * x);
      first = false;
    } else {
      out += fmt::format(".{}", value);
    }
    value = 0;
    fresh = true;
  }
  if (!fresh) return {};  // the last component is unterminated
  return out;
}

core::Result<CsrRequirements> parseCsrAttrsDer(std::string_view der) {
  core::ByteReader in(reinterpret_cast<const uint8_t*>(der.data()), der.size());
  Tlv outer;
  WARDEN_RETURN_IF_ERROR(readTlv(in, outer));
  if (outer.tag != kTagSequence) return core::invalidArgument("csrattrs: expected a SEQUENCE");
  if (!in.empty()) return core::invalidArgument("csrattrs: trailing bytes after the SEQUENCE");
  CsrRequirements out;
  while (!outer.content.empty()) {
    if (out.attributes.size() >= kMaxEntries) return core::invalidArgument("csrattrs: too many entries");
    Tlv entry;
    WARDEN_RETURN_IF_ERROR(readTlv(outer.content, entry));
    CsrAttribute attr;
    if (entry.tag == kTagOid) {
      WARDEN_ASSIGN_OR_RETURN(attr.oid, readOid(entry));
    } else if (entry.tag == kTagSequence) {
      // Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET SIZE(1..MAX) OF ANY }
      attr.is_attribute = true;
      Tlv type, values;
      WARDEN_RETURN_IF_ERROR(readTlv(entry.content, type));
      WARDEN_ASSIGN_OR_RETURN(attr.oid, readOid(type));
      WARDEN_RETURN_IF_ERROR(readTlv(entry.content, values));
      if (values.tag != kTagSet) return core::invalidArgument("csrattrs: attribute values must be a SET");
      if (!entry.content.empty()) return core::invalidArgument("csrattrs: trailing bytes in an attribute");
      if (values.content.empty()) return core::invalidArgument("csrattrs: attribute has no values");
      while (!values.content.empty()) {
        if (attr.values.size() >= kMaxValues) return core::invalidArgument("csrattrs: too many attribute values");
        Tlv value;
        WARDEN_RETURN_IF_ERROR(readTlv(values.content, value));
        if (value.tag == kTagOid) {
          WARDEN_ASSIGN_OR_RETURN(std::string v, readOid(value));
          attr.values.push_back(std::move(v));
        } else {
          attr.values.push_back("?");
        }
      }
    } else {
      return core::invalidArgument("csrattrs: an entry must be an OID or an Attribute");
    }
    out.attributes.push_back(std::move(attr));
  }
  return out;
}

core::Result<CsrRequirements> parseCsrAttrsBody(std::string_view body) {
  if (body.size() > kMaxCsrAttrsBytes) {
    return core::invalidArgument(fmt::format("csrattrs body is larger than {} bytes", kMaxCsrAttrsBytes));
  }
  auto der = crypto::base64Decode(body, /*allow_whitespace=*/true);
  if (!der.isOk()) return core::invalidArgument("csrattrs body is not base64");
  if (der->empty()) return CsrRequirements{};  // RFC 7030 §4.5.2: no attributes requested
  return parseCsrAttrsDer(*der);
}

}  // namespace warden::pki

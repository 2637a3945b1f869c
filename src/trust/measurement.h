#pragma once

// measurement.h: one entry of a device's measurement log, shared by the
// agent (which measures), the verifier (which replays and judges) and the
// posture engine (which keeps the last log and re-judges it when reference
// values change). Header-only and dependency-free on purpose.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace warden::trust {

using Digest = std::array<uint8_t, 32>;  // SHA-256

// Measurement is what was extended into a PCR: the digest of one firmware
// image, with the image's (informative) name.
struct Measurement {
  uint32_t pcr = 10;
  Digest digest{};
  std::string type = "firmware";
  std::string name;
  bool operator==(const Measurement&) const = default;
};

// digestText writes a digest the way the wire format, the CLI and the store
// spell it: "sha256:" followed by 64 lowercase hex digits.
inline std::string digestText(const Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  out.reserve(7 + 64);
  for (uint8_t b : digest) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

// parseDigestText is the strict inverse of digestText (hex digits of either
// case); nullopt for anything else.
inline std::optional<Digest> parseDigestText(std::string_view text) {
  constexpr std::string_view kPrefix = "sha256:";
  if (text.size() != kPrefix.size() + 64 || text.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Digest digest{};
  for (size_t i = 0; i < digest.size(); ++i) {
    const int hi = nibble(text[kPrefix.size() + 2 * i]);
    const int lo = nibble(text[kPrefix.size() + 2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    digest[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return digest;
}

}  // namespace warden::trust

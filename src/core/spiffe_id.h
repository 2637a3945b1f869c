#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace warden::core {

// PrincipalKind is the first path segment of a SPIFFE ID.
enum class PrincipalKind { kDevice, kUser, kService };

std::string_view principalKindName(PrincipalKind kind);  // "device", "user", "service"

// SpiffeId is a parsed spiffe://<trust-domain>/<kind>/<name>.
struct SpiffeId {
  std::string trust_domain;
  PrincipalKind kind = PrincipalKind::kDevice;
  std::string name;

  std::string toString() const;  // spiffe://td/kind/name
  bool operator==(const SpiffeId&) const = default;
};

// parseSpiffeId parses |uri| strictly: scheme "spiffe", a trust domain that
// isValidTrustDomain accepts, exactly two path segments (kind and a name that
// isValidName accepts), no percent-encoding, no empty, "." or ".." segment, no
// port, user info, query or fragment. Returns kInvalidArgument otherwise.
Result<SpiffeId> parseSpiffeId(std::string_view uri);

// makeSpiffeId returns spiffe://|trust_domain|/|kind|/|name|.
std::string makeSpiffeId(std::string_view trust_domain, PrincipalKind kind, std::string_view name);

}  // namespace warden::core

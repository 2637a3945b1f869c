#include "core/spiffe_id.h"

#include <fmt/format.h>

#include "core/names.h"

namespace warden::core {

std::string_view principalKindName(PrincipalKind kind) {
  switch (kind) {
    case PrincipalKind::kDevice: return "device";
    case PrincipalKind::kUser: return "user";
    case PrincipalKind::kService: return "service";
  }
  return "unknown";
}

std::string SpiffeId::toString() const { return makeSpiffeId(trust_domain, kind, name); }

std::string makeSpiffeId(std::string_view trust_domain, PrincipalKind kind, std::string_view name) {
  return fmt::format("spiffe://{}/{}/{}", trust_domain, principalKindName(kind), name);
}

Result<SpiffeId> parseSpiffeId(std::string_view uri) {
  constexpr std::string_view kScheme = "spiffe://";
  if (uri.size() > 2048) return invalidArgument("SPIFFE ID longer than 2048 bytes");
  if (uri.substr(0, kScheme.size()) != kScheme) {
    return invalidArgument("SPIFFE ID must start with 'spiffe://' (lowercase)");
  }
  for (char c : uri) {
    if (c == '%') return invalidArgument("SPIFFE ID must not contain percent-encoding");
    if (c == '?' || c == '#') return invalidArgument("SPIFFE ID must not contain a query or fragment");
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return invalidArgument("SPIFFE ID must contain only printable ASCII");
    }
  }
  std::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return invalidArgument("SPIFFE ID has no path");
  std::string_view td = rest.substr(0, slash);
  if (!isValidTrustDomain(td)) {
    return invalidArgument("SPIFFE ID trust domain must be a lowercase DNS name without port or user info");
  }
  std::string_view path = rest.substr(slash + 1);
  size_t slash2 = path.find('/');
  if (slash2 == std::string_view::npos) return invalidArgument("SPIFFE ID path must be /<kind>/<name>");
  std::string_view kind = path.substr(0, slash2);
  std::string_view name = path.substr(slash2 + 1);
  if (name.find('/') != std::string_view::npos) return invalidArgument("SPIFFE ID path must have exactly two segments");
  SpiffeId id;
  id.trust_domain.assign(td);
  if (kind == "device") {
    id.kind = PrincipalKind::kDevice;
  } else if (kind == "user") {
    id.kind = PrincipalKind::kUser;
  } else if (kind == "service") {
    id.kind = PrincipalKind::kService;
  } else {
    return invalidArgument("SPIFFE ID kind must be device, user or service");
  }
  if (!isValidName(name)) return invalidArgument("SPIFFE ID name is not a valid name");
  id.name.assign(name);
  return id;
}

}  // namespace warden::core

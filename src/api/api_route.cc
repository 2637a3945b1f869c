#include "api/api_route.h"

#include <charconv>
#include <tuple>
#include <vector>

#include "crypto/crypto.h"

namespace warden::api {
namespace {

constexpr std::string_view kDevicesPrefix = "/v1/devices/";
constexpr size_t kMaxBasicAuthBytes = 1024;

Route methodNotAllowed(std::string allow) {
  Route r;
  r.kind = RouteKind::kMethodNotAllowed;
  r.allow = std::move(allow);
  return r;
}

Route single(std::string_view method, std::string_view want, RouteKind kind) {
  if (method != want) return methodNotAllowed(std::string(want));
  Route r;
  r.kind = kind;
  return r;
}

bool asciiIEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

core::Result<int64_t> parseNonNegative(std::string_view name, std::string_view value) {
  int64_t out = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (value.empty() || value.size() > 18 || ec != std::errc() || ptr != value.data() + value.size() ||
      out < 0) {
    return core::invalidArgument("query parameter '" + std::string(name) +
                                 "' must be a non-negative decimal integer");
  }
  return out;
}

}  // namespace

Route matchRoute(std::string_view method, std::string_view target) {
  Route route;
  std::string_view path = target;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    path = target.substr(0, q);
    route.query = std::string(target.substr(q + 1));
  }
  auto withQuery = [&](Route r) {
    r.query = route.query;
    return r;
  };
  if (path == "/healthz") return withQuery(single(method, "GET", RouteKind::kHealth));
  if (path == "/.well-known/est/cacerts") return withQuery(single(method, "GET", RouteKind::kEstCacerts));
  if (path == "/.well-known/est/simpleenroll")
    return withQuery(single(method, "POST", RouteKind::kEstSimpleEnroll));
  if (path == "/.well-known/est/simplereenroll")
    return withQuery(single(method, "POST", RouteKind::kEstSimpleReenroll));
  if (path == "/.well-known/est/csrattrs") return withQuery(single(method, "GET", RouteKind::kEstCsrAttrs));
  if (path == "/.well-known/est/serverkeygen") return withQuery(single(method, "POST", RouteKind::kEstServerKeygen));
  if (path == "/.well-known/est/fullcmc") return withQuery(single(method, "POST", RouteKind::kEstFullCmc));
  if (path == "/attest/v1/challenge") return withQuery(single(method, "POST", RouteKind::kAttestChallenge));
  if (path == "/attest/v1/evidence") return withQuery(single(method, "POST", RouteKind::kAttestEvidence));
  if (path == "/attest/v1/ak") return withQuery(single(method, "POST", RouteKind::kAttestAk));
  if (path == "/attest/v1/ak/activate") return withQuery(single(method, "POST", RouteKind::kAttestAkActivate));
  if (path == "/v1/tpm-cas") {
    Route r;
    if (method == "GET") {
      r.kind = RouteKind::kTpmCaList;
    } else if (method == "POST") {
      r.kind = RouteKind::kTpmCaAdd;
    } else {
      r = methodNotAllowed("GET, POST");
    }
    return withQuery(std::move(r));
  }
  if (constexpr std::string_view kTpmCas = "/v1/tpm-cas/"; path.starts_with(kTpmCas)) {
    std::string_view fingerprint = path.substr(kTpmCas.size());
    if (fingerprint.empty() || fingerprint.find('/') != std::string_view::npos) return route;
    Route r = single(method, "DELETE", RouteKind::kTpmCaRemove);
    r.id = std::string(fingerprint);
    return withQuery(std::move(r));
  }
  if (path == "/v1/policy") {
    Route r;
    if (method == "GET") {
      r.kind = RouteKind::kPolicyShow;
    } else if (method == "PUT") {
      r.kind = RouteKind::kPolicyApply;
    } else {
      r = methodNotAllowed("GET, PUT");
    }
    return withQuery(std::move(r));
  }
  if (path == "/v1/policy/explain") return withQuery(single(method, "POST", RouteKind::kPolicyExplain));
  if (path == "/v1/policy/versions") return withQuery(single(method, "GET", RouteKind::kPolicyHistory));
  if (path == "/v1/policy/rollback") return withQuery(single(method, "POST", RouteKind::kPolicyRollback));
  if (constexpr std::string_view kVersions = "/v1/policy/versions/"; path.starts_with(kVersions)) {
    std::string_view version = path.substr(kVersions.size());
    if (version.empty() || version.find('/') != std::string_view::npos) return route;
    Route r = single(method, "GET", RouteKind::kPolicyVersion);
    r.version = std::string(version);
    return withQuery(std::move(r));
  }
  if (path == "/v1/events") return withQuery(single(method, "GET", RouteKind::kEventsRead));
  if (path == "/v1/certs") return withQuery(single(method, "GET", RouteKind::kCertList));
  if (path == "/v1/cas") {
    Route r;
    if (method == "GET") {
      r.kind = RouteKind::kCaList;
    } else if (method == "POST") {
      r.kind = RouteKind::kCaRotate;
    } else {
      r = methodNotAllowed("GET, POST");
    }
    return withQuery(std::move(r));
  }
  for (auto [prefix, verb, kind] : {std::tuple{std::string_view("/v1/certs/"), std::string_view("/revoke"), RouteKind::kCertRevoke},
                                    std::tuple{std::string_view("/v1/cas/"), std::string_view("/retire"), RouteKind::kCaRetire}}) {
    if (!path.starts_with(prefix) || !path.ends_with(verb) || path.size() <= prefix.size() + verb.size()) continue;
    std::string_view name = path.substr(prefix.size(), path.size() - prefix.size() - verb.size());
    if (name.find('/') != std::string_view::npos) return route;
    Route r = single(method, "POST", kind);
    r.device = std::string(name);
    return withQuery(std::move(r));
  }
  if (path == "/v1/devices") {
    Route r;
    if (method == "GET") {
      r.kind = RouteKind::kDeviceList;
    } else if (method == "POST") {
      r.kind = RouteKind::kDeviceAdd;
    } else {
      r = methodNotAllowed("GET, POST");
    }
    return withQuery(std::move(r));
  }
  if (path == "/v1/enrollments") return withQuery(single(method, "GET", RouteKind::kEnrollList));
  if (constexpr std::string_view kEnroll = "/v1/enrollments/"; path.starts_with(kEnroll)) {
    std::string_view rest = path.substr(kEnroll.size());
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return route;
    std::string_view id = rest.substr(0, slash);
    std::string_view verb = rest.substr(slash + 1);
    Route r;
    if (verb == "approve") {
      r = single(method, "POST", RouteKind::kEnrollApprove);
    } else if (verb == "deny") {
      r = single(method, "POST", RouteKind::kEnrollDeny);
    } else {
      return route;
    }
    r.id = std::string(id);
    return withQuery(std::move(r));
  }
  if (path == "/v1/manufacturers") {
    Route r;
    if (method == "GET") {
      r.kind = RouteKind::kManufacturerList;
    } else if (method == "POST") {
      r.kind = RouteKind::kManufacturerAdd;
    } else {
      r = methodNotAllowed("GET, POST");
    }
    return withQuery(std::move(r));
  }
  if (path == "/v1/firmware") {
    Route r;
    if (method == "GET") {
      r.kind = RouteKind::kFirmwareList;
    } else if (method == "POST") {
      r.kind = RouteKind::kFirmwareApprove;
    } else {
      r = methodNotAllowed("GET, POST");
    }
    return withQuery(std::move(r));
  }
  if (path == "/v1/firmware/revoke") return withQuery(single(method, "POST", RouteKind::kFirmwareRevoke));
  if (constexpr std::string_view kMakers = "/v1/manufacturers/"; path.starts_with(kMakers)) {
    std::string_view name = path.substr(kMakers.size());
    if (name.empty() || name.find('/') != std::string_view::npos) return route;
    Route r = single(method, "DELETE", RouteKind::kManufacturerRemove);
    r.id = std::string(name);
    return withQuery(std::move(r));
  }
  if (path.starts_with(kDevicesPrefix)) {
    std::string_view rest = path.substr(kDevicesPrefix.size());
    std::string_view name = rest;
    std::string_view verb;
    if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
      name = rest.substr(0, slash);
      verb = rest.substr(slash + 1);
    }
    if (name.empty() || verb.find('/') != std::string_view::npos) return route;
    Route r;
    if (verb.empty()) {
      if (method == "PATCH") {
        r.kind = RouteKind::kDeviceSet;
      } else if (method == "GET") {
        r.kind = RouteKind::kDeviceShow;
      } else {
        r = methodNotAllowed("GET, PATCH");
      }
    } else if (verb == "token") {
      r = single(method, "POST", RouteKind::kDeviceToken);
    } else if (verb == "revoke") {
      r = single(method, "POST", RouteKind::kDeviceRevoke);
    } else if (verb == "quarantine") {
      r = single(method, "POST", RouteKind::kDeviceQuarantine);
    } else if (verb == "release") {
      r = single(method, "POST", RouteKind::kDeviceRelease);
    } else if (verb == "ek") {
      if (method == "PUT") {
        r.kind = RouteKind::kDeviceEkSet;
      } else if (method == "DELETE") {
        r.kind = RouteKind::kDeviceEkRemove;
      } else {
        r = methodNotAllowed("PUT, DELETE");
      }
    } else if (verb == "history") {
      r = single(method, "GET", RouteKind::kDeviceHistory);
    } else {
      return route;
    }
    r.device = std::string(name);
    return withQuery(std::move(r));
  }
  return route;
}

bool isAttestRoute(RouteKind kind) {
  return kind == RouteKind::kAttestChallenge || kind == RouteKind::kAttestEvidence || kind == RouteKind::kAttestAk ||
         kind == RouteKind::kAttestAkActivate;
}

bool isAdminRoute(RouteKind kind) { return !adminAction(kind).empty(); }

std::string_view adminAction(RouteKind kind) {
  switch (kind) {
    case RouteKind::kDeviceAdd: return "admin:device.add";
    case RouteKind::kDeviceList: return "admin:device.list";
    case RouteKind::kDeviceShow: return "admin:device.show";
    case RouteKind::kDeviceToken: return "admin:device.token";
    case RouteKind::kDeviceRevoke: return "admin:device.revoke";
    case RouteKind::kDeviceQuarantine: return "admin:device.quarantine";
    case RouteKind::kDeviceRelease: return "admin:device.release";
    case RouteKind::kPolicyApply: return "admin:policy.apply";
    case RouteKind::kPolicyShow: return "admin:policy.show";
    case RouteKind::kPolicyExplain: return "admin:policy.explain";
    case RouteKind::kPolicyHistory:
    case RouteKind::kPolicyVersion: return "admin:policy.history";
    case RouteKind::kPolicyRollback: return "admin:policy.apply";
    case RouteKind::kEventsRead: return "admin:events.read";
    case RouteKind::kCertList: return "admin:cert.list";
    case RouteKind::kCertRevoke: return "admin:cert.revoke";
    case RouteKind::kCaList: return "admin:ca.list";
    case RouteKind::kCaRotate: return "admin:ca.rotate";
    case RouteKind::kCaRetire: return "admin:ca.retire";
    case RouteKind::kDeviceSet: return "admin:device.set";
    case RouteKind::kTpmCaList: return "admin:tpm-ca.list";
    case RouteKind::kTpmCaAdd: return "admin:tpm-ca.add";
    case RouteKind::kTpmCaRemove: return "admin:tpm-ca.remove";
    case RouteKind::kDeviceEkSet:
    case RouteKind::kDeviceEkRemove: return "admin:device.set";
    case RouteKind::kEnrollList: return "admin:device.list";
    case RouteKind::kEnrollApprove:
    case RouteKind::kEnrollDeny: return "admin:device.approve";
    case RouteKind::kManufacturerList: return "admin:manufacturer.list";
    case RouteKind::kManufacturerAdd: return "admin:manufacturer.add";
    case RouteKind::kManufacturerRemove: return "admin:manufacturer.remove";
    case RouteKind::kFirmwareList: return "admin:firmware.list";
    case RouteKind::kFirmwareApprove: return "admin:firmware.approve";
    case RouteKind::kFirmwareRevoke: return "admin:firmware.revoke";
    case RouteKind::kDeviceHistory: return "admin:device.history";
    default: return "";
  }
}

core::Result<EventsQuery> parseEventsQuery(std::string_view query, int64_t max_wait_seconds) {
  EventsQuery out;
  bool seen_since = false, seen_limit = false, seen_wait = false;
  while (!query.empty()) {
    std::string_view pair = query;
    if (size_t amp = query.find('&'); amp != std::string_view::npos) {
      pair = query.substr(0, amp);
      query.remove_prefix(amp + 1);
    } else {
      query = {};
    }
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view key = pair.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    if (key == "since") {
      if (seen_since) return core::invalidArgument("query parameter 'since' is given twice");
      seen_since = true;
      WARDEN_ASSIGN_OR_RETURN(out.since, parseNonNegative(key, value));
    } else if (key == "limit") {
      if (seen_limit) return core::invalidArgument("query parameter 'limit' is given twice");
      seen_limit = true;
      WARDEN_ASSIGN_OR_RETURN(int64_t limit, parseNonNegative(key, value));
      if (limit < 1 || limit > 10000) {
        return core::invalidArgument("query parameter 'limit' must be between 1 and 10000");
      }
      out.limit = limit;
    } else if (key == "wait") {
      if (seen_wait) return core::invalidArgument("query parameter 'wait' is given twice");
      seen_wait = true;
      WARDEN_ASSIGN_OR_RETURN(out.wait_seconds, parseNonNegative(key, value));
      if (out.wait_seconds > max_wait_seconds) {
        return core::invalidArgument("query parameter 'wait' must be at most " +
                                     std::to_string(max_wait_seconds) + " seconds");
      }
    } else {
      return core::invalidArgument("unknown query parameter; use since, limit and wait");
    }
  }
  return out;
}

core::Result<BasicCredentials> parseBasicAuth(std::string_view header_value) {
  auto fail = [] { return core::unauthenticated("missing or malformed HTTP Basic credentials"); };
  std::string_view v = trim(header_value);
  if (v.empty() || v.size() > kMaxBasicAuthBytes) return fail();
  size_t sp = v.find(' ');
  if (sp == std::string_view::npos || !asciiIEquals(v.substr(0, sp), "basic")) return fail();
  std::string_view encoded = trim(v.substr(sp + 1));
  if (encoded.empty()) return fail();
  auto decoded = crypto::base64Decode(encoded, /*allow_whitespace=*/false);
  if (!decoded.isOk()) return fail();
  const std::string& text = decoded.value();
  size_t colon = text.find(':');
  if (colon == std::string::npos) return fail();
  BasicCredentials creds;
  creds.user = text.substr(0, colon);
  creds.password = text.substr(colon + 1);
  return creds;
}

std::string mediaType(std::string_view content_type) {
  std::string_view v = content_type;
  if (size_t semi = v.find(';'); semi != std::string_view::npos) v = v.substr(0, semi);
  v = trim(v);
  std::string out(v);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string sanitizeFilename(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, 255)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '/';
    out.push_back(ok ? c : '_');
  }
  if (out.empty()) out = "policy";
  return out;
}

}  // namespace warden::api

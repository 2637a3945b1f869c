#include "keystore/pkcs11_uri.h"

#include <array>
#include <cctype>

#include <fmt/format.h>

namespace warden::keystore {
namespace {

using core::Result;
using core::Status;

bool isUnreserved(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 7512 §2.3: pk11-path-res-avail (plus "&", only special in the query).
bool isPathChar(unsigned char c) {
  constexpr std::string_view kExtra = ":[]@!$'()*+,=&";
  return isUnreserved(c) || kExtra.find(static_cast<char>(c)) != std::string_view::npos;
}

// RFC 7512 §2.3: pk11-query-res-avail.
bool isQueryChar(unsigned char c) {
  constexpr std::string_view kExtra = ":[]@!$'()*+,;/?|";
  return isUnreserved(c) || kExtra.find(static_cast<char>(c)) != std::string_view::npos;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// printable returns |s| cut to 64 characters with non-printable bytes
// replaced, for error messages.
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 64)) out.push_back(std::isprint(static_cast<unsigned char>(c)) != 0 ? c : '?');
  if (s.size() > 64) out += "...";
  return out;
}

// decodeValue percent-decodes |raw|, allowing only |allowed| characters
// literally.
Result<std::string> decodeValue(std::string_view name, std::string_view raw, bool (*allowed)(unsigned char)) {
  std::string out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%') {
      if (raw.size() - i < 3) {
        return core::invalidArgument(fmt::format("PKCS#11 URI attribute '{}': truncated percent-encoding", name));
      }
      int hi = hexValue(raw[i + 1]), lo = hexValue(raw[i + 2]);
      if (hi < 0 || lo < 0) {
        return core::invalidArgument(fmt::format("PKCS#11 URI attribute '{}': invalid percent-encoding", name));
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (allowed(static_cast<unsigned char>(c))) {
      out.push_back(c);
    } else {
      return core::invalidArgument(fmt::format(
          "PKCS#11 URI attribute '{}': character '{}' must be percent-encoded (RFC 7512 §2.3)", name, printable({&c, 1})));
    }
    if (out.size() > kMaxPkcs11ValueLength) {
      return core::invalidArgument(
          fmt::format("PKCS#11 URI attribute '{}' is longer than {} bytes", name, kMaxPkcs11ValueLength));
    }
  }
  return out;
}

bool isAttributeName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// checkAbsolutePath accepts an absolute path without NUL or ".." components.
Status checkAbsolutePath(std::string_view name, std::string_view path) {
  if (path.empty() || path.front() != '/' || path.find('\0') != std::string_view::npos) {
    return core::invalidArgument(fmt::format("PKCS#11 URI attribute '{}' must be an absolute path", name));
  }
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    if (next == std::string_view::npos) next = path.size();
    if (path.substr(pos, next - pos) == "..") {
      return core::invalidArgument(fmt::format("PKCS#11 URI attribute '{}' must not contain '..'", name));
    }
    pos = next + 1;
  }
  return Status::ok();
}

struct Seen {
  std::array<bool, 16> flags{};
  size_t vendor = 0;
};

Status setPathAttribute(Pkcs11Uri& uri, Seen& seen, std::string_view name, std::string value) {
  struct Field {
    std::string_view name;
    std::string Pkcs11Uri::*member;
  };
  static constexpr Field kFields[] = {
      {"token", &Pkcs11Uri::token},   {"manufacturer", &Pkcs11Uri::manufacturer},
      {"serial", &Pkcs11Uri::serial}, {"model", &Pkcs11Uri::model},
      {"object", &Pkcs11Uri::object}, {"id", &Pkcs11Uri::id},
      {"type", &Pkcs11Uri::type},
  };
  auto once = [&](size_t idx) -> Status {
    if (seen.flags[idx]) {
      return core::invalidArgument(fmt::format("PKCS#11 URI attribute '{}' appears twice (RFC 7512 §2.3)", name));
    }
    seen.flags[idx] = true;
    return Status::ok();
  };
  for (size_t i = 0; i < std::size(kFields); ++i) {
    if (kFields[i].name != name) continue;
    WARDEN_RETURN_IF_ERROR(once(i));
    if (name == "type" && value != "private" && value != "public" && value != "cert" && value != "secret-key" &&
        value != "data") {
      return core::invalidArgument(fmt::format(
          "PKCS#11 URI attribute 'type' is '{}'; use private, public, cert, secret-key or data", printable(value)));
    }
    uri.*(kFields[i].member) = std::move(value);
    return Status::ok();
  }
  if (name == "slot-id") {
    WARDEN_RETURN_IF_ERROR(once(7));
    if (value.empty() || value.size() > 19 || value.find_first_not_of("0123456789") != std::string::npos) {
      return core::invalidArgument("PKCS#11 URI attribute 'slot-id' must be a decimal number");
    }
    uri.slot_id = std::stoull(value);
    return Status::ok();
  }
  // Informational attributes of RFC 7512 we accept and do not match on.
  static constexpr std::string_view kIgnored[] = {"library-manufacturer", "library-description", "library-version",
                                                  "slot-description", "slot-manufacturer"};
  for (size_t i = 0; i < std::size(kIgnored); ++i) {
    if (kIgnored[i] == name) return once(8 + i);
  }
  if (name.substr(0, 2) == "x-") {
    if (++seen.vendor > 8) return core::invalidArgument("PKCS#11 URI has too many vendor attributes");
    return Status::ok();
  }
  return core::invalidArgument(fmt::format("PKCS#11 URI has an unknown attribute '{}'", printable(name)));
}

Status setQueryAttribute(Pkcs11Uri& uri, Seen& seen, std::string_view name, std::string value) {
  auto once = [&](size_t idx) -> Status {
    if (seen.flags[idx]) {
      return core::invalidArgument(fmt::format("PKCS#11 URI attribute '{}' appears twice", name));
    }
    seen.flags[idx] = true;
    return Status::ok();
  };
  if (name == "pin-value") {
    return core::invalidArgument(
        "PKCS#11 URI: pin-value is refused (a PIN must not appear in a command line or a config file); put the PIN "
        "in a file readable only by you (chmod 0600) and name it with ?pin-source=file:/path/to/pin");
  }
  if (name == "pin-source") {
    WARDEN_RETURN_IF_ERROR(once(13));
    if (value.substr(0, 5) != "file:") {
      return core::invalidArgument(
          "PKCS#11 URI attribute 'pin-source' must read file:/absolute/path (a 0600 file holding the PIN)");
    }
    std::string path = value.substr(5);
    // RFC 8089 file URIs: file:/path, or file:///path (empty authority);
    // no host, and one leading slash so the canonical form reads the same.
    if (path.substr(0, 3) == "///") path = path.substr(2);
    if (path.substr(0, 2) == "//") {
      return core::invalidArgument("PKCS#11 URI attribute 'pin-source' must read file:/absolute/path (no host)");
    }
    WARDEN_RETURN_IF_ERROR(checkAbsolutePath(name, path));
    uri.pin_source = std::move(path);
    return Status::ok();
  }
  if (name == "module-path") {
    WARDEN_RETURN_IF_ERROR(once(14));
    WARDEN_RETURN_IF_ERROR(checkAbsolutePath(name, value));
    uri.module_path = std::move(value);
    return Status::ok();
  }
  if (name == "module-name") {
    WARDEN_RETURN_IF_ERROR(once(15));
    uri.module_name = std::move(value);
    return Status::ok();
  }
  if (name.substr(0, 2) == "x-") {
    if (++seen.vendor > 8) return core::invalidArgument("PKCS#11 URI has too many vendor attributes");
    return Status::ok();
  }
  return core::invalidArgument(fmt::format("PKCS#11 URI has an unknown query attribute '{}'", printable(name)));
}

// forEachAttribute splits |part| at |sep| into name=value pairs.
template <typename F>
Status forEachAttribute(std::string_view part, char sep, size_t& count, F&& f) {
  size_t pos = 0;
  while (pos <= part.size()) {
    size_t end = part.find(sep, pos);
    if (end == std::string_view::npos) end = part.size();
    std::string_view attr = part.substr(pos, end - pos);
    if (attr.empty()) return core::invalidArgument("PKCS#11 URI has an empty attribute (two separators in a row?)");
    if (++count > kMaxPkcs11Attributes) return core::invalidArgument("PKCS#11 URI has too many attributes");
    size_t eq = attr.find('=');
    if (eq == std::string_view::npos) {
      return core::invalidArgument(fmt::format("PKCS#11 URI attribute '{}' has no '=value'", printable(attr)));
    }
    std::string_view name = attr.substr(0, eq);
    if (!isAttributeName(name)) {
      return core::invalidArgument(fmt::format("PKCS#11 URI has an invalid attribute name '{}'", printable(name)));
    }
    WARDEN_RETURN_IF_ERROR(f(name, attr.substr(eq + 1)));
    if (end == part.size()) break;
    pos = end + 1;
  }
  return Status::ok();
}

void appendEncoded(std::string& out, std::string_view value, bool keep_slash) {
  for (char c : value) {
    auto u = static_cast<unsigned char>(c);
    if (isUnreserved(u) || (keep_slash && c == '/')) {
      out.push_back(c);
    } else {
      out += fmt::format("%{:02X}", u);
    }
  }
}

}  // namespace

bool isPkcs11Uri(std::string_view text) {
  if (text.size() < 7) return false;
  for (size_t i = 0; i < 7; ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != "pkcs11:"[i]) return false;
  }
  return true;
}

Result<Pkcs11Uri> parsePkcs11Uri(std::string_view text) {
  if (text.size() > kMaxPkcs11UriLength) {
    return core::invalidArgument(fmt::format("PKCS#11 URI is longer than {} bytes", kMaxPkcs11UriLength));
  }
  if (!isPkcs11Uri(text)) {
    return core::invalidArgument("not a PKCS#11 URI: it must start with pkcs11: (RFC 7512), e.g. "
                                 "pkcs11:token=warden;object=issuing-ca;type=private?module-path=/usr/lib/softhsm/"
                                 "libsofthsm2.so&pin-source=file:/etc/warden/hsm.pin");
  }
  std::string_view rest = text.substr(7);
  if (rest.find('#') != std::string_view::npos) return core::invalidArgument("PKCS#11 URI must not have a fragment");
  size_t q = rest.find('?');
  std::string_view path = rest.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
  Pkcs11Uri uri;
  Seen seen;
  size_t count = 0;
  if (!path.empty()) {
    WARDEN_RETURN_IF_ERROR(forEachAttribute(path, ';', count, [&](std::string_view name, std::string_view raw) -> Status {
      WARDEN_ASSIGN_OR_RETURN(std::string value, decodeValue(name, raw, isPathChar));
      return setPathAttribute(uri, seen, name, std::move(value));
    }));
  }
  if (q != std::string_view::npos) {
    if (query.empty()) return core::invalidArgument("PKCS#11 URI has an empty query after '?'");
    WARDEN_RETURN_IF_ERROR(forEachAttribute(query, '&', count, [&](std::string_view name, std::string_view raw) -> Status {
      WARDEN_ASSIGN_OR_RETURN(std::string value, decodeValue(name, raw, isQueryChar));
      return setQueryAttribute(uri, seen, name, std::move(value));
    }));
  }
  return uri;
}

std::string Pkcs11Uri::pathOnly() const {
  std::string out = "pkcs11:";
  bool first = true;
  auto add = [&](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    if (!first) out.push_back(';');
    first = false;
    out += name;
    out.push_back('=');
    appendEncoded(out, value, false);
  };
  add("token", token);
  add("manufacturer", manufacturer);
  add("serial", serial);
  add("model", model);
  if (slot_id) add("slot-id", std::to_string(*slot_id));
  add("object", object);
  if (!id.empty()) {
    if (!first) out.push_back(';');
    first = false;
    out += "id=";
    for (char c : id) out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
  }
  add("type", type);
  return out;
}

std::string Pkcs11Uri::toString() const {
  std::string out = pathOnly();
  char sep = '?';
  auto add = [&](std::string_view name, std::string_view value) {
    if (value.empty()) return;
    out.push_back(sep);
    sep = '&';
    out += name;
    out.push_back('=');
    appendEncoded(out, value, true);
  };
  add("module-name", module_name);
  add("module-path", module_path);
  if (!pin_source.empty()) {
    out.push_back(sep);
    sep = '&';
    out += "pin-source=file:";
    appendEncoded(out, pin_source, true);
  }
  return out;
}

}  // namespace warden::keystore

#include "identity/factory_identity.h"

#include <set>

#include <fmt/format.h>

#include "core/names.h"
#include "crypto/crypto.h"
#include "pki/manufacturer_anchors.h"

namespace warden::identity {

core::Result<FactoryIdentity> factoryIdentityOf(X509* idevid, std::string_view name_prefix) {
  if (idevid == nullptr) return core::invalidArgument("no factory certificate");
  FactoryIdentity out;
  out.serial_number = pki::subjectSerialNumber(idevid);
  if (out.serial_number.empty()) out.serial_number = crypto::commonName(idevid);
  if (out.serial_number.empty()) {
    return core::invalidArgument("the factory certificate's subject has neither a serialNumber nor a CN");
  }
  if (out.serial_number.size() > kMaxSerialNumberLength) {
    return core::invalidArgument("the factory certificate's serialNumber is longer than 64 characters");
  }
  out.device_name = std::string(name_prefix) + out.serial_number;
  if (!core::isValidName(out.device_name)) {
    std::string shown;
    for (char c : out.device_name) shown.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    return core::invalidArgument(fmt::format(
        "the factory certificate would name the device '{}', which is not a valid device name (1-63 of a-z, 0-9 and "
        "'-'): give the manufacturer another --name-prefix or register the device with a token",
        shown));
  }
  return out;
}

core::Result<std::vector<std::string>> parseSerialAllowList(std::string_view text) {
  std::set<std::string> seen;
  std::vector<std::string> out;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) line.remove_suffix(1);
    if (line.empty()) continue;
    if (line.size() > kMaxSerialNumberLength) {
      return core::invalidArgument(fmt::format("line {}: a serialNumber is at most 64 characters", line_no));
    }
    for (char c : line) {
      if (c <= 0x20 || c >= 0x7f) {
        return core::invalidArgument(
            fmt::format("line {}: a serialNumber is printable ASCII without blanks ('#' starts a comment)", line_no));
      }
    }
    if (seen.insert(std::string(line)).second) out.emplace_back(line);
    if (out.size() > kMaxAllowListSerials) {
      return core::invalidArgument(fmt::format("more than {} serial numbers", kMaxAllowListSerials));
    }
  }
  return out;
}

core::Result<int64_t> parseCertTtl(std::string_view text) {
  auto bad = [&] {
    return core::invalidArgument(fmt::format(
        "invalid certificate lifetime '{}': use minutes, hours or days from 1m to 30d (e.g. 90m, 24h, 7d)",
        text.substr(0, 40)));
  };
  if (text.empty() || (text.back() != 'm' && text.back() != 'h' && text.back() != 'd')) return bad();
  auto secs = core::parseDuration(text);
  if (!secs.isOk() || *secs < kMinCertTtlSeconds || *secs > kMaxCertTtlSeconds) return bad();
  return *secs;
}

int64_t resolveCertTtl(int64_t device_s, int64_t manufacturer_s, int64_t fleet_s) {
  if (device_s > 0) return device_s;
  if (manufacturer_s > 0) return manufacturer_s;
  return fleet_s;
}

}  // namespace warden::identity

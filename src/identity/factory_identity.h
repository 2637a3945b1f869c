#pragma once

// factory_identity.h: naming a device after its factory certificate (IEEE
// 802.1AR IDevID), manufacturer serial allow-lists, and certificate
// lifetimes (pki.cert_ttl, manufacturer and device overrides).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/x509.h>

#include "core/status.h"

namespace warden::identity {

inline constexpr int64_t kMinCertTtlSeconds = 60;
inline constexpr int64_t kMaxCertTtlSeconds = 30 * 86400;
// kEnrollRequestLifetimeSeconds: a request awaiting approval expires after 7 days.
inline constexpr int64_t kEnrollRequestLifetimeSeconds = 7 * 86400;
// kMaxAllowListSerials bounds a manufacturer's serial allow-list.
inline constexpr size_t kMaxAllowListSerials = 1'000'000;
inline constexpr size_t kMaxSerialNumberLength = 64;

// FactoryIdentity is what a factory certificate makes of a device.
struct FactoryIdentity {
  std::string serial_number;  // subject serialNumber (2.5.4.5), else the CN: the identity with the manufacturer
  std::string device_name;    // name prefix + serial_number
};

// factoryIdentityOf names the device of factory certificate |idevid|:
// |name_prefix| + its subject serialNumber (OID 2.5.4.5), else + its CN.
// kInvalidArgument (reason in the message) when it has neither or the result
// is not a valid device name.
core::Result<FactoryIdentity> factoryIdentityOf(X509* idevid, std::string_view name_prefix);

// parseSerialAllowList parses a SERIALS_FILE: one serialNumber a line, '#'
// starts a comment, surrounding blanks ignored, empty lines skipped, each at
// most 64 characters of printable ASCII, duplicates folded. kInvalidArgument
// naming the line otherwise.
core::Result<std::vector<std::string>> parseSerialAllowList(std::string_view text);

// parseCertTtl parses a certificate lifetime "Nm", "Nh" or "Nd" from 1m to
// 30d. kInvalidArgument with an example otherwise.
core::Result<int64_t> parseCertTtl(std::string_view text);

// resolveCertTtl applies the precedence device > manufacturer > fleet (0 means unset).
int64_t resolveCertTtl(int64_t device_s, int64_t manufacturer_s, int64_t fleet_s);

}  // namespace warden::identity

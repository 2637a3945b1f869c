#include "gateway/peer_identity.h"

#include <fmt/format.h>
#include <openssl/x509_vfy.h>

#include "core/spiffe_id.h"
#include "crypto/crypto.h"
#include "monitor/event.h"

namespace warden::gateway {

namespace {
PeerIdentity reject(std::string reason, std::string detail) {
  PeerIdentity p;
  p.reason = std::move(reason);
  p.detail = std::move(detail);
  return p;
}
}  // namespace

bool deviceStateAllowsSession(store::DeviceState state) {
  return state == store::DeviceState::kActive || state == store::DeviceState::kQuarantined;
}

PeerIdentity checkDevicePeer(X509* cert, long verify_result, const identity::FleetState* fleet,
                             const std::string& trust_domain, core::SystemTime now) {
  if (cert == nullptr) return reject(std::string(monitor::reason::kUntrustedIssuer), "the client presented no certificate");
  if (verify_result != X509_V_OK) {
    return reject(std::string(monitor::reason::kUntrustedIssuer), fmt::format("certificate verification failed: {}",
                                           X509_verify_cert_error_string(verify_result)));
  }
  // A resumed session skips chain verification: check the validity period here too.
  if (now >= crypto::notAfter(cert)) return reject(std::string(monitor::reason::kCertExpired), "the client certificate has expired");
  if (now < crypto::notBefore(cert)) return reject(std::string(monitor::reason::kCertExpired), "the client certificate is not yet valid");

  std::vector<std::string> uris = crypto::uriSans(cert);
  if (uris.size() != 1) {
    return reject(std::string(monitor::reason::kBadIdentity), fmt::format("the certificate has {} URI SANs, exactly one is required", uris.size()));
  }
  auto id = core::parseSpiffeId(uris[0]);
  if (!id) return reject(std::string(monitor::reason::kBadIdentity), "the URI SAN is not a valid SPIFFE ID: " + id.status().message());
  if (id->trust_domain != trust_domain) {
    return reject(std::string(monitor::reason::kBadIdentity), fmt::format("foreign trust domain {}", id->trust_domain));
  }
  if (id->kind != core::PrincipalKind::kDevice) {
    return reject(std::string(monitor::reason::kBadIdentity), "only device identities may open MQTT sessions");
  }
  if (crypto::commonName(cert) != id->name) {
    return reject(std::string(monitor::reason::kBadIdentity), "the certificate CN does not equal the device name");
  }
  PeerIdentity p;
  p.device = id->name;
  p.spiffe_id = uris[0];
  p.serial_hex = crypto::serialHex(cert);
  p.not_before = crypto::notBefore(cert);
  p.not_after = crypto::notAfter(cert);
  const identity::DeviceEntry* dev = fleet ? fleet->findDevice(id->name) : nullptr;
  if (dev == nullptr) {
    p.reason = monitor::reason::kUnknownDevice;
    p.detail = "no such device";
    return p;
  }
  if (dev->state == store::DeviceState::kRevoked) {
    p.reason = monitor::reason::kDeviceRevoked;
    p.detail = "the device is revoked";
    return p;
  }
  if (!deviceStateAllowsSession(dev->state)) {
    p.reason = monitor::reason::kDevicePending;
    p.detail = fmt::format("the device is {}", store::deviceStateName(dev->state));
    return p;
  }
  if (dev->valid_serials.count(p.serial_hex) == 0) {
    p.reason = monitor::reason::kUnknownSerial;
    p.detail = "the certificate serial is not a valid certificate of this device (revoked, expired or never issued)";
    return p;
  }
  p.ok = true;
  return p;
}

}  // namespace warden::gateway

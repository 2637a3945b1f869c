#pragma once

#include <string>

#include <openssl/x509.h>

#include "core/clock.h"
#include "identity/fleet_state.h"

namespace warden::gateway {

// PeerIdentity is the outcome of checkDevicePeer: either an admitted device
// (|ok|) or the reason code recorded in the tls_reject event.
struct PeerIdentity {
  bool ok = false;
  std::string device;         // device name (also the SPIFFE ID's name)
  std::string spiffe_id;      // the certificate's URI SAN
  std::string serial_hex;
  core::SystemTime not_before{};
  core::SystemTime not_after{};
  std::string reason;         // tls_reject reason when !ok
  std::string detail;         // one line for the log and the event detail
};

// checkDevicePeer decides whether the TLS peer |cert| (nullptr: none) may open
// an MQTT session, against |fleet| at time |now|. It runs after every
// handshake, full or resumed: |verify_result| is SSL_get_verify_result. It
// checks, failing closed: a certificate chained to the issuing CA, inside its
// validity period, exactly one URI SAN that parses as
// spiffe://|trust_domain|/device/<name>, CN == name, a registered device in
// state active or quarantined, and a serial issued to that device and not
// revoked.
PeerIdentity checkDevicePeer(X509* cert, long verify_result, const identity::FleetState* fleet,
                             const std::string& trust_domain, core::SystemTime now);

// deviceStateAllowsSession reports whether a device in |state| may hold an
// MQTT session (active or quarantined).
bool deviceStateAllowsSession(store::DeviceState state);

}  // namespace warden::gateway

#pragma once

// registry.h: device lifecycle business logic over the Store (add, token,
// enroll, renew, revoke, quarantine, release) and the FleetState snapshot.
// Every method may block on the database: run it on the worker thread.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/evp.h>

#include "core/clock.h"
#include "core/names.h"
#include "core/status.h"
#include "crypto/openssl_ptr.h"
#include "identity/fleet_state.h"
#include "store/store.h"

namespace warden::identity {

inline constexpr core::Seconds kDefaultTokenTtl{24 * 3600};
inline constexpr core::Seconds kMaxTokenTtl{30 * 24 * 3600};
// kTokenRandomBytes: 128 bits of RAND_bytes -> 22 base64url characters.
inline constexpr size_t kTokenRandomBytes = 16;

struct NewDevice {
  store::DeviceRecord record;
  std::string token;  // returned once, never stored (only its sha256 hex)
  int64_t token_expires_at = 0;
};

struct NewToken {
  std::string token;
  int64_t expires_at = 0;
};

// IssuedLeaf is a signed leaf and the inventory name of the CA that signed
// it ("issuing-2"; "" when the signer is not in an inventory, and the store
// then finds it from the certificate's AKI).
struct IssuedLeaf {
  crypto::X509Ptr cert;
  std::string ca_name;
};

// LeafIssuer signs |subject_key| (public key only) into a leaf certificate
// for device |name| (the server wiring binds the issuing CA, trust domain and
// lifetime, e.g. via pki::issueLeaf).
using LeafIssuer = std::function<core::Result<IssuedLeaf>(EVP_PKEY* subject_key, const std::string& name)>;

// IssuedCert is an enrolled or renewed certificate and its store record.
struct IssuedCert {
  crypto::X509Ptr cert;
  store::CertRecord record;
};

// PreparedIssue is a signed certificate not yet recorded, and the store
// write that records it (Store::commitIssuances, via store::GroupCommit).
// Until that write has committed the certificate must not leave the server.
struct PreparedIssue {
  IssuedCert issued;
  store::IssuanceWrite write;
};

// hashToken returns the stored form of |token|: sha256 hex.
std::string hashToken(std::string_view token);

class Registry {
 public:
  // Registry keeps references to |store| and |clock|; both must outlive it.
  Registry(store::Store& store, const core::Clock& clock);

  // addDevice validates |name|, |role| and |labels| (kInvalidArgument),
  // creates the device in state pending with a one-time enrollment token
  // valid for |token_ttl| (default 24 h, at most 30 d, else kInvalidArgument)
  // and returns the token once. kAlreadyExists if the name was ever used.
  // |cert_ttl_s| (0: unset) is the lifetime of the device's certificates.
  core::Result<NewDevice> addDevice(std::string_view name, std::string_view role, const core::Labels& labels,
                                    std::optional<core::Seconds> token_ttl = std::nullopt, int64_t cert_ttl_s = 0);
  // newToken issues a fresh token for |name|, invalidating its unused ones.
  // kNotFound if unknown, kFailedPrecondition if revoked.
  core::Result<NewToken> newToken(std::string_view name, std::optional<core::Seconds> ttl = std::nullopt);

  // enroll authenticates |token| for device |name| (constant-time hash
  // compare), issues a certificate for |subject_key| with |issuer| and
  // records it, consuming the token, in one transaction. Failures:
  // kUnauthenticated with message = reason (unknown_device, device_revoked,
  // no_token, token_used, token_expired, token_mismatch); kAlreadyExists with
  // message key_reuse; kInternal if issuing fails.
  // With manual approval, |request_id| names the approved request that this
  // issuance completes (kFailedPrecondition if it does not match).
  core::Result<IssuedCert> enroll(std::string_view name, std::string_view token, EVP_PKEY* subject_key,
                                  const LeafIssuer& issuer, std::string_view request_id = {});
  // enrollFactory issues a certificate for |subject_key| to the device of a
  // factory identity and records it with Store::enrollFactory (creating the
  // device and its binding, or re-bootstrapping it); failures as that method.
  core::Result<IssuedCert> enrollFactory(const store::FactoryEnrollment& enrollment, EVP_PKEY* subject_key,
                                         const LeafIssuer& issuer);
  // renew issues a new certificate for |subject_key| to device |name|, which
  // authenticated with its certificate |old_serial| (simplereenroll).
  // Failures as Store::renewCert (message = reason).
  core::Result<IssuedCert> renew(std::string_view name, std::string_view old_serial, EVP_PKEY* subject_key,
                                 const LeafIssuer& issuer);

  // prepareEnroll is enroll without the write: it pre-checks |token|, signs
  // and returns the certificate with its IssuanceWrite (kEnrollWithToken,
  // carrying |key_store_claim|). The write checks the token again and
  // consumes it atomically. Failures as enroll.
  core::Result<PreparedIssue> prepareEnroll(std::string_view name, std::string_view token, EVP_PKEY* subject_key,
                                            const LeafIssuer& issuer, std::string_view request_id,
                                            std::string_view key_store_claim);
  // prepareRenew is renew without the write (an IssuanceWrite kRenew of
  // |old_serial|); the write makes renew's checks. Failures as renew.
  core::Result<PreparedIssue> prepareRenew(std::string_view name, std::string_view old_serial, EVP_PKEY* subject_key,
                                           const LeafIssuer& issuer, std::string_view key_store_claim);

  // revoke revokes device |name| and all its certificates and unused tokens;
  // returns false if it was already revoked. kNotFound if unknown.
  core::Result<bool> revoke(std::string_view name);
  // quarantine moves an active device to quarantined (false if already
  // quarantined). kFailedPrecondition for a pending ("has not enrolled yet")
  // or revoked device; kNotFound if unknown.
  core::Result<bool> quarantine(std::string_view name);
  // release moves a quarantined device back to active (false if already
  // active). kFailedPrecondition for a pending or revoked device.
  core::Result<bool> release(std::string_view name);

  // setDefaultTrust sets the trust of devices without a stored posture
  // (trust.never_attested of the server's configuration); unset, their
  // principal.trust is absent. Call before the first loadFleetState.
  void setDefaultTrust(std::optional<int> trust) { default_trust_ = trust; }

  // loadFleetState reads every device and valid certificate into a new
  // immutable FleetState with the next generation number.
  core::Result<std::shared_ptr<const FleetState>> loadFleetState();
  // updateFleetState returns |previous| with the entries of |devices| read
  // again from the store (a device no longer there is dropped), and the next
  // generation number. Unchanged devices share |previous|' storage, so the
  // cost grows with the number of changed devices, not with the fleet.
  core::Result<std::shared_ptr<const FleetState>> updateFleetState(const FleetState& previous,
                                                                   const std::vector<std::string>& devices);

 private:
  core::Result<IssuedCert> issue(std::string_view name, EVP_PKEY* subject_key, const LeafIssuer& issuer);
  // applyPosture fills |e|'s posture attributes from |p| (nullptr: none stored).
  void applyPosture(DeviceEntry& e, const store::PostureRecord* p) const;

  store::Store& store_;
  const core::Clock& clock_;
  std::atomic<uint64_t> generation_{0};
  std::optional<int> default_trust_;
};

}  // namespace warden::identity

#pragma once

// store.h: the durable state of a Warden control plane (devices, enrollment
// tokens, certificates, policy versions, the event log, metadata) behind one
// interface. The implementation is SqliteStore (sqlite_store.h).
//
// Every method is thread-safe and every write is one transaction: once a
// method has returned ok, the change survives a crash. Methods may block on
// disk I/O, so callers run them on a worker thread, never on an I/O thread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/names.h"
#include "core/status.h"

namespace warden::store {

// DeviceState is a device's lifecycle state: pending (added, not enrolled)
// -> active <-> quarantined; any -> revoked (final).
enum class DeviceState { kPending, kActive, kQuarantined, kRevoked };

// deviceStateName returns "pending", "active", "quarantined" or "revoked".
std::string_view deviceStateName(DeviceState state);
// parseDeviceState is the inverse of deviceStateName (kInvalidArgument otherwise).
core::Result<DeviceState> parseDeviceState(std::string_view text);

// KeyProof is the verifier's last judgement of a proof that the device key
// lives in the device's TPM (TPM2_Certify by its attestation key,
// docs/attestation.md). It is about the key of the certificate the device
// presented then (|key_fp|): a renewal with a new key leaves it behind.
struct KeyProof {
  std::string result;  // "" (none yet), "verified" or "failed"
  std::string key_fp;  // crypto::publicKeyFingerprint of that certificate's key
  std::string reason;  // the attestation_failed reason when failed
  int64_t at = 0;      // unix seconds
  bool operator==(const KeyProof&) const = default;
};

struct DeviceRecord {
  std::string name, role;
  core::Labels labels;
  DeviceState state = DeviceState::kPending;
  int64_t created_at = 0;  // unix seconds
  // Where the device says its key lives: "" (not stated), "file", "pkcs11"
  // or "tpm2". A claim; key_proof says whether a TPM proved it.
  std::string key_store_claim;
  int64_t cert_ttl_s = 0;  // lifetime of its certificates; 0: the manufacturer's or the fleet's
  KeyProof key_proof;
};

// TpmCaRecord is a TPM vendor CA: EK certificates that chain to one prove
// that a key is the endorsement key of a genuine TPM.
struct TpmCaRecord {
  std::string fingerprint;  // "sha256:HEX" of the certificate's DER
  std::string subject;      // one-line RFC 2253 subject
  std::string pem;
  int64_t not_after = 0;
  int64_t added_at = 0;
  std::string added_by;
};

// DeviceTpmRecord binds a device to the endorsement key of its TPM (one EK,
// one device) and, once credential activation proved that both live in the
// same TPM, to its attestation key.
struct DeviceTpmRecord {
  std::string device;
  std::string ek_fingerprint;  // "sha256:HEX" of the EK's DER SubjectPublicKeyInfo
  std::string ek_source;       // "vendor_ca" (EK certificate) or "operator" (registered)
  std::string ak_public;       // base64 of the AK's marshalled TPM2B_PUBLIC; "" until registered
  std::string ak_name;         // hex TPM name of the AK; "" until registered
  int64_t ak_registered_at = 0;
  int64_t last_reset_count = -1;  // resetCount of the newest accepted quote; -1: none yet
};

// ManufacturerRecord is a trusted maker of factory identities (IEEE 802.1AR
// IDevIDs): its CA certificate(s), which serialNumbers it may enroll, and
// what an enrolled device becomes.
struct ManufacturerRecord {
  std::string name;
  std::string ca_pem;  // one or more CA certificates, PEM: trust anchors for simpleenroll only
  std::string role;
  core::Labels labels;
  std::string name_prefix;  // device name = prefix + serialNumber (else CN)
  std::string approval;     // "auto", "manual" or "" (the fleet's enrollment.approval)
  int64_t cert_ttl_s = 0;   // 0: the fleet's pki.cert_ttl
  bool auto_register = false;  // any serialNumber; otherwise only |serials|
  std::vector<std::string> serials;  // the allow-list (insertManufacturer only)
  int64_t serial_count = 0;          // size of the allow-list (listManufacturers)
  int64_t created_at = 0;
};

// FactoryEnrollment asks enrollFactory to bind factory identity
// (manufacturer, serial_number) to |device| and record its certificate.
struct FactoryEnrollment {
  std::string manufacturer, serial_number;
  DeviceRecord device;  // created when |rebootstrap| is false
  bool rebootstrap = false;  // the identity is already bound to device.name
  std::string request_id;    // an approved enrollment request to close, or ""
};

// EnrollRequestState: pending -> approved -> issued; pending|approved -> denied.
enum class EnrollRequestState { kPending, kApproved, kDenied, kIssued };
std::string_view enrollRequestStateName(EnrollRequestState state);

// EnrollRequestRecord is an enrollment waiting for an operator (manual
// approval), bound to the public key of the first CSR.
struct EnrollRequestRecord {
  std::string id;            // "r" + 16 hex digits
  std::string device;        // the device name it would enroll as
  std::string manufacturer;  // factory enrollment: the manufacturer, else ""
  std::string serial_number; // factory enrollment: the subject serialNumber, else ""
  std::string pubkey_fp;     // the CSR's key; only this key can complete it
  EnrollRequestState state = EnrollRequestState::kPending;
  int64_t created_at = 0, expires_at = 0, decided_at = 0;
  std::string decided_by, remote;
};

// CertTtls are the lifetimes set for a device's certificates (0: unset).
struct CertTtls {
  int64_t device_s = 0;
  int64_t manufacturer_s = 0;
};

// CertRecord is one issued certificate. |device| is the principal name the
// certificate was issued to (a device name, or e.g. "admin" for kind "user").
struct CertRecord {
  std::string serial_hex, device, kind /* "device", "user", "gateway", ... */, pubkey_fp;
  int64_t not_before = 0, not_after = 0;  // unix seconds
  bool revoked = false;
  int64_t revoked_at = 0;  // unix seconds, 0 unless revoked
  std::string pem;
  // issuer is the name of the CA that signed it ("issuing-1", ...). Left
  // empty, insertCert resolves it from the certificate's AKI against the CA
  // inventory.
  std::string issuer;
  // revocation_reason is an RFC 5280 CRLReason name ("keyCompromise", ...);
  // "" when none was given (CRLs and OCSP then carry no reason).
  std::string revocation_reason;
};

// CaState is a CA's place in its life: active (issues), retiring (issues no
// more; its certificates still verify and its CRL/OCSP are served), retired
// (out of every trust bundle; CRL/OCSP served until its last certificate
// expired).
enum class CaState { kActive, kRetiring, kRetired };
std::string_view caStateName(CaState state);
core::Result<CaState> parseCaState(std::string_view text);

// CaRecord is one CA of the inventory: "root" or an issuing CA
// ("issuing-1", "issuing-2", ...).
struct CaRecord {
  std::string name;
  std::string kind;    // "root" | "issuing"
  CaState state = CaState::kActive;
  std::string key_id;  // lowercase hex subject key identifier
  std::string cert_pem;
  // key_ref says where the private key is: a file path today (pki::loadCaKey
  // resolves it); "" for the root, whose key `serve` never reads.
  std::string key_ref;
  int64_t created_at = 0, retired_at = 0;  // unix seconds
};

// CrossCertRecord is a root rollover's cross certificate (RFC 4210 §4.4):
// root |subject_ca|'s name and key signed by root |issuer_ca| (NewWithOld
// when the subject is the newer root, OldWithNew otherwise).
struct CrossCertRecord {
  std::string name;        // "<subject>-by-<issuer>", e.g. "root-2-by-root"
  std::string subject_ca;  // the root whose key it certifies
  std::string issuer_ca;   // the root that signed it
  std::string cert_pem;
  int64_t created_at = 0;
};

struct TokenRecord {
  std::string device, hash_hex;  // sha256 hex of the token; the token itself is never stored
  int64_t expires_at = 0;        // unix seconds
  bool used = false;
};

struct PolicyVersion {
  int64_t version = 0;
  std::string text;
  int64_t created_at = 0;  // unix seconds
  std::string actor;
};

// FirmwareApproval is a reference value: the SHA-256 of a released firmware
// image for one device model (the device's `model` label). Revoking keeps the
// row (revoked_at != 0) so that history shows what was once approved.
struct FirmwareApproval {
  std::string digest;   // "sha256:" + 64 lowercase hex digits
  std::string model;    // a label value
  std::string version;  // free text, <= 64 bytes
  int64_t approved_at = 0;
  std::string approved_by;
  int64_t revoked_at = 0;  // 0: approved
  std::string revoked_by;
};

// PostureRecord is what the posture engine (src/trust) keeps per device: its
// last attestation and verdict, firmware, quarantine reasons and trust.
// Times are unix seconds, 0 = never.
struct PostureRecord {
  std::string device;
  int64_t attested_at = 0;        // last attestation (good or failed)
  std::string assurance;          // of the last attestation: "", "software", "tpm"
  std::string result;             // "", "ok", "failed"
  std::string reason, detail;     // attestation_failed reason and its detail when failed
  std::string boot;               // "tpm:<resetCount>" / "sw:<boot_id>"
  std::string log_json = "[]";    // the last verified measurement log, JSON array
  int64_t last_good_at = 0;       // last successful attestation
  std::string last_good_assurance;  // "", "software", "tpm"
  std::string firmware_model, firmware_version;
  int firmware_approved = -1;     // -1 unknown (no log), 0 no, 1 yes
  std::vector<std::string> quarantine_reasons;  // sorted, unique
  int64_t quarantined_since = 0;
  int trust = 50;
  int64_t updated_at = 0;
  bool operator==(const PostureRecord&) const = default;
};

struct EventRecord {
  int64_t id = 0;    // assigned by appendEvents, strictly increasing
  int64_t time = 0;  // unix seconds
  std::string type, principal, actor, action, resource, decision, rule, reason;
  nlohmann::json detail;  // an object, or null
};

// Reason strings carried by the messages of enrollWithToken / renewCert
// failures (the API maps them all to one 401 and logs the reason).
inline constexpr std::string_view kReasonUnknownDevice = "unknown_device";
inline constexpr std::string_view kReasonNoToken = "no_token";
inline constexpr std::string_view kReasonTokenUsed = "token_used";
inline constexpr std::string_view kReasonTokenExpired = "token_expired";
inline constexpr std::string_view kReasonTokenMismatch = "token_mismatch";
inline constexpr std::string_view kReasonDeviceRevoked = "device_revoked";
inline constexpr std::string_view kReasonDevicePending = "device_pending";
inline constexpr std::string_view kReasonUnknownSerial = "unknown_serial";
inline constexpr std::string_view kReasonCertRevoked = "cert_revoked";
inline constexpr std::string_view kReasonCertExpired = "cert_expired";
inline constexpr std::string_view kReasonKeyReuse = "key_reuse";
inline constexpr std::string_view kReasonSerialCollision = "serial_collision";
inline constexpr std::string_view kReasonDuplicateIdentity = "duplicate_identity";
inline constexpr std::string_view kReasonNameTaken = "name_taken";

// IssuanceWrite is one certificate issuance waiting to be recorded by
// Store::commitIssuances (a group commit): an enrollment with a token or a
// renewal, checked and applied exactly as enrollWithToken / renewCert would.
struct IssuanceWrite {
  enum class Kind { kEnrollWithToken, kRenew };
  Kind kind = Kind::kEnrollWithToken;
  std::string device;
  std::string token_hash_hex;  // kEnrollWithToken: sha256 hex of the presented token
  std::string request_id;      // kEnrollWithToken: an approved enrollment request to close, or ""
  std::string old_serial;      // kRenew: the certificate the device authenticated with
  // key_store_claim ("file", "pkcs11", "tpm2"; anything else is ignored) is
  // recorded with the certificate, in the same transaction.
  std::string key_store_claim;
  CertRecord cert;
};

class Store {
 public:
  virtual ~Store() = default;

  // --- devices ---------------------------------------------------------
  // insertDevice adds |device|; kAlreadyExists if the name was ever used
  // (revoked devices keep their name), kInvalidArgument on a bad name.
  virtual core::Status insertDevice(const DeviceRecord& device) = 0;
  // insertDeviceWithToken adds |device| and its first enrollment token in one
  // transaction (same errors as insertDevice).
  virtual core::Status insertDeviceWithToken(const DeviceRecord& device, std::string_view token_hash_hex,
                                             int64_t token_expires_at) = 0;
  // getDevice returns the device |name| or kNotFound.
  virtual core::Result<DeviceRecord> getDevice(std::string_view name) = 0;
  // listDevices returns every device (revoked included) ordered by name.
  virtual core::Result<std::vector<DeviceRecord>> listDevices() = 0;
  // setDeviceState sets |name|'s state; kNotFound if unknown. It does not
  // check transitions (Registry does) except that a revoked device stays
  // revoked (kFailedPrecondition).
  virtual core::Status setDeviceState(std::string_view name, DeviceState state) = 0;
  // setDeviceKeyStoreClaim records where device |name| says its key lives
  // ("file", "pkcs11", "tpm2"); kInvalidArgument otherwise, kNotFound for an
  // unknown device.
  virtual core::Status setDeviceKeyStoreClaim(std::string_view name, std::string_view claim) = 0;
  // setDeviceKeyProof records the verifier's judgement of a proof that
  // |name|'s key is in its TPM (result "verified" or "failed", else
  // kInvalidArgument); kNotFound for an unknown device.
  virtual core::Status setDeviceKeyProof(std::string_view name, const KeyProof& proof) = 0;

  // --- tokens ----------------------------------------------------------
  // replaceToken stores a new enrollment token hash for |device| and deletes
  // its unused tokens (used ones are kept so that a replay is reported as
  // token_used). kNotFound for an unknown device, kFailedPrecondition if revoked.
  virtual core::Status replaceToken(std::string_view device, std::string_view token_hash_hex,
                                    int64_t expires_at) = 0;
  // checkToken verifies |token_hash_hex| for |device| without consuming it
  // (a cheap pre-check before signing). Errors as enrollWithToken.
  virtual core::Status checkToken(std::string_view device, std::string_view token_hash_hex) = 0;
  // enrollWithToken, in ONE transaction: finds |device|'s token whose hash
  // equals |token_hash_hex| (constant-time compare), requires it unused and
  // unexpired, marks it used, inserts |cert| and moves a pending device to
  // active. On failure nothing changes and it returns kUnauthenticated whose
  // message is exactly one reason: unknown_device, device_revoked, no_token,
  // token_used, token_expired, token_mismatch; or kAlreadyExists with message
  // key_reuse (the public key is certified to another device) or
  // serial_collision (retry with a new serial).
  // A non-empty |request_id| must name an approved enrollment request of
  // |device| with the certificate's key (else kFailedPrecondition); it becomes
  // issued in the same transaction.
  virtual core::Status enrollWithToken(std::string_view device, std::string_view token_hash_hex,
                                       const CertRecord& cert, std::string_view request_id = {}) = 0;
  // renewCert records |cert| as a renewal of |old_serial| (simplereenroll):
  // the device must be active or quarantined and |old_serial| must be its own,
  // unrevoked and unexpired certificate. kUnauthenticated with message
  // unknown_device, device_revoked, device_pending, unknown_serial,
  // cert_revoked or cert_expired; kAlreadyExists key_reuse / serial_collision.
  // The old certificate stays valid until it expires.
  virtual core::Status renewCert(std::string_view device, std::string_view old_serial,
                                 const CertRecord& cert) = 0;

  // commitIssuances records |writes| in ONE transaction, so a batch costs
  // one fsync however many requests it holds (a group commit). Each write
  // runs inside its own savepoint with the checks of enrollWithToken or
  // renewCert: one that fails is rolled back alone and gets that method's
  // status (same codes and reasons), the others stay. If the transaction
  // cannot begin or commit, every write gets that error and none is applied.
  // Returns one status per write, in order; writes are applied in order.
  virtual std::vector<core::Status> commitIssuances(const std::vector<IssuanceWrite>& writes) = 0;

  // --- certificates ----------------------------------------------------
  // insertCert records any certificate (e.g. kind "user" for the operator,
  // "gateway"); kAlreadyExists "serial_collision" if the serial exists,
  // "key_reuse" if a device certificate's key belongs to another device.
  virtual core::Status insertCert(const CertRecord& cert) = 0;
  // findCert returns the certificate with |serial_hex| or kNotFound.
  virtual core::Result<CertRecord> findCert(std::string_view serial_hex) = 0;
  // listCerts returns |device|'s certificates, oldest first.
  virtual core::Result<std::vector<CertRecord>> listCerts(std::string_view device) = 0;
  // latestCert returns |device|'s most recently issued certificate (by
  // not_before, then insertion), or nullopt if it has none.
  virtual core::Result<std::optional<CertRecord>> latestCert(std::string_view device) = 0;
  // listValidCerts returns every unrevoked certificate with not_after > |now|
  // (all kinds), for building the FleetState.
  virtual core::Result<std::vector<CertRecord>> listValidCerts(int64_t now) = 0;
  // listValidCertsOf is listValidCerts for the certificates issued to
  // |principal| of |kind| only (a snapshot update for one device).
  virtual core::Result<std::vector<CertRecord>> listValidCertsOf(std::string_view principal, std::string_view kind,
                                                                 int64_t now) = 0;
  // revokeDevice, in one transaction: state revoked, every certificate of the
  // device revoked, unused tokens deleted. Returns false (and changes
  // nothing) if the device was already revoked; kNotFound if unknown.
  virtual core::Result<bool> revokeDevice(std::string_view device) = 0;
  // revokeCert revokes the certificate |serial_hex| with |reason| (a
  // CRLReason name or ""). Returns the record as it now is and whether it
  // changed (false if it was already revoked); kNotFound if unknown.
  virtual core::Result<std::pair<CertRecord, bool>> revokeCert(std::string_view serial_hex,
                                                               std::string_view reason) = 0;
  // revokeCertsIssuedBy revokes every unrevoked certificate of CA |issuer|
  // that has not expired at |now| (OCSP responder certificates, kind "ocsp",
  // excepted), with |reason|, in one transaction, and returns them.
  virtual core::Result<std::vector<CertRecord>> revokeCertsIssuedBy(std::string_view issuer, std::string_view reason,
                                                                    int64_t now) = 0;
  // listCertsIssuedBy returns the certificates of CA |issuer| with not_after
  // > |not_after_after|, oldest first (CRL entries, retirement checks).
  virtual core::Result<std::vector<CertRecord>> listCertsIssuedBy(std::string_view issuer,
                                                                  int64_t not_after_after) = 0;
  // listRevokedCertsIssuedBy returns the revoked certificates of CA
  // |issuer| with not_after > |not_after_after|, oldest first: the entries
  // of its CRL. It reads an index of revoked rows only (migration 8), so a
  // CRL rebuild costs O(revoked), not O(issued).
  virtual core::Result<std::vector<CertRecord>> listRevokedCertsIssuedBy(std::string_view issuer,
                                                                         int64_t not_after_after) = 0;
  // hasUnexpiredCertsIssuedBy reports whether CA |issuer| has a certificate
  // other than an OCSP responder's with not_after > |now| (revoked or not):
  // while it has, its CRL and OCSP must stay published.
  virtual core::Result<bool> hasUnexpiredCertsIssuedBy(std::string_view issuer, int64_t now) = 0;
  // listCertsExpiring returns every certificate (all kinds, revoked ones
  // included) with |from| < not_after <= |to|, soonest expiry first.
  virtual core::Result<std::vector<CertRecord>> listCertsExpiring(int64_t from, int64_t to) = 0;

  // --- certificate authorities ----------------------------------------
  // insertCa adds |ca| to the inventory; kAlreadyExists if the name or key
  // id is taken.
  virtual core::Status insertCa(const CaRecord& ca) = 0;
  // listCas returns the inventory, oldest first.
  virtual core::Result<std::vector<CaRecord>> listCas() = 0;
  // setCaState moves CA |name| to |state| (retired also stamps retired_at);
  // kNotFound if unknown, kFailedPrecondition if it is retired already.
  virtual core::Status setCaState(std::string_view name, CaState state) = 0;
  // insertCrossCert records a root rollover's cross certificate;
  // kAlreadyExists if the name is taken, kNotFound if either root is not in
  // the inventory.
  virtual core::Status insertCrossCert(const CrossCertRecord& cross) = 0;
  // listCrossCerts returns every cross certificate, oldest first.
  virtual core::Result<std::vector<CrossCertRecord>> listCrossCerts() = 0;
  // nextCrlNumber returns the next CRL number of CA |name| (1, 2, ...) and
  // records it, so numbers only grow (RFC 5280 §5.2.3).
  virtual core::Result<int64_t> nextCrlNumber(std::string_view name) = 0;

  // pubkeyCertifiedToOtherDevice reports whether a certificate for the key
  // |pubkey_fp| was ever issued to a principal other than |device|.
  virtual core::Result<bool> pubkeyCertifiedToOtherDevice(std::string_view pubkey_fp,
                                                          std::string_view device) = 0;

  // setDeviceCertTtl sets the lifetime of |device|'s future certificates
  // (0: back to the manufacturer's or the fleet's). kNotFound if unknown.
  virtual core::Status setDeviceCertTtl(std::string_view device, int64_t ttl_s) = 0;
  // certTtls returns the lifetimes set on |device| and on the manufacturer
  // its factory identity belongs to (0 where unset; all 0 for an unknown device).
  virtual core::Result<CertTtls> certTtls(std::string_view device) = 0;

  // --- manufacturers and factory identities ------------------------------
  // insertManufacturer stores |m| with its serial allow-list; kAlreadyExists
  // if the name is taken.
  virtual core::Status insertManufacturer(const ManufacturerRecord& m) = 0;
  // getManufacturer returns |name| (serials empty, serial_count set) or nullopt.
  virtual core::Result<std::optional<ManufacturerRecord>> getManufacturer(std::string_view name) = 0;
  // listManufacturers returns every manufacturer by name (serials empty).
  virtual core::Result<std::vector<ManufacturerRecord>> listManufacturers() = 0;
  // deleteManufacturer removes |name| and its allow-list; devices it enrolled
  // stay, and so do their factory bindings. false if there was none.
  virtual core::Result<bool> deleteManufacturer(std::string_view name) = 0;
  // manufacturerAllowsSerial reports whether |serial_number| is on |name|'s
  // allow-list (exact match).
  virtual core::Result<bool> manufacturerAllowsSerial(std::string_view name, std::string_view serial_number) = 0;
  // factoryDevice returns the device bound to (manufacturer, serial_number), or nullopt.
  virtual core::Result<std::optional<std::string>> factoryDevice(std::string_view manufacturer,
                                                                 std::string_view serial_number) = 0;
  // enrollFactory, in ONE transaction, records |cert| for a factory identity.
  // First enrollment (!rebootstrap): creates e.device in state active and the
  // binding; kAlreadyExists name_taken if the name exists, duplicate_identity
  // if the identity got bound meanwhile. Re-bootstrap: the identity must be
  // bound to e.device.name (else duplicate_identity), the device not revoked
  // (kUnauthenticated device_revoked) and without an unrevoked, unexpired
  // certificate (kAlreadyExists duplicate_identity); its old certificates are
  // revoked. key_reuse / serial_collision as enrollWithToken. A non-empty
  // e.request_id must name an approved request, which becomes issued.
  virtual core::Status enrollFactory(const FactoryEnrollment& e, const CertRecord& cert) = 0;
  // hasValidCert reports whether |device| holds an unrevoked, unexpired certificate.
  virtual core::Result<bool> hasValidCert(std::string_view device) = 0;

  // --- TPM endorsement: vendor CAs, EK bindings, attestation keys --------
  // insertTpmCa stores a TPM vendor CA (EK certificates chain to it);
  // kAlreadyExists if its fingerprint is there.
  virtual core::Status insertTpmCa(const TpmCaRecord& ca) = 0;
  virtual core::Result<std::vector<TpmCaRecord>> listTpmCas() = 0;
  // deleteTpmCa removes the CA with |fingerprint|; false if there was none.
  virtual core::Result<bool> deleteTpmCa(std::string_view fingerprint) = 0;
  // getDeviceTpm returns |device|'s EK binding and AK, or nullopt.
  virtual core::Result<std::optional<DeviceTpmRecord>> getDeviceTpm(std::string_view device) = 0;
  // deviceOfEk returns the device bound to the EK with |ek_fingerprint|, or nullopt.
  virtual core::Result<std::optional<std::string>> deviceOfEk(std::string_view ek_fingerprint) = 0;
  // bindDeviceEk binds |device| to an EK the operator registered (no AK
  // yet), replacing a binding without an AK. kNotFound for an unknown
  // device; kAlreadyExists if the EK is bound to another device or the
  // device already has another EK with a registered AK.
  virtual core::Status bindDeviceEk(std::string_view device, std::string_view ek_fingerprint) = 0;
  // registerAk records |t| (EK binding + AK) for t.device in one
  // transaction: kAlreadyExists if the EK is bound to another device or the
  // device is bound to another EK. last_reset_count restarts at -1.
  virtual core::Status registerAk(const DeviceTpmRecord& t) = 0;
  // setLastResetCount records the TPM resetCount of |device|'s newest accepted quote.
  virtual core::Status setLastResetCount(std::string_view device, int64_t reset_count) = 0;
  // deleteDeviceTpm removes |device|'s EK binding and AK; false if none.
  virtual core::Result<bool> deleteDeviceTpm(std::string_view device) = 0;

  // --- enrollment requests (manual approval) ------------------------------
  // insertEnrollRequest stores a new pending request.
  virtual core::Status insertEnrollRequest(const EnrollRequestRecord& request) = 0;
  // openEnrollRequest returns |device|'s newest request that is not issued
  // and not expired (pending, approved or denied), or nullopt.
  virtual core::Result<std::optional<EnrollRequestRecord>> openEnrollRequest(std::string_view device) = 0;
  // listEnrollRequests returns the unexpired pending and approved requests, oldest first.
  virtual core::Result<std::vector<EnrollRequestRecord>> listEnrollRequests() = 0;
  // decideEnrollRequest approves (or denies) request |id| by |actor| and
  // returns it. kNotFound if unknown or expired; kFailedPrecondition if it
  // was already issued, or denied, or (approve) is not pending.
  virtual core::Result<EnrollRequestRecord> decideEnrollRequest(std::string_view id, bool approve,
                                                                std::string_view actor) = 0;

  // --- policy ----------------------------------------------------------
  // insertPolicyVersion stores |text| as the new active policy and returns
  // its version (1, 2, ...).
  virtual core::Result<int64_t> insertPolicyVersion(std::string_view text, std::string_view actor) = 0;
  // activePolicy returns the newest policy version, or nullopt if none.
  virtual core::Result<std::optional<PolicyVersion>> activePolicy() = 0;
  // policyVersion returns version |version|, or nullopt if there is none.
  virtual core::Result<std::optional<PolicyVersion>> policyVersion(int64_t version) = 0;
  // listPolicyVersions returns up to |limit| versions, newest first, without
  // their text.
  virtual core::Result<std::vector<PolicyVersion>> listPolicyVersions(size_t limit) = 0;

  // --- events ----------------------------------------------------------
  // appendEvents inserts |batch| in one transaction, assigns increasing ids
  // (the |id| fields given are ignored) and returns the stored records.
  virtual core::Result<std::vector<EventRecord>> appendEvents(std::vector<EventRecord> batch) = 0;
  // listEvents returns events oldest first. With |since_id|: the first
  // |limit| events with id > *since_id. Without: the last |limit| events
  // ("warden events" without --since shows the last 1,000).
  virtual core::Result<std::vector<EventRecord>> listEvents(std::optional<int64_t> since_id, size_t limit) = 0;
  // lastEventId returns the highest event id so far (0 if none); a follower
  // that "starts from now" begins after it.
  virtual core::Result<int64_t> lastEventId() = 0;
  // pruneEvents deletes events with time < |before_time| and returns how many.
  virtual core::Result<int64_t> pruneEvents(int64_t before_time) = 0;

  // --- firmware reference values and posture (issue 6) -----------------
  // approveFirmware records |a| (digest, model, version, approved_by) as
  // approved now. Returns false if the same digest and model are already
  // approved with the same version; kFailedPrecondition if approved with
  // another version; a revoked approval is approved again.
  virtual core::Result<bool> approveFirmware(const FirmwareApproval& a) = 0;
  // revokeFirmwareApproval revokes the approvals of |digest| (for |model|
  // only, if given) by |actor| and returns them; kNotFound if none is approved.
  virtual core::Result<std::vector<FirmwareApproval>> revokeFirmwareApproval(std::string_view digest,
                                                                             std::optional<std::string_view> model,
                                                                             std::string_view actor) = 0;
  // listFirmware returns every approval, revoked ones included, by model then digest.
  virtual core::Result<std::vector<FirmwareApproval>> listFirmware() = 0;
  // savePosture stores |posture| (insert or replace) and, if |state| is set,
  // moves the device to it in the same transaction. kNotFound for an unknown
  // device; kFailedPrecondition if |state| is set and the device is revoked
  // or pending (only active <-> quarantined moves here).
  virtual core::Status savePosture(const PostureRecord& posture, std::optional<DeviceState> state) = 0;
  // getPosture returns |device|'s posture, or nullopt if none was stored.
  virtual core::Result<std::optional<PostureRecord>> getPosture(std::string_view device) = 0;
  // listPostures returns every stored posture, by device name.
  virtual core::Result<std::vector<PostureRecord>> listPostures() = 0;
  // listEventsAbout returns the last |limit| events whose principal is
  // |principal| (a SPIFFE ID), oldest first.
  virtual core::Result<std::vector<EventRecord>> listEventsAbout(std::string_view principal, size_t limit) = 0;

  // --- metadata --------------------------------------------------------
  // getMeta returns the value stored under |key|, or nullopt.
  virtual core::Result<std::optional<std::string>> getMeta(std::string_view key) = 0;
  // setMeta stores |value| under |key|, replacing any previous value.
  virtual core::Status setMeta(std::string_view key, std::string_view value) = 0;
};

}  // namespace warden::store

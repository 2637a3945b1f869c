#pragma once

// device_attestor.h: one attestation round of the agent against the
// verifier's /attest/v1/* endpoints (docs/attestation.md): a challenge, the
// AK's registration when the server does not know it (TPM only), evidence
// (a TPM quote, or the log signed by the device key), and the verdict.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "agent/measured_boot.h"
#include "agent/tpm_attestor.h"
#include "core/status.h"

namespace warden::agent {

// AttestationApi posts JSON to the verifier. The agent's implementation
// (attest_command.cc) uses its mutual-TLS ApiClient; tests use a double that
// verifies with src/trust.
class AttestationApi {
 public:
  struct Reply {
    int status = 0;
    nlohmann::json body;  // the parsed JSON body (null if it was empty or not JSON)
  };
  virtual ~AttestationApi() = default;
  // post sends |body| to |path| (e.g. "/attest/v1/challenge"). A failed
  // Status is a transport failure; HTTP errors are replies.
  virtual core::Result<Reply> post(std::string_view path, const nlohmann::json& body) = 0;
};

// DeviceIdentity signs software evidence: the device's current key and the
// SPIFFE ID of its certificate. |tpm_key_pem| is the device key's TSS2
// PRIVATE KEY blob when it lives in a TPM (key store tpm2), "" otherwise: a
// TPM round then proves where the key lives (TPM2_Certify by the AK).
struct DeviceIdentity {
  EVP_PKEY* key = nullptr;
  std::string spiffe_id;
  std::string tpm_key_pem;
};

// Verdict is the server's answer to evidence: {result, reason, state,
// trust, next_due_s}.
struct Verdict {
  bool ok = false;             // result == "ok"
  std::string result, reason, state;
  std::optional<int64_t> trust;
  std::optional<int64_t> next_due_s;  // null: no segment requires attestation
  nlohmann::json body;         // the reply as received
};

// AttestorFiles are the agent directory's attestation files.
struct AttestorFiles {
  explicit AttestorFiles(std::string dir) : dir(std::move(dir)) {}
  std::string dir;
  std::string log() const { return dir + "/attestation-log.json"; }
  std::string akPublic() const { return dir + "/ak.pub"; }
  std::string akPrivate() const { return dir + "/ak.priv"; }
  // akRegistered holds the hex TPM name of the AK the server activated.
  std::string akRegistered() const { return dir + "/ak.registered"; }
};

class DeviceAttestor {
 public:
  // create prepares attestation for the agent directory |dir|: with a
  // non-empty |tcti|, opens the TPM, loads the AK kept in |dir| (creating it
  // under the EK, 0600 blobs, if absent or not loadable by this TPM) and
  // starts or resumes measured boot; without, software evidence. |firmware|
  // is the image to measure ("" for none).
  static core::Result<std::unique_ptr<DeviceAttestor>> create(const std::string& dir, const std::string& tcti,
                                                              const std::string& firmware);

  // attestOnce runs one round: measures the firmware again, asks for a
  // challenge, registers the AK first if the server (or the local record)
  // says it is not registered, sends evidence and returns the verdict.
  // |identity| signs software evidence; with a TPM, a non-empty
  // identity.tpm_key_pem is certified by the AK over the same nonce and sent
  // as `key_certify` (if the TPM cannot load the key, the round goes on
  // without it and says so in the log). Transport
  // failures keep their codes (kUnavailable, ...); an HTTP error reply is
  // kFailedPrecondition "POST PATH: STATUS CODE: message" (kUnimplemented on
  // 404: the server has no attestation endpoints).
  core::Result<Verdict> attestOnce(AttestationApi& api, const DeviceIdentity& identity);

  bool hasTpm() const { return tpm_ != nullptr; }
  const MeasuredBoot& measuredBoot() const { return *boot_; }

 private:
  DeviceAttestor(AttestorFiles files) : files_(std::move(files)) {}
  core::Status loadOrCreateAk();
  core::Status registerAk(AttestationApi& api);
  // keyCertify returns the `key_certify` evidence for |tpm_key_pem| over
  // |nonce|, or null (logged) when the key cannot be certified.
  nlohmann::json keyCertify(const std::string& tpm_key_pem, const std::string& nonce);

  AttestorFiles files_;
  std::unique_ptr<TpmAttestor> tpm_;
  std::unique_ptr<MeasuredBoot> boot_;
  AkBlobs ak_;
  std::string ak_name_hex_;
};

}  // namespace warden::agent

#pragma once

// soft_tpm.h: a real software TPM (swtpm) for unit tests, on two free
// loopback ports in a temporary directory; stopped and removed on
// destruction. Optionally provisioned by swtpm_setup with an EK certificate
// issued by swtpm_localca, like tests/e2e/tpm_fixture.py does.

#include <cstdint>
#include <string>
#include <sys/types.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tpm2_types.h>

namespace warden::testing {

class SoftTpm {
 public:
  // SoftTpm starts swtpm; with |with_ek_cert| swtpm_setup first writes an
  // EK certificate to NV 0x01c00002 (takes a few seconds). Failures are
  // fatal test failures (ADD_FAILURE + ok() == false).
  explicit SoftTpm(bool with_ek_cert = false);
  ~SoftTpm();
  SoftTpm(const SoftTpm&) = delete;
  SoftTpm& operator=(const SoftTpm&) = delete;

  bool ok() const { return pid_ > 0; }
  // tcti is the direct TCTI ("swtpm:host=127.0.0.1,port=P"), no resource manager.
  std::string tcti() const;
  // ekCaPem returns swtpm_localca's issuing and root CA certificates (PEM).
  std::string ekCaPem() const;
  // reboot power-cycles the TPM (swtpm_ioctl -i, then TPM2_Startup(CLEAR)):
  // PCRs reset, resetCount grows, transient objects vanish.
  bool reboot();

 private:
  bool setup();
  // startSwtpm starts swtpm on two fresh ports, with other ports if a
  // parallel test took them first (launchSwtpm: one try, |error| on failure).
  bool startSwtpm();
  enum class Launch { kListening, kPortTaken, kFailed };
  Launch launchSwtpm(std::string& error);
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// kSrkHandle is where Tpm2KeyStore keeps the SRK.
inline constexpr uint32_t kSrkHandle = 0x81000001;
// kDeviceKeyAttributes are a TPM-held device key's (as tpm2-openssl makes it).
inline constexpr TPMA_OBJECT kDeviceKeyAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                                    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                                    TPMA_OBJECT_SIGN_ENCRYPT;

// KeyBlobs is a key as TPM2_Create returns it: marshalled TPM2B_PUBLIC and
// TPM2B_PRIVATE.
struct KeyBlobs {
  std::string key_public, key_private;
};

// TpmKeys makes, with its own ESAPI context on |tcti|, what Tpm2KeyStore
// makes: the SRK (ECC P-256 storage key) at kSrkHandle and EC P-256 signing
// keys under it. swtpm serves one connection at a time: destroy it before
// another client connects.
class TpmKeys {
 public:
  explicit TpmKeys(const std::string& tcti);
  ~TpmKeys();
  TpmKeys(const TpmKeys&) = delete;
  TpmKeys& operator=(const TpmKeys&) = delete;

  bool makeSrk();
  // makeKey creates an EC P-256 signing key under the SRK with |attributes|
  // (empty blobs and a test failure if the TPM refuses).
  KeyBlobs makeKey(TPMA_OBJECT attributes);

 private:
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* ctx_ = nullptr;
};

// tss2PrivateKeyPem wraps |key| (a child of kSrkHandle, no password) as a
// "TSS2 PRIVATE KEY" PEM, as tpm2-openssl writes it.
std::string tss2PrivateKeyPem(const KeyBlobs& key);

}  // namespace warden::testing

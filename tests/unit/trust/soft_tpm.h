#pragma once

// soft_tpm.h: a real software TPM (swtpm) for unit tests, on two free
// loopback ports in a temporary directory; stopped and removed on
// destruction. Optionally provisioned by swtpm_setup with an EK certificate
// issued by swtpm_localca, like tests/e2e/tpm_fixture.py does.

#include <string>
#include <sys/types.h>

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
  bool startSwtpm();
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace warden::testing

#pragma once

// softhsm.h: one SoftHSM2 token for a whole test binary. SoftHSM reads
// SOFTHSM2_CONF when the module is initialized, and libp11's engine keeps
// the module for the life of the process, so every test of a binary shares
// this token (label "warden-test", user PIN in a 0600 file).

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "unit/testing/temp_dir.h"

namespace warden::testing {

inline constexpr const char* kSoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";

class SoftHsm {
 public:
  // instance creates the token on first use; aborts if softhsm2-util fails
  // (scripts/setup installs softhsm2).
  static SoftHsm& instance() {
    static SoftHsm hsm;
    return hsm;
  }

  const std::string& pinFile() const { return pin_file_; }
  std::string uri(const std::string& object) const {
    return "pkcs11:token=warden-test;object=" + object + ";type=private?module-path=" + kSoftHsmModule +
           "&pin-source=file:" + pin_file_;
  }
  const std::string& dir() const { return dir_.path(); }

 private:
  SoftHsm() : dir_("warden-softhsm") {
    std::string tokens = dir_.file("tokens");
    ::mkdir(tokens.c_str(), 0700);
    std::string conf = dir_.file("softhsm2.conf");
    std::ofstream(conf) << "directories.tokendir = " << tokens << "\nobjectstore.backend = file\nlog.level = ERROR\n";
    ::setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    pin_file_ = dir_.file("pin");
    std::ofstream(pin_file_) << "1234\n";
    ::chmod(pin_file_.c_str(), 0600);
    std::string cmd = "softhsm2-util --init-token --free --label warden-test --pin 1234 --so-pin 5678 >/dev/null";
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "softhsm2-util --init-token failed: run scripts/setup\n");
      std::abort();
    }
  }

  TempDir dir_;
  std::string pin_file_;
};

}  // namespace warden::testing

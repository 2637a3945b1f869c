// tss2_key_fuzz exercises the TSS2 PRIVATE KEY parser (src/keystore/
// tss2_private_key.h) on DER and PEM input and checks what a parsed key
// promises: a persistent parent and two TPM2B blobs whose size prefixes
// match.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keystore/tss2_private_key.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

void checkKey(const warden::core::Result<warden::keystore::Tss2PrivateKey>& key) {
  if (!key.isOk()) {
    check(key.status().code() == warden::core::ErrorCode::kInvalidArgument);
    return;
  }
  check((key->parent >> 24) == 0x81);
  for (std::string_view blob : {std::string_view(key->key_public), std::string_view(key->key_private)}) {
    check(blob.size() >= 3);
    const size_t size = (static_cast<size_t>(static_cast<uint8_t>(blob[0])) << 8) | static_cast<uint8_t>(blob[1]);
    check(size + 2 == blob.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  checkKey(warden::keystore::parseTss2PrivateKeyDer(input));
  checkKey(warden::keystore::parseTss2PrivateKeyPem(input));
  return 0;
}

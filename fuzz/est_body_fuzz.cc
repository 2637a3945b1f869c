// est_body_fuzz feeds arbitrary bytes to the EST body parsers: as a CSR
// request body (parse + check, as simpleenroll does) and as a certs-only
// PKCS#7 response body (as the agent does). Neither may crash, leak or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pki/est_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto csr = warden::pki::parseEstCsrBody(input);
  if (csr.isOk()) (void)warden::pki::checkCsr(csr->get());
  auto certs = warden::pki::parsePkcs7CertsOnly(input);
  if (certs.isOk()) {
    std::vector<X509*> raw;
    for (const auto& c : *certs) raw.push_back(c.get());
    // Re-encoding what was parsed must work and parse back to the same count.
    auto again = warden::pki::parsePkcs7CertsOnly(warden::pki::pkcs7CertsOnly(raw));
    if (!again.isOk() || again->size() != raw.size()) __builtin_trap();
  }
  return 0;
}

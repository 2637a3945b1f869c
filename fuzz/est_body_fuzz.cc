// est_body_fuzz feeds arbitrary bytes to the EST body parsers: as a CSR
// request body (parse + check, and checkedCsrKey as simpleenroll does) and as
// a certs-only PKCS#7 response body (as the agent does). Neither may crash,
// leak or hang, and checkedCsrKey's lean route must agree with parse + check
// on every input: the same acceptance and the same key.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "pki/est_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto csr = warden::pki::parseEstCsrBody(input);
  const bool full_ok = csr.isOk() && warden::pki::checkCsr(csr->get()).isOk();
  auto key = warden::pki::checkedCsrKey(input);
  if (key.isOk() != full_ok) __builtin_trap();
  if (key.isOk() && EVP_PKEY_eq(key->get(), X509_REQ_get0_pubkey(csr->get())) != 1) __builtin_trap();
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

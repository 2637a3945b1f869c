// csr_attrs_fuzz feeds arbitrary bytes to the csrattrs readers (RFC 7030
// §4.5.2): as a DER CsrAttrs and as a base64 response body, as the agent reads
// it. Neither may crash, leak or hang; Warden's own answer must parse.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pki/csr_attrs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto der = warden::pki::parseCsrAttrsDer(input);
  if (der.isOk()) (void)der->wantsEcdsaSha256P256();
  auto body = warden::pki::parseCsrAttrsBody(input);
  if (body.isOk()) (void)body->wantsEcdsaSha256P256();
  (void)warden::pki::oidToText(input);
  static const bool own_ok = warden::pki::parseCsrAttrsBody(warden::pki::csrAttrsBody()).isOk();
  if (!own_ok) __builtin_trap();
  return 0;
}

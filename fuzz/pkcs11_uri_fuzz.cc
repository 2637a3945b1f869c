// pkcs11_uri_fuzz exercises keystore::parsePkcs11Uri (RFC 7512) and checks
// that every URI it accepts prints to a canonical form that parses back to
// the same attributes (a Pkcs11Uri has no field that could hold a PIN).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "keystore/pkcs11_uri.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace warden::keystore;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto uri = parsePkcs11Uri(text);
  if (!uri.isOk()) return 0;
  check(text.size() <= kMaxPkcs11UriLength);
  check(uri->type.empty() || uri->type == "private" || uri->type == "public" || uri->type == "cert" ||
        uri->type == "secret-key" || uri->type == "data");
  check(uri->pin_source.empty() || uri->pin_source.front() == '/');
  check(uri->module_path.empty() || uri->module_path.front() == '/');
  // The canonical form has no PIN: Pkcs11Uri cannot hold one, and the round
  // trip below checks that it carries exactly the parsed attributes.
  std::string canonical = uri->toString();
  auto again = parsePkcs11Uri(canonical);
  check(again.isOk());
  check(again->token == uri->token && again->manufacturer == uri->manufacturer && again->serial == uri->serial &&
        again->model == uri->model && again->object == uri->object && again->id == uri->id &&
        again->type == uri->type && again->slot_id == uri->slot_id && again->module_path == uri->module_path &&
        again->module_name == uri->module_name && again->pin_source == uri->pin_source);
  check(again->toString() == canonical);
  auto path = parsePkcs11Uri(uri->pathOnly());
  check(path.isOk() && path->module_path.empty() && path->pin_source.empty());
  return 0;
}

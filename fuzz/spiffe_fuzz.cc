// spiffe_fuzz exercises the name parsers of src/core: parseSpiffeId,
// isValidName, parseLabel and parseDuration, and checks round trips: a parsed
// SPIFFE ID prints back to the same text, a parsed duration formats and
// parses back to the same number of seconds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/names.h"
#include "core/spiffe_id.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace warden::core;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto id = parseSpiffeId(text);
  if (id.isOk()) {
    check(id->toString() == text);
    check(isValidName(id->name) && isValidTrustDomain(id->trust_domain));
  }

  if (isValidName(text)) {
    check(!text.empty() && text.size() <= 63);
    check(isValidLabelKey(text) && isValidLabelValue(text));
  }

  std::string key = "k", value = "v";
  if (parseLabel(text, key, value).isOk()) {
    check(isValidLabelKey(key) && isValidLabelValue(value));
    check(key + "=" + value == text);
  }

  auto seconds = parseDuration(text);
  if (seconds.isOk()) {
    check(*seconds > 0);
    auto again = parseDuration(formatDuration(*seconds));
    check(again.isOk() && *again == *seconds);
  }
  return 0;
}

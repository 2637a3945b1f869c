#include "core/clock.h"

#include <ctime>

namespace warden::core {
namespace {

class RealClock final : public Clock {
 public:
  SystemTime now() const override { return std::chrono::system_clock::now(); }
  std::chrono::steady_clock::time_point steadyNow() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace

const Clock& systemClock() {
  static const RealClock clock;
  return clock;
}

int64_t unixSeconds(SystemTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

SystemTime fromUnixSeconds(int64_t s) { return SystemTime(std::chrono::seconds(s)); }

std::string formatRfc3339(SystemTime t) {
  std::time_t tt = static_cast<std::time_t>(unixSeconds(t));
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace warden::core

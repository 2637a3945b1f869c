#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace warden::core {

void initLogging(const std::string& level) {
  auto logger = spdlog::stderr_color_mt("warden");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace warden::core

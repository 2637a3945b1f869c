#pragma once

#include <spdlog/spdlog.h>

namespace warden::core {

// initLogging configures the process-wide spdlog logger: human-readable lines
// on stderr at |level| ("trace".."critical"). Secrets are never passed to it.
void initLogging(const std::string& level = "info");

}  // namespace warden::core

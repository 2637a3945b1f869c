#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <sys/types.h>

#include "core/status.h"

namespace warden::core {

// readFile reads |path| whole, refusing files larger than |max_bytes| with
// kInvalidArgument; kNotFound if it does not exist.
Result<std::string> readFile(const std::string& path, size_t max_bytes = 16 * 1024 * 1024);

// writeFileAtomic writes |content| to a temporary file next to |path| with
// permissions |mode| (0600 for keys), fsyncs it and renames it over |path|, so
// a reader sees either the old or the new file, never a partial one.
Status writeFileAtomic(const std::string& path, std::string_view content, mode_t mode = 0600);

// makePrivateDir creates |path| with mode 0700 (and its missing parents 0755);
// an existing directory is left as it is.
Status makePrivateDir(const std::string& path);

}  // namespace warden::core

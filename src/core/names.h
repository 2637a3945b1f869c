#pragma once

#include <map>
#include <string>
#include <string_view>

#include "core/status.h"

namespace warden::core {

// Labels are a principal's key=value attributes, ordered for stable output.
using Labels = std::map<std::string, std::string>;

// isValidName reports whether |s| is a valid device name or role:
// ^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$ (a DNS label, lowercase).
bool isValidName(std::string_view s);
// isValidLabelKey: the name alphabet plus '.' and '_', 1-63 characters, first
// and last alphanumeric.
bool isValidLabelKey(std::string_view s);
// isValidLabelValue: ^[A-Za-z0-9._-]{1,63}$.
bool isValidLabelValue(std::string_view s);
// isValidTrustDomain reports whether |s| is a DNS name usable as a SPIFFE
// trust domain: lowercase labels of isValidName joined by '.', <= 253 chars.
bool isValidTrustDomain(std::string_view s);

// checkName returns kInvalidArgument naming |what| unless isValidName(s).
Status checkName(std::string_view what, std::string_view s);
// parseLabel parses "k=v" into |key| and |value|, checking both.
Status parseLabel(std::string_view text, std::string& key, std::string& value);

// parseDuration parses "30s", "5m", "2h", "7d" (a positive integer and one
// unit) into seconds; kInvalidArgument otherwise.
Result<int64_t> parseDuration(std::string_view text);
// formatDuration is the inverse of parseDuration, using the largest unit
// that divides |seconds| exactly.
std::string formatDuration(int64_t seconds);

}  // namespace warden::core

#pragma once

// MQTT topic names and topic filters (MQTT 5.0 §4.7, identical in 3.1.1
// §4.7). These functions are the security boundary against wildcard
// escalation: the policy engine decides SUBSCRIBE with filterIsSubset and
// filtersOverlap, so they are exact, not approximations. No Asio here: this
// file is built by the libFuzzer targets.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace warden::policy {

// validateTopicName returns ok if |t| is a valid MQTT topic name: non-empty
// (MQTT 5.0 §4.7.3), no '+' or '#' (§4.7.1), no U+0000 (§1.5.4), at most
// |max_len| bytes and at most |max_levels| levels. Otherwise kInvalidArgument
// with the reason. UTF-8 well-formedness is checked by the codec.
core::Status validateTopicName(std::string_view t, size_t max_len = 256, size_t max_levels = 16);

// validateTopicFilter returns ok if |f| is a valid MQTT topic filter:
// non-empty, '#' only as the whole last level (§4.7.1.2), '+' only as a whole
// level (§4.7.1.3), no U+0000, at most |max_len| bytes and |max_levels|
// levels. Otherwise kInvalidArgument with the reason. A "$share/..." filter is
// validated as a plain filter here; use parseSharedSubscription for shares.
core::Status validateTopicFilter(std::string_view f, size_t max_len = 256, size_t max_levels = 16);

// topicMatchesFilter reports whether topic name |topic| is matched by topic
// filter |filter| (§4.7). A filter whose first level is '+' or '#' never
// matches a topic starting with '$' (§4.7.2). "a/#" matches "a" (§4.7.1.2).
// Inputs are assumed valid; invalid ones simply do not match.
bool topicMatchesFilter(std::string_view filter, std::string_view topic);

// filterIsSubset reports whether every topic that |filter| can match is also
// matched by |pattern| (both topic filters). Exact, including the $-rules:
// "#" is not a subset of "a/#"; "a/+/x" is not a subset of "a/b/x"; "a" is a
// subset of "a/#"; "a/#" is not a subset of "a/+/#". Invalid inputs yield
// false (fail closed).
bool filterIsSubset(std::string_view filter, std::string_view pattern);

// filtersOverlap reports whether some topic name is matched by both |a| and
// |b| (respecting the $-rules). Invalid inputs yield true (fail closed: an
// unparseable forbid pattern is treated as overlapping).
bool filtersOverlap(std::string_view a, std::string_view b);

// SharedSubscription is a parsed "$share/<group>/<filter>" (MQTT 5.0
// §4.8.2).
struct SharedSubscription {
  std::string group;
  std::string filter;
};

// parseSharedSubscription returns nullopt if |f| is not a shared
// subscription (does not start with "$share/" and is not exactly "$share"),
// the parsed share if it is well formed (non-empty group without '/', '+',
// '#'; non-empty valid filter), and kInvalidArgument if it is a malformed
// share such as "$share/g", "$share//x" or "$share/g+/x".
core::Result<std::optional<SharedSubscription>> parseSharedSubscription(std::string_view f);

}  // namespace warden::policy

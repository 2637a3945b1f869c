#include "policy/topic.h"

#include <string>
#include <vector>

namespace warden::policy {
namespace {

// kNoLimit is used where a caller has already applied the configured limits
// to the whole string; the MQTT wire format caps strings at 65,535 bytes.
constexpr size_t kNoLimit = 65535;

// LevelCursor walks the '/'-separated levels of a topic or filter without
// allocating. "a//b" has three levels, the middle one empty; "" has one
// empty level (MQTT 5.0 §4.7.1.1).
class LevelCursor {
 public:
  explicit LevelCursor(std::string_view s) : rest_(s) {}

  // next stores the next level in |out| and returns false when none is left.
  bool next(std::string_view& out) {
    if (done_) return false;
    size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      out = rest_;
      done_ = true;
      return true;
    }
    out = rest_.substr(0, slash);
    rest_.remove_prefix(slash + 1);
    return true;
  }
  bool hasMore() const { return !done_; }

 private:
  std::string_view rest_;
  bool done_ = false;
};

// One pass over the bytes: string_view::find_first_of calls memchr on the
// set once per character, which costs more than the rest of a topic match.
bool hasWildcard(std::string_view s) {
  for (char c : s) {
    if (c == '+' || c == '#') return true;
  }
  return false;
}

// hasWildcardOrNul: '+', '#' or U+0000, none of which a topic name may hold.
bool hasWildcardOrNul(std::string_view s) {
  for (char c : s) {
    if (c == '+' || c == '#' || c == '\0') return true;
  }
  return false;
}

bool isWildcardLevel(std::string_view level) { return level == "+" || level == "#"; }

std::vector<std::string_view> splitLevels(std::string_view s) {
  std::vector<std::string_view> levels;
  LevelCursor cursor(s);
  std::string_view level;
  while (cursor.next(level)) levels.push_back(level);
  return levels;
}

// normalizedLevels splits a (valid) filter into levels, rewriting the two
// filters whose level-by-level reading would include a topic that cannot
// exist, so that the level-wise comparisons below are exact:
//  - "#" becomes "+/#": every topic name has at least one level, so the two
//    match exactly the same topics (MQTT 5.0 §4.7.1.2, §4.7.2);
//  - "/#" becomes "/+/#": read level by level, "/#" would also match the
//    one-level topic "", but topic names are non-empty (§4.7.3).
// Every other filter that reads as matching "" ("+", "+/#") also matches a
// real one-level topic, so "" never decides a subset or overlap question.
std::vector<std::string_view> normalizedLevels(std::string_view filter) {
  if (filter == "#") return {"+", "#"};
  if (filter == "/#") return {"", "+", "#"};
  return splitLevels(filter);
}

// startsWithDollarLiteral reports whether |first_level| can only match
// topics beginning with '$' (MQTT 5.0 §4.7.2).
bool startsWithDollarLiteral(std::string_view first_level) {
  return !first_level.empty() && first_level.front() == '$';
}

}  // namespace

core::Status validateTopicName(std::string_view t, size_t max_len, size_t max_levels) {
  // MQTT 5.0 §4.7.3: topic names are at least one character long.
  if (t.empty()) return core::invalidArgument("topic name is empty");
  if (t.size() > max_len) {
    return core::invalidArgument("topic name is " + std::to_string(t.size()) + " bytes, over the limit of " +
                                 std::to_string(max_len));
  }
  // MQTT 5.0 §4.7.1: wildcards are only for filters, never in topic names.
  if (hasWildcard(t)) return core::invalidArgument("topic name contains a wildcard ('+' or '#')");
  // MQTT 5.0 §1.5.4 / §4.7.3: U+0000 is not allowed.
  if (t.find('\0') != std::string_view::npos) return core::invalidArgument("topic name contains U+0000");
  size_t levels = 1;
  for (char c : t) levels += (c == '/');
  if (levels > max_levels) {
    return core::invalidArgument("topic name has " + std::to_string(levels) + " levels, over the limit of " +
                                 std::to_string(max_levels));
  }
  return core::Status::ok();
}

core::Status validateTopicFilter(std::string_view f, size_t max_len, size_t max_levels) {
  if (f.empty()) return core::invalidArgument("topic filter is empty");
  if (f.size() > max_len) {
    return core::invalidArgument("topic filter is " + std::to_string(f.size()) + " bytes, over the limit of " +
                                 std::to_string(max_len));
  }
  if (f.find('\0') != std::string_view::npos) return core::invalidArgument("topic filter contains U+0000");
  LevelCursor cursor(f);
  std::string_view level;
  size_t levels = 0;
  while (cursor.next(level)) {
    ++levels;
    if (level == "#") {
      // MQTT 5.0 §4.7.1.2: '#' is the last character and a whole level.
      if (cursor.hasMore()) return core::invalidArgument("'#' must be the last level of a topic filter");
    } else if (level == "+") {
      // MQTT 5.0 §4.7.1.3: '+' occupies an entire level.
    } else if (hasWildcard(level)) {
      return core::invalidArgument("a wildcard ('+' or '#') must occupy a whole level of a topic filter");
    }
  }
  if (levels > max_levels) {
    return core::invalidArgument("topic filter has " + std::to_string(levels) + " levels, over the limit of " +
                                 std::to_string(max_levels));
  }
  return core::Status::ok();
}

bool topicMatchesFilter(std::string_view filter, std::string_view topic) {
  // An invalid topic name (wildcard or U+0000, §4.7.3) matches nothing.
  if (filter.empty() || topic.empty() || hasWildcardOrNul(topic)) return false;
  LevelCursor f(filter);
  LevelCursor t(topic);
  std::string_view fl;
  std::string_view tl;
  bool first = true;
  while (true) {
    bool have_f = f.next(fl);
    bool have_t = t.next(tl);
    if (!have_f) return !have_t;  // filter exhausted: match iff the topic is too
    if (first && isWildcardLevel(fl) && startsWithDollarLiteral(tl)) {
      // MQTT 5.0 §4.7.2: a leading wildcard never matches a '$' topic.
      return false;
    }
    first = false;
    if (fl == "#") {
      // '#' matches the parent and any number of child levels (§4.7.1.2);
      // it must be the last level of a valid filter.
      return !f.hasMore();
    }
    if (!have_t) return false;
    if (fl == "+") continue;
    if (hasWildcard(fl)) return false;  // invalid filter: no match
    if (fl != tl) return false;
  }
}

bool filterIsSubset(std::string_view filter, std::string_view pattern) {
  if (!validateTopicFilter(filter, kNoLimit, kNoLimit).isOk()) return false;
  if (!validateTopicFilter(pattern, kNoLimit, kNoLimit).isOk()) return false;
  std::vector<std::string_view> f = normalizedLevels(filter);
  std::vector<std::string_view> p = normalizedLevels(pattern);

  // MQTT 5.0 §4.7.2: a filter starting with a '$' literal matches only '$'
  // topics, which a pattern with a leading wildcard never matches. (A filter
  // with a leading wildcard matches no '$' topic, so it needs no such rule.)
  if (startsWithDollarLiteral(f[0]) && isWildcardLevel(p[0])) return false;

  // Both sets are products of per-level sets, so the subset test goes level
  // by level. After normalization '#' never stands at index 0.
  for (size_t i = 0;; ++i) {
    bool f_done = i >= f.size();
    bool p_done = i >= p.size();
    if (!p_done && p[i] == "#") return true;  // pattern takes every remaining suffix
    if (f_done) return p_done;                // the pattern still demands a level
    if (p_done) return false;                 // the filter matches longer topics
    if (f[i] == "#") return false;            // the filter ends here or goes deeper; the pattern doesn't
    if (p[i] == "+") continue;                // any single level (the $ case was handled above)
    if (f[i] == "+") return false;            // a wildcard level is not inside one literal
    if (f[i] != p[i]) return false;
  }
}

bool filtersOverlap(std::string_view a, std::string_view b) {
  // Fail closed: an unparseable filter is treated as overlapping everything,
  // since callers use this to apply forbid rules.
  if (!validateTopicFilter(a, kNoLimit, kNoLimit).isOk()) return true;
  if (!validateTopicFilter(b, kNoLimit, kNoLimit).isOk()) return true;
  std::vector<std::string_view> x = normalizedLevels(a);
  std::vector<std::string_view> y = normalizedLevels(b);

  // MQTT 5.0 §4.7.2: a '$' topic is matched only by filters whose first level
  // is that literal, so a leading wildcard and a leading '$' literal share no
  // topic.
  if (isWildcardLevel(x[0]) && startsWithDollarLiteral(y[0])) return false;
  if (isWildcardLevel(y[0]) && startsWithDollarLiteral(x[0])) return false;

  for (size_t i = 0;; ++i) {
    bool x_done = i >= x.size();
    bool y_done = i >= y.size();
    // '#' matches any remaining suffix, including the empty one; the other
    // filter's remainder matches at least one suffix.
    if (!x_done && x[i] == "#") return true;
    if (!y_done && y[i] == "#") return true;
    if (x_done || y_done) return x_done && y_done;
    if (x[i] == "+" || y[i] == "+") continue;
    if (x[i] != y[i]) return false;
  }
}

core::Result<std::optional<SharedSubscription>> parseSharedSubscription(std::string_view f) {
  // MQTT 5.0 §4.8.2: "$share/{ShareName}/{filter}".
  constexpr std::string_view kPrefix = "$share/";
  if (f == "$share") return core::invalidArgument("shared subscription \"$share\" has no share name and no filter");
  if (f.substr(0, kPrefix.size()) != kPrefix) return std::optional<SharedSubscription>();
  std::string_view rest = f.substr(kPrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return core::invalidArgument("shared subscription has no topic filter after the share name");
  }
  std::string_view group = rest.substr(0, slash);
  std::string_view filter = rest.substr(slash + 1);
  if (group.empty()) return core::invalidArgument("shared subscription has an empty share name");
  // The share name cannot contain '/', '+' or '#' (§4.8.2); '/' is
  // excluded by construction.
  if (hasWildcard(group)) return core::invalidArgument("shared subscription share name contains '+' or '#'");
  if (group.find('\0') != std::string_view::npos) {
    return core::invalidArgument("shared subscription share name contains U+0000");
  }
  if (filter.empty()) return core::invalidArgument("shared subscription has an empty topic filter");
  // The caller applies the configured length and level limits to the whole
  // filter; here only the structure is checked.
  core::Status st = validateTopicFilter(filter, kNoLimit, kNoLimit);
  if (!st.isOk()) return core::invalidArgument("shared subscription: " + st.message());
  return std::optional<SharedSubscription>(SharedSubscription{std::string(group), std::string(filter)});
}

}  // namespace warden::policy

// topic_fuzz checks the topic functions of src/policy/topic.h for crashes and
// for consistency between matching, subset and overlap. Input: up to three
// '\n'-separated strings A, B, T (two filters and a topic name).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/topic.h"

namespace {

void check(bool condition) {
  if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace warden::policy;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view parts[3];
  for (int i = 0; i < 3; ++i) {
    size_t nl = in.find('\n');
    parts[i] = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  std::string_view a = parts[0], b = parts[1], t = parts[2];

  bool a_valid = validateTopicFilter(a, 65535, 65535).isOk();
  bool b_valid = validateTopicFilter(b, 65535, 65535).isOk();
  bool t_valid = validateTopicName(t, 65535, 65535).isOk();
  (void)validateTopicName(a);
  (void)parseSharedSubscription(a);
  (void)parseSharedSubscription(b);

  bool a_matches_t = topicMatchesFilter(a, t);
  bool b_matches_t = topicMatchesFilter(b, t);
  bool subset = filterIsSubset(a, b);
  bool overlap = filtersOverlap(a, b);

  // Invalid inputs: matching and subset fail closed, overlap fails open-to-deny.
  if (!a_valid || !t_valid) check(!a_matches_t);
  if (!a_valid || !b_valid) {
    check(!subset);
    check(overlap);
    return 0;
  }
  check(filterIsSubset(a, a));
  check(filtersOverlap(a, b) == filtersOverlap(b, a));
  if (subset) check(overlap);  // every valid filter matches at least one topic
  if (subset && a_matches_t) check(b_matches_t);
  if (a_matches_t && b_matches_t) check(overlap);
  // A topic name is also a filter that matches exactly itself.
  if (t_valid) {
    check(topicMatchesFilter(t, t));
    check(filterIsSubset(t, a) == a_matches_t);
    check(filtersOverlap(t, a) == a_matches_t);
  }
  return 0;
}

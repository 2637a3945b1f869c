#pragma once

// rule_eval.h (private to src/policy): the pieces of one decision that the
// compiled engine, explain and the reference evaluator in the tests share:
// reading a request, and deciding whether one rule applies to it.

#include <bitset>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "policy/compiled_policy.h"

namespace warden::policy {

// Request is the resource of one authorize call, parsed once.
struct Request {
  Action action = Action::kMqttConnect;
  ActionFamily family = ActionFamily::kClientId;
  std::string_view resource;  // as given: topic, filter, client id or name
  // Subscribe only: the filter to compare (the inner filter of a share) and
  // the share group ("" if not shared).
  std::string_view filter;
  std::string_view share_group;
};

// parseRequest fills |r|; on failure it returns the deny reason
// ("unknown_action", "invalid_filter", "invalid_topic").
std::optional<std::string_view> parseRequest(std::string_view action, std::string_view resource, Request& r);

// Membership answers segment questions for one principal, computing each
// segment's selector at most once.
class Membership final : public SegmentLookup {
 public:
  Membership(const CompiledPolicy& c, const Principal& p) : c_(c), p_(p) {}
  bool inSegment(uint32_t s) override {
    if (p_.quarantined) return s == 0;
    return s != 0 && selectorSegment(s);
  }
  bool selectorSegment(uint32_t s) override {
    if (s == 0) return p_.quarantined;
    if (s >= c_.segments.size()) return false;
    if (!known_[s]) {
      known_[s] = true;
      // A segment's selector names only earlier segments, so this recursion
      // is bounded by the segment count.
      member_[s] = c_.segments[s].selector.matches(p_, *this);
    }
    return member_[s];
  }
  std::string segmentNames() override;
  // firstSegment is the name of the first segment (file order) the principal
  // is in, "" if none.
  std::string_view firstSegment();

 private:
  const CompiledPolicy& c_;
  const Principal& p_;
  std::bitset<kMaxSegments> known_;
  std::bitset<kMaxSegments> member_;
};

enum class RuleOutcome : uint8_t {
  kSelectorMismatch,
  kResourceMismatch,
  kConditionUnmet,
  kQuarantineBlocked,  // a permit that matched but does not select segment: quarantine
  kMatched,
};

using Deadline = std::optional<std::chrono::system_clock::time_point>;

// evaluateRule decides whether |rule| (which names r.action) applies:
// selector, then resource, then conditions (three-valued: absent fails a
// permit and satisfies a forbid). Time-dependent conditions it evaluates
// lower |deadline|. |unmet| receives the first condition that did not hold.
RuleOutcome evaluateRule(const CompiledRule& rule, const Principal& p, const Context& ctx, const Request& r,
                         SegmentLookup& segments, Deadline& deadline, const Condition** unmet = nullptr);

// serviceReached reports whether request |r| (a topic action) reaches
// service |s|: a topic its patterns match, or a filter that intersects one.
bool serviceReached(const Service& s, const Request& r);

// needsFlowCheck reports whether step 3 (flows) applies to |a|.
inline bool needsFlowCheck(Action a) {
  return a == Action::kMqttPublish || a == Action::kMqttSubscribe || a == Action::kMqttReceive;
}

}  // namespace warden::policy

#pragma once

// condition.h (private to src/policy): one `when:` condition of a rule,
// parsed once into a typed form and evaluated per request with three-valued
// logic (true, false, absent).

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "policy/policy.h"
#include "policy/yaml_tree.h"

namespace date {
class time_zone;
}

namespace warden::policy {

// AttributePath is the closed set of attributes a condition may read.
enum class AttributePath : uint8_t {
  kPrincipalId,
  kPrincipalKind,
  kPrincipalRole,
  kPrincipalSegments,
  kPrincipalLabel,
  kPrincipalTrust,
  kFirmwareApproved,
  kAttestationAssurance,
  kAttestationAge,
  kCertAge,
  kContextTime,
  kContextWeekday,
  kContextSourceIp,
  kContextProtocol,
  kContextMfa,
};

// ValueType is the type of an attribute and of the literals it is compared with.
enum class ValueType : uint8_t { kString, kKind, kSegments, kInteger, kBoolean, kAssurance, kDuration, kTime,
                                 kWeekday, kIp };

enum class ConditionOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe, kIn, kNotIn, kHas, kTrue };

enum class Truth : uint8_t { kFalse, kTrue, kAbsent };

// TimeWindow is "HH:MM-HH:MM [ZONE]": start inclusive, end exclusive, in
// minutes of the local day; start > end wraps midnight.
struct TimeWindow {
  int start = 0;
  int end = 0;
  const date::time_zone* zone = nullptr;  // nullptr: the rule's zone
};

struct Cidr {
  IpAddress address;
  int prefix = 0;
  bool contains(const IpAddress& ip) const;
};

// SegmentLookup answers whether the principal under evaluation is in a
// segment (by index), memoized by the caller.
class SegmentLookup {
 public:
  // inSegment is the view of flows and `principal.segments`: a quarantined
  // principal is only in quarantine (segment 0).
  virtual bool inSegment(uint32_t segment) = 0;
  // selectorSegment is the view of `segment:` in selectors: the segments the
  // principal's attributes select, plus quarantine when it is quarantined.
  virtual bool selectorSegment(uint32_t segment) = 0;
  virtual std::string segmentNames() = 0;  // for explanations
 protected:
  ~SegmentLookup() = default;
};

struct Condition {
  std::string text;  // as written
  YamlPosition pos;
  AttributePath path = AttributePath::kPrincipalId;
  ValueType type = ValueType::kString;
  ConditionOp op = ConditionOp::kTrue;
  std::string label_key;  // kPrincipalLabel
  // The literal, by type. A list literal (`in`) fills the vectors.
  std::vector<std::string> strings;  // kString, kKind
  int64_t number = 0;                // kInteger, kAssurance, kDuration (seconds)
  bool boolean = false;
  uint8_t weekdays = 0;              // kWeekday: bit d = day d (0 = Sunday)
  std::vector<Cidr> cidrs;           // kIp
  std::vector<TimeWindow> windows;   // kTime
  uint32_t segment = 0;              // kSegments: `NAME in principal.segments`
  const date::time_zone* zone = nullptr;  // the zone for time/weekday (rule's, policy's or UTC)

  bool timeDependent() const;
};

// SegmentResolver maps a segment name to its index; nullopt if unknown.
using SegmentResolver = std::function<std::optional<uint32_t>(std::string_view name)>;

// parseCondition parses |node| (a scalar) as a condition. |zone| is the
// effective zone (rule's, policy's or UTC). Errors are "FILE:LINE:COL: ..."
// pointing into the condition text.
core::Result<Condition> parseCondition(const YamlNode& node, std::string_view filename, const date::time_zone* zone,
                                       const SegmentResolver& resolve);

// locateZone returns the IANA zone |name|, or nullptr if unknown.
const date::time_zone* locateZone(std::string_view name);

// evaluateCondition evaluates |c|. When the outcome depends on time (a
// window, a weekday, an age), |deadline| is lowered to the instant it may
// change next (needs context.time).
Truth evaluateCondition(const Condition& c, const Principal& p, const Context& ctx, SegmentLookup& segments,
                        std::optional<std::chrono::system_clock::time_point>& deadline);

// describeValue renders the attribute |c| reads ("absent" when absent), for
// explanations.
std::string describeValue(const Condition& c, const Principal& p, const Context& ctx, SegmentLookup& segments);

// attributeNames lists every attribute path, for docs and error messages.
std::string_view attributeNames();

}  // namespace warden::policy

#include "policy/topic.h"

#include <bitset>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace warden::policy {
namespace {

using namespace std::string_literals;

// ---------------------------------------------------------------------------
// validateTopicName

TEST(ValidateTopicName, AcceptsOrdinaryNames) {
  for (std::string_view t : {"a", "a/b", "/", "a//b", "/a", "a/", "$SYS/broker", "caf\xc3\xa9", " "}) {
    EXPECT_TRUE(validateTopicName(t).isOk()) << t;
  }
}

TEST(ValidateTopicName, RejectsEmpty) { EXPECT_FALSE(validateTopicName("").isOk()); }

TEST(ValidateTopicName, RejectsWildcards) {
  for (std::string_view t : {"+", "#", "a/+", "a/#", "a+", "a#b", "+/a"}) {
    core::Status st = validateTopicName(t);
    EXPECT_FALSE(st.isOk()) << t;
    EXPECT_EQ(st.code(), core::ErrorCode::kInvalidArgument);
  }
}

TEST(ValidateTopicName, RejectsNul) { EXPECT_FALSE(validateTopicName("a\0b"s).isOk()); }

TEST(ValidateTopicName, EnforcesLengthLimit) {
  EXPECT_TRUE(validateTopicName(std::string(256, 'x')).isOk());
  EXPECT_FALSE(validateTopicName(std::string(257, 'x')).isOk());
  EXPECT_TRUE(validateTopicName(std::string(10, 'x'), 10).isOk());
  EXPECT_FALSE(validateTopicName(std::string(11, 'x'), 10).isOk());
}

TEST(ValidateTopicName, EnforcesLevelLimit) {
  std::string sixteen = "a";
  for (int i = 1; i < 16; ++i) sixteen += "/a";
  EXPECT_TRUE(validateTopicName(sixteen).isOk());
  EXPECT_FALSE(validateTopicName(sixteen + "/a").isOk());
  EXPECT_FALSE(validateTopicName(std::string(16, '/')).isOk());  // 17 empty levels
  EXPECT_TRUE(validateTopicName("a/b/c", 256, 3).isOk());
  EXPECT_FALSE(validateTopicName("a/b/c/", 256, 3).isOk());
}

// ---------------------------------------------------------------------------
// validateTopicFilter

TEST(ValidateTopicFilter, AcceptsValidFilters) {
  for (std::string_view f : {"#", "+", "a", "a/#", "a/+", "+/+", "+/#", "a/+/b/#", "/", "//", "/#", "+/", "$SYS/#",
                             "$share/g/a"}) {
    EXPECT_TRUE(validateTopicFilter(f).isOk()) << f;
  }
}

TEST(ValidateTopicFilter, RejectsMisplacedWildcards) {
  for (std::string_view f : {"#/a", "a/#/b", "a#", "#a", "a/b#", "++", "a+", "+a", "a/+b", "##", "#/#", "a/#/"}) {
    EXPECT_FALSE(validateTopicFilter(f).isOk()) << f;
  }
}

TEST(ValidateTopicFilter, RejectsEmptyAndNul) {
  EXPECT_FALSE(validateTopicFilter("").isOk());
  EXPECT_FALSE(validateTopicFilter("a/\0"s).isOk());
}

TEST(ValidateTopicFilter, EnforcesLimits) {
  EXPECT_TRUE(validateTopicFilter(std::string(256, 'x')).isOk());
  EXPECT_FALSE(validateTopicFilter(std::string(257, 'x')).isOk());
  EXPECT_TRUE(validateTopicFilter("+/+/#", 256, 3).isOk());
  EXPECT_FALSE(validateTopicFilter("+/+/+/#", 256, 3).isOk());
}

// ---------------------------------------------------------------------------
// topicMatchesFilter

TEST(TopicMatchesFilter, LiteralMatching) {
  EXPECT_TRUE(topicMatchesFilter("a/b", "a/b"));
  EXPECT_FALSE(topicMatchesFilter("a/b", "a/c"));
  EXPECT_FALSE(topicMatchesFilter("a/b", "a/b/c"));
  EXPECT_FALSE(topicMatchesFilter("a/b", "a"));
  EXPECT_FALSE(topicMatchesFilter("a/b", "a/b/"));
  EXPECT_TRUE(topicMatchesFilter("a//b", "a//b"));
  EXPECT_FALSE(topicMatchesFilter("A", "a"));  // case-sensitive (§4.7.3)
}

TEST(TopicMatchesFilter, SingleLevelWildcard) {
  // MQTT 5.0 §4.7.1.3 examples.
  EXPECT_TRUE(topicMatchesFilter("sport/tennis/+", "sport/tennis/player1"));
  EXPECT_TRUE(topicMatchesFilter("sport/tennis/+", "sport/tennis/player2"));
  EXPECT_FALSE(topicMatchesFilter("sport/tennis/+", "sport/tennis/player1/ranking"));
  EXPECT_FALSE(topicMatchesFilter("sport/+", "sport"));
  EXPECT_TRUE(topicMatchesFilter("sport/+", "sport/"));
  EXPECT_TRUE(topicMatchesFilter("+/+", "/finance"));
  EXPECT_TRUE(topicMatchesFilter("/+", "/finance"));
  EXPECT_FALSE(topicMatchesFilter("+", "/finance"));
}

TEST(TopicMatchesFilter, MultiLevelWildcard) {
  // MQTT 5.0 §4.7.1.2 examples.
  EXPECT_TRUE(topicMatchesFilter("sport/tennis/player1/#", "sport/tennis/player1"));
  EXPECT_TRUE(topicMatchesFilter("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
  EXPECT_TRUE(topicMatchesFilter("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon"));
  EXPECT_TRUE(topicMatchesFilter("sport/#", "sport"));
  EXPECT_TRUE(topicMatchesFilter("#", "a/b/c"));
  EXPECT_TRUE(topicMatchesFilter("#", "/"));
  EXPECT_FALSE(topicMatchesFilter("sport/tennis/#", "sport/football"));
}

TEST(TopicMatchesFilter, LeadingWildcardNeverMatchesDollarTopics) {
  // MQTT 5.0 §4.7.2.
  EXPECT_FALSE(topicMatchesFilter("#", "$SYS/broker"));
  EXPECT_FALSE(topicMatchesFilter("+/monitor/Clients", "$SYS/monitor/Clients"));
  EXPECT_FALSE(topicMatchesFilter("+", "$SYS"));
  EXPECT_TRUE(topicMatchesFilter("$SYS/#", "$SYS/monitor/Clients"));
  EXPECT_TRUE(topicMatchesFilter("$SYS/monitor/+", "$SYS/monitor/Clients"));
  // A '$' later in the topic is ordinary.
  EXPECT_TRUE(topicMatchesFilter("+/$x", "a/$x"));
  EXPECT_TRUE(topicMatchesFilter("a/#", "a/$x"));
}

TEST(TopicMatchesFilter, InvalidInputsNeverMatch) {
  EXPECT_FALSE(topicMatchesFilter("", "a"));
  EXPECT_FALSE(topicMatchesFilter("a", ""));
  EXPECT_FALSE(topicMatchesFilter("a/+", "a/+"));  // wildcard in the topic
  EXPECT_FALSE(topicMatchesFilter("#", "a/#"));
  EXPECT_FALSE(topicMatchesFilter("a+", "a+"));
  EXPECT_FALSE(topicMatchesFilter("#/a", "b/a"));
  EXPECT_FALSE(topicMatchesFilter("a/b+", "a/bx"));
  EXPECT_FALSE(topicMatchesFilter("#", "a\0"s));  // U+0000 makes the topic invalid
  EXPECT_FALSE(topicMatchesFilter("a\0"s, "a\0"s));
}

// ---------------------------------------------------------------------------
// filterIsSubset

TEST(FilterIsSubset, NamedCases) {
  EXPECT_FALSE(filterIsSubset("#", "a/#"));
  EXPECT_FALSE(filterIsSubset("a/+/x", "a/b/x"));
  EXPECT_TRUE(filterIsSubset("a/#", "a/#"));
  EXPECT_TRUE(filterIsSubset("a/#", "#"));
  EXPECT_TRUE(filterIsSubset("a", "a/#"));
  EXPECT_FALSE(filterIsSubset("a/#", "a/+/#"));
  EXPECT_TRUE(filterIsSubset("a/b/#", "a/+/#"));
  EXPECT_TRUE(filterIsSubset("a/b/x", "a/+/x"));
  EXPECT_TRUE(filterIsSubset("a/+/x", "a/+/x"));
  EXPECT_TRUE(filterIsSubset("a/+/x", "a/#"));
  EXPECT_FALSE(filterIsSubset("a/+", "a/+/+"));
  EXPECT_TRUE(filterIsSubset("a/+", "a/+/#"));
  EXPECT_FALSE(filterIsSubset("a/#", "a/+"));
  EXPECT_FALSE(filterIsSubset("a/b", "a"));
}

TEST(FilterIsSubset, PolicyEscalationAttempts) {
  // A rule for telemetry/dev1/x must not admit broader subscriptions.
  EXPECT_TRUE(filterIsSubset("telemetry/dev1/x", "telemetry/dev1/x"));
  EXPECT_FALSE(filterIsSubset("telemetry/+/x", "telemetry/dev1/x"));
  EXPECT_FALSE(filterIsSubset("#", "telemetry/dev1/x"));
  EXPECT_FALSE(filterIsSubset("telemetry/#", "telemetry/dev1/#"));
  EXPECT_FALSE(filterIsSubset("+/dev1/#", "telemetry/dev1/#"));
  EXPECT_TRUE(filterIsSubset("telemetry/dev1/#", "telemetry/dev1/#"));
  EXPECT_TRUE(filterIsSubset("telemetry/dev1", "telemetry/dev1/#"));
}

TEST(FilterIsSubset, HashEqualsPlusHash) {
  // Every topic has at least one level, so "#" and "+/#" match the same set.
  EXPECT_TRUE(filterIsSubset("#", "+/#"));
  EXPECT_TRUE(filterIsSubset("+/#", "#"));
  EXPECT_FALSE(filterIsSubset("#", "+"));
  EXPECT_TRUE(filterIsSubset("+", "#"));
}

TEST(FilterIsSubset, EmptyTopicDoesNotExist) {
  // "/#" matches "/", "/x", ... but not "" (topic names are non-empty).
  EXPECT_TRUE(filterIsSubset("/#", "/+/#"));
  EXPECT_TRUE(filterIsSubset("/+/#", "/#"));
  EXPECT_TRUE(filterIsSubset("/#", "+/+/#"));
  EXPECT_FALSE(filtersOverlap("/#", "+"));
  EXPECT_TRUE(filtersOverlap("/#", "+/+"));
}

TEST(FilterIsSubset, DollarRules) {
  EXPECT_FALSE(filterIsSubset("$SYS/#", "#"));
  EXPECT_FALSE(filterIsSubset("$SYS/x", "+/x"));
  EXPECT_FALSE(filterIsSubset("$SYS/x", "+/+"));
  EXPECT_TRUE(filterIsSubset("$SYS/x", "$SYS/#"));
  EXPECT_TRUE(filterIsSubset("$SYS/x", "$SYS/+"));
  EXPECT_FALSE(filterIsSubset("$SYS/x", "$OTHER/#"));
  EXPECT_FALSE(filterIsSubset("$share/g/x", "#"));
  EXPECT_TRUE(filterIsSubset("$share/g/x", "$share/#"));
  // Leading wildcards match no $ topic, so they fit into other wildcards.
  EXPECT_TRUE(filterIsSubset("+/x", "+/#"));
  EXPECT_FALSE(filterIsSubset("+/x", "$SYS/x"));
  // A '$' in a later level is an ordinary literal.
  EXPECT_TRUE(filterIsSubset("a/$x", "a/+"));
}

TEST(FilterIsSubset, InvalidInputsAreNotSubsets) {
  EXPECT_FALSE(filterIsSubset("", "#"));
  EXPECT_FALSE(filterIsSubset("a/#/b", "#"));
  EXPECT_FALSE(filterIsSubset("a", "a#"));
  EXPECT_FALSE(filterIsSubset("a+", "#"));
}

// ---------------------------------------------------------------------------
// filtersOverlap

TEST(FiltersOverlap, NamedCases) {
  EXPECT_TRUE(filtersOverlap("#", "a/b"));
  EXPECT_TRUE(filtersOverlap("a/+", "+/b"));
  EXPECT_TRUE(filtersOverlap("a/#", "a"));
  EXPECT_TRUE(filtersOverlap("a/+/#", "a/b"));
  EXPECT_FALSE(filtersOverlap("a/+/+", "a/b"));
  EXPECT_FALSE(filtersOverlap("a/b", "a/c"));
  EXPECT_FALSE(filtersOverlap("a", "a/+"));
  EXPECT_TRUE(filtersOverlap("firmware/#", "+/+"));
  EXPECT_TRUE(filtersOverlap("firmware/#", "#"));
}

TEST(FiltersOverlap, DollarRules) {
  EXPECT_FALSE(filtersOverlap("#", "$SYS/x"));
  EXPECT_FALSE(filtersOverlap("+/x", "$SYS/x"));
  EXPECT_FALSE(filtersOverlap("$SYS/#", "+/#"));
  EXPECT_TRUE(filtersOverlap("$SYS/#", "$SYS/x"));
  EXPECT_TRUE(filtersOverlap("$SYS/+", "$SYS/#"));
  EXPECT_FALSE(filtersOverlap("$A/#", "$B/#"));
  EXPECT_TRUE(filtersOverlap("+/$x", "a/+"));
}

TEST(FiltersOverlap, InvalidInputsFailClosed) {
  EXPECT_TRUE(filtersOverlap("a#", "b"));
  EXPECT_TRUE(filtersOverlap("b", ""));
}

// ---------------------------------------------------------------------------
// parseSharedSubscription

TEST(ParseSharedSubscription, NonSharedFiltersGiveNullopt) {
  for (std::string_view f : {"a/b", "#", "$SYS/#", "$sharex/g/a", "share/g/a", "$SHARE/g/a"}) {
    auto r = parseSharedSubscription(f);
    ASSERT_TRUE(r.isOk()) << f;
    EXPECT_FALSE(r->has_value()) << f;
  }
}

TEST(ParseSharedSubscription, ParsesWellFormedShares) {
  auto r = parseSharedSubscription("$share/group1/a/b/#");
  ASSERT_TRUE(r.isOk());
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->group, "group1");
  EXPECT_EQ((*r)->filter, "a/b/#");

  r = parseSharedSubscription("$share/g/#");
  ASSERT_TRUE(r.isOk() && r->has_value());
  EXPECT_EQ((*r)->filter, "#");

  r = parseSharedSubscription("$share/g/$SYS/x");
  ASSERT_TRUE(r.isOk() && r->has_value());
  EXPECT_EQ((*r)->filter, "$SYS/x");

  r = parseSharedSubscription("$share/g//");
  ASSERT_TRUE(r.isOk() && r->has_value());
  EXPECT_EQ((*r)->filter, "/");
}

TEST(ParseSharedSubscription, RejectsMalformedShares) {
  for (std::string_view f : {"$share", "$share/", "$share/g", "$share/g/", "$share//x", "$share/g+/x", "$share/g#/x",
                             "$share/+/x", "$share/#", "$share/g/a#", "$share/g/#/a", "$share/g/a+"}) {
    auto r = parseSharedSubscription(f);
    EXPECT_FALSE(r.isOk()) << f;
    if (!r.isOk()) {
      EXPECT_EQ(r.status().code(), core::ErrorCode::kInvalidArgument) << f;
    }
  }
  EXPECT_FALSE(parseSharedSubscription("$share/g\0h/x"s).isOk());
}

// ---------------------------------------------------------------------------
// Property-style cross-checks against brute force.
//
// Filters: every valid filter of 1..3 levels over the literals {a, $a, ""}
// and the wildcards. Topics: every topic of 1..4 levels over {a, $a, "", c,
// $c} ("c" and "$c" stand for levels no filter names). A filter of at most 3
// levels cannot tell a 4-level topic from a deeper one, and the fresh levels
// stand for every unnamed value, so the finite sets decide the real relations.

// referenceMatch is an independent, recursive statement of MQTT 5.0 §4.7.
bool referenceMatchFrom(const std::vector<std::string>& f, size_t fi, const std::vector<std::string>& t, size_t ti) {
  if (fi == f.size()) return ti == t.size();
  if (f[fi] == "#") return true;  // zero or more levels
  if (ti == t.size()) return false;
  if (f[fi] != "+" && f[fi] != t[ti]) return false;
  return referenceMatchFrom(f, fi + 1, t, ti + 1);
}

bool referenceMatch(const std::vector<std::string>& f, const std::vector<std::string>& t) {
  if ((f[0] == "+" || f[0] == "#") && !t[0].empty() && t[0][0] == '$') return false;
  return referenceMatchFrom(f, 0, t, 0);
}

std::string join(const std::vector<std::string>& levels) {
  std::string out;
  for (size_t i = 0; i < levels.size(); ++i) {
    if (i) out += '/';
    out += levels[i];
  }
  return out;
}

constexpr size_t kMaxTopics = 800;

struct Universe {
  std::vector<std::vector<std::string>> topics;
  std::vector<std::vector<std::string>> filters;
};

const Universe& universe() {
  static const Universe u = [] {
    Universe out;
    const std::vector<std::string> topic_levels = {"a", "$a", "", "c", "$c"};
    std::vector<std::vector<std::string>> frontier = {{}};
    for (int depth = 1; depth <= 4; ++depth) {
      std::vector<std::vector<std::string>> next;
      for (const auto& prefix : frontier) {
        for (const auto& l : topic_levels) {
          auto t = prefix;
          t.push_back(l);
          next.push_back(t);
          if (join(t).empty()) continue;  // topic names are non-empty (§4.7.3)
          out.topics.push_back(t);
        }
      }
      frontier = std::move(next);
    }
    const std::vector<std::string> filter_levels = {"a", "$a", "", "+"};
    frontier = {{}};
    for (int depth = 1; depth <= 3; ++depth) {
      std::vector<std::vector<std::string>> next;
      for (const auto& prefix : frontier) {
        auto with_hash = prefix;
        with_hash.push_back("#");
        out.filters.push_back(with_hash);
        for (const auto& l : filter_levels) {
          auto f = prefix;
          f.push_back(l);
          next.push_back(f);
          if (!join(f).empty()) out.filters.push_back(f);
        }
      }
      frontier = std::move(next);
    }
    return out;
  }();
  return u;
}

TEST(TopicProperties, UniverseIsAsExpected) {
  EXPECT_EQ(universe().topics.size(), 5u + 25u + 125u + 625u - 1u);
  EXPECT_LE(universe().topics.size(), kMaxTopics);
  EXPECT_GT(universe().filters.size(), 80u);
  for (const auto& f : universe().filters) EXPECT_TRUE(validateTopicFilter(join(f)).isOk()) << join(f);
  for (const auto& t : universe().topics) EXPECT_TRUE(validateTopicName(join(t)).isOk()) << join(t);
}

std::vector<std::bitset<kMaxTopics>> matchSets() {
  const Universe& u = universe();
  std::vector<std::bitset<kMaxTopics>> sets(u.filters.size());
  for (size_t i = 0; i < u.filters.size(); ++i) {
    for (size_t j = 0; j < u.topics.size(); ++j) sets[i][j] = referenceMatch(u.filters[i], u.topics[j]);
  }
  return sets;
}

TEST(TopicProperties, MatchingAgreesWithReference) {
  const Universe& u = universe();
  for (const auto& f : u.filters) {
    std::string fs = join(f);
    for (const auto& t : u.topics) {
      ASSERT_EQ(topicMatchesFilter(fs, join(t)), referenceMatch(f, t)) << "filter=" << fs << " topic=" << join(t);
    }
  }
}

TEST(TopicProperties, SubsetAndOverlapAgreeWithBruteForce) {
  const Universe& u = universe();
  auto sets = matchSets();
  size_t subsets = 0;
  size_t overlaps = 0;
  for (size_t i = 0; i < u.filters.size(); ++i) {
    std::string a = join(u.filters[i]);
    ASSERT_TRUE(sets[i].any()) << a;  // every valid filter matches something
    for (size_t j = 0; j < u.filters.size(); ++j) {
      std::string b = join(u.filters[j]);
      bool subset = (sets[i] & ~sets[j]).none();
      bool overlap = (sets[i] & sets[j]).any();
      ASSERT_EQ(filterIsSubset(a, b), subset) << "filter=" << a << " pattern=" << b;
      ASSERT_EQ(filtersOverlap(a, b), overlap) << "a=" << a << " b=" << b;
      subsets += subset;
      overlaps += overlap;
    }
  }
  // Both relations are exercised in both directions.
  size_t pairs = u.filters.size() * u.filters.size();
  EXPECT_GT(subsets, pairs / 20);
  EXPECT_LT(subsets, pairs);
  EXPECT_GT(overlaps, pairs / 20);
  EXPECT_LT(overlaps, pairs);
}

}  // namespace
}  // namespace warden::policy

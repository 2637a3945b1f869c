#include "core/names.h"

#include <string>

#include <gtest/gtest.h>

namespace warden::core {
namespace {

TEST(Names, ValidNameAcceptsDnsLabels) {
  EXPECT_TRUE(isValidName("a"));
  EXPECT_TRUE(isValidName("sensor-1"));
  EXPECT_TRUE(isValidName("0"));
  EXPECT_TRUE(isValidName("a--b"));
  EXPECT_TRUE(isValidName(std::string(63, 'a')));
}

TEST(Names, ValidNameRejectsEmptyAndTooLong) {
  EXPECT_FALSE(isValidName(""));
  EXPECT_FALSE(isValidName(std::string(64, 'a')));
}

TEST(Names, ValidNameRejectsHyphenAtEitherEnd) {
  EXPECT_FALSE(isValidName("-a"));
  EXPECT_FALSE(isValidName("a-"));
  EXPECT_FALSE(isValidName("-"));
}

TEST(Names, ValidNameRejectsCharactersOutsideTheAlphabet) {
  for (std::string_view s : {"A", "Sensor", "a_b", "a.b", "a b", "a/b", "a+b", "a#b", "$sys", "caf\xc3\xa9", "*"}) {
    EXPECT_FALSE(isValidName(s)) << s;
  }
  EXPECT_FALSE(isValidName(std::string("a\0b", 3)));
}

TEST(Names, LabelKeyAllowsDotsAndUnderscoresInside) {
  EXPECT_TRUE(isValidLabelKey("site"));
  EXPECT_TRUE(isValidLabelKey("app.kubernetes_io-x"));
  EXPECT_FALSE(isValidLabelKey(".site"));
  EXPECT_FALSE(isValidLabelKey("site_"));
  EXPECT_FALSE(isValidLabelKey("Site"));
  EXPECT_FALSE(isValidLabelKey(""));
  EXPECT_FALSE(isValidLabelKey(std::string(64, 'k')));
}

TEST(Names, LabelValueAllowsMixedCase) {
  EXPECT_TRUE(isValidLabelValue("Plant-1.x_y"));
  EXPECT_TRUE(isValidLabelValue("-"));
  EXPECT_TRUE(isValidLabelValue(std::string(63, 'V')));
}

TEST(Names, LabelValueRejectsTopicCharacters) {
  for (std::string_view s : {"", "a/b", "+", "#", "a b", "$x", "a=b", "*"}) {
    EXPECT_FALSE(isValidLabelValue(s)) << s;
  }
  EXPECT_FALSE(isValidLabelValue(std::string(64, 'v')));
  EXPECT_FALSE(isValidLabelValue(std::string("a\0", 2)));
}

TEST(Names, TrustDomainIsLowercaseDnsName) {
  EXPECT_TRUE(isValidTrustDomain("example.org"));
  EXPECT_TRUE(isValidTrustDomain("warden"));
  EXPECT_TRUE(isValidTrustDomain("a.b-c.d"));
}

TEST(Names, TrustDomainRejectsMalformedNames) {
  for (std::string_view s : {"", "Example.org", "a..b", ".a", "a.", "a:8080", "user@a", "a/b", "-a.b", "a_b.c"}) {
    EXPECT_FALSE(isValidTrustDomain(s)) << s;
  }
}

TEST(Names, TrustDomainRejectsOver253Bytes) {
  std::string label(63, 'a');
  std::string td = label + "." + label + "." + label + "." + std::string(61, 'a');  // 253
  EXPECT_TRUE(isValidTrustDomain(td));
  EXPECT_FALSE(isValidTrustDomain(td + "a"));
}

TEST(Names, CheckNameNamesTheThingInItsError) {
  EXPECT_TRUE(checkName("device name", "sensor-1").isOk());
  Status st = checkName("device name", "Bad_Name");
  EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(st.message().find("invalid device name 'Bad_Name'"), std::string::npos) << st.message();
}

TEST(Names, ParseLabelSplitsAtFirstEquals) {
  std::string k, v;
  ASSERT_TRUE(parseLabel("site=plant1", k, v).isOk());
  EXPECT_EQ(k, "site");
  EXPECT_EQ(v, "plant1");
}

TEST(Names, ParseLabelRejectsMalformedInput) {
  std::string k = "unchanged", v = "unchanged";
  for (std::string_view s : {"site", "=v", "k=", "K=v", "k=v/w", "k=a=b", "k =v", ""}) {
    Status st = parseLabel(s, k, v);
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << s;
  }
  EXPECT_EQ(k, "unchanged");
  EXPECT_EQ(v, "unchanged");
}

TEST(Names, ParseDurationAcceptsEveryUnit) {
  EXPECT_EQ(*parseDuration("30s"), 30);
  EXPECT_EQ(*parseDuration("5m"), 300);
  EXPECT_EQ(*parseDuration("2h"), 7200);
  EXPECT_EQ(*parseDuration("7d"), 604800);
  EXPECT_EQ(*parseDuration("012s"), 12);
}

TEST(Names, ParseDurationRejectsMalformedInput) {
  for (std::string_view s : {"", "s", "5", "0s", "-5s", "+5s", "5x", "1.5h", " 5s", "5s ", "5S", "5 s", "5ms", "h5"}) {
    EXPECT_FALSE(parseDuration(s).isOk()) << s;
  }
}

TEST(Names, ParseDurationRejectsOverflow) {
  EXPECT_FALSE(parseDuration("99999999999d").isOk());
  EXPECT_FALSE(parseDuration("999999999999999999999s").isOk());
  EXPECT_FALSE(parseDuration("12725830d").isOk());  // just over 2^40 seconds
  EXPECT_TRUE(parseDuration("12725829d").isOk());
}

TEST(Names, FormatDurationUsesTheLargestExactUnit) {
  EXPECT_EQ(formatDuration(86400), "1d");
  EXPECT_EQ(formatDuration(3600), "1h");
  EXPECT_EQ(formatDuration(120), "2m");
  EXPECT_EQ(formatDuration(90), "90s");
  EXPECT_EQ(formatDuration(0), "0s");
}

TEST(Names, FormatDurationRoundTripsThroughParse) {
  for (int64_t s : {1, 59, 60, 61, 3599, 3600, 86399, 86400, 90000, 604800}) {
    EXPECT_EQ(*parseDuration(formatDuration(s)), s) << s;
  }
}

}  // namespace
}  // namespace warden::core

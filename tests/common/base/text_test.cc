#include "common/base/text.h"

#include <gtest/gtest.h>

#include <random>

namespace prunelab {
namespace {

TEST(TextTest, Utf8ValidationAcceptsWellFormedAndFindsTheFirstBadByte) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("Gr\xC3\xBC\xC3\x9F" "e \xE2\x82\xAC \xF0\x9F\x98\x80"));  // 2-, 3- and 4-byte forms
  size_t at = 0;
  EXPECT_FALSE(IsValidUtf8("# comment \xFF here", &at));
  EXPECT_EQ(at, 10u);
  for (const char* bad : {"\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xC3", "\x80", "\xF5\x80\x80\x80"})
    EXPECT_FALSE(IsValidUtf8(bad)) << "overlong, surrogate, out of range, truncated or stray: " << Quoted(bad);
}

TEST(TextTest, QuotedEscapesAndCuts) {
  EXPECT_EQ(Quoted("abc"), "'abc'");
  EXPECT_EQ(Quoted("a\xFF" "b\n"), "'a\\xFFb\\x0A'");
  std::string huge(50 * 1000 * 1000, 'x');
  std::string q = Quoted(huge, 16);
  EXPECT_EQ(q, "'xxxxxxxxxxxxxxxx'... (50000000 bytes)");
  EXPECT_EQ(Quoted("\xE2\x82\xAC\xE2\x82\xAC", 4), "'\xE2\x82\xAC'... (6 bytes)") << "never cuts inside a character";
}

TEST(TextTest, ToValidUtf8ReplacesOnlyTheBadBytesAndAlwaysValidates) {
  EXPECT_EQ(ToValidUtf8("ok \xFF ok"), "ok \xEF\xBF\xBD ok");
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 40, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    EXPECT_TRUE(IsValidUtf8(ToValidUtf8(s)));
    if (IsValidUtf8(s)) EXPECT_EQ(ToValidUtf8(s), s);
  }
}

}  // namespace
}  // namespace prunelab

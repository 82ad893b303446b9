#include "common/base/hash.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace prunelab {
namespace {

// Reference digests from Python's hashlib.blake2b(data, digest_size=32).
TEST(HashTest, ContentHashIsBlake2b256) {
  EXPECT_EQ(ContentHash(""), "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
  EXPECT_EQ(ContentHash("abc"), "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  EXPECT_EQ(ContentHash("model-bytes"), "a13c04e51b1cb5a46c64d489b8f8f783c7bdf716cab7afdf6959e6e0dbd0e17a");
}

TEST(HashTest, OneBitFlipChangesTheName) {
  std::string data(4096, 'x');
  std::set<std::string> names{ContentHash(data)};
  for (size_t byte : {0, 1, 2047, 4095}) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string flipped = data;
      flipped[byte] = static_cast<char>(flipped[byte] ^ (1 << bit));
      names.insert(ContentHash(flipped));
    }
  }
  EXPECT_EQ(names.size(), 1u + 4 * 8);
}

TEST(HashTest, CurrentAndLegacyNamesMatchOnlyTheirContent) {
  const std::string data = "a pruned model";
  EXPECT_TRUE(MatchesContentName(ContentHash(data), data));
  EXPECT_FALSE(MatchesContentName(ContentHash(data), data + "!"));
  // Names written by prunelab 0.3 still verify (stores from before the upgrade keep working).
  const std::string legacy = LegacyContentHash(data);
  EXPECT_EQ(legacy.size(), 32u);
  EXPECT_TRUE(IsLegacyContentName(legacy));
  EXPECT_TRUE(MatchesContentName(legacy, data));
  EXPECT_FALSE(MatchesContentName(legacy, data + "!"));
  EXPECT_FALSE(IsLegacyContentName(ContentHash(data)));
  // Anything else is not a name at all.
  EXPECT_FALSE(MatchesContentName("", data));
  EXPECT_FALSE(MatchesContentName("../../etc/passwd", data));
  EXPECT_FALSE(MatchesContentName(std::string(32, 'G'), data));
}

// The legacy function is the exact 0.3 algorithm: its values (computed independently in Python) are fixed here, so
// a change to it (which would orphan every artifact of an old store) fails this test.
TEST(HashTest, LegacyHashIsUnchangedFromVersion03) {
  EXPECT_EQ(LegacyContentHash(""), "cbf29ce484222325" "84222325cbf29ce4");
  EXPECT_EQ(LegacyContentHash("abc"), "e71fa2190541574bf614a4f664a72bc3");
}

}  // namespace
}  // namespace prunelab

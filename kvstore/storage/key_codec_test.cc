#include "kvstore/storage/key_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

namespace mvcc {
namespace {

// Every string of length <= 3 over bytes that stress the escaping: the escape byte, the
// terminator, the escaped-zero marker, and an ordinary byte.
std::vector<std::string> AwkwardKeys() {
  const std::string alphabet(
      "\x00\x01\x02"
      "a\xfe\xff",
      6);
  std::vector<std::string> keys = {""};
  for (size_t len = 1; len <= 3; ++len) {
    std::vector<std::string> next;
    for (const std::string& k : keys) {
      if (k.size() != len - 1) continue;
      for (char c : alphabet) next.push_back(k + c);
    }
    keys.insert(keys.end(), next.begin(), next.end());
  }
  return keys;
}

TEST(KeyCodecTest, EscapedKeysRoundTrip) {
  for (const std::string& key : AwkwardKeys()) {
    std::string encoded;
    AppendEscapedKey(key, &encoded);
    encoded.append("tail");
    std::string_view in = encoded;
    std::string decoded;
    ASSERT_TRUE(ConsumeEscapedKey(&in, &decoded));
    EXPECT_EQ(decoded, key);
    EXPECT_EQ(in, "tail");
  }
}

TEST(KeyCodecTest, EscapedKeysKeepByteOrderWithZeroAndFfBytes) {
  const std::vector<std::string> keys = AwkwardKeys();
  for (const std::string& a : keys) {
    for (const std::string& b : keys) {
      std::string ea;
      std::string eb;
      AppendEscapedKey(a, &ea);
      AppendEscapedKey(b, &eb);
      EXPECT_EQ(a < b, ea < eb) << "a=" << testing::PrintToString(a)
                                << " b=" << testing::PrintToString(b);
      if (a != b) {
        EXPECT_FALSE(eb.starts_with(ea)) << "escaping must be prefix-free";
      }
    }
  }
}

TEST(KeyCodecTest, HistoryKeysSortByUserKeyThenRevision) {
  struct Entry {
    std::string key;
    Revision rev;
  };
  std::vector<Entry> entries;
  const std::vector<Revision> revs = {{1, 0},   {1, 1},   {2, 0},
                                      {255, 0}, {256, 0}, {std::numeric_limits<int64_t>::max(), 7}};
  for (const std::string& k : AwkwardKeys()) {
    for (Revision r : revs) entries.push_back({k, r});
  }
  for (const Entry& a : entries) {
    for (const Entry& b : entries) {
      const bool want = a.key != b.key ? a.key < b.key : a.rev < b.rev;
      ASSERT_EQ(want, HistoryKey(a.key, a.rev) < HistoryKey(b.key, b.rev))
          << testing::PrintToString(a.key) << "@" << a.rev.main << "." << a.rev.sub << " vs "
          << testing::PrintToString(b.key) << "@" << b.rev.main << "." << b.rev.sub;
    }
  }
}

TEST(KeyCodecTest, HistoryKeySuccessorSeparatesOneKeysHistoryFromTheNext) {
  const Revision max_rev{std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::max()};
  const std::vector<std::string> keys = AwkwardKeys();
  for (const std::string& a : keys) {
    const std::string successor = HistoryKeySuccessor(a);
    EXPECT_LT(HistoryKey(a, max_rev), successor);
    EXPECT_TRUE(HistoryKey(a, Revision{3, 0}).starts_with(HistoryKeyPrefix(a)));
    for (const std::string& b : keys) {
      if (b > a) {
        EXPECT_LE(successor, HistoryKey(b, Revision{0, 0}));
      }
    }
  }
}

TEST(KeyCodecTest, HistoryKeyParses) {
  const std::string key("a\0b\xff", 4);
  std::string parsed;
  Revision rev;
  ASSERT_TRUE(ParseHistoryKey(HistoryKey(key, Revision{42, 3}), &parsed, &rev));
  EXPECT_EQ(parsed, key);
  EXPECT_EQ(rev, (Revision{42, 3}));
  EXPECT_FALSE(ParseHistoryKey("h", &parsed, &rev));
  EXPECT_FALSE(ParseHistoryKey(MetaKey("a"), &parsed, &rev));
  EXPECT_FALSE(ParseHistoryKey(HistoryKey(key, Revision{1, 1}) + "x", &parsed, &rev));
  // 0x00 followed by something else than 0x01 or 0xFF is not an escape.
  EXPECT_FALSE(ParseHistoryKey(std::string("ha\0\x05", 4) + std::string(16, '\0'), &parsed, &rev));
}

TEST(KeyCodecTest, RevisionKeysSortByRevision) {
  EXPECT_LT(RevisionKey({1, 5}), RevisionKey({2, 0}));
  EXPECT_LT(RevisionKey({2, 0}), RevisionKey({2, 1}));
  EXPECT_LT(RevisionKey({255, 0}), RevisionKey({256, 0}));
  Revision rev;
  ASSERT_TRUE(ParseRevisionKey(RevisionKey({77, 2}), &rev));
  EXPECT_EQ(rev, (Revision{77, 2}));
  EXPECT_FALSE(ParseRevisionKey("r123", &rev));
}

TEST(KeyCodecTest, KeySpacesDoNotOverlap) {
  const std::string k("\xff\xff", 2);
  EXPECT_LT(HistoryKey(k, {9, 9}), KeySpaceEnd(kHistoryPrefix));
  EXPECT_LE(KeySpaceEnd(kHistoryPrefix), LeaseIndexKey(0, ""));
  EXPECT_LT(LeaseRecordKey(-1), KeySpaceEnd(kLeaseRecordPrefix));
  EXPECT_LE(KeySpaceEnd(kLeaseRecordPrefix), HistoryKey("", {0, 0}));
  EXPECT_LT(LeaseIndexKey(-1, k), KeySpaceEnd(kLeasePrefix));
  EXPECT_LE(KeySpaceEnd(kLeasePrefix), MetaKey(""));
  EXPECT_LT(MetaKey(kMetaRevision), KeySpaceEnd(kMetaPrefix));
  EXPECT_LE(KeySpaceEnd(kMetaPrefix), RevisionKey({0, 0}));
}

TEST(KeyCodecTest, InsertHintPrefixGroupsWhereSuccessiveWritesLand) {
  // History keys take no hint.
  for (const std::string& k : {std::string(), std::string("a"), std::string("a\0", 2)}) {
    EXPECT_EQ(InsertHintPrefix(HistoryKey(k, {1, 0})), "");
    EXPECT_EQ(InsertHintPrefix(HistoryKey(k, {1ll << 40, 7})), "");
  }
  // The whole revision index shares one.
  EXPECT_EQ(InsertHintPrefix(RevisionKey({1, 0})), InsertHintPrefix(RevisionKey({99, 3})));
  EXPECT_NE(InsertHintPrefix(RevisionKey({1, 0})), "");
  // Any other key is its own.
  EXPECT_EQ(InsertHintPrefix(MetaKey(kMetaRevision)), MetaKey(kMetaRevision));
  EXPECT_EQ(InsertHintPrefix(LeaseIndexKey(5, "a")), LeaseIndexKey(5, "a"));
  EXPECT_EQ(InsertHintPrefix(""), "");
}

TEST(KeyCodecTest, LeaseKeysRoundTrip) {
  for (int64_t lease : {int64_t{1}, int64_t{0x7fffffffffffffff}, int64_t{-5}}) {
    int64_t parsed_lease = 0;
    std::string parsed_key;
    ASSERT_TRUE(ParseLeaseIndexKey(LeaseIndexKey(lease, std::string("k\0", 2)), &parsed_lease,
                                   &parsed_key));
    EXPECT_EQ(parsed_lease, lease);
    EXPECT_EQ(parsed_key, std::string("k\0", 2));
    EXPECT_TRUE(LeaseIndexKey(lease, "x").starts_with(LeaseIndexKeyPrefix(lease)));
  }
}

TEST(KeyCodecTest, ValuesRoundTrip) {
  const KeyValue kv{.key = "ignored",
                    .create_revision = 3,
                    .mod_revision = 300000,
                    .version = 1ll << 40,
                    .value = std::string("v\0al", 4),
                    .lease = 0x7fffffffffffffff};
  KeyValue decoded;
  ASSERT_TRUE(DecodeKeyValueBody(EncodeKeyValueBody(kv), false, &decoded));
  EXPECT_EQ(decoded.create_revision, kv.create_revision);
  EXPECT_EQ(decoded.mod_revision, kv.mod_revision);
  EXPECT_EQ(decoded.version, kv.version);
  EXPECT_EQ(decoded.lease, kv.lease);
  EXPECT_EQ(decoded.value, kv.value);
  ASSERT_TRUE(DecodeKeyValueBody(EncodeKeyValueBody(kv), true, &decoded));
  EXPECT_EQ(decoded.value, "");

  ChangeKind kind;
  ASSERT_TRUE(DecodeHistoryValue(EncodeHistoryValue(ChangeKind::kPut, kv), false, &kind, &decoded));
  EXPECT_EQ(kind, ChangeKind::kPut);
  EXPECT_EQ(decoded.value, kv.value);
  ASSERT_TRUE(
      DecodeHistoryValue(EncodeHistoryValue(ChangeKind::kDelete, kv), false, &kind, &decoded));
  EXPECT_EQ(kind, ChangeKind::kDelete);

  std::string key;
  const std::string user_key("a\0", 2);
  ASSERT_TRUE(DecodeRevisionValue(EncodeRevisionValue(ChangeKind::kDelete, user_key), &kind, &key));
  EXPECT_EQ(kind, ChangeKind::kDelete);
  EXPECT_EQ(key, user_key);
}

TEST(KeyCodecTest, DecodersRejectGarbage) {
  KeyValue kv;
  ChangeKind kind;
  std::string key;
  EXPECT_FALSE(DecodeKeyValueBody("\x80", false, &kv));
  EXPECT_FALSE(DecodeKeyValueBody("", false, &kv));
  EXPECT_FALSE(DecodeHistoryValue("", false, &kind, &kv));
  EXPECT_FALSE(DecodeHistoryValue("x", false, &kind, &kv));
  EXPECT_FALSE(DecodeHistoryValue("dx", false, &kind, &kv));
  EXPECT_FALSE(DecodeRevisionValue("", &kind, &key));
  EXPECT_FALSE(DecodeRevisionValue("zkey", &kind, &key));
}

TEST(KeyCodecTest, VarintsRoundTrip) {
  for (uint64_t v : {uint64_t{0}, uint64_t{127}, uint64_t{128}, uint64_t{1} << 35,
                     std::numeric_limits<uint64_t>::max()}) {
    std::string s;
    AppendVarint64(v, &s);
    std::string_view in = s;
    uint64_t out = 0;
    ASSERT_TRUE(ConsumeVarint64(&in, &out));
    EXPECT_EQ(out, v);
    EXPECT_TRUE(in.empty());
  }
}

}  // namespace
}  // namespace mvcc

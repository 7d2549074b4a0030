#include "kvstore/storage/raft_codec.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace kvstore::storage {
namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s.push_back(static_cast<char>(b));
  return s;
}

// Bit at a time, straight from the definition: the reference for the table-driven code.
uint32_t BitwiseCrc32c(absl::string_view data) {
  uint32_t c = 0xffffffffu;
  for (unsigned char b : data) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("a"), 0xC1D04330u);
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);  // the "check" value of CRC-32C
  EXPECT_EQ(Crc32c("The quick brown fox jumps over the lazy dog"), 0x22620404u);
  // RFC 3720 (iSCSI), appendix B.4.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(descending), 0x113FDB5Cu);
  const std::string iscsi_read_pdu =
      Bytes({0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
             0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
             0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
             0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00});
  EXPECT_EQ(Crc32c(iscsi_read_pdu), 0xD9963A56u);
}

TEST(Crc32cTest, MatchesBitwiseDefinitionAtEveryLengthAndAlignment) {
  std::mt19937_64 rng(7);
  std::string buf(300, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t len = 0; offset + len <= buf.size(); ++len) {
      const absl::string_view s(buf.data() + offset, len);
      ASSERT_EQ(Crc32c(s), BitwiseCrc32c(s)) << "offset " << offset << " len " << len;
    }
  }
}

TEST(Crc32cTest, ExtendIsConcatenation) {
  const std::string s = "hello, raft log; hello, rocksdb; hello, crc";
  for (size_t split = 0; split <= s.size(); ++split) {
    EXPECT_EQ(Crc32cExtend(Crc32c(s.substr(0, split)), s.substr(split)), Crc32c(s));
  }
}

TEST(VarintTest, RoundTripsBoundaries) {
  const uint64_t values[] = {0,
                             1,
                             127,
                             128,
                             16383,
                             16384,
                             (1ull << 32) - 1,
                             1ull << 32,
                             1ull << 63,
                             std::numeric_limits<uint64_t>::max()};
  const size_t sizes[] = {1, 1, 1, 2, 2, 3, 5, 5, 10, 10};
  for (size_t k = 0; k < std::size(values); ++k) {
    std::string buf;
    PutVarint64(&buf, values[k]);
    EXPECT_EQ(buf.size(), sizes[k]) << values[k];
    buf += "rest";
    absl::string_view in = buf;
    uint64_t v = 0;
    ASSERT_TRUE(GetVarint64(&in, &v)) << values[k];
    EXPECT_EQ(v, values[k]);
    EXPECT_EQ(in, "rest");
  }
}

TEST(VarintTest, RejectsTruncatedAndOverlong) {
  uint64_t v;
  absl::string_view empty;
  EXPECT_FALSE(GetVarint64(&empty, &v));
  std::string buf;
  PutVarint64(&buf, 1ull << 40);
  for (size_t n = 0; n < buf.size(); ++n) {
    absl::string_view in(buf.data(), n);
    EXPECT_FALSE(GetVarint64(&in, &v)) << n;
  }
  // Eleven bytes, and ten whose last carries more than bit 63.
  absl::string_view overlong = "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01";
  EXPECT_FALSE(GetVarint64(&overlong, &v));
  absl::string_view too_big = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02";
  EXPECT_FALSE(GetVarint64(&too_big, &v));
}

TEST(KeyTest, EntryKeysSortByIndexAndBeforeMetadata) {
  std::mt19937_64 rng(11);
  for (int k = 0; k < 10000; ++k) {
    const uint64_t a = rng() >> (rng() % 64), b = rng() >> (rng() % 64);
    EXPECT_EQ(a < b, EntryKey(a) < EntryKey(b)) << a << " " << b;
    EXPECT_EQ(ParseEntryKey(EntryKey(a)), a);
  }
  for (absl::string_view meta :
       {kFormatKey, kHardStateKey, kCompactedKey, kSnapshotMetaKey, kSnapshotDataKey}) {
    EXPECT_GT(std::string(meta), EntryKey(std::numeric_limits<uint64_t>::max()));
    EXPECT_FALSE(ParseEntryKey(meta).has_value());
  }
  EXPECT_EQ(DescribeKey(EntryKey(42)), "e#42");
}

TEST(ValueTest, RoundTrips) {
  const raft::Entry e{.term = 7,
                      .index = 1234567,
                      .type = raft::EntryType::kConfChange,
                      .data = std::string("conf\0change", 11)};
  const std::string key = EntryKey(e.index);
  absl::StatusOr<raft::Entry> got = DecodeEntryValue(key, EncodeEntryValue(key, e));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, e);

  const raft::HardState hs{.term = 1ull << 40, .vote = 3, .commit = 99};
  absl::StatusOr<raft::HardState> hs2 =
      DecodeHardState(kHardStateKey, EncodeHardState(kHardStateKey, hs));
  ASSERT_TRUE(hs2.ok()) << hs2.status();
  EXPECT_EQ(*hs2, hs);

  const LogPosition p{.index = 500, .term = 9};
  absl::StatusOr<LogPosition> p2 =
      DecodeLogPosition(kCompactedKey, EncodeLogPosition(kCompactedKey, p));
  ASSERT_TRUE(p2.ok()) << p2.status();
  EXPECT_EQ(*p2, p);

  raft::SnapshotMeta m;
  m.index = 10;
  m.term = 2;
  m.conf_state = {
      .voters = {1, 2, 3}, .voters_outgoing = {1, 2}, .learners = {9}, .auto_leave = true};
  absl::StatusOr<raft::SnapshotMeta> m2 =
      DecodeSnapshotMeta(kSnapshotMetaKey, EncodeSnapshotMeta(kSnapshotMetaKey, m));
  ASSERT_TRUE(m2.ok()) << m2.status();
  EXPECT_EQ(*m2, m);

  absl::StatusOr<std::string> b = DecodeBytes(kSnapshotDataKey, EncodeBytes(kSnapshotDataKey, ""));
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, "");
}

TEST(ValueTest, EveryBitFlipAndTruncationIsDataLoss) {
  const raft::Entry e{.term = 3, .index = 77, .data = "payload"};
  const std::string key = EntryKey(e.index);
  const std::string value = EncodeEntryValue(key, e);
  for (size_t byte = 0; byte < value.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = value;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      EXPECT_TRUE(absl::IsDataLoss(DecodeEntryValue(key, bad).status())) << byte << ":" << bit;
    }
  }
  for (size_t n = 0; n < value.size(); ++n) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeEntryValue(key, value.substr(0, n)).status())) << n;
  }
  // A good value under another key: the checksum covers the key.
  EXPECT_TRUE(absl::IsDataLoss(DecodeEntryValue(EntryKey(78), value).status()));
  const std::string hs = EncodeHardState(kHardStateKey, {.term = 1});
  EXPECT_TRUE(absl::IsDataLoss(DecodeHardState(kCompactedKey, hs).status()));
}

// A body that passes its checksum but does not parse, written as a buggy or foreign
// writer would.
std::string SealForTest(absl::string_view key, std::string body) {
  const uint32_t crc = Crc32cExtend(Crc32c(key), body);
  for (int shift = 0; shift < 32; shift += 8) body.push_back(static_cast<char>(crc >> shift));
  return body;
}

TEST(ValueTest, MalformedBodiesWithGoodChecksumsAreDataLoss) {
  const std::string key = EntryKey(5);
  EXPECT_TRUE(absl::IsDataLoss(DecodeEntryValue(key, SealForTest(key, "")).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeEntryValue(key, SealForTest(key, "\x01\x07")).status()))
      << "unknown entry type";
  EXPECT_TRUE(absl::IsDataLoss(
      DecodeHardState(kHardStateKey, SealForTest(kHardStateKey, "\x01\x02\x03\x04")).status()))
      << "trailing bytes";
  // A voter count far beyond the bytes present must not allocate for it.
  std::string meta;
  PutVarint64(&meta, 1);
  PutVarint64(&meta, 1);
  PutVarint64(&meta, 1ull << 60);
  EXPECT_TRUE(absl::IsDataLoss(
      DecodeSnapshotMeta(kSnapshotMetaKey, SealForTest(kSnapshotMetaKey, meta)).status()));
  EXPECT_TRUE(absl::IsDataLoss(
      DecodeEntryValue(kHardStateKey, SealForTest(kHardStateKey, "\x01\x00")).status()))
      << "not an entry key";
}

}  // namespace
}  // namespace kvstore::storage

#include "kvstore/raft/raft_log.h"

#include <gtest/gtest.h>

#include "kvstore/raft/memory_storage.h"

namespace raft {
namespace {

std::vector<Entry> Ents(std::vector<std::pair<uint64_t, uint64_t>> index_term) {
  std::vector<Entry> out;
  for (auto [i, t] : index_term) out.push_back(Entry{.term = t, .index = i});
  return out;
}

TEST(RaftLogTest, AppendOverwritesConflictingSuffix) {
  MemoryStorage disk;
  ASSERT_TRUE(disk.Append(Ents({{1, 1}, {2, 2}})).ok());
  RaftLog log(&disk);
  EXPECT_EQ(log.LastIndex(), 2u);
  log.Append(Ents({{2, 3}, {3, 3}}));
  EXPECT_EQ(log.LastIndex(), 3u);
  EXPECT_EQ(log.TermOrZero(2), 3u);
  ASSERT_EQ(log.UnstableEntries().size(), 2u);
  EXPECT_EQ(log.UnstableEntries()[0].index, 2u);
}

TEST(RaftLogTest, MaybeAppendRejectsMismatchAndCommitsAtMostLastNew) {
  MemoryStorage disk;
  ASSERT_TRUE(disk.Append(Ents({{1, 1}, {2, 1}, {3, 2}})).ok());
  RaftLog log(&disk);
  EXPECT_FALSE(log.MaybeAppend(3, 1, 3, {}).has_value());
  EXPECT_FALSE(log.MaybeAppend(4, 2, 3, {}).has_value());
  std::optional<uint64_t> last = log.MaybeAppend(2, 1, 10, Ents({{3, 2}, {4, 2}}));
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, 4u);
  EXPECT_EQ(log.committed(), 4u);
  // A duplicate of entries already held appends nothing new.
  EXPECT_EQ(log.UnstableEntries().size(), 1u);
}

TEST(RaftLogTest, FindConflictByTermSkipsWholeTerms) {
  MemoryStorage disk;
  ASSERT_TRUE(disk.Append(Ents({{1, 1}, {2, 1}, {3, 2}, {4, 2}, {5, 4}, {6, 4}})).ok());
  RaftLog log(&disk);
  EXPECT_EQ(log.FindConflictByTerm(6, 3), 4u);
  EXPECT_EQ(log.FindConflictByTerm(6, 1), 2u);
  EXPECT_EQ(log.FindConflictByTerm(6, 0), 0u);
  EXPECT_EQ(log.FindConflictByTerm(10, 4), 6u);
}

TEST(RaftLogTest, IsUpToDateComparesLastTermThenIndex) {
  MemoryStorage disk;
  ASSERT_TRUE(disk.Append(Ents({{1, 1}, {2, 2}, {3, 2}})).ok());
  RaftLog log(&disk);
  EXPECT_TRUE(log.IsUpToDate(1, 3));
  EXPECT_FALSE(log.IsUpToDate(10, 1));
  EXPECT_TRUE(log.IsUpToDate(3, 2));
  EXPECT_FALSE(log.IsUpToDate(2, 2));
}

TEST(RaftLogTest, MaybeCommitOnlyForGivenTerm) {
  MemoryStorage disk;
  ASSERT_TRUE(disk.Append(Ents({{1, 1}, {2, 2}})).ok());
  RaftLog log(&disk);
  EXPECT_FALSE(log.MaybeCommit(1, 2));
  EXPECT_TRUE(log.MaybeCommit(2, 2));
  EXPECT_EQ(log.committed(), 2u);
}

TEST(RaftLogTest, SliceSpansStableAndUnstableWithSizeLimit) {
  MemoryStorage disk;
  ASSERT_TRUE(disk.Append(Ents({{1, 1}, {2, 1}})).ok());
  RaftLog log(&disk);
  log.Append(Ents({{3, 1}, {4, 1}}));
  auto all = log.Slice(1, 5, UINT64_MAX);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 4u);
  auto one = log.Slice(1, 5, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->size(), 1u);  // always at least one entry
  auto three = log.Slice(1, 5, 3 * 16);
  ASSERT_TRUE(three.ok());
  EXPECT_EQ(three->size(), 3u);
}

TEST(RaftLogTest, CompactedIndexIsReported) {
  MemoryStorage disk;
  ASSERT_TRUE(disk.Append(Ents({{1, 1}, {2, 1}, {3, 1}})).ok());
  ASSERT_TRUE(disk.CreateSnapshot(2, ConfState{}, "").ok());
  ASSERT_TRUE(disk.Compact(2).ok());
  RaftLog log(&disk);
  EXPECT_TRUE(IsCompacted(log.Term(1).status()));
  EXPECT_EQ(*log.Term(2), 1u);
  EXPECT_TRUE(IsCompacted(log.Slice(2, 4, UINT64_MAX).status()));
}

TEST(RaftLogTest, StableToIgnoresReplacedEntries) {
  MemoryStorage disk;
  RaftLog log(&disk);
  log.Append(Ents({{1, 1}, {2, 1}}));
  log.Append(Ents({{2, 2}}));  // replaced before it was persisted
  log.StableTo(2, 1);
  EXPECT_EQ(log.UnstableEntries().size(), 2u);
  log.StableTo(2, 2);
  EXPECT_TRUE(log.UnstableEntries().empty());
}

}  // namespace
}  // namespace raft

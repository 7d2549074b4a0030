// Snapshots and log compaction: the application snapshots its state and drops the log
// before it; a follower that needs a dropped entry receives the snapshot instead (kSnap),
// installs it and continues from there with ordinary appends.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "kvstore/raft/memory_storage.h"
#include "kvstore/raft/testing/scripted_network.h"

namespace raft {
namespace {

using testing::NodeHost;
using testing::ScriptedNetwork;

// Delivers queued messages one at a time until none is left; returns how many kSnap
// messages were delivered to `to`.
int StabilizeCountingSnapshots(ScriptedNetwork& net, uint64_t to) {
  int snaps = 0;
  for (int i = 0; i < 10000; ++i) {
    net.Flush();
    if (net.queued().empty()) break;
    const Message& next = net.queued().front();
    if (next.type == MessageType::kSnap && next.to == to) ++snaps;
    bool first = true;
    net.DeliverIf([&](const Message&) { return std::exchange(first, false); });
  }
  return snaps;
}

// Member 3 is down while the leader commits "b".."d" and compacts its log up to them, so
// that the entry 3 needs next (index 4) is gone; then 3 comes back.
void CompactPastCrashedFollower(ScriptedNetwork& net) {
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());  // index 3
  net.host(3).Crash();
  for (const char* v : {"b", "c", "d"}) ASSERT_TRUE(net.ProposeAndCommit(1, v).ok());
  ASSERT_EQ(net.host(1).applied_index(), 6u);
  ASSERT_TRUE(net.host(1).SnapshotAndCompact(/*keep=*/0).ok());
  ASSERT_EQ(net.host(1).disk().FirstIndex(), 7u);
  ASSERT_TRUE(net.host(3).Restart().ok());
  ASSERT_EQ(net.node(3).LastIndex(), 3u);
}

TEST(SnapshotTest, FollowerBehindCompactionReceivesSnapshotAndCatchesUp) {
  ScriptedNetwork net(3);
  std::vector<Snapshot> installed;
  net.host(3).on_snapshot = [&](uint64_t, const Snapshot& s) { installed.push_back(s); };
  ASSERT_NO_FATAL_FAILURE(CompactPastCrashedFollower(net));

  net.TickAll();  // a heartbeat tells the leader that 3 is back
  EXPECT_EQ(StabilizeCountingSnapshots(net, 3), 1);
  ASSERT_EQ(installed.size(), 1u);
  EXPECT_EQ(installed[0].meta.index, 6u);
  EXPECT_EQ(net.node(3).FirstIndex(), 7u);  // its own log now starts after the snapshot
  const std::vector<std::string> want = {"a", "b", "c", "d"};
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), want) << "member " << id;
    EXPECT_EQ(net.host(id).applied_index(), 6u) << "member " << id;
  }

  // What 3 persisted is enough to restart from: the snapshot replaces the old log.
  net.host(3).Crash();
  ASSERT_TRUE(net.host(3).Restart().ok());
  net.Flush();
  EXPECT_EQ(net.host(3).state(), want);
  EXPECT_EQ(net.node(3).FirstIndex(), 7u);

  // The cluster continues with 3 in it.
  net.TickAll();
  net.Stabilize();
  ASSERT_TRUE(net.ProposeAndCommit(1, "e").ok());
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"a", "b", "c", "d", "e"}))
        << "member " << id;
  }
}

// Once the snapshot is installed and acknowledged, the leader's next proposal goes to the
// follower with the usual appends; it should not have to wait for a heartbeat.
TEST(SnapshotTest, AfterSnapshotNextProposalReachesFollowerWithoutHeartbeat) {
  ScriptedNetwork net(3);
  ASSERT_NO_FATAL_FAILURE(CompactPastCrashedFollower(net));
  net.TickAll();
  ASSERT_EQ(StabilizeCountingSnapshots(net, 3), 1);
  ASSERT_EQ(net.host(3).applied_index(), 6u);

  ASSERT_TRUE(net.node(1).Propose("e").ok());
  net.Flush();
  int appends_to_3 = 0;
  for (const Message& m : net.queued()) {
    appends_to_3 += (m.type == MessageType::kApp && m.to == 3) ? 1 : 0;
  }
  EXPECT_EQ(appends_to_3, 1);
  net.Stabilize();
  EXPECT_EQ(net.host(3).state(), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
}

TEST(SnapshotTest, CompactionKeepsLaterEntriesReadableAndSpareFollowerNeedsNoSnapshot) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());  // index 3
  net.host(3).Crash();
  ASSERT_TRUE(net.ProposeAndCommit(1, "b").ok());  // index 4
  ASSERT_TRUE(net.ProposeAndCommit(1, "c").ok());  // index 5
  // Snapshot at 5, keeping two entries before it: 4 and 5 stay in the log.
  ASSERT_TRUE(net.host(1).SnapshotAndCompact(/*keep=*/2).ok());
  MemoryStorage& disk = net.host(1).disk();
  EXPECT_EQ(disk.FirstIndex(), 4u);
  EXPECT_EQ(disk.GetSnapshot()->meta.index, 5u);
  EXPECT_TRUE(IsCompacted(disk.Term(2).status()));
  absl::StatusOr<std::vector<Entry>> kept = disk.Entries(4, 6, UINT64_MAX);
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 2u);
  EXPECT_EQ((*kept)[0].data, "b");
  EXPECT_EQ((*kept)[1].data, "c");

  // 3 needs index 4, which was kept: it catches up from the log alone.
  ASSERT_TRUE(net.host(3).Restart().ok());
  net.TickAll();
  EXPECT_EQ(StabilizeCountingSnapshots(net, 3), 0);
  ASSERT_TRUE(net.ProposeAndCommit(1, "d").ok());
  ASSERT_TRUE(net.ProposeAndCommit(1, "e").ok());
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  }
  // The leader still serves the entries it appended after compacting.
  absl::StatusOr<std::vector<Entry>> later = disk.Entries(6, 8, UINT64_MAX);
  ASSERT_TRUE(later.ok());
  ASSERT_EQ(later->size(), 2u);
  EXPECT_EQ((*later)[0].data, "d");
  EXPECT_EQ((*later)[1].data, "e");
}

std::vector<Entry> NumberedEntries(uint64_t first, uint64_t last, uint64_t term) {
  std::vector<Entry> out;
  for (uint64_t i = first; i <= last; ++i) {
    out.push_back(Entry{.term = term, .index = i, .data = "e" + std::to_string(i)});
  }
  return out;
}

TEST(SnapshotTest, MemoryStorageRejectsInvalidCompactAndSnapshot) {
  MemoryStorage s = MemoryStorage::Bootstrapped({1});  // snapshot at index 1
  ASSERT_TRUE(s.Append(NumberedEntries(2, 5, 2)).ok());
  ASSERT_EQ(s.FirstIndex(), 2u);
  ASSERT_EQ(s.LastIndex(), 5u);

  // Compact: at or below the latest snapshot there is nothing left to drop; past the end
  // there is nothing to drop yet.
  EXPECT_TRUE(IsCompacted(s.Compact(1)));
  EXPECT_TRUE(absl::IsOutOfRange(s.Compact(6)));
  // CreateSnapshot: not older than the one held, not beyond the log.
  EXPECT_TRUE(absl::IsFailedPrecondition(s.CreateSnapshot(1, ConfState{.voters = {1}}, "")));
  EXPECT_TRUE(absl::IsOutOfRange(s.CreateSnapshot(6, ConfState{.voters = {1}}, "")));
  // Failed calls change nothing.
  EXPECT_EQ(s.FirstIndex(), 2u);
  EXPECT_EQ(s.LastIndex(), 5u);
  EXPECT_EQ(s.GetSnapshot()->meta.index, 1u);

  ASSERT_TRUE(s.CreateSnapshot(3, ConfState{.voters = {1}}, "state@3").ok());
  EXPECT_EQ(s.GetSnapshot()->meta,
            (SnapshotMeta{.index = 3, .term = 2, .conf_state = ConfState{.voters = {1}}}));
  EXPECT_TRUE(absl::IsFailedPrecondition(s.CreateSnapshot(3, ConfState{.voters = {1}}, "")));
  ASSERT_TRUE(s.Compact(3).ok());
  EXPECT_EQ(s.FirstIndex(), 4u);
  EXPECT_TRUE(IsCompacted(s.Compact(3)));
  EXPECT_TRUE(IsCompacted(s.Term(2).status()));
  EXPECT_TRUE(IsCompacted(s.Entries(3, 5, UINT64_MAX).status()));
  // The term of the compaction point itself is still known (appends after it need it).
  EXPECT_EQ(*s.Term(3), 2u);
  absl::StatusOr<std::vector<Entry>> rest = s.Entries(4, 6, UINT64_MAX);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(*rest, NumberedEntries(4, 5, 2));

  // Appending must continue the log, and an older snapshot cannot replace a newer one.
  EXPECT_TRUE(absl::IsInvalidArgument(s.Append(NumberedEntries(7, 8, 2))));
  Snapshot old;
  old.meta.index = 2;
  old.meta.term = 2;
  EXPECT_TRUE(absl::IsFailedPrecondition(s.ApplySnapshot(old)));
  EXPECT_EQ(s.FirstIndex(), 4u);
  EXPECT_EQ(s.LastIndex(), 5u);
}

TEST(SnapshotTest, MemoryStorageRefusesSnapshotBelowItsCompactionPoint) {
  MemoryStorage s = MemoryStorage::Bootstrapped({1});
  ASSERT_TRUE(s.Append(NumberedEntries(2, 6, 2)).ok());
  // Compacted past index 3 without a snapshot there: entry 3's term is gone.
  ASSERT_TRUE(s.Compact(4).ok());
  EXPECT_TRUE(IsCompacted(s.CreateSnapshot(3, ConfState{.voters = {1}}, "")));
  EXPECT_EQ(s.GetSnapshot()->meta.index, 1u);
  EXPECT_TRUE(s.CreateSnapshot(4, ConfState{.voters = {1}}, "state@4").ok());
}

TEST(SnapshotTest, SnapshotOlderThanFollowerCommitIsIgnored) {
  ScriptedNetwork net(3);
  std::vector<Snapshot> installed;
  net.host(2).on_snapshot = [&](uint64_t, const Snapshot& s) { installed.push_back(s); };
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());  // index 3
  ASSERT_TRUE(net.ProposeAndCommit(1, "b").ok());  // index 4
  ASSERT_EQ(net.node(2).Status().hard_state.commit, 4u);
  const uint64_t first_before = net.node(2).FirstIndex();

  // A snapshot at index 3 arrives late (say, delayed in the network) with a state that
  // would lose "b" if it were installed.
  Message snap;
  snap.type = MessageType::kSnap;
  snap.from = 1;
  snap.to = 2;
  snap.term = net.node(1).Status().hard_state.term;
  snap.snapshot.meta = SnapshotMeta{.index = 3, .term = 2, .conf_state = {.voters = {1, 2, 3}}};
  snap.snapshot.data = NodeHost::EncodeState({"a"});
  ASSERT_TRUE(net.node(2).Step(snap).ok());
  net.Flush();

  EXPECT_TRUE(installed.empty());
  EXPECT_EQ(net.host(2).state(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(net.node(2).FirstIndex(), first_before);
  EXPECT_EQ(net.node(2).LastIndex(), 4u);
  EXPECT_EQ(net.host(2).disk().GetSnapshot()->meta.index, 1u);
  // It answers with its commit index, so the leader does not resend the snapshot.
  int answers = 0;
  for (const Message& m : net.queued()) {
    if (m.type == MessageType::kAppResp && m.from == 2) {
      ++answers;
      EXPECT_FALSE(m.reject);
      EXPECT_EQ(m.index, 4u);
    }
  }
  EXPECT_EQ(answers, 1);
  net.Stabilize();
  ASSERT_TRUE(net.ProposeAndCommit(1, "c").ok());
  EXPECT_EQ(net.host(2).state(), (std::vector<std::string>{"a", "b", "c"}));
}

}  // namespace
}  // namespace raft

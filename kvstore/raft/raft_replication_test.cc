// Log replication: commitment by quorum, batching, pipelining and flow control, fast
// backtracking, and the rule that only current-term entries commit by counting.
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "kvstore/raft/testing/scripted_network.h"

namespace raft {
namespace {

using testing::ScriptedNetwork;
using testing::TestConfig;

bool AppTo(const Message& m, uint64_t to) { return m.type == MessageType::kApp && m.to == to; }

TEST(ReplicationTest, ProposalsCommitOnEveryMember) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(net.ProposeAndCommit(1, "v" + std::to_string(i)).ok());
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"v0", "v1", "v2", "v3", "v4"}));
  }
}

TEST(ReplicationTest, CommitNeedsQuorumNotEveryone) {
  ScriptedNetwork net(5);
  ASSERT_TRUE(net.Elect(1));
  net.Isolate(4);
  net.Isolate(5);
  ASSERT_TRUE(net.ProposeAndCommit(1, "x").ok());
  EXPECT_EQ(net.host(1).state(), std::vector<std::string>{"x"});
  net.Isolate(3);
  ASSERT_TRUE(net.ProposeAndCommit(1, "y").ok());
  EXPECT_EQ(net.host(1).state(), std::vector<std::string>{"x"});  // 2 of 5: no quorum
}

TEST(ReplicationTest, FollowerForwardsProposalToLeader) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(2, "from-2").ok());
  EXPECT_EQ(net.host(1).state(), std::vector<std::string>{"from-2"});
}

TEST(ReplicationTest, ProposalWithoutLeaderIsDropped) {
  ScriptedNetwork net(3);
  EXPECT_TRUE(absl::IsUnavailable(net.node(2).Propose("x")));
}

TEST(ReplicationTest, BatchedProposalIsPersistedInOneReadyAndSentInOneAppend) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  std::vector<size_t> persisted;
  net.host(1).on_persist = [&](uint64_t, const std::vector<Entry>& e) {
    persisted.push_back(e.size());
  };
  ASSERT_TRUE(net.node(1).ProposeBatch(std::vector<std::string>(10, "e")).ok());
  net.Flush();
  EXPECT_EQ(persisted, std::vector<size_t>{10});
  for (uint64_t to : {2, 3}) {
    std::vector<size_t> appends;
    for (const Message& m : net.queued()) {
      if (AppTo(m, to)) appends.push_back(m.entries.size());
    }
    EXPECT_EQ(appends, std::vector<size_t>{10}) << "to " << to;
  }
  net.Stabilize();
  EXPECT_EQ(net.host(3).state().size(), 10u);
}

TEST(ReplicationTest, SeparateProposalsArePipelinedWithoutWaitingForAnswers) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(net.node(1).Propose("e").ok());
  net.Flush();
  // Each proposal is broadcast as it arrives; the follower that is replicating receives
  // them pipelined, and everything commits in one round of answers.
  size_t entries = 0;
  for (const Message& m : net.queued()) {
    if (AppTo(m, 2)) entries += m.entries.size();
  }
  EXPECT_EQ(entries, 10u);
  net.Stabilize();
  EXPECT_EQ(net.host(3).state().size(), 10u);
}

TEST(ReplicationTest, MaxSizePerMsgBoundsAppends) {
  Config c = TestConfig();
  c.max_size_per_msg = 3 * (16 + 1);  // three one-byte entries
  ScriptedNetwork net(3, c);
  ASSERT_TRUE(net.Elect(1));
  net.Isolate(2);
  for (int i = 0; i < 9; ++i) ASSERT_TRUE(net.ProposeAndCommit(1, "x").ok());
  net.Heal();
  net.TickAll(1);  // heartbeat: 2 answers and the leader resumes sending
  int appends = 0;
  for (int round = 0; round < 20; ++round) {
    net.Flush();
    for (const Message& m : net.queued()) {
      if (AppTo(m, 2)) {
        EXPECT_LE(m.entries.size(), 3u);
        ++appends;
      }
    }
    net.DeliverIf([](const Message&) { return true; });
  }
  net.Stabilize();
  EXPECT_EQ(net.host(2).state().size(), 9u);
  EXPECT_GE(appends, 3);
}

TEST(ReplicationTest, PipelineStopsAtMaxInflight) {
  Config c = TestConfig();
  c.max_inflight_msgs = 2;
  ScriptedNetwork net(3, c);
  ASSERT_TRUE(net.Elect(1));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(net.node(1).Propose("x").ok());
  net.Flush();
  int to2 = 0;
  for (const Message& m : net.queued()) to2 += AppTo(m, 2) ? 1 : 0;
  EXPECT_EQ(to2, 2);  // the rest wait for acknowledgements
  net.Stabilize();
  EXPECT_EQ(net.host(2).state().size(), 5u);
}

std::vector<Entry> EntryRun(uint64_t first, uint64_t term, int n, const std::string& data) {
  std::vector<Entry> out;
  for (int i = 0; i < n; ++i) {
    out.push_back(Entry{.term = term, .index = first + i, .data = data});
  }
  return out;
}

TEST(ReplicationTest, FastBacktrackingSkipsWholeTerms) {
  Config c = TestConfig();
  c.pre_vote = false;
  c.check_quorum = false;
  ScriptedNetwork net(3, c);
  // 1 and 2 hold terms 2 and 8; 3 holds a long run of entries from terms 3..6 that no
  // quorum ever accepted.
  for (uint64_t id : net.ids()) net.host(id).Crash();
  for (uint64_t id : {1, 2}) {
    ASSERT_TRUE(net.host(id).disk().Append(EntryRun(2, 2, 5, "a")).ok());
    ASSERT_TRUE(net.host(id).disk().Append(EntryRun(7, 8, 5, "b")).ok());
    net.host(id).disk().SetHardState(HardState{.term = 8, .commit = 1});
  }
  for (uint64_t t = 3; t <= 6; ++t) {
    ASSERT_TRUE(net.host(3).disk().Append(EntryRun(2 + (t - 3) * 20, t, 20, "junk")).ok());
  }
  net.host(3).disk().SetHardState(HardState{.term = 6, .commit = 1});
  for (uint64_t id : net.ids()) ASSERT_TRUE(net.host(id).Restart().ok());

  net.node(1).Campaign();
  int rejections = 0;
  for (int i = 0; i < 1000; ++i) {
    net.Flush();
    if (net.queued().empty()) break;
    Message m = net.queued().front();
    if (m.type == MessageType::kAppResp && m.from == 3 && m.reject) ++rejections;
    bool first = true;
    net.DeliverIf([&](const Message&) { return std::exchange(first, false); });
  }
  ASSERT_TRUE(net.host(1).IsLeader());
  EXPECT_EQ(net.host(3).state(), net.host(1).state());
  EXPECT_EQ(net.host(3).state().size(), 10u);
  // Two round trips (one per distinct conflicting stretch), not one per entry (~70).
  EXPECT_LE(rejections, 3);
}

TEST(ReplicationTest, NewLeaderCommitsNoopOfItsTerm) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(2));
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).applied_index(), 2u);
    EXPECT_EQ(net.node(id).TermAt(2), 2u);
    EXPECT_TRUE(net.host(id).state().empty());
  }
}

// Raft §5.4.2 (Figure 8): a leader does not commit an entry of an earlier term by counting
// replicas; it commits it only together with an entry of its own term.
void ReplicatePreviousTermEntryOnly(ScriptedNetwork& net) {
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.node(1).Propose("old").ok());  // index 3, term 2, reaches nobody
  net.DropIf([](const Message&) { return true; });  // persisted by 1 only
  // 1 restarts, then wins term 3 with its longer log.
  net.host(1).Crash();
  ASSERT_TRUE(net.host(1).Restart().ok());
  net.node(1).Campaign();
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVote; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVoteResp; });
  ASSERT_TRUE(net.host(1).IsLeader());
  // Let everything through except the new leader's own entry (index 4).
  auto strip_own_entry = [](Message& m) {
    std::erase_if(m.entries, [](const Entry& e) { return e.index == 4; });
  };
  for (int i = 0; i < 50; ++i) {
    net.MutateQueued(strip_own_entry);
    net.DeliverIf([](const Message&) { return true; });
    if (i % 5 == 0) net.Tick(1);
  }
  net.MutateQueued(strip_own_entry);
  ASSERT_EQ(net.node(2).LastIndex(), 3u);
  ASSERT_EQ(net.node(3).LastIndex(), 3u);
}

TEST(ReplicationTest, OnlyCurrentTermEntriesCommitByCounting) {
  Config c = TestConfig();
  c.pre_vote = false;
  c.check_quorum = false;
  c.max_size_per_msg = 1;  // one entry per append
  ScriptedNetwork net(3, c);
  ReplicatePreviousTermEntryOnly(net);
  // Every member holds index 3, yet it is from term 2: not committed.
  EXPECT_EQ(net.node(1).Status().hard_state.commit, 2u);
  EXPECT_TRUE(net.host(1).state().empty());
  net.Tick(1);  // the next heartbeat uncovers the lost entry and it is sent again
  net.Stabilize();
  EXPECT_EQ(net.node(1).Status().hard_state.commit, 4u);
  EXPECT_EQ(net.host(1).state(), std::vector<std::string>{"old"});
}

TEST(ReplicationTest, PlantedBugCommitsPreviousTermEntryByCounting) {
  Config c = TestConfig();
  c.pre_vote = false;
  c.check_quorum = false;
  c.max_size_per_msg = 1;
  c.planted_bug = PlantedBug::kCommitPreviousTermByCounting;
  ScriptedNetwork net(3, c);
  ReplicatePreviousTermEntryOnly(net);
  EXPECT_EQ(net.node(1).Status().hard_state.commit, 3u);
}

// Config::defer_commit_broadcast: no append goes out only to carry a new commit index.
Config DeferringConfig() {
  Config c = TestConfig();
  c.defer_commit_broadcast = true;
  return c;
}

int CountApps(const std::deque<Message>& q) {
  int n = 0;
  for (const Message& m : q) n += m.type == MessageType::kApp;
  return n;
}

TEST(DeferredCommitTest, NextAppendCarriesTheCommitIndex) {
  ScriptedNetwork net(3, DeferringConfig());
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.node(1).Propose("a").ok());
  net.Flush();
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kApp; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kAppResp; });
  net.Flush();
  EXPECT_EQ(CountApps(net.queued()), 0) << "an append only for the commit index";
  net.Stabilize();
  EXPECT_EQ(net.host(1).state(), std::vector<std::string>{"a"});
  EXPECT_TRUE(net.host(2).state().empty());
  EXPECT_TRUE(net.node(1).HasUnannouncedCommit());

  ASSERT_TRUE(net.node(1).Propose("b").ok());
  net.Stabilize();
  for (uint64_t id : {2, 3}) EXPECT_EQ(net.host(id).state(), std::vector<std::string>{"a"});
  EXPECT_EQ(net.host(1).state(), (std::vector<std::string>{"a", "b"}));

  net.node(1).AnnounceCommit();
  net.Flush();
  EXPECT_EQ(CountApps(net.queued()), 2);
  net.Stabilize();
  for (uint64_t id : {2, 3}) EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(net.node(1).HasUnannouncedCommit());
}

TEST(DeferredCommitTest, HeartbeatCarriesTheCommitIndex) {
  ScriptedNetwork net(3, DeferringConfig());
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  EXPECT_TRUE(net.host(3).state().empty());
  net.Tick(1);
  net.Stabilize();
  for (uint64_t id : {2, 3}) EXPECT_EQ(net.host(id).state(), std::vector<std::string>{"a"});
  EXPECT_FALSE(net.node(1).HasUnannouncedCommit());
}

TEST(DeferredCommitTest, ForwardingFollowerHearsAtOnce) {
  ScriptedNetwork net(3, DeferringConfig());
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(2, "from-2").ok());
  EXPECT_EQ(net.host(2).state(), std::vector<std::string>{"from-2"});
  EXPECT_TRUE(net.host(3).state().empty());
  EXPECT_TRUE(net.node(1).HasUnannouncedCommit());
}

TEST(DeferredCommitTest, ForwardingFollowerHearsOfEachProposalAsItCommits) {
  ScriptedNetwork net(3, DeferringConfig());
  ASSERT_TRUE(net.Elect(1));
  auto props = [](const Message& m) { return m.type == MessageType::kProp; };
  ASSERT_TRUE(net.node(2).Propose("a").ok());
  net.Flush();
  ASSERT_EQ(net.DeliverIf(props), 1);
  const uint64_t a = net.node(1).LastIndex();
  ASSERT_TRUE(net.node(2).Propose("b").ok());
  net.Flush();
  ASSERT_EQ(net.DeliverIf(props), 1);
  net.Flush();
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kApp; });
  net.Flush();
  // Only "a" is acknowledged: it commits alone, and 2, which waits for it, hears at once.
  ASSERT_EQ(net.DeliverIf([&](const Message& m) {
    return m.type == MessageType::kAppResp && m.index == a;
  }), 2);
  net.Flush();
  ASSERT_EQ(net.node(1).Status().hard_state.commit, a);
  int to2 = 0, to3 = 0;
  for (const Message& m : net.queued()) {
    if (m.type != MessageType::kApp || m.commit < a) continue;
    to2 += m.to == 2;
    to3 += m.to == 3;
  }
  EXPECT_EQ(to2, 1);
  EXPECT_EQ(to3, 0);
}

TEST(DeferredCommitTest, ConfigurationChangeIsBroadcastAtOnce) {
  ScriptedNetwork net(3, DeferringConfig());
  ASSERT_TRUE(net.Elect(1));
  // A member that a change removes hears of nothing after it; so every member is told.
  ConfChange remove{.changes = {{ConfChangeType::kRemoveNode, 3}}};
  ASSERT_TRUE(net.node(1).ProposeConfChange(remove).ok());
  net.Stabilize();
  for (uint64_t id : {1, 2, 3}) {
    const ConfState cs = net.node(id).Status().conf_state;
    EXPECT_EQ(cs.voters, (std::vector<uint64_t>{1, 2})) << "member " << id;
    EXPECT_TRUE(cs.voters_outgoing.empty()) << "member " << id;
  }
}

TEST(DeferredCommitTest, OffByDefaultEveryCommitIsBroadcast) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  for (uint64_t id : {2, 3}) EXPECT_EQ(net.host(id).state(), std::vector<std::string>{"a"});
  EXPECT_FALSE(net.node(1).HasUnannouncedCommit());
}

}  // namespace
}  // namespace raft

// Crash and restart: a member rebuilt from exactly what its Readies asked it to persist
// (hard state, entries, snapshot) is the member it was, and the cluster carries on. The
// converse shows why each piece is persisted: a member that forgets its vote can elect a
// second leader in the same term.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "kvstore/raft/testing/scripted_network.h"

namespace raft {
namespace {

using testing::ScriptedNetwork;
using testing::TestConfig;

// What a member must remember across a crash.
struct DurableView {
  HardState hard_state;
  uint64_t last_index = 0;
  std::vector<uint64_t> terms;  // of entries 1..last_index

  bool operator==(const DurableView&) const = default;
};

DurableView ViewOf(ScriptedNetwork& net, uint64_t id) {
  DurableView v;
  v.hard_state = net.node(id).Status().hard_state;
  v.last_index = net.node(id).LastIndex();
  for (uint64_t i = 1; i <= v.last_index; ++i) v.terms.push_back(net.node(id).TermAt(i));
  return v;
}

void PrintTo(const DurableView& v, std::ostream* os) {
  *os << "{term=" << v.hard_state.term << " vote=" << v.hard_state.vote
      << " commit=" << v.hard_state.commit << " last=" << v.last_index << "}";
}

// Ticks and delivers until some member leads; returns it, or kNone.
uint64_t AwaitLeader(ScriptedNetwork& net) {
  for (int i = 0; i < 10 * TestConfig().election_tick && net.Leader() == kNone; ++i) {
    net.TickAll();
    net.Stabilize();
  }
  return net.Leader();
}

TEST(RestartTest, RestartedFollowerKeepsTermVoteCommitAndLog) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  ASSERT_TRUE(net.ProposeAndCommit(1, "b").ok());
  const DurableView before = ViewOf(net, 2);
  ASSERT_EQ(before.hard_state.vote, 1u);
  ASSERT_EQ(before.hard_state.commit, 4u);

  net.host(2).Crash();
  ASSERT_TRUE(net.host(2).Restart().ok());
  EXPECT_EQ(ViewOf(net, 2), before);
  // The state machine starts from the (bootstrap) snapshot and replays the committed log.
  net.Flush();
  EXPECT_EQ(net.host(2).state(), (std::vector<std::string>{"a", "b"}));

  ASSERT_TRUE(net.ProposeAndCommit(1, "c").ok());
  EXPECT_EQ(net.host(2).state(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(RestartTest, RestartedLeaderKeepsItsStateAndClusterElectsAndCommits) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  const DurableView before = ViewOf(net, 1);
  ASSERT_EQ(before.hard_state.vote, 1u);

  net.host(1).Crash();
  ASSERT_TRUE(net.host(1).Restart().ok());
  EXPECT_EQ(ViewOf(net, 1), before);
  EXPECT_FALSE(net.host(1).IsLeader());  // leadership is not persisted

  const uint64_t leader = AwaitLeader(net);
  ASSERT_NE(leader, kNone);
  EXPECT_GT(net.node(leader).Status().hard_state.term, before.hard_state.term);
  ASSERT_TRUE(net.ProposeAndCommit(leader, "b").ok());
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"a", "b"})) << "member " << id;
  }
}

TEST(RestartTest, WholeClusterRestartLosesNothingCommitted) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  ASSERT_TRUE(net.host(1).SnapshotAndCompact(/*keep=*/0).ok());
  ASSERT_TRUE(net.ProposeAndCommit(1, "b").ok());
  std::vector<DurableView> before;
  for (uint64_t id : net.ids()) before.push_back(ViewOf(net, id));

  for (uint64_t id : net.ids()) net.host(id).Crash();
  for (uint64_t id : net.ids()) ASSERT_TRUE(net.host(id).Restart().ok());
  for (uint64_t id : net.ids()) {
    const DurableView after = ViewOf(net, id);
    EXPECT_EQ(after.hard_state, before[id - 1].hard_state) << "member " << id;
    EXPECT_EQ(after.last_index, before[id - 1].last_index) << "member " << id;
  }
  const uint64_t leader = AwaitLeader(net);
  ASSERT_NE(leader, kNone);
  ASSERT_TRUE(net.ProposeAndCommit(leader, "c").ok());
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"a", "b", "c"})) << "member " << id;
  }
}

// Without pre-vote or check-quorum: 1 campaigns in term 2 and wins with 2's vote; its
// messages to 3 (and its appends to 2) are delayed. 2 crashes and restarts, optionally
// with the vote wiped from its disk. Then 3 campaigns in the same term 2 and asks 2.
// Returns the members that lead in term 2.
std::vector<uint64_t> LeadersOfTerm2AfterVoterRestarts(bool forget_vote) {
  Config c = TestConfig();
  c.pre_vote = false;
  c.check_quorum = false;
  ScriptedNetwork net(3, c);
  net.node(1).Campaign();
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVote && m.to == 2; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVoteResp && m.to == 1; });
  EXPECT_TRUE(net.host(1).IsLeader());
  EXPECT_EQ(net.host(2).disk().hard_state(), (HardState{.term = 2, .vote = 1, .commit = 1}));
  net.DropIf([](const Message& m) { return m.from == 1; });

  net.host(2).Crash();
  if (forget_vote) {
    HardState hs = net.host(2).disk().hard_state();
    hs.vote = kNone;
    net.host(2).disk().SetHardState(hs);
  }
  EXPECT_TRUE(net.host(2).Restart().ok());

  net.node(3).Campaign();
  EXPECT_EQ(net.node(3).Status().hard_state.term, 2u);
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVote && m.to == 2; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVoteResp && m.to == 3; });

  std::vector<uint64_t> leaders;
  for (uint64_t id : net.ids()) {
    if (net.host(id).IsLeader() && net.node(id).Status().hard_state.term == 2) {
      leaders.push_back(id);
    }
  }
  return leaders;
}

TEST(RestartTest, PersistedVoteKeepsOneLeaderPerTerm) {
  EXPECT_EQ(LeadersOfTerm2AfterVoterRestarts(/*forget_vote=*/false), std::vector<uint64_t>{1});
}

TEST(RestartTest, ForgettingVoteAcrossRestartElectsTwoLeadersInOneTerm) {
  EXPECT_EQ(LeadersOfTerm2AfterVoterRestarts(/*forget_vote=*/true), (std::vector<uint64_t>{1, 3}));
}

}  // namespace
}  // namespace raft

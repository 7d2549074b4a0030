// Leader election: randomized timeouts, pre-vote, check-quorum and the one-vote-per-term
// rule, each shown with scripted message exchanges.
#include <gtest/gtest.h>

#include "kvstore/raft/testing/scripted_network.h"

namespace raft {
namespace {

using testing::ScriptedNetwork;
using testing::TestConfig;

bool IsType(const Message& m, MessageType t) { return m.type == t; }

TEST(ElectionTest, SingleMemberElectsItselfAtOnce) {
  ScriptedNetwork net(1);
  EXPECT_TRUE(net.Elect(1));
  EXPECT_EQ(net.node(1).Status().hard_state.term, 2u);
}

TEST(ElectionTest, RandomizedTimeoutElectsOneLeader) {
  ScriptedNetwork net(3);
  int ticks = 0;
  while (net.Leader() == kNone && ticks < 100) {
    net.TickAll();
    net.Stabilize();
    ++ticks;
  }
  ASSERT_NE(net.Leader(), kNone);
  // The first campaign starts within [election_tick, 2*election_tick).
  EXPECT_GE(ticks, 10);
  EXPECT_LT(ticks, 20);
  for (uint64_t id : net.ids()) EXPECT_EQ(net.host(id).leader(), net.Leader());
}

TEST(ElectionTest, RandomizedTimeoutsDifferAcrossSeeds) {
  std::set<int> first_campaign_tick;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Config c = TestConfig();
    c.seed = seed;
    ScriptedNetwork net(1, c);
    int ticks = 0;
    while (!net.host(1).IsLeader() && ticks < 30) {
      net.Tick(1);
      ++ticks;
    }
    ASSERT_TRUE(net.host(1).IsLeader());
    ASSERT_GE(ticks, 10);
    ASSERT_LT(ticks, 20);
    first_campaign_tick.insert(ticks);
  }
  EXPECT_GT(first_campaign_tick.size(), 3u);
}

TEST(ElectionTest, OneVotePerTerm) {
  Config c = TestConfig();
  c.pre_vote = false;
  c.check_quorum = false;
  ScriptedNetwork net(3, c);
  // 1 and 2 campaign in the same term; 3 hears 1 first.
  net.node(1).Campaign();
  net.node(2).Campaign();
  net.Flush();
  net.DeliverIf([](const Message& m) { return m.to == 3 && m.from == 1; });
  net.DeliverIf([](const Message& m) { return m.to == 3 && m.from == 2; });
  int granted_to_1 = 0, granted_to_2 = 0;
  for (const Message& m : net.queued()) {
    if (m.type == MessageType::kVoteResp && m.from == 3 && !m.reject) {
      (m.to == 1 ? granted_to_1 : granted_to_2)++;
    }
  }
  EXPECT_EQ(granted_to_1, 1);
  EXPECT_EQ(granted_to_2, 0);
  EXPECT_EQ(net.node(3).Status().hard_state.vote, 1u);
}

TEST(ElectionTest, CandidateWithShorterLogLoses) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.Isolate(3);
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  net.Heal();
  // 3 missed "a": neither 1 nor 2 will vote for it.
  net.node(3).Campaign();
  net.Stabilize();
  EXPECT_FALSE(net.host(3).IsLeader());
  EXPECT_TRUE(net.host(1).IsLeader() || net.host(2).IsLeader());
}

TEST(ElectionTest, PreVoteKeepsPartitionedMemberFromRaisingTerms) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  const uint64_t term = net.node(1).Status().hard_state.term;
  net.Isolate(3);
  net.Tick(3, 100);
  net.Stabilize();
  EXPECT_EQ(net.node(3).Status().hard_state.term, term);
  net.Heal();
  net.TickAll(3);
  net.Stabilize();
  EXPECT_TRUE(net.host(1).IsLeader());
  EXPECT_EQ(net.node(1).Status().hard_state.term, term);
}

TEST(ElectionTest, WithoutPreVotePartitionedMemberDisruptsOnReturn) {
  Config c = TestConfig();
  c.pre_vote = false;
  c.check_quorum = false;
  ScriptedNetwork net(3, c);
  ASSERT_TRUE(net.Elect(1));
  const uint64_t term = net.node(1).Status().hard_state.term;
  net.Isolate(3);
  net.Tick(3, 100);
  net.Stabilize();
  EXPECT_GT(net.node(3).Status().hard_state.term, term);
  net.Heal();
  // 3 ignores the old leader's heartbeats and campaigns again at a term above it.
  for (int i = 0; i < 25; ++i) {
    net.TickAll(1);
    net.Stabilize();
  }
  // The higher term deposes the leader: the reason pre-vote exists.
  EXPECT_GT(net.node(1).Status().hard_state.term, term);
}

TEST(ElectionTest, CheckQuorumLeaderStepsDownWhenCutOff) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.Isolate(1);
  net.Tick(1, 19);
  EXPECT_TRUE(net.host(1).IsLeader());  // the first check still saw followers active
  net.Tick(1, 1);
  EXPECT_FALSE(net.host(1).IsLeader());
}

TEST(ElectionTest, CheckQuorumFollowersIgnoreCampaignsWhileLeaderIsAlive) {
  Config c = TestConfig();
  c.pre_vote = false;
  ScriptedNetwork net(3, c);
  ASSERT_TRUE(net.Elect(1));
  const uint64_t term = net.node(1).Status().hard_state.term;
  // 3 campaigns although 1 is fine (say its clock ran fast); 2 just heard from 1.
  net.TickAll(1);
  net.Stabilize();
  net.node(3).Campaign();
  net.Flush();
  EXPECT_EQ(net.DropIf([](const Message& m) { return m.type == MessageType::kVote; }), 2);
  net.node(3).Campaign();
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVote && m.to == 2; });
  // 2 ignores the vote request: no answer, no term change.
  EXPECT_EQ(net.DeliverIf([](const Message& m) { return IsType(m, MessageType::kVoteResp); }), 0);
  EXPECT_EQ(net.node(2).Status().hard_state.term, term);
}

// Ticks every member but `down` and delivers, until someone other than `down` leads;
// returns the ticks it took (or `limit`).
int TicksToNewLeader(ScriptedNetwork& net, uint64_t down, int limit) {
  for (int ticks = 1; ticks <= limit; ++ticks) {
    for (uint64_t id : net.ids()) {
      if (id != down) net.Tick(id);
    }
    net.Stabilize();
    for (uint64_t id : net.ids()) {
      if (id != down && net.host(id).IsLeader()) return ticks;
    }
  }
  return limit;
}

TEST(ElectionTest, LeaderReportedDownIsReplacedSooner) {
  int within_one_timeout = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    int ticks[2];
    for (bool report : {false, true}) {
      Config c = TestConfig();
      c.seed = seed;
      ScriptedNetwork net(3, c);
      ASSERT_TRUE(net.Elect(1));
      net.Isolate(1);
      if (report) {
        net.node(2).ReportPeerDown(1);
        net.node(3).ReportPeerDown(1);
      }
      ticks[report] = TicksToNewLeader(net, 1, 60);
    }
    // Without the report the first campaign waits out [10, 20) ticks; with it, only the
    // random part, [0, 10) and the tick that notices (more when the two campaign at once
    // and split the vote).
    EXPECT_GE(ticks[false], 10) << "seed " << seed;
    EXPECT_LT(ticks[true], ticks[false]) << "seed " << seed;
    if (ticks[true] <= 10) ++within_one_timeout;
  }
  EXPECT_GE(within_one_timeout, 15);
}

TEST(ElectionTest, PeerDownReportAboutANonLeaderOrALiveLeaderChangesNothing) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  const uint64_t term = net.node(1).Status().hard_state.term;
  // A report about a member that does not lead is ignored: 3 keeps its lease and refuses
  // 2's campaign while 1 is heard.
  net.node(3).ReportPeerDown(2);
  net.node(2).ReportPeerDown(1);  // 2 alone thinks 1 is gone
  net.TickAll(1);
  net.Stabilize();
  net.node(2).Campaign();
  net.Stabilize();
  EXPECT_TRUE(net.host(1).IsLeader());
  EXPECT_EQ(net.node(1).Status().hard_state.term, term);
  // 2 hears 1's heartbeats again and follows it.
  net.TickAll(1);
  net.Stabilize();
  EXPECT_EQ(net.host(2).leader(), 1u);
}

}  // namespace
}  // namespace raft

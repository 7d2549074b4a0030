// Leadership transfer: the leader brings the target's log up to date, then tells it to
// campaign at once (TimeoutNow). While a transfer is under way the leader takes no
// proposals, so the target's log stays complete; a transfer that does not finish within an
// election timeout is abandoned.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kvstore/raft/testing/scripted_network.h"

namespace raft {
namespace {

using testing::ScriptedNetwork;
using testing::TestConfig;

int CountQueued(const ScriptedNetwork& net, const std::function<bool(const Message&)>& pred) {
  int n = 0;
  for (const Message& m : net.queued()) n += pred(m) ? 1 : 0;
  return n;
}

bool TimeoutNowTo(const Message& m, uint64_t to) {
  return m.type == MessageType::kTimeoutNow && m.to == to;
}

uint64_t Term(ScriptedNetwork& net, uint64_t id) { return net.node(id).Status().hard_state.term; }

TEST(LeadershipTransferTest, UpToDateTargetGetsTimeoutNowAndLeadsInNextTerm) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  const uint64_t term = Term(net, 1);

  net.node(1).TransferLeadership(2);
  net.Flush();
  EXPECT_EQ(net.node(1).Status().lead_transferee, 2u);
  EXPECT_EQ(CountQueued(net, [](const Message& m) { return TimeoutNowTo(m, 2); }), 1);
  EXPECT_EQ(CountQueued(net, [](const Message& m) { return m.type == MessageType::kApp; }), 0);

  net.Stabilize();
  EXPECT_TRUE(net.host(2).IsLeader());
  EXPECT_FALSE(net.host(1).IsLeader());
  EXPECT_EQ(Term(net, 2), term + 1);
  EXPECT_EQ(net.Leader(), 2u);
  ASSERT_TRUE(net.ProposeAndCommit(2, "b").ok());
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"a", "b"}));
  }
}

TEST(LeadershipTransferTest, LaggingTargetIsCaughtUpBeforeTimeoutNow) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.Cut(1, 3);
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  ASSERT_TRUE(net.ProposeAndCommit(1, "b").ok());
  net.Heal();
  ASSERT_LT(net.node(3).LastIndex(), net.node(1).LastIndex());

  net.node(1).TransferLeadership(3);
  net.Flush();
  EXPECT_EQ(net.node(1).Status().lead_transferee, 3u);
  EXPECT_EQ(CountQueued(net, [](const Message& m) { return TimeoutNowTo(m, 3); }), 0);
  EXPECT_GE(
      CountQueued(net, [](const Message& m) { return m.type == MessageType::kApp && m.to == 3; }),
      1);

  // Deliver the catch-up exchange one message at a time: TimeoutNow may only appear once
  // 3 holds the leader's whole log.
  int appends_to_3 = 0;
  for (int i = 0; i < 100 && !net.queued().empty(); ++i) {
    if (CountQueued(net, [](const Message& m) { return TimeoutNowTo(m, 3); }) > 0) break;
    const Message& next = net.queued().front();
    if (next.type == MessageType::kApp && next.to == 3) ++appends_to_3;
    bool first = true;
    net.DeliverIf([&](const Message&) { return std::exchange(first, false); });
  }
  ASSERT_EQ(CountQueued(net, [](const Message& m) { return TimeoutNowTo(m, 3); }), 1);
  EXPECT_GE(appends_to_3, 1);
  EXPECT_EQ(net.node(3).LastIndex(), net.node(1).LastIndex());

  net.Stabilize();
  EXPECT_TRUE(net.host(3).IsLeader());
  EXPECT_EQ(net.host(3).state(), (std::vector<std::string>{"a", "b"}));
}

TEST(LeadershipTransferTest, ProposalsAreDroppedWhileTransferIsInProgress) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.node(1).TransferLeadership(2);
  net.Flush();  // TimeoutNow stays queued: the transfer is under way

  EXPECT_TRUE(absl::IsUnavailable(net.node(1).Propose("x")));
  // A proposal forwarded by a follower is refused too.
  ASSERT_TRUE(net.node(3).Propose("y").ok());
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kProp; });
  EXPECT_EQ(net.node(1).LastIndex(), 2u);

  net.Stabilize();
  ASSERT_TRUE(net.host(2).IsLeader());
  ASSERT_TRUE(net.ProposeAndCommit(2, "z").ok());
  EXPECT_EQ(net.host(1).state(), std::vector<std::string>{"z"});
}

TEST(LeadershipTransferTest, TransferToSilentMemberIsAbandonedAfterElectionTimeout) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.host(3).Crash();
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());

  net.node(1).TransferLeadership(3);
  net.Stabilize();
  ASSERT_EQ(net.node(1).Status().lead_transferee, 3u);
  EXPECT_TRUE(absl::IsUnavailable(net.node(1).Propose("refused")));

  // The transfer restarts the election clock; it is given exactly one election timeout.
  const int election_tick = TestConfig().election_tick;
  for (int i = 0; i < election_tick - 1; ++i) {
    net.TickAll();
    net.Stabilize();
  }
  EXPECT_EQ(net.node(1).Status().lead_transferee, 3u);
  net.TickAll();
  net.Stabilize();
  EXPECT_EQ(net.node(1).Status().lead_transferee, kNone);
  EXPECT_TRUE(net.host(1).IsLeader());
  ASSERT_TRUE(net.ProposeAndCommit(1, "b").ok());
  EXPECT_EQ(net.host(2).state(), (std::vector<std::string>{"a", "b"}));
}

TEST(LeadershipTransferTest, TransferRequestedOnFollowerIsForwardedToLeader) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.node(2).TransferLeadership(3);
  net.Flush();
  EXPECT_EQ(CountQueued(net,
                        [](const Message& m) {
                          return m.type == MessageType::kTransferLeader && m.from == 2 &&
                                 m.to == 1 && m.context == 3;
                        }),
            1);
  net.Stabilize();
  EXPECT_TRUE(net.host(3).IsLeader());
  EXPECT_EQ(net.Leader(), 3u);
}

TEST(LeadershipTransferTest, TransferToLearnerOrSelfIsIgnored) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.AddHost(4);
  ASSERT_TRUE(net.node(1)
                  .ProposeConfChange(ConfChange{.changes = {{ConfChangeType::kAddLearner, 4}}})
                  .ok());
  net.Stabilize();
  ASSERT_EQ(net.node(1).Status().conf_state.learners, std::vector<uint64_t>{4});

  for (uint64_t target : {4, 1}) {
    net.node(1).TransferLeadership(target);
    net.Flush();
    EXPECT_EQ(net.node(1).Status().lead_transferee, kNone) << "target " << target;
    EXPECT_EQ(CountQueued(net, [](const Message& m) { return m.type == MessageType::kTimeoutNow; }),
              0)
        << "target " << target;
    // Not a transfer in progress: proposals are still taken.
    EXPECT_TRUE(net.ProposeAndCommit(1, "after-" + std::to_string(target)).ok());
    EXPECT_TRUE(net.host(1).IsLeader());
  }
  EXPECT_EQ(net.host(4).state(), (std::vector<std::string>{"after-4", "after-1"}));
}

// Check-quorum makes voters that hear from a live leader ignore campaigns. The target of a
// transfer marks its vote requests, so that they are heard anyway.
void StartTransferWithVotersInLease(ScriptedNetwork& net) {
  ASSERT_TRUE(net.Elect(1));
  net.TickAll();  // a heartbeat: every follower has just heard from the leader
  net.Stabilize();
  net.node(1).TransferLeadership(2);
  net.DeliverIf([](const Message& m) { return TimeoutNowTo(m, 2); });
  ASSERT_EQ(net.node(2).Status().soft_state.role, Role::kCandidate);
  ASSERT_EQ(CountQueued(net, [](const Message& m) { return m.type == MessageType::kVote; }), 2);
}

TEST(LeadershipTransferTest, TargetWinsAlthoughVotersAreWithinCheckQuorumLease) {
  ScriptedNetwork net(3);  // check_quorum and pre_vote on
  ASSERT_NO_FATAL_FAILURE(StartTransferWithVotersInLease(net));
  const uint64_t term = Term(net, 2);
  // TimeoutNow skips pre-vote and marks the request as a transfer.
  EXPECT_EQ(
      CountQueued(net, [](const Message& m) { return m.type == MessageType::kVote && m.transfer; }),
      2);
  net.Stabilize();
  EXPECT_TRUE(net.host(2).IsLeader());
  EXPECT_EQ(Term(net, 2), term);
}

TEST(LeadershipTransferTest, WithoutTransferFlagVotersInLeaseIgnoreTheTarget) {
  ScriptedNetwork net(3);
  ASSERT_NO_FATAL_FAILURE(StartTransferWithVotersInLease(net));
  net.MutateQueued([](Message& m) {
    if (m.type == MessageType::kVote) m.transfer = false;
  });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVote; });
  // Neither the old leader nor 3 answers, and neither moves to the candidate's term.
  EXPECT_EQ(CountQueued(net, [](const Message& m) { return m.type == MessageType::kVoteResp; }), 0);
  EXPECT_FALSE(net.host(2).IsLeader());
  EXPECT_LT(Term(net, 3), Term(net, 2));
}

}  // namespace
}  // namespace raft

// Membership changes: every change of the voter set passes through a joint configuration
// (old and new voters must each agree) that the leader leaves on its own; learners receive
// the log without voting or counting toward commitment; one change at a time.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kvstore/raft/testing/scripted_network.h"

namespace raft {
namespace {

using testing::ScriptedNetwork;

ConfChange Change(ConfChangeType type, uint64_t id) { return ConfChange{.changes = {{type, id}}}; }

ConfState StatusConf(ScriptedNetwork& net, uint64_t id) { return net.node(id).Status().conf_state; }

int CountQueued(const ScriptedNetwork& net, const std::function<bool(const Message&)>& pred) {
  int n = 0;
  for (const Message& m : net.queued()) n += pred(m) ? 1 : 0;
  return n;
}

TEST(MembershipTest, AddingVoterEntersJointConfigurationAndLeavesItAutomatically) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.AddHost(4);
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddVoter, 4)).ok());
  // Replicate the change to 2 and 3 and let the leader learn that it committed; the leader
  // applies it (entering the joint configuration) and at once proposes leaving it.
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kApp; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kAppResp; });
  const ConfState joint = StatusConf(net, 1);
  EXPECT_EQ(joint.voters, (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(joint.voters_outgoing, (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_TRUE(joint.auto_leave);
  // The entry that leaves the joint configuration is already in the leader's log.
  const uint64_t last = net.node(1).LastIndex();
  absl::StatusOr<std::vector<Entry>> tail =
      net.node(1).raft().log().Slice(last, last + 1, UINT64_MAX);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->size(), 1u);
  ASSERT_EQ((*tail)[0].type, EntryType::kConfChange);
  absl::StatusOr<ConfChange> leave = DecodeConfChange((*tail)[0].data);
  ASSERT_TRUE(leave.ok());
  EXPECT_TRUE(leave->IsLeaveJoint());

  net.Stabilize();
  for (uint64_t id : net.ids()) {
    const ConfState cs = StatusConf(net, id);
    EXPECT_EQ(cs.voters, (std::vector<uint64_t>{1, 2, 3, 4})) << "member " << id;
    EXPECT_TRUE(cs.voters_outgoing.empty()) << "member " << id;
    EXPECT_FALSE(cs.auto_leave) << "member " << id;
  }
  ASSERT_TRUE(net.ProposeAndCommit(1, "x").ok());
  for (uint64_t id : net.ids()) EXPECT_EQ(net.host(id).state(), std::vector<std::string>{"x"});
}

TEST(MembershipTest, JointConfigurationNeedsMajorityOfOldAndNewVoters) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.AddHost(4);
  net.AddHost(5);
  ASSERT_TRUE(net.node(1)
                  .ProposeConfChange(ConfChange{
                      .changes = {{ConfChangeType::kAddVoter, 4}, {ConfChangeType::kAddVoter, 5}}})
                  .ok());
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kApp; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kAppResp; });
  ASSERT_EQ(StatusConf(net, 1).voters_outgoing, (std::vector<uint64_t>{1, 2, 3}));
  const uint64_t commit = net.node(1).Status().hard_state.commit;

  // 1, 4 and 5 are a majority of the new voters {1..5} but only one of the old {1,2,3}:
  // the entry that leaves the joint configuration reaches 4 and 5 and still does not commit.
  net.Cut(1, 2);
  net.Cut(1, 3);
  net.Stabilize();
  ASSERT_EQ(net.node(4).LastIndex(), net.node(1).LastIndex());
  ASSERT_EQ(net.node(5).LastIndex(), net.node(1).LastIndex());
  EXPECT_EQ(net.node(1).Status().hard_state.commit, commit);
  EXPECT_FALSE(StatusConf(net, 1).voters_outgoing.empty());

  net.Heal();
  net.TickAll();
  net.Stabilize();
  EXPECT_GT(net.node(1).Status().hard_state.commit, commit);
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(StatusConf(net, id).voters, (std::vector<uint64_t>{1, 2, 3, 4, 5})) << id;
    EXPECT_TRUE(StatusConf(net, id).voters_outgoing.empty()) << id;
  }
}

TEST(MembershipTest, NewMemberWithEmptyDiskReceivesSnapshotAndLogAndAppliesSameState) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  ASSERT_TRUE(net.ProposeAndCommit(1, "b").ok());
  // The leader compacted its log: the newcomer must start from a snapshot.
  ASSERT_TRUE(net.host(1).SnapshotAndCompact(/*keep=*/0).ok());

  net.AddHost(4);
  int snaps_to_4 = 0;
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddVoter, 4)).ok());
  for (int i = 0; i < 10000; ++i) {
    net.Flush();
    if (net.queued().empty()) break;
    const Message& next = net.queued().front();
    if (next.type == MessageType::kSnap && next.to == 4) ++snaps_to_4;
    bool first = true;
    net.DeliverIf([&](const Message&) { return std::exchange(first, false); });
  }
  EXPECT_EQ(snaps_to_4, 1);
  ASSERT_TRUE(net.ProposeAndCommit(1, "c").ok());
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"a", "b", "c"})) << "member " << id;
    EXPECT_EQ(StatusConf(net, id).voters, (std::vector<uint64_t>{1, 2, 3, 4})) << "member " << id;
  }
}

// The leader should probe a member as soon as it is added, as it does after entering a
// joint configuration, rather than leave it waiting for the next heartbeat or proposal.
TEST(MembershipTest, NewLearnerIsContactedWithoutWaitingForHeartbeat) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  net.AddHost(4);
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearner, 4)).ok());
  net.Stabilize();
  ASSERT_EQ(StatusConf(net, 1).learners, std::vector<uint64_t>{4});
  EXPECT_EQ(StatusConf(net, 4).learners, std::vector<uint64_t>{4});
  EXPECT_EQ(net.host(4).applied_index(), net.host(1).applied_index());
}

// Voters {1,2,3} and learner 4, all up to date.
void AddLearner4(ScriptedNetwork& net) {
  ASSERT_TRUE(net.Elect(1));
  net.AddHost(4);
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearner, 4)).ok());
  net.Stabilize();
  // The heartbeat is what brings 4 in today (see NewLearnerIsContactedWithoutWaitingFor-
  // Heartbeat).
  net.TickAll();
  net.Stabilize();
  for (uint64_t id : net.ids()) {
    const ConfState cs = StatusConf(net, id);
    ASSERT_EQ(cs.voters, (std::vector<uint64_t>{1, 2, 3})) << "member " << id;
    ASSERT_EQ(cs.learners, std::vector<uint64_t>{4}) << "member " << id;
    // Only learners changed: no joint configuration.
    ASSERT_TRUE(cs.voters_outgoing.empty()) << "member " << id;
  }
}

TEST(MembershipTest, LearnerReceivesLogButNeverCountsTowardCommit) {
  ScriptedNetwork net(3);
  ASSERT_NO_FATAL_FAILURE(AddLearner4(net));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  EXPECT_EQ(net.host(4).state(), std::vector<std::string>{"a"});

  // With 2 and 3 cut off, the leader and the learner hold "b", but 1 of 3 voters is no
  // quorum.
  net.Cut(1, 2);
  net.Cut(1, 3);
  const uint64_t commit = net.node(1).Status().hard_state.commit;
  ASSERT_TRUE(net.node(1).Propose("b").ok());
  net.Flush();
  EXPECT_EQ(
      net.DeliverIf([](const Message& m) { return m.type == MessageType::kApp && m.to == 4; }), 1);
  EXPECT_EQ(net.DeliverIf([](const Message& m) {
    return m.type == MessageType::kAppResp && m.from == 4 && !m.reject;
  }),
            1);
  net.Stabilize();
  EXPECT_EQ(net.node(4).LastIndex(), net.node(1).LastIndex());
  EXPECT_EQ(net.node(1).Status().hard_state.commit, commit);
  EXPECT_EQ(net.host(1).state(), std::vector<std::string>{"a"});
  EXPECT_EQ(net.host(4).state(), std::vector<std::string>{"a"});

  net.Heal();
  net.TickAll();
  net.Stabilize();
  EXPECT_EQ(net.host(4).state(), (std::vector<std::string>{"a", "b"}));
}

TEST(MembershipTest, LearnerNeverCampaignsNorIsAskedToVote) {
  ScriptedNetwork net(3);
  ASSERT_NO_FATAL_FAILURE(AddLearner4(net));
  const uint64_t term = net.node(4).Status().hard_state.term;

  net.node(4).Campaign();
  net.Flush();
  EXPECT_TRUE(net.queued().empty());
  // Cut off from everyone for many election timeouts, it still waits.
  net.Isolate(4);
  net.Tick(4, 100);
  net.Stabilize();
  EXPECT_EQ(net.node(4).Status().soft_state.role, Role::kFollower);
  EXPECT_EQ(net.node(4).Status().hard_state.term, term);

  // A voter's campaign asks the voters only.
  net.Heal();
  net.Isolate(1);
  net.Tick(2, 2 * testing::TestConfig().election_tick);
  EXPECT_GT(CountQueued(net,
                        [](const Message& m) {
                          return m.type == MessageType::kPreVote || m.type == MessageType::kVote;
                        }),
            0);
  EXPECT_EQ(CountQueued(net, [](const Message& m) { return m.to == 4; }), 0);
}

TEST(MembershipTest, PromotedLearnerBecomesVoter) {
  ScriptedNetwork net(3);
  ASSERT_NO_FATAL_FAILURE(AddLearner4(net));
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddVoter, 4)).ok());
  net.Stabilize();
  for (uint64_t id : net.ids()) {
    const ConfState cs = StatusConf(net, id);
    EXPECT_EQ(cs.voters, (std::vector<uint64_t>{1, 2, 3, 4})) << "member " << id;
    EXPECT_TRUE(cs.learners.empty()) << "member " << id;
    EXPECT_TRUE(cs.voters_outgoing.empty()) << "member " << id;
  }

  // 4 now counts: with 2 and 4 cut off, 1 and 3 are 2 of 4 voters, no quorum (as a learner
  // 4 would not have been missed: 1 and 3 are 2 of 3).
  net.Cut(1, 2);
  net.Cut(1, 4);
  const uint64_t commit = net.node(1).Status().hard_state.commit;
  ASSERT_TRUE(net.ProposeAndCommit(1, "x").ok());
  EXPECT_EQ(net.node(1).Status().hard_state.commit, commit);
  net.Heal();
  net.TickAll();
  net.Stabilize();
  EXPECT_GT(net.node(1).Status().hard_state.commit, commit);

  // And it may lead.
  net.node(1).TransferLeadership(4);
  net.Stabilize();
  EXPECT_TRUE(net.host(4).IsLeader());
  ASSERT_TRUE(net.ProposeAndCommit(4, "y").ok());
  for (uint64_t id : net.ids()) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"x", "y"})) << "member " << id;
  }
}

TEST(MembershipTest, RemovedLeaderStepsDownAndAnotherMemberLeads) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kRemoveNode, 1)).ok());
  // Once leaving the joint configuration is applied, 1 takes no more proposals and hands
  // over to a remaining voter that holds its whole log.
  int timeout_now = 0;
  for (int i = 0; i < 1000; ++i) {
    net.Flush();
    if (net.queued().empty()) break;
    const Message& m = net.queued().front();
    if (m.type == MessageType::kTimeoutNow && m.from == 1) {
      ++timeout_now;
      EXPECT_TRUE(StatusConf(net, 1).voters_outgoing.empty());
      EXPECT_EQ(net.node(m.to).LastIndex(), net.node(1).LastIndex());
      EXPECT_TRUE(absl::IsUnavailable(net.node(1).Propose("refused")));
    }
    bool first = true;
    net.DeliverIf([&](const Message&) { return std::exchange(first, false); });
  }
  EXPECT_EQ(timeout_now, 1);
  const uint64_t leader = net.host(2).IsLeader() ? 2 : 3;
  ASSERT_TRUE(net.host(leader).IsLeader());
  EXPECT_GT(net.node(leader).Status().hard_state.term, net.node(1).Status().hard_state.term);
  // 1 steps down as soon as it hears of the new term (its next heartbeat is answered so).
  net.TickAll();
  net.Stabilize();
  EXPECT_FALSE(net.host(1).IsLeader());
  EXPECT_EQ(net.Leader(), leader);
  for (uint64_t id : {2, 3}) {
    const ConfState cs = StatusConf(net, id);
    EXPECT_EQ(cs.voters, (std::vector<uint64_t>{2, 3})) << "member " << id;
    EXPECT_TRUE(cs.voters_outgoing.empty()) << "member " << id;
  }
  ASSERT_TRUE(net.ProposeAndCommit(leader, "b").ok());
  for (uint64_t id : {2, 3}) {
    EXPECT_EQ(net.host(id).state(), (std::vector<std::string>{"a", "b"})) << "member " << id;
  }
  // The removed member gets nothing more and does not campaign.
  for (int i = 0; i < 5 * testing::TestConfig().election_tick; ++i) {
    net.TickAll();
    net.Stabilize();
  }
  EXPECT_EQ(net.Leader(), leader);
  EXPECT_EQ(net.host(1).state(), std::vector<std::string>{"a"});
}

// A removed leader may be the only member that knows its removal committed; stepping
// down for want of a quorum could leave the remaining voters unable to elect anyone (they
// may still be in the joint configuration and need its vote). It keeps leading, taking no
// proposals, until it has handed over.
TEST(MembershipTest, RemovedLeaderCutOffKeepsLeadingUntilItHandsOver) {
  ScriptedNetwork net(2);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kRemoveNode, 1)).ok());
  for (int i = 0; i < 1000; ++i) {
    net.Flush();
    if (net.queued().empty()) break;
    if (net.queued().front().type == MessageType::kTimeoutNow) {
      net.Cut(1, 2);  // the hand-over is lost, and 1 hears from nobody for a while
      break;
    }
    bool first = true;
    net.DeliverIf([&](const Message&) { return std::exchange(first, false); });
  }
  ASSERT_TRUE(StatusConf(net, 1).voters == std::vector<uint64_t>{2});
  for (int i = 0; i < 3 * testing::TestConfig().election_tick; ++i) {
    net.TickAll();
    net.Stabilize();
  }
  EXPECT_TRUE(net.host(1).IsLeader());
  EXPECT_TRUE(absl::IsUnavailable(net.node(1).Propose("refused")));

  net.Heal();
  for (int i = 0; i < 3 * testing::TestConfig().election_tick && !net.host(2).IsLeader(); ++i) {
    net.TickAll();
    net.Stabilize();
  }
  EXPECT_TRUE(net.host(2).IsLeader());
  EXPECT_EQ(StatusConf(net, 2).voters, std::vector<uint64_t>{2});
  EXPECT_TRUE(StatusConf(net, 2).voters_outgoing.empty());
}

TEST(MembershipTest, SecondChangeWhileOneIsPendingIsRefused) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearner, 4)).ok());
  const uint64_t last = net.node(1).LastIndex();
  EXPECT_TRUE(absl::IsFailedPrecondition(
      net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearner, 5))));
  EXPECT_EQ(net.node(1).LastIndex(), last);
  net.Stabilize();
  // Applied: the next change is taken.
  EXPECT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddLearner, 5)).ok());
  net.Stabilize();
  EXPECT_EQ(StatusConf(net, 1).learners, (std::vector<uint64_t>{4, 5}));

  // While joint, even after entering is applied, the pending leave blocks another change.
  ASSERT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kAddVoter, 4)).ok());
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kApp; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kAppResp; });
  ASSERT_FALSE(StatusConf(net, 1).voters_outgoing.empty());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      net.node(1).ProposeConfChange(Change(ConfChangeType::kAddVoter, 5))));
  net.Stabilize();
  EXPECT_EQ(StatusConf(net, 1).voters, (std::vector<uint64_t>{1, 2, 3, 4}));
}

TEST(MembershipTest, RemovingEveryVoterIsRefused) {
  ScriptedNetwork net(3);
  ASSERT_TRUE(net.Elect(1));
  const uint64_t last = net.node(1).LastIndex();
  EXPECT_TRUE(absl::IsFailedPrecondition(
      net.node(1).ProposeConfChange(ConfChange{.changes = {{ConfChangeType::kRemoveNode, 1},
                                                           {ConfChangeType::kRemoveNode, 2},
                                                           {ConfChangeType::kRemoveNode, 3}}})));
  EXPECT_EQ(net.node(1).LastIndex(), last);

  ScriptedNetwork single(1);
  ASSERT_TRUE(single.Elect(1));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      single.node(1).ProposeConfChange(Change(ConfChangeType::kRemoveNode, 1))));
  // Nothing was refused for good: a valid change is still taken.
  EXPECT_TRUE(net.node(1).ProposeConfChange(Change(ConfChangeType::kRemoveNode, 3)).ok());
}

}  // namespace
}  // namespace raft

// ReadIndex: a linearizable read is served at the commit index the leader had when the
// request arrived, but only once a quorum has acknowledged a heartbeat round sent after it;
// otherwise a deposed leader that does not know it yet could serve a stale read.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kvstore/raft/testing/scripted_network.h"

namespace raft {
namespace {

using testing::ScriptedNetwork;
using testing::TestConfig;

// Records the read states every member hands out in its Readies.
class ReadStateLog {
 public:
  explicit ReadStateLog(ScriptedNetwork& net) {
    for (uint64_t id : net.ids()) {
      net.host(id).on_read_state = [this](uint64_t host, const ReadState& rs) {
        got_[host].push_back(rs);
      };
    }
  }

  const std::vector<ReadState>& Of(uint64_t id) { return got_[id]; }

 private:
  std::map<uint64_t, std::vector<ReadState>> got_;
};

int CountQueued(const ScriptedNetwork& net, const std::function<bool(const Message&)>& pred) {
  int n = 0;
  for (const Message& m : net.queued()) n += pred(m) ? 1 : 0;
  return n;
}

bool IsReadRoundHeartbeat(const Message& m) {
  return m.type == MessageType::kHeartbeat && m.context != 0;
}

TEST(ReadIndexTest, LeaderAnswersOnlyAfterQuorumAcknowledgesHeartbeatRound) {
  ScriptedNetwork net(3);
  ReadStateLog reads(net);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  const uint64_t commit = net.node(1).Status().hard_state.commit;
  ASSERT_EQ(commit, 3u);

  net.node(1).ReadIndex(7);
  net.Flush();
  EXPECT_TRUE(reads.Of(1).empty());
  EXPECT_EQ(CountQueued(net, IsReadRoundHeartbeat), 2);

  // The followers acknowledge, but the acknowledgements are still on the wire.
  EXPECT_EQ(net.DeliverIf([](const Message& m) { return m.type == MessageType::kHeartbeat; }), 2);
  EXPECT_TRUE(reads.Of(1).empty());

  // One acknowledgement plus the leader itself is a quorum of three.
  EXPECT_EQ(net.DeliverIf([](const Message& m) {
    return m.type == MessageType::kHeartbeatResp && m.from == 2;
  }),
            1);
  ASSERT_EQ(reads.Of(1).size(), 1u);
  EXPECT_EQ(reads.Of(1)[0], (ReadState{.index = commit, .request_id = 7}));

  // The late acknowledgement answers nothing twice.
  net.Stabilize();
  EXPECT_EQ(reads.Of(1).size(), 1u);
}

TEST(ReadIndexTest, RequestsBeforeOneReadyShareOneHeartbeatRound) {
  ScriptedNetwork net(3);
  ReadStateLog reads(net);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());

  constexpr uint64_t kRequests = 5;
  for (uint64_t id = 1; id <= kRequests; ++id) net.node(1).ReadIndex(id);
  net.Flush();
  for (uint64_t follower : {2, 3}) {
    EXPECT_EQ(CountQueued(net,
                          [follower](const Message& m) {
                            return m.type == MessageType::kHeartbeat && m.to == follower;
                          }),
              1)
        << "follower " << follower;
  }
  net.Stabilize();
  ASSERT_EQ(reads.Of(1).size(), kRequests);
  for (uint64_t id = 1; id <= kRequests; ++id) {
    EXPECT_EQ(reads.Of(1)[id - 1], (ReadState{.index = 3, .request_id = id}));
  }
}

TEST(ReadIndexTest, FollowerReadIsForwardedAndAnsweredWithLeaderCommitIndex) {
  ScriptedNetwork net(3);
  ReadStateLog reads(net);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());
  ASSERT_TRUE(net.ProposeAndCommit(1, "b").ok());
  // "c" (index 5) commits on the leader, but the appends that would tell the followers so
  // are lost: follower 2 still believes the commit index is 4.
  ASSERT_TRUE(net.node(1).Propose("c").ok());
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kApp; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kAppResp; });
  net.DropIf([](const Message& m) { return m.type == MessageType::kApp; });
  ASSERT_EQ(net.node(1).Status().hard_state.commit, 5u);
  ASSERT_EQ(net.node(2).Status().hard_state.commit, 4u);

  net.node(2).ReadIndex(42);
  net.Flush();
  EXPECT_EQ(CountQueued(net,
                        [](const Message& m) {
                          return m.type == MessageType::kReadIndex && m.from == 2 && m.to == 1 &&
                                 m.context == 42;
                        }),
            1);
  EXPECT_TRUE(reads.Of(2).empty());
  net.Stabilize();
  ASSERT_EQ(reads.Of(2).size(), 1u);
  // The leader's commit index, not the one the follower knew when it asked.
  EXPECT_EQ(reads.Of(2)[0], (ReadState{.index = 5, .request_id = 42}));
  EXPECT_TRUE(reads.Of(1).empty());  // the answer goes to the member that asked
}

TEST(ReadIndexTest, NewLeaderHoldsReadsUntilItCommitsAnEntryOfItsTerm) {
  Config c = TestConfig();
  c.pre_vote = false;
  c.check_quorum = false;
  ScriptedNetwork net(3, c);
  ReadStateLog reads(net);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());  // index 3, term 2

  // 2 wins term 3; its no-op (index 4) has not reached anybody yet, so 2 cannot know
  // whether 3 is the latest commit index.
  net.node(2).Campaign();
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVote; });
  net.DeliverIf([](const Message& m) { return m.type == MessageType::kVoteResp; });
  ASSERT_TRUE(net.host(2).IsLeader());
  ASSERT_EQ(net.node(2).Status().hard_state.term, 3u);
  ASSERT_EQ(net.node(2).Status().hard_state.commit, 3u);

  net.node(2).ReadIndex(9);
  net.Flush();
  EXPECT_EQ(CountQueued(net, IsReadRoundHeartbeat), 0);
  // Ordinary heartbeats keep flowing, but appends (and so the no-op) are held back.
  auto not_append = [](const Message& m) {
    return m.type != MessageType::kApp && m.type != MessageType::kAppResp;
  };
  for (int i = 0; i < 3; ++i) {
    net.Tick(2);
    net.DeliverIf(not_append);
    net.DeliverIf(not_append);
  }
  EXPECT_TRUE(reads.Of(2).empty());

  net.Stabilize();
  ASSERT_EQ(reads.Of(2).size(), 1u);
  EXPECT_EQ(reads.Of(2)[0], (ReadState{.index = 4, .request_id = 9}));
  EXPECT_EQ(net.node(2).TermAt(4), 3u);
}

TEST(ReadIndexTest, LeaderCutOffFromQuorumNeverAnswers) {
  ScriptedNetwork net(3);
  ReadStateLog reads(net);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());

  net.Isolate(1);
  net.node(1).ReadIndex(5);
  net.Tick(1, 5);
  net.Stabilize();
  ASSERT_TRUE(net.host(1).IsLeader());  // it does not know yet that it is cut off
  EXPECT_TRUE(reads.Of(1).empty());

  // The majority moves on and commits a write that a read at 1 would miss.
  for (int i = 0; i < 40 && !(net.host(2).IsLeader() || net.host(3).IsLeader()); ++i) {
    net.TickAll();
    net.Stabilize();
  }
  const uint64_t new_leader = net.host(2).IsLeader() ? 2 : 3;
  ASSERT_TRUE(net.host(new_leader).IsLeader());
  ASSERT_TRUE(net.ProposeAndCommit(new_leader, "b").ok());
  EXPECT_EQ(net.host(new_leader).state(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(reads.Of(1).empty());

  // Check-quorum deposes 1 within two election timeouts of its last contact; the pending
  // read goes with its leadership.
  net.Tick(1, 2 * TestConfig().election_tick);
  EXPECT_FALSE(net.host(1).IsLeader());
  net.Heal();
  net.TickAll(3);
  net.Stabilize();
  EXPECT_TRUE(reads.Of(1).empty());
}

TEST(ReadIndexTest, SingleMemberClusterAnswersAtOnce) {
  ScriptedNetwork net(1);
  ReadStateLog reads(net);
  ASSERT_TRUE(net.Elect(1));
  net.node(1).ReadIndex(3);
  net.Flush();
  EXPECT_TRUE(net.queued().empty());
  ASSERT_EQ(reads.Of(1).size(), 1u);
  EXPECT_EQ(reads.Of(1)[0], (ReadState{.index = 2, .request_id = 3}));
}

TEST(ReadIndexTest, PlantedBugAnswersWithoutHeartbeatRound) {
  Config c = TestConfig();
  c.planted_bug = PlantedBug::kReadIndexWithoutHeartbeat;
  ScriptedNetwork net(3, c);
  ReadStateLog reads(net);
  ASSERT_TRUE(net.Elect(1));
  ASSERT_TRUE(net.ProposeAndCommit(1, "a").ok());

  // Even cut off from everyone the leader answers: exactly the stale read that the
  // heartbeat round exists to prevent.
  net.Isolate(1);
  net.node(1).ReadIndex(1);
  net.Flush();
  EXPECT_EQ(CountQueued(net, IsReadRoundHeartbeat), 0);
  ASSERT_EQ(reads.Of(1).size(), 1u);
  EXPECT_EQ(reads.Of(1)[0], (ReadState{.index = 3, .request_id = 1}));
}

}  // namespace
}  // namespace raft

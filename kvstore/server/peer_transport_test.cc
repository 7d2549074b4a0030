// Two transports on loopback: messages arrive in order and intact, a stream that closes
// reports its sender down, a peer that is down is reported unreachable (and a snapshot to
// it as failed, and it is not among the reachable peers), and a member of another cluster
// is refused.
#include "kvstore/server/peer_transport.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace kvstore::server {
namespace {

class RecordingSink : public MessageSink {
 public:
  void Step(raft::Message m) override {
    absl::MutexLock l(&mu_);
    steps_.push_back(std::move(m));
  }
  void ReportUnreachable(uint64_t id) override {
    absl::MutexLock l(&mu_);
    unreachable_.push_back(id);
  }
  void ReportSnapshot(uint64_t id, bool ok) override {
    absl::MutexLock l(&mu_);
    snapshots_.emplace_back(id, ok);
  }
  void ReportPeerDown(uint64_t id) override {
    absl::MutexLock l(&mu_);
    down_.push_back(id);
  }
  // Waits up to `timeout` for `pred` to hold over the recorded state.
  bool Await(const std::function<bool(const RecordingSink&)>& pred,
             absl::Duration timeout = absl::Seconds(10)) {
    for (int i = 0; i <= timeout / absl::Milliseconds(10); ++i) {
      {
        absl::MutexLock l(&mu_);
        if (pred(*this)) return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  std::vector<raft::Message> steps_;
  std::vector<uint64_t> unreachable_;
  std::vector<std::pair<uint64_t, bool>> snapshots_;
  std::vector<uint64_t> down_;

 private:
  absl::Mutex mu_;
};

// A transport with its RaftPeer service listening on a loopback port of its own.
struct Member {
  Member(uint64_t cluster_id, RecordingSink* sink) : transport({.cluster_id = cluster_id}, sink) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(transport.service());
    server = b.BuildAndStart();
  }
  ~Member() {
    // In-flight peer streams never end on their own: cancel them.
    if (server) server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    transport.Stop();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  PeerTransport transport;
  int port = 0;
  std::unique_ptr<grpc::Server> server;
};

raft::Message App(uint64_t index) {
  raft::Message m;
  m.type = raft::MessageType::kApp;
  m.from = 1;
  m.to = 2;
  m.term = 3;
  m.index = index;
  m.entries = {raft::Entry{3, index + 1, raft::EntryType::kNormal, "x"}};
  return m;
}

TEST(PeerTransportTest, MessagesArriveInOrderAndIntact) {
  RecordingSink sink1, sink2;
  Member m1(7, &sink1), m2(7, &sink2);
  ASSERT_NE(m2.port, 0);
  m1.transport.AddPeer(2, m2.address());
  for (uint64_t i = 0; i < 500; ++i) m1.transport.Send({App(i)});
  ASSERT_TRUE(sink2.Await([](const RecordingSink& s) { return s.steps_.size() == 500; }));
  for (uint64_t i = 0; i < 500; ++i) {
    EXPECT_EQ(sink2.steps_[i].index, i);
    EXPECT_EQ(sink2.steps_[i].entries, App(i).entries);
  }
  EXPECT_TRUE(sink1.unreachable_.empty());
  EXPECT_EQ(m1.transport.ReachablePeers(absl::Minutes(1)), std::vector<uint64_t>{2});
  // Reachable means recently: a peer not written to for a while is not vouched for.
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(m1.transport.ReachablePeers(absl::Milliseconds(10)).empty());
}

TEST(PeerTransportTest, StreamThatClosesReportsItsSenderDown) {
  RecordingSink sink1, sink2;
  auto m1 = std::make_unique<Member>(7, &sink1);
  Member m2(7, &sink2);
  m1->transport.AddPeer(2, m2.address());
  m1->transport.Send({App(1)});
  ASSERT_TRUE(sink2.Await([](const RecordingSink& s) { return s.steps_.size() == 1; }));
  EXPECT_TRUE(sink2.down_.empty());
  m1.reset();  // its stream to m2 closes, as a process's sockets do when it dies
  ASSERT_TRUE(sink2.Await([](const RecordingSink& s) { return !s.down_.empty(); }));
  EXPECT_EQ(sink2.down_, std::vector<uint64_t>{1});
}

TEST(PeerTransportTest, PeerThatIsDownIsReportedAndSnapshotFails) {
  RecordingSink sink1;
  Member m1(7, &sink1);
  // Nothing listens there: pick a port by binding a server and shutting it down.
  std::string address;
  {
    RecordingSink unused;
    Member gone(7, &unused);
    address = gone.address();
  }
  m1.transport.AddPeer(2, address);
  raft::Message snap;
  snap.type = raft::MessageType::kSnap;
  snap.from = 1;
  snap.to = 2;
  snap.snapshot.meta.index = 5;
  m1.transport.Send({App(1), snap});
  ASSERT_TRUE(sink1.Await(
      [](const RecordingSink& s) { return !s.unreachable_.empty() && !s.snapshots_.empty(); }));
  EXPECT_EQ(sink1.unreachable_.front(), 2u);
  EXPECT_EQ(sink1.snapshots_.front(), (std::pair<uint64_t, bool>{2, false}));
  EXPECT_TRUE(m1.transport.ReachablePeers(absl::Minutes(1)).empty());
}

TEST(PeerTransportTest, MemberOfAnotherClusterIsRefused) {
  RecordingSink sink1, sink2;
  Member m1(7, &sink1), m2(8, &sink2);
  m1.transport.AddPeer(2, m2.address());
  // The refusal ends the stream; the sender notices at its next write, as it would with
  // Raft's steady heartbeats.
  bool refused = false;
  for (int i = 0; i < 1000 && !refused; ++i) {
    m1.transport.Send({App(1)});
    refused = sink1.Await([](const RecordingSink& s) { return !s.unreachable_.empty(); },
                          absl::Milliseconds(10));
  }
  ASSERT_TRUE(refused);
  EXPECT_TRUE(sink2.steps_.empty());
}

}  // namespace
}  // namespace kvstore::server

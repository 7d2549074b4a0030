// PeerTransport carries Raft messages between members over the RaftPeer gRPC service
// (proto/raft/raft_peer.proto).
//
// Sending: Send() never blocks the Raft driver. Each peer has a queue and one long-lived
// client stream (gRPC's callback API). A message queued while no write is in flight is
// written at once by the caller's thread; whatever queues during a write goes out as one
// batch when it ends, so that appends are pipelined without a round trip per message and
// without a thread hand-off. A queue that overflows, a stream that breaks, or a peer that
// cannot be dialed drops messages (Raft retransmits) and reports the peer unreachable; a
// new stream is tried on the next Send after Options::retry. A snapshot message reports
// whether it was written (ReportSnapshot), as the core expects.
//
// Snapshots: SendSnapshot() streams a MsgSnap with the state machine checkpoint over the
// SendSnapshot RPC (snapshot_stream.h), on a thread of the peer's own, at most one at a
// time (a newer one replaces one not yet started), and reports the outcome.
//
// Receiving: service() is the gRPC service peers stream to; each message is checked (the
// sender's cluster id, well-formed types) and handed to the sink, and a stream that
// closes is reported (ReportPeerDown). A snapshot stream is
// checked and written under Options::snapshot_dir (at ReceivedSnapshotPath) before its
// MsgSnap goes to the sink.
//
// Threads: every public method may be called from any thread. Sink calls come from the
// callers of Send, the snapshot threads and gRPC's threads. The sink must outlive the
// transport.
#ifndef KVSTORE_SERVER_PEER_TRANSPORT_H_
#define KVSTORE_SERVER_PEER_TRANSPORT_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kvstore/raft/types.h"
#include "kvstore/server/peer_faults.h"
#include "kvstore/server/raft_driver.h"
#include "raft/raft_peer.grpc.pb.h"

namespace kvstore::server {

class PeerTransport : public Transport {
 public:
  struct Options {
    uint64_t cluster_id = 0;
    // Messages waiting for one peer beyond this are dropped (the peer is reported).
    size_t max_queued = 4096;
    // Bytes written in one batch, at most (at least one message).
    size_t max_batch_bytes = 4 << 20;
    // Wait between attempts to reach a peer that is down.
    absl::Duration retry = absl::Milliseconds(100);
    // The longest gRPC waits between attempts to reconnect to a peer (its own default is
    // two minutes: a member that comes back would sit unheard that long).
    absl::Duration max_reconnect_backoff = absl::Seconds(1);
    // TEST ONLY (--test-peer-faults): a file naming the peers to cut off, both ways (see
    // peer_faults.h). Empty: none.
    std::string test_faults_file;
    // Where received snapshots are written; empty: snapshots are refused.
    std::string snapshot_dir;
    size_t snapshot_chunk_bytes = 1 << 20;
  };

  PeerTransport(const Options& options, MessageSink* sink);
  ~PeerTransport() override;

  // `address` is host:port of the peer's RaftPeer service.
  void AddPeer(uint64_t id, const std::string& address);
  void RemovePeer(uint64_t id);
  // Stops every sender; messages still queued are dropped.
  void Stop();

  void Send(std::vector<raft::Message> messages) override;
  void SendSnapshot(raft::Message m, std::string checkpoint_dir) override;
  // The peers that took a batch within the last `within` (and none failed since), by id.
  // A leader writes to every peer each heartbeat, so it knows which are up.
  std::vector<uint64_t> ReachablePeers(absl::Duration within);

  grpc::Service* service() { return &service_; }

 private:
  class Peer;
  class Receiver;

  // Send is served with gRPC's callback API (no thread per peer stream), SendSnapshot
  // synchronously (rare, long, and writing files).
  class Service final : public kvstore::raftpb::RaftPeer::WithCallbackMethod_Send<
                            kvstore::raftpb::RaftPeer::Service> {
   public:
    Service(uint64_t cluster_id, std::string snapshot_dir, MessageSink* sink, PeerFaults* faults)
        : cluster_id_(cluster_id),
          snapshot_dir_(std::move(snapshot_dir)),
          sink_(sink),
          faults_(faults) {}
    grpc::ServerReadReactor<kvstore::raftpb::MessageBatch>* Send(
        grpc::CallbackServerContext* ctx, kvstore::raftpb::SendResponse* resp) override;
    grpc::Status SendSnapshot(grpc::ServerContext* ctx,
                              grpc::ServerReader<kvstore::raftpb::SnapshotChunk>* r,
                              kvstore::raftpb::SnapshotResponse* resp) override;

    // Checks one batch from a peer and hands its messages to the sink.
    grpc::Status Deliver(const kvstore::raftpb::MessageBatch& batch) const;
    // The stream peer `id` wrote to closed.
    void PeerDown(uint64_t id) const;

   private:
    const uint64_t cluster_id_;
    const std::string snapshot_dir_;
    MessageSink* const sink_;
    PeerFaults* const faults_;  // null unless testing
    std::atomic<uint64_t> next_stream_{1};
  };

  const Options options_;
  MessageSink* const sink_;
  const std::unique_ptr<PeerFaults> faults_;  // null unless testing
  Service service_;
  absl::Mutex mu_;
  std::map<uint64_t, std::shared_ptr<Peer>> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_PEER_TRANSPORT_H_

// The etcd Watch service: one bidirectional stream carries many watches.
//
// Each Watch call gets a WatchStream from the hub. The handler's thread reads requests
// (create, cancel, progress) and hands them to the hub, which queues the answers in
// order; a sender thread of the call's own takes updates off the stream and writes them
// as WatchResponses, filling headers as etcd does, splitting the responses of watches that
// asked for `fragment`, and running the call's progress_notify ticker. A client that
// half-closes keeps its watches (as with etcd) until it goes away. A learner refuses the stream
// at once (RefuseIfLearner), as etcd 3.4's.
//
// A call ends when the client cancels it or disconnects (its watchers are dropped and its
// sender joined before the handler returns), when the grpc::Server shuts down (its deadline
// cancels the call; the client sees UNAVAILABLE and, like etcd's clients, retries, which is
// what a member going away should cause), or when Stop() cancels it (the client sees
// CANCELLED, which etcd's clients do not retry).
//
// Threads: gRPC calls Watch() on its threads. Stop() may be called from any thread; the
// destructor calls it. Ownership: `server` and `hub` must outlive the service.
#ifndef KVSTORE_SERVER_WATCH_SERVICE_H_
#define KVSTORE_SERVER_WATCH_SERVICE_H_

#include <cstdint>
#include <set>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/watch_hub.h"

namespace kvstore::server {

struct WatchServiceOptions {
  // How often a watch with progress_notify hears from an idle stream (etcd: 10 minutes).
  absl::Duration progress_interval = absl::Minutes(10);
  // A `fragment` watch's response is split when it reaches this size. 0: as etcd, the
  // server's --max-request-bytes plus 512 KiB of allowance for gRPC overhead.
  int64_t fragment_bytes = 0;
};

// Splits `resp` as etcd does for a watch with `fragment`: a response of `limit` bytes or
// more with at least two events becomes several, each under `limit` unless a single event
// is that large, all but the last marked `fragment`. Others pass whole.
std::vector<etcdserverpb::WatchResponse> FragmentWatchResponse(etcdserverpb::WatchResponse resp,
                                                               int64_t limit);

class WatchService final : public etcdserverpb::Watch::Service {
 public:
  WatchService(KvServer* server, WatchHub* hub, WatchServiceOptions options = {});
  ~WatchService() override;

  grpc::Status Watch(grpc::ServerContext* ctx,
                     grpc::ServerReaderWriter<etcdserverpb::WatchResponse,
                                              etcdserverpb::WatchRequest>* stream) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Cancels every call in progress, waits for their handlers to finish, and refuses new
  // ones (UNAVAILABLE). Idempotent. To let clients fail over, shut the grpc::Server down
  // first instead (see the file comment).
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // Calls in progress.
  int active_streams() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Writes the stream's updates until it is closed or a write fails.
  void SendLoop(
      WatchStream* queue,
      grpc::ServerReaderWriter<etcdserverpb::WatchResponse, etcdserverpb::WatchRequest>* stream);
  etcdserverpb::WatchResponse ToResponse(const WatchUpdate& u) const;
  bool NoActiveStreams() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return active_.empty(); }

  KvServer* const server_;
  WatchHub* const hub_;
  const WatchServiceOptions options_;
  const int64_t fragment_bytes_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::set<grpc::ServerContext*> active_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_WATCH_SERVICE_H_

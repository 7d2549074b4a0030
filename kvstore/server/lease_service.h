// The etcd Lease service over a KvServer: LeaseGrant, LeaseRevoke, LeaseKeepAlive,
// LeaseTimeToLive and LeaseLeases, with etcd 3.4's answers and errors.
//
// Grants and revocations go through Raft (KvServer::Write) and are answered once applied;
// the applier deletes a revoked lease's keys in one revision, so watchers see a DELETE for
// each. Keep-alives and TTL queries do not touch the log: they are served by the lessor of
// the leader, which alone tracks expiry (see lessor.h). A follower forwards them to the
// leader's client URL, as etcd forwards them over its peer links; a request that arrives
// while this member is leader but its lessor not yet promoted waits for the promotion
// (bounded by the request timeout). A learner refuses every call (RefuseIfLearner).
//
// Lease ids chosen by the server (LeaseGrant with ID 0) are picked here, before proposing,
// so that every member applies the same id: etcd's scheme, the low 16 bits of the member id
// over a counter that starts at the current time in milliseconds, kept positive.
//
// Threads: gRPC calls the handlers on its own threads; the only state is the id generator
// and the channels to the leader, both thread-safe.
#ifndef KVSTORE_SERVER_LEASE_SERVICE_H_
#define KVSTORE_SERVER_LEASE_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/leader_client.h"

namespace kvstore::server {

// etcd's idutil.Generator: ids unique on one member and, since the counter starts at the
// clock, across its restarts; masked to positive int64. Thread-safe.
class LeaseIdGenerator {
 public:
  LeaseIdGenerator(uint64_t member_id, absl::Time now);
  // Never 0 and never negative.
  int64_t Next();

 private:
  const uint64_t prefix_;
  std::atomic<uint64_t> suffix_;
};

class LeaseService final : public etcdserverpb::Lease::Service {
 public:
  // `server` must outlive the service.
  LeaseService(KvServer* server, absl::Duration request_timeout);

  grpc::Status LeaseGrant(grpc::ServerContext* ctx, const etcdserverpb::LeaseGrantRequest* req,
                          etcdserverpb::LeaseGrantResponse* resp) override;
  grpc::Status LeaseRevoke(grpc::ServerContext* ctx, const etcdserverpb::LeaseRevokeRequest* req,
                           etcdserverpb::LeaseRevokeResponse* resp) override;
  grpc::Status LeaseKeepAlive(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<etcdserverpb::LeaseKeepAliveResponse,
                               etcdserverpb::LeaseKeepAliveRequest>* stream) override;
  grpc::Status LeaseTimeToLive(grpc::ServerContext* ctx,
                               const etcdserverpb::LeaseTimeToLiveRequest* req,
                               etcdserverpb::LeaseTimeToLiveResponse* resp) override;
  grpc::Status LeaseLeases(grpc::ServerContext* ctx, const etcdserverpb::LeaseLeasesRequest* req,
                           etcdserverpb::LeaseLeasesResponse* resp) override;

 private:
  // Where expiry is tracked: 0 once this member's lessor does (it is the leader and
  // promoted), or the id of the member that leads. Fails with NoLeaderError() past
  // `deadline` with no leader, Cancelled if the client went away.
  absl::StatusOr<uint64_t> FindLessor(const grpc::ServerContext* ctx, absl::Time deadline) const;
  // A keep-alive answered by the leader `leader`: its TTL (0 for an unknown lease).
  absl::StatusOr<int64_t> ForwardKeepAlive(uint64_t leader,
                                           const etcdserverpb::LeaseKeepAliveRequest& req,
                                           absl::Time deadline);

  KvServer* const server_;
  const absl::Duration request_timeout_;
  LeaseIdGenerator ids_;
  LeaderClient leader_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_LEASE_SERVICE_H_

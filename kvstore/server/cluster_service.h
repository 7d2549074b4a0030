// The etcd Cluster service over a KvServer: MemberList, and the membership changes.
//
// MemberList answers from the member list this member has applied (membership.h): every
// member's id, name and peer URLs, and the client URLs each published through Raft once it
// started (empty until then), sorted by id.
//
// MemberAdd, MemberRemove, MemberUpdate and MemberPromote check what etcd checks before it
// proposes, with etcd's errors (invalid or taken peer URLs, unknown ids, more than one
// learner, promoting a voter or a learner that lags the leader, and etcd's strict
// reconfiguration check: a quorum of started, reachable voters must remain; whether a
// peer is reachable is known only on the leader, which talks to all), then propose
// the change through Raft (KvServer::ChangeMembers) and answer once this member applied
// it, with the member list after it. A new member's id is etcd's: from its peer URLs, the
// cluster token and the current time. Whether a learner is in sync with the leader is
// known only on the leader: as etcd's, a follower forwards MemberPromote to the leader's
// client URL (LeaderClient) and answers with the leader's member list or error; it passes
// on "not in sync", "member not found" and "not a learner" at once and tries again on any
// other error until the deadline, then answers "request timed out" ("no leader" if none is
// known). A learner refuses every call of this service (RefuseIfLearner).
//
// Headers as etcd 3.4's ClusterServer fills them: cluster id, member id and raft term, no
// revision.
//
// Threads: gRPC calls the handlers on its own threads; the only state is the channels to
// the leader (LeaderClient, thread-safe).
#ifndef KVSTORE_SERVER_CLUSTER_SERVICE_H_
#define KVSTORE_SERVER_CLUSTER_SERVICE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/leader_client.h"

namespace kvstore::server {

// etcd's Member message for an entry of the member list, and back.
void MemberToProto(const MemberInfo& info, etcdserverpb::Member* m);
MemberInfo MemberFromProto(const etcdserverpb::Member& m);


class ClusterService final : public etcdserverpb::Cluster::Service {
 public:
  // `server` must outlive the service.
  explicit ClusterService(KvServer* server) : server_(server), leader_(&server->membership()) {}

  grpc::Status MemberAdd(grpc::ServerContext* ctx, const etcdserverpb::MemberAddRequest* req,
                         etcdserverpb::MemberAddResponse* resp) override;
  grpc::Status MemberRemove(grpc::ServerContext* ctx, const etcdserverpb::MemberRemoveRequest* req,
                            etcdserverpb::MemberRemoveResponse* resp) override;
  grpc::Status MemberUpdate(grpc::ServerContext* ctx, const etcdserverpb::MemberUpdateRequest* req,
                            etcdserverpb::MemberUpdateResponse* resp) override;
  grpc::Status MemberList(grpc::ServerContext* ctx, const etcdserverpb::MemberListRequest* req,
                          etcdserverpb::MemberListResponse* resp) override;
  grpc::Status MemberPromote(grpc::ServerContext* ctx,
                             const etcdserverpb::MemberPromoteRequest* req,
                             etcdserverpb::MemberPromoteResponse* resp) override;

 private:
  void FillHeader(etcdserverpb::ResponseHeader* h) const;
  template <typename Response>
  void FillMembers(Response* resp) const;
  absl::Time Deadline(const grpc::ServerContext* ctx) const;
  // MemberPromote on the leader: etcd's checks (including whether the learner is in sync),
  // then the change.
  grpc::Status PromoteOnLeader(const etcdserverpb::MemberPromoteRequest& req, absl::Time deadline,
                               etcdserverpb::MemberPromoteResponse* resp);
  // MemberPromote on a follower: asks `leader` over its client URL and answers with the
  // leader's member list (or its error).
  absl::Status ForwardPromote(uint64_t leader, const etcdserverpb::MemberPromoteRequest& req,
                              absl::Time deadline, etcdserverpb::MemberPromoteResponse* resp);

  KvServer* const server_;
  LeaderClient leader_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_CLUSTER_SERVICE_H_

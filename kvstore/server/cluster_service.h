// The etcd Cluster service over a KvServer: MemberList, and the membership changes.
//
// MemberList answers from the member list this member has applied (membership.h): every
// member's id, name and peer URLs from the initial cluster, and the client URLs each
// published through Raft once it started (empty until then), sorted by id. Membership
// changes need configuration changes through Raft, which come later: MemberAdd,
// MemberRemove, MemberUpdate and MemberPromote answer MembershipChangeUnsupportedError();
// every request etcd would refuse anyway gets etcd's own error first (invalid or taken peer
// URLs, unknown member ids, removing the only member, promoting a voter).
//
// Headers as etcd 3.4's ClusterServer fills them: cluster id, member id and raft term, no
// revision.
//
// Threads: gRPC calls the handlers on its own threads; the service keeps no state.
#ifndef KVSTORE_SERVER_CLUSTER_SERVICE_H_
#define KVSTORE_SERVER_CLUSTER_SERVICE_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "kvstore/server/kv_server.h"

namespace kvstore::server {

class ClusterService final : public etcdserverpb::Cluster::Service {
 public:
  // `server` must outlive the service.
  explicit ClusterService(KvServer* server) : server_(server) {}

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

  KvServer* const server_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_CLUSTER_SERVICE_H_

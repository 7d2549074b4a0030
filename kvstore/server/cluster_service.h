// The etcd Cluster service over a KvServer: MemberList, and the membership changes.
//
// The member list is this member alone (id, name, peer URLs from
// --initial-advertise-peer-urls, client URLs from --advertise-client-urls): the kvstore
// runs as a one-member Raft group until replication lands (the next issue). Until then
// MemberAdd and MemberUpdate of this member answer MembershipChangeUnsupportedError();
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

// etcd's rules for a member URL (types.NewURLs): scheme http, https, unix or unixs, a
// "host:port" address and no path. The message is etcd's.
absl::Status CheckMemberUrl(const std::string& url);
// CheckMemberUrl on each, and at least one.
absl::Status CheckMemberUrls(const std::vector<std::string>& urls);

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
  void FillSelf(etcdserverpb::Member* m) const;

  KvServer* const server_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_CLUSTER_SERVICE_H_

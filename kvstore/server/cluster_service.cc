#include "kvstore/server/cluster_service.h"

#include <algorithm>

#include "common/grpc_status.h"
#include "kvstore/server/errors.h"

namespace kvstore::server {

using common::ToGrpcStatus;

void ClusterService::FillHeader(etcdserverpb::ResponseHeader* h) const {
  h->set_cluster_id(server_->cluster_id());
  h->set_member_id(server_->member_id());
  h->set_raft_term(server_->driver().Status().term);
}

grpc::Status ClusterService::MemberList(grpc::ServerContext*,
                                        const etcdserverpb::MemberListRequest*,
                                        etcdserverpb::MemberListResponse* resp) {
  FillHeader(resp->mutable_header());
  for (const MemberInfo& info : server_->membership().Members()) {
    etcdserverpb::Member* m = resp->add_members();
    m->set_id(info.id);
    m->set_name(info.name);
    for (const std::string& u : info.peer_urls) m->add_peerurls(u);
    for (const std::string& u : info.client_urls) m->add_clienturls(u);
    m->set_islearner(info.is_learner);
  }
  return grpc::Status::OK;
}

grpc::Status ClusterService::MemberAdd(grpc::ServerContext*,
                                       const etcdserverpb::MemberAddRequest* req,
                                       etcdserverpb::MemberAddResponse*) {
  const std::vector<std::string> urls(req->peerurls().begin(), req->peerurls().end());
  // etcd turns any URL error into its one "invalid URLs" error for MemberAdd.
  if (!CheckMemberUrls(urls).ok()) return ToGrpcStatus(MemberBadUrlsError());
  for (const MemberInfo& m : server_->membership().Members()) {
    for (const std::string& u : urls) {
      if (std::find(m.peer_urls.begin(), m.peer_urls.end(), u) != m.peer_urls.end()) {
        return ToGrpcStatus(PeerUrlExistsError());
      }
    }
  }
  return ToGrpcStatus(MembershipChangeUnsupportedError());
}

grpc::Status ClusterService::MemberRemove(grpc::ServerContext*,
                                          const etcdserverpb::MemberRemoveRequest* req,
                                          etcdserverpb::MemberRemoveResponse*) {
  if (!server_->membership().Find(req->id())) return ToGrpcStatus(MemberNotFoundError());
  // Removing the only voter would leave no quorum: etcd's strict reconfiguration check.
  if (server_->membership().Members().size() == 1) {
    return ToGrpcStatus(NotEnoughStartedMembersError());
  }
  return ToGrpcStatus(MembershipChangeUnsupportedError());
}

grpc::Status ClusterService::MemberUpdate(grpc::ServerContext*,
                                          const etcdserverpb::MemberUpdateRequest* req,
                                          etcdserverpb::MemberUpdateResponse*) {
  if (!server_->membership().Find(req->id())) return ToGrpcStatus(MemberNotFoundError());
  // etcd would replicate the new peer URLs as a configuration change.
  return ToGrpcStatus(MembershipChangeUnsupportedError());
}

grpc::Status ClusterService::MemberPromote(grpc::ServerContext*,
                                           const etcdserverpb::MemberPromoteRequest* req,
                                           etcdserverpb::MemberPromoteResponse*) {
  const std::optional<MemberInfo> m = server_->membership().Find(req->id());
  if (!m) return ToGrpcStatus(MemberNotFoundError());
  if (!m->is_learner) return ToGrpcStatus(MemberNotLearnerError());
  return ToGrpcStatus(MembershipChangeUnsupportedError());
}

}  // namespace kvstore::server

#include "kvstore/server/cluster_service.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "kvstore/server/errors.h"

namespace kvstore::server {

using common::ToGrpcStatus;

absl::Status CheckMemberUrl(const std::string& raw) {
  const std::string url(absl::StripAsciiWhitespace(raw));
  const size_t sep = url.find("://");
  const std::string scheme = sep == std::string::npos ? "" : url.substr(0, sep);
  if (scheme != "http" && scheme != "https" && scheme != "unix" && scheme != "unixs") {
    return absl::InvalidArgumentError(
        absl::StrCat("URL scheme must be http, https, unix, or unixs: ", url));
  }
  const std::string rest = url.substr(sep + 3);
  const size_t end = rest.find_first_of("/?#");
  const std::string host = rest.substr(0, end);
  // net.SplitHostPort: "host:port" with a host free of ':', or "[v6]:port".
  const size_t colon = host.rfind(':');
  bool ok = colon != std::string::npos;
  if (ok && absl::StartsWith(host, "[")) {
    ok = colon > 0 && host[colon - 1] == ']' && host.find(']') == colon - 1;
  } else if (ok) {
    ok = host.find(':') == colon && host.find_first_of("[]") == std::string::npos;
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("URL address does not have the form \"host:port\": ", url));
  }
  if (end != std::string::npos && rest[end] == '/') {
    return absl::InvalidArgumentError(absl::StrCat("URL must not contain a path: ", url));
  }
  return absl::OkStatus();
}

absl::Status CheckMemberUrls(const std::vector<std::string>& urls) {
  if (urls.empty()) return absl::InvalidArgumentError("no valid URLs given");
  for (const std::string& u : urls) {
    if (absl::Status s = CheckMemberUrl(u); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void ClusterService::FillHeader(etcdserverpb::ResponseHeader* h) const {
  h->set_cluster_id(server_->cluster_id());
  h->set_member_id(server_->member_id());
  h->set_raft_term(server_->driver().Status().term);
}

void ClusterService::FillSelf(etcdserverpb::Member* m) const {
  m->set_id(server_->member_id());
  m->set_name(server_->options().name);
  for (const std::string& u : server_->options().peer_urls) m->add_peerurls(u);
  for (const std::string& u : server_->options().client_urls) m->add_clienturls(u);
}

grpc::Status ClusterService::MemberList(grpc::ServerContext*,
                                        const etcdserverpb::MemberListRequest*,
                                        etcdserverpb::MemberListResponse* resp) {
  FillHeader(resp->mutable_header());
  FillSelf(resp->add_members());
  return grpc::Status::OK;
}

grpc::Status ClusterService::MemberAdd(grpc::ServerContext*,
                                       const etcdserverpb::MemberAddRequest* req,
                                       etcdserverpb::MemberAddResponse*) {
  const std::vector<std::string> urls(req->peerurls().begin(), req->peerurls().end());
  // etcd turns any URL error into its one "invalid URLs" error for MemberAdd.
  if (!CheckMemberUrls(urls).ok()) return ToGrpcStatus(MemberBadUrlsError());
  for (const std::string& u : urls) {
    const auto& mine = server_->options().peer_urls;
    if (std::find(mine.begin(), mine.end(), u) != mine.end()) {
      return ToGrpcStatus(PeerUrlExistsError());
    }
  }
  return ToGrpcStatus(MembershipChangeUnsupportedError());
}

grpc::Status ClusterService::MemberRemove(grpc::ServerContext*,
                                          const etcdserverpb::MemberRemoveRequest* req,
                                          etcdserverpb::MemberRemoveResponse*) {
  if (req->id() != server_->member_id()) return ToGrpcStatus(MemberNotFoundError());
  // Removing the only voter would leave no quorum: etcd's strict reconfiguration check.
  return ToGrpcStatus(NotEnoughStartedMembersError());
}

grpc::Status ClusterService::MemberUpdate(grpc::ServerContext*,
                                          const etcdserverpb::MemberUpdateRequest* req,
                                          etcdserverpb::MemberUpdateResponse*) {
  if (req->id() != server_->member_id()) return ToGrpcStatus(MemberNotFoundError());
  // etcd would replicate the new peer URLs as a configuration change.
  return ToGrpcStatus(MembershipChangeUnsupportedError());
}

grpc::Status ClusterService::MemberPromote(grpc::ServerContext*,
                                           const etcdserverpb::MemberPromoteRequest* req,
                                           etcdserverpb::MemberPromoteResponse*) {
  if (req->id() != server_->member_id()) return ToGrpcStatus(MemberNotFoundError());
  return ToGrpcStatus(MemberNotLearnerError());  // the only member is a voter
}

}  // namespace kvstore::server

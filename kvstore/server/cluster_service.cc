#include "kvstore/server/cluster_service.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "kvstore/server/errors.h"
#include "kvstore/server/service_util.h"

namespace kvstore::server {

using common::ToGrpcStatus;

void ClusterService::FillHeader(etcdserverpb::ResponseHeader* h) const {
  h->set_cluster_id(server_->cluster_id());
  h->set_member_id(server_->member_id());
  h->set_raft_term(server_->driver().Status().term);
}

namespace {

// etcd's HealthInterval: a peer counts as connected if it was heard from this recently.
constexpr absl::Duration kHealthInterval = absl::Seconds(5);

// How long a follower waits before it forwards a promotion to the leader again.
constexpr absl::Duration kPromoteRetry = absl::Milliseconds(50);

// The leader's answers to a forwarded promotion that etcd passes on at once; it retries
// on any other error (a timeout, a leader change, a refused quorum check) until its
// deadline.
bool IsFinalPromoteError(const absl::Status& s) {
  for (const absl::Status& final :
       {LearnerNotReadyError(), MemberNotFoundError(), MemberNotLearnerError()}) {
    if (s == final) return true;
  }
  return false;
}

// etcd: a member is started once it published its name.
bool IsStarted(const MemberInfo& m) { return !m.name.empty(); }

}  // namespace

void MemberToProto(const MemberInfo& info, etcdserverpb::Member* m) {
  m->set_id(info.id);
  m->set_name(info.name);
  for (const std::string& u : info.peer_urls) m->add_peerurls(u);
  for (const std::string& u : info.client_urls) m->add_clienturls(u);
  m->set_islearner(info.is_learner);
}

MemberInfo MemberFromProto(const etcdserverpb::Member& m) {
  return MemberInfo{.id = m.id(),
                    .name = m.name(),
                    .peer_urls = {m.peerurls().begin(), m.peerurls().end()},
                    .client_urls = {m.clienturls().begin(), m.clienturls().end()},
                    .is_learner = m.islearner()};
}

template <typename Response>
void ClusterService::FillMembers(Response* resp) const {
  FillHeader(resp->mutable_header());
  for (const MemberInfo& info : server_->membership().Members()) MemberToProto(info, resp->add_members());
}

absl::Time ClusterService::Deadline(const grpc::ServerContext* ctx) const {
  return RequestDeadline(ctx, absl::Seconds(5) + 2 * server_->options().election);
}

grpc::Status ClusterService::MemberList(grpc::ServerContext*,
                                        const etcdserverpb::MemberListRequest*,
                                        etcdserverpb::MemberListResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  FillMembers(resp);
  return grpc::Status::OK;
}

grpc::Status ClusterService::MemberAdd(grpc::ServerContext* ctx,
                                       const etcdserverpb::MemberAddRequest* req,
                                       etcdserverpb::MemberAddResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  std::vector<std::string> urls(req->peerurls().begin(), req->peerurls().end());
  // etcd turns any URL error into its one "invalid URLs" error for MemberAdd.
  if (!CheckMemberUrls(urls).ok()) return ToGrpcStatus(MemberBadUrlsError());
  const std::vector<MemberInfo> members = server_->membership().Members();
  int learners = 0;
  int voters = 0;
  int started_voters = 0;
  std::vector<uint64_t> other_voters;
  for (const MemberInfo& m : members) {
    for (const std::string& u : urls) {
      if (std::find(m.peer_urls.begin(), m.peer_urls.end(), u) != m.peer_urls.end()) {
        return ToGrpcStatus(PeerUrlExistsError());
      }
    }
    if (m.is_learner) {
      ++learners;
      continue;
    }
    ++voters;
    if (IsStarted(m)) ++started_voters;
    if (m.id != server_->member_id()) other_voters.push_back(m.id);
  }
  // etcd allows one learner at a time.
  if (req->islearner() && learners >= 1) return ToGrpcStatus(TooManyLearnersError());
  // etcd's strict reconfiguration check: a new voter must not cost the quorum.
  if (!req->islearner()) {
    const int after = voters + 1;
    const bool restoring = started_voters == 1 && after == 2;
    if (!restoring && started_voters < after / 2 + 1) {
      return ToGrpcStatus(NotEnoughStartedMembersError());
    }
  }
  // Only the leader talks to every member: a follower cannot tell who is reachable.
  const bool leads = server_->driver().Status().role == raft::Role::kLeader;
  const std::vector<uint64_t> reachable = server_->ReachablePeers(kHealthInterval);
  for (uint64_t id : leads ? other_voters : std::vector<uint64_t>{}) {
    if (std::find(reachable.begin(), reachable.end(), id) == reachable.end()) {
      return ToGrpcStatus(UnhealthyClusterError());
    }
  }
  // etcd's types.NewMember: the id hashes the peer URLs, the cluster token and the time.
  const uint64_t id = ComputeMemberId(
      urls, server_->options().cluster_token + std::to_string(absl::ToUnixSeconds(absl::Now())));
  if (server_->membership().Find(id)) {
    return ToGrpcStatus(absl::FailedPreconditionError("etcdserver: member ID already exist"));
  }
  kvstore::internal::MemberChange change;
  change.set_kind(kvstore::internal::MemberChange::ADD);
  change.set_member_id(id);
  for (const std::string& u : urls) change.add_peer_urls(u);
  change.set_is_learner(req->islearner());
  if (absl::Status s = server_->ChangeMembers(change, Deadline(ctx)); !s.ok()) {
    return ToGrpcStatus(s);
  }
  FillMembers(resp);
  etcdserverpb::Member* m = resp->mutable_member();
  m->set_id(id);
  for (const std::string& u : urls) m->add_peerurls(u);
  m->set_islearner(req->islearner());
  return grpc::Status::OK;
}

grpc::Status ClusterService::MemberRemove(grpc::ServerContext* ctx,
                                          const etcdserverpb::MemberRemoveRequest* req,
                                          etcdserverpb::MemberRemoveResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  const std::optional<MemberInfo> target = server_->membership().Find(req->id());
  if (!target) return ToGrpcStatus(MemberNotFoundError());
  if (!target->is_learner) {
    // etcd's strict reconfiguration check: the voters left must hold a started quorum...
    int left = 0;
    int started = 0;
    std::vector<uint64_t> voters;
    for (const MemberInfo& m : server_->membership().Members()) {
      if (m.is_learner) continue;
      voters.push_back(m.id);
      if (m.id == req->id()) continue;
      ++left;
      if (IsStarted(m)) ++started;
    }
    if (started < left / 2 + 1) return ToGrpcStatus(NotEnoughStartedMembersError());
    // ...and, unless the member is down anyway, enough of them must be reachable.
    const std::vector<uint64_t> reachable = server_->ReachablePeers(kHealthInterval);
    auto is_reachable = [&reachable](uint64_t id) {
      return std::find(reachable.begin(), reachable.end(), id) != reachable.end();
    };
    const bool leads = server_->driver().Status().role == raft::Role::kLeader;
    const bool down = req->id() != server_->member_id() && !is_reachable(req->id());
    if (leads && !down) {
      int active = 0;
      for (uint64_t id : voters) active += (id == server_->member_id() || is_reachable(id));
      const int n = static_cast<int>(voters.size());
      if (active - 1 < 1 + (n - 1) / 2) return ToGrpcStatus(UnhealthyClusterError());
    }
  }
  kvstore::internal::MemberChange change;
  change.set_kind(kvstore::internal::MemberChange::REMOVE);
  change.set_member_id(req->id());
  if (absl::Status s = server_->ChangeMembers(change, Deadline(ctx)); !s.ok()) {
    return ToGrpcStatus(s);
  }
  FillMembers(resp);
  return grpc::Status::OK;
}

grpc::Status ClusterService::MemberUpdate(grpc::ServerContext* ctx,
                                          const etcdserverpb::MemberUpdateRequest* req,
                                          etcdserverpb::MemberUpdateResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  const std::vector<std::string> urls(req->peerurls().begin(), req->peerurls().end());
  if (!CheckMemberUrls(urls).ok()) return ToGrpcStatus(MemberBadUrlsError());
  if (!server_->membership().Find(req->id())) return ToGrpcStatus(MemberNotFoundError());
  for (const MemberInfo& m : server_->membership().Members()) {
    if (m.id == req->id()) continue;
    for (const std::string& u : urls) {
      if (std::find(m.peer_urls.begin(), m.peer_urls.end(), u) != m.peer_urls.end()) {
        return ToGrpcStatus(PeerUrlExistsError());
      }
    }
  }
  kvstore::internal::MemberChange change;
  change.set_kind(kvstore::internal::MemberChange::UPDATE);
  change.set_member_id(req->id());
  for (const std::string& u : urls) change.add_peer_urls(u);
  if (absl::Status s = server_->ChangeMembers(change, Deadline(ctx)); !s.ok()) {
    return ToGrpcStatus(s);
  }
  FillMembers(resp);
  return grpc::Status::OK;
}

grpc::Status ClusterService::MemberPromote(grpc::ServerContext* ctx,
                                           const etcdserverpb::MemberPromoteRequest* req,
                                           etcdserverpb::MemberPromoteResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  const absl::Time deadline = Deadline(ctx);
  // etcd's PromoteMember: only the leader knows whether the learner is in sync, so any
  // other member forwards the request to it, again and again until the leader gives a
  // final answer or the deadline passes.
  for (;;) {
    const DriverStatus st = server_->driver().Status();
    if (st.role == raft::Role::kLeader) return PromoteOnLeader(*req, deadline, resp);
    if (st.leader != raft::kNone && st.leader != server_->member_id()) {
      absl::Status s = ForwardPromote(st.leader, *req, deadline, resp);
      if (s.ok() || IsFinalPromoteError(s)) return ToGrpcStatus(s);
    }
    if (ctx->IsCancelled()) return ToGrpcStatus(absl::CancelledError("context canceled"));
    if (absl::Now() >= deadline) {
      return ToGrpcStatus(st.leader == raft::kNone ? NoLeaderError() : TimeoutError());
    }
    absl::SleepFor(kPromoteRetry);
  }
}

grpc::Status ClusterService::PromoteOnLeader(const etcdserverpb::MemberPromoteRequest& req,
                                             absl::Time deadline,
                                             etcdserverpb::MemberPromoteResponse* resp) {
  const std::optional<MemberInfo> m = server_->membership().Find(req.id());
  if (!m) return ToGrpcStatus(MemberNotFoundError());
  if (!m->is_learner) return ToGrpcStatus(MemberNotLearnerError());
  // etcd's IsReadyToPromoteMember: the learner counts as started in the future quorum.
  int members = 1;
  int started = 1;
  for (const MemberInfo& v : server_->membership().Members()) {
    if (v.is_learner) continue;
    ++members;
    if (IsStarted(v)) ++started;
  }
  if (started < members / 2 + 1) return ToGrpcStatus(NotEnoughStartedMembersError());
  // etcd's isLearnerReady: the learner's log matches at least 90% of the leader's.
  const DriverStatus st = server_->driver().Status();
  uint64_t leader_match = 0;
  uint64_t learner_match = 0;
  for (const auto& [id, match] : st.match) {
    if (id == server_->member_id()) leader_match = match;
    if (id == req.id()) learner_match = match;
  }
  if (static_cast<double>(learner_match) < 0.9 * static_cast<double>(leader_match)) {
    return ToGrpcStatus(LearnerNotReadyError());
  }
  kvstore::internal::MemberChange change;
  change.set_kind(kvstore::internal::MemberChange::PROMOTE);
  change.set_member_id(req.id());
  if (absl::Status s = server_->ChangeMembers(change, deadline); !s.ok()) {
    return ToGrpcStatus(s);
  }
  FillMembers(resp);
  return grpc::Status::OK;
}

absl::Status ClusterService::ForwardPromote(uint64_t leader,
                                            const etcdserverpb::MemberPromoteRequest& req,
                                            absl::Time deadline,
                                            etcdserverpb::MemberPromoteResponse* resp) {
  resp->Clear();
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = leader_.ChannelTo(leader);
  if (!channel.ok()) return channel.status();
  grpc::ClientContext forward;
  forward.set_deadline(absl::ToChronoTime(deadline));
  const grpc::Status s =
      etcdserverpb::Cluster::NewStub(*channel)->MemberPromote(&forward, req, resp);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  // The member list is the leader's; the header is this member's, as etcd's.
  FillHeader(resp->mutable_header());
  return absl::OkStatus();
}

}  // namespace kvstore::server

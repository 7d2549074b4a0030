#include "kvstore/server/lease_service.h"

#include <algorithm>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "kvstore/server/errors.h"
#include "kvstore/server/kv_service.h"
#include "kvstore/server/service_util.h"

namespace kvstore::server {

using common::ToGrpcStatus;

namespace {

constexpr int kSuffixBits = 48;
constexpr uint64_t kSuffixMask = (uint64_t{1} << kSuffixBits) - 1;
constexpr uint64_t kPositiveMask = (uint64_t{1} << 63) - 1;
// How often a request waiting for the lessor's promotion looks again.
constexpr absl::Duration kPrimaryPoll = absl::Milliseconds(10);

}  // namespace

LeaseIdGenerator::LeaseIdGenerator(uint64_t member_id, absl::Time now)
    : prefix_((member_id & 0xffff) << kSuffixBits),
      suffix_((static_cast<uint64_t>(absl::ToUnixMillis(now)) & ((uint64_t{1} << 40) - 1)) << 8) {}

int64_t LeaseIdGenerator::Next() {
  for (;;) {
    const uint64_t suffix = suffix_.fetch_add(1, std::memory_order_relaxed) + 1;
    const uint64_t id = (prefix_ | (suffix & kSuffixMask)) & kPositiveMask;
    if (id != 0) return static_cast<int64_t>(id);
  }
}

LeaseService::LeaseService(KvServer* server, absl::Duration request_timeout)
    : server_(server),
      request_timeout_(request_timeout),
      ids_(server->member_id(), absl::Now()),
      leader_(&server->membership()) {}

absl::StatusOr<uint64_t> LeaseService::FindLessor(const grpc::ServerContext* ctx,
                                                  absl::Time deadline) const {
  while (!server_->lessor().is_primary()) {
    const DriverStatus st = server_->driver().Status();
    if (st.leader != raft::kNone && st.leader != server_->member_id()) return st.leader;
    if (ctx->IsCancelled()) return absl::CancelledError("context canceled");
    if (absl::Now() >= deadline) {
      return st.leader == raft::kNone ? NoLeaderError() : TimeoutError();
    }
    absl::SleepFor(kPrimaryPoll);
  }
  return 0;
}

absl::StatusOr<int64_t> LeaseService::ForwardKeepAlive(
    uint64_t leader, const etcdserverpb::LeaseKeepAliveRequest& req, absl::Time deadline) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = leader_.ChannelTo(leader);
  if (!channel.ok()) return channel.status();
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(deadline));
  std::unique_ptr<etcdserverpb::Lease::Stub> stub = etcdserverpb::Lease::NewStub(*channel);
  auto stream = stub->LeaseKeepAlive(&ctx);
  etcdserverpb::LeaseKeepAliveResponse resp;
  const bool answered = stream->Write(req) && stream->Read(&resp);
  stream->WritesDone();
  const grpc::Status s = stream->Finish();
  if (!answered) {
    return s.ok() ? absl::UnavailableError("etcdserver: leader closed the keep-alive stream")
                  : absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  }
  return resp.ttl();
}

grpc::Status LeaseService::LeaseGrant(grpc::ServerContext* ctx,
                                      const etcdserverpb::LeaseGrantRequest* req,
                                      etcdserverpb::LeaseGrantResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  // etcd's lessor refuses this when applying; refusing before proposing gives the client
  // the same error and keeps the entry out of the log.
  if (req->ttl() > kMaxLeaseTtl) return ToGrpcStatus(LeaseTtlTooLargeError());
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_lease_grant() = *req;
  if (req->id() == 0) {
    int64_t id = ids_.Next();
    while (server_->lessor().Exists(id)) id = ids_.Next();
    r.mutable_lease_grant()->set_id(id);
  }
  return WriteAndAnswer(server_, RequestDeadline(ctx, request_timeout_), std::move(r), resp);
}

grpc::Status LeaseService::LeaseRevoke(grpc::ServerContext* ctx,
                                       const etcdserverpb::LeaseRevokeRequest* req,
                                       etcdserverpb::LeaseRevokeResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_lease_revoke() = *req;
  return WriteAndAnswer(server_, RequestDeadline(ctx, request_timeout_), std::move(r), resp);
}

grpc::Status LeaseService::LeaseKeepAlive(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<etcdserverpb::LeaseKeepAliveResponse,
                             etcdserverpb::LeaseKeepAliveRequest>* stream) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  etcdserverpb::LeaseKeepAliveRequest req;
  while (stream->Read(&req)) {
    etcdserverpb::LeaseKeepAliveResponse resp;
    resp.set_id(req.id());
    // The header is taken before the renewal, as etcd does, so that its revision is never
    // past a revocation the renewal did not see.
    server_->FillHeader(resp.mutable_header());
    const absl::Time deadline = RequestDeadline(ctx, request_timeout_);
    absl::StatusOr<uint64_t> lessor = FindLessor(ctx, deadline);
    if (!lessor.ok()) return ToGrpcStatus(lessor.status());
    absl::StatusOr<int64_t> ttl = *lessor == 0 ? server_->lessor().Renew(req.id())
                                               : ForwardKeepAlive(*lessor, req, deadline);
    if (absl::IsNotFound(ttl.status())) {
      resp.set_ttl(0);  // unknown or expired: etcd answers TTL 0, not an error
    } else if (!ttl.ok()) {
      return ToGrpcStatus(ttl.status());
    } else {
      resp.set_ttl(*ttl);
    }
    if (!stream->Write(resp)) break;
  }
  return grpc::Status::OK;
}

grpc::Status LeaseService::LeaseTimeToLive(grpc::ServerContext* ctx,
                                           const etcdserverpb::LeaseTimeToLiveRequest* req,
                                           etcdserverpb::LeaseTimeToLiveResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  const absl::Time deadline = RequestDeadline(ctx, request_timeout_);
  absl::StatusOr<uint64_t> lessor = FindLessor(ctx, deadline);
  if (!lessor.ok()) return ToGrpcStatus(lessor.status());
  if (*lessor != 0) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = leader_.ChannelTo(*lessor);
    if (!channel.ok()) return ToGrpcStatus(channel.status());
    grpc::ClientContext forward;
    forward.set_deadline(absl::ToChronoTime(deadline));
    grpc::Status s = etcdserverpb::Lease::NewStub(*channel)->LeaseTimeToLive(&forward, *req, resp);
    if (!s.ok()) return s;
    resp->clear_header();
    server_->FillHeader(resp->mutable_header());
    return grpc::Status::OK;
  }
  resp->set_id(req->id());
  absl::StatusOr<LeaseInfo> info = server_->lessor().Info(req->id());
  if (absl::IsNotFound(info.status())) {
    resp->set_ttl(-1);  // etcd: not an error, TTL -1
  } else if (!info.ok()) {
    return ToGrpcStatus(info.status());
  } else {
    resp->set_ttl(info->remaining_ttl);
    resp->set_grantedttl(info->granted_ttl);
    if (req->keys()) {
      for (const std::string& k : info->keys) resp->add_keys(k);
    }
  }
  server_->FillHeader(resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status LeaseService::LeaseLeases(grpc::ServerContext*,
                                       const etcdserverpb::LeaseLeasesRequest*,
                                       etcdserverpb::LeaseLeasesResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  // etcd lists the member's own lessor, soonest expiry first.
  std::vector<std::pair<int64_t, int64_t>> leases;  // (remaining TTL, id)
  for (int64_t id : server_->lessor().Ids()) {
    absl::StatusOr<LeaseInfo> info = server_->lessor().Info(id);
    if (!info.ok()) continue;  // revoked meanwhile
    leases.emplace_back(info->remaining_ttl, id);
  }
  std::sort(leases.begin(), leases.end());
  for (const auto& [ttl, id] : leases) resp->add_leases()->set_id(id);
  server_->FillHeader(resp->mutable_header());
  return grpc::Status::OK;
}

}  // namespace kvstore::server

#include "kvstore/server/maintenance_service.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "kvstore/server/errors.h"
#include "kvstore/server/kv_service.h"
#include "kvstore/server/service_util.h"
#include "kvstore/server/snapshot_format.h"
#include "spdlog/spdlog.h"

namespace kvstore::server {
namespace fs = std::filesystem;

using common::ToGrpcStatus;

namespace {

constexpr char kSnapshotTmpPrefix[] = "snapshot.tmp.";
// How often MoveLeader looks whether the transfer is done (etcd: once a tick).
constexpr absl::Duration kTransferPoll = absl::Milliseconds(10);

// etcd prints an alarm in Status.errors as the proto's compact text form.
std::string AlarmText(const etcdserverpb::AlarmMember& a) {
  return absl::StrCat("memberID:", a.memberid(), " alarm:", etcdserverpb::AlarmType_Name(a.alarm()),
                      " ");
}

}  // namespace

MaintenanceService::MaintenanceService(KvServer* server, absl::Duration request_timeout)
    : server_(server), request_timeout_(request_timeout) {
  // Checkpoints left by snapshots that were streaming when the process died.
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(MemberDir(), ec)) {
    if (absl::StartsWith(e.path().filename().string(), kSnapshotTmpPrefix)) {
      std::error_code ignored;
      fs::remove_all(e.path(), ignored);
    }
  }
}

std::string MaintenanceService::MemberDir() const {
  return (fs::path(server_->options().data_dir) / "member").string();
}

grpc::Status MaintenanceService::Alarm(grpc::ServerContext* ctx,
                                       const etcdserverpb::AlarmRequest* req,
                                       etcdserverpb::AlarmResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  absl::StatusOr<etcdserverpb::AlarmResponse> r =
      server_->Alarm(*req, RequestDeadline(ctx, request_timeout_));
  if (!r.ok()) return ToGrpcStatus(r.status());
  *resp = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status MaintenanceService::Status(grpc::ServerContext*, const etcdserverpb::StatusRequest*,
                                        etcdserverpb::StatusResponse* resp) {
  const DriverStatus st = server_->driver().Status();
  server_->FillHeader(resp->mutable_header());
  resp->set_version(kServerVersion);
  const int64_t size = static_cast<int64_t>(server_->store().ApproximateSizeBytes());
  resp->set_dbsize(size);
  resp->set_dbsizeinuse(size);
  resp->set_leader(st.leader);
  resp->set_raftindex(st.commit);
  resp->set_raftterm(st.term);
  resp->set_raftappliedindex(st.applied);
  const auto& learners = st.conf_state.learners;
  resp->set_islearner(std::find(learners.begin(), learners.end(), server_->member_id()) !=
                      learners.end());
  if (st.leader == raft::kNone) resp->add_errors(std::string(NoLeaderError().message()));
  for (const etcdserverpb::AlarmMember& a : server_->ActiveAlarms()) {
    resp->add_errors(AlarmText(a));
  }
  return grpc::Status::OK;
}

grpc::Status MaintenanceService::Defragment(grpc::ServerContext*,
                                            const etcdserverpb::DefragmentRequest*,
                                            etcdserverpb::DefragmentResponse*) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  spdlog::info("starting to defragment the storage backend");
  if (absl::Status s = server_->store().Defragment(); !s.ok()) return ToGrpcStatus(s);
  spdlog::info("finished defragmenting the storage backend");
  return grpc::Status::OK;
}

grpc::Status MaintenanceService::Hash(grpc::ServerContext*, const etcdserverpb::HashRequest*,
                                      etcdserverpb::HashResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  absl::StatusOr<mvcc::KvHash> h = server_->store().HashKV(0);
  if (!h.ok()) return ToGrpcStatus(FromStoreError(h.status()));
  resp->set_hash(h->hash);
  resp->mutable_header()->set_revision(h->revision);
  server_->FillHeader(resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status MaintenanceService::HashKV(grpc::ServerContext*,
                                        const etcdserverpb::HashKVRequest* req,
                                        etcdserverpb::HashKVResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  absl::StatusOr<mvcc::KvHash> h = server_->store().HashKV(req->revision());
  if (!h.ok()) return ToGrpcStatus(FromStoreError(h.status()));
  resp->set_hash(h->hash);
  // etcd's compacted revision is -1 until the first compaction.
  resp->set_compact_revision(h->compact_revision == 0 ? -1 : h->compact_revision);
  server_->FillHeader(resp->mutable_header());  // the current revision, as etcd's
  return grpc::Status::OK;
}

grpc::Status MaintenanceService::Snapshot(
    grpc::ServerContext* ctx, const etcdserverpb::SnapshotRequest*,
    grpc::ServerWriter<etcdserverpb::SnapshotResponse>* writer) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  const std::string dir = (fs::path(MemberDir()) / absl::StrCat(kSnapshotTmpPrefix, getpid(), ".",
                                                                next_snapshot_.fetch_add(1)))
                              .string();
  absl::Cleanup remove_checkpoint = [&dir] {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  };
  mvcc::MvccStore& store = server_->store();
  SnapshotInfo info;
  info.member_id = server_->member_id();
  info.cluster_id = server_->cluster_id();
  {
    // Holding the store's writer slot keeps applies out while the checkpoint is taken (a
    // flush and hard links: milliseconds), so the revision recorded is exactly the one the
    // checkpoint holds. The transaction writes nothing and is dropped.
    mvcc::WriteTxn hold = store.BeginWrite();
    info.revision = hold.Revision();
    info.compact_revision = store.CompactedRevision();
    if (absl::Status s = store.CreateCheckpoint(dir); !s.ok()) return ToGrpcStatus(s);
  }
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> snapshot = SnapshotWriter::Open(dir, info);
  if (!snapshot.ok()) return ToGrpcStatus(snapshot.status());
  spdlog::info("sending snapshot at revision {} ({} bytes)", info.revision, (*snapshot)->size());

  uint64_t sent = 0;
  bool first = true;
  for (;;) {
    absl::StatusOr<std::string> chunk = (*snapshot)->Next(kSnapshotChunkBytes);
    if (!chunk.ok()) return ToGrpcStatus(chunk.status());
    if (chunk->empty()) break;
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "context canceled");
    etcdserverpb::SnapshotResponse resp;
    const bool trailer = sent == (*snapshot)->payload_size();
    if (!trailer) sent += chunk->size();
    resp.set_remaining_bytes(trailer ? 0 : (*snapshot)->payload_size() - sent);
    resp.set_blob(std::move(*chunk));
    if (first) {
      resp.mutable_header()->set_revision(info.revision);
      server_->FillHeader(resp.mutable_header());
      first = false;
    }
    if (!writer->Write(resp)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "snapshot stream closed by the client");
    }
  }
  return grpc::Status::OK;
}

grpc::Status MaintenanceService::MoveLeader(grpc::ServerContext* ctx,
                                            const etcdserverpb::MoveLeaderRequest* req,
                                            etcdserverpb::MoveLeaderResponse*) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  const DriverStatus st = server_->driver().Status();
  if (st.leader != server_->member_id()) return ToGrpcStatus(NotLeaderError());
  const auto& voters = st.conf_state.voters;
  if (std::find(voters.begin(), voters.end(), req->targetid()) == voters.end()) {
    return ToGrpcStatus(BadLeaderTransfereeError());  // unknown, a learner, or 0
  }
  if (req->targetid() == server_->member_id()) return grpc::Status::OK;  // already leads
  server_->driver().TransferLeadership(req->targetid());
  const absl::Time deadline = RequestDeadline(ctx, request_timeout_);
  while (server_->driver().Status().leader != req->targetid()) {
    if (absl::Now() >= deadline || ctx->IsCancelled()) {
      return ToGrpcStatus(LeaderTransferTimeoutError());
    }
    absl::SleepFor(kTransferPoll);
  }
  return grpc::Status::OK;
}

}  // namespace kvstore::server

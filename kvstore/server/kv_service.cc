#include "kvstore/server/kv_service.h"

#include <utility>

#include "common/grpc_status.h"
#include "kvstore/server/range.h"
#include "kvstore/server/txn.h"
#include "kvstore/server/validate.h"

namespace kvstore::server {

using common::ToGrpcStatus;

namespace {

grpc::ServerUnaryReactor* Finished(grpc::CallbackServerContext* ctx, grpc::Status s) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(std::move(s));
  return reactor;
}

}  // namespace

template <typename T>
grpc::ServerUnaryReactor* KvService::Write(grpc::CallbackServerContext* ctx,
                                           kvstore::internal::InternalRaftRequest r, T* resp) {
  if (absl::Status s = server_->CheckRequestSize(r); !s.ok()) {
    return Finished(ctx, ToGrpcStatus(s));
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  WriteAndFinish(server_, reactor, RequestDeadline(ctx, request_timeout_), std::move(r), resp);
  return reactor;
}

grpc::ServerUnaryReactor* KvService::Read(grpc::CallbackServerContext* ctx, bool serializable,
                                          absl::AnyInvocable<grpc::Status()> read) {
  if (serializable) return Finished(ctx, read());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  server_->ReadBarrierAsync(RequestDeadline(ctx, request_timeout_),
                            [reactor, read = std::move(read)](absl::Status s) mutable {
                              reactor->Finish(s.ok() ? read() : ToGrpcStatus(s));
                            });
  return reactor;
}

grpc::Status KvService::DoRange(const etcdserverpb::RangeRequest& req,
                                etcdserverpb::RangeResponse* resp) const {
  const mvcc::MvccStore& store = server_->store();
  absl::StatusOr<etcdserverpb::RangeResponse> rr =
      ExecuteRange(req, [&store](std::string_view k, std::string_view e,
                                 const mvcc::RangeOptions& o) { return store.Range(k, e, o); });
  if (!rr.ok()) return ToGrpcStatus(rr.status());
  *resp = std::move(*rr);
  server_->FillHeader(resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status KvService::DoReadOnlyTxn(const etcdserverpb::TxnRequest& req,
                                      etcdserverpb::TxnResponse* resp) const {
  // All reads happen at one revision.
  const mvcc::MvccStore& store = server_->store();
  const int64_t rev = store.CurrentRevision();
  auto read = [&store, rev](std::string_view k, std::string_view e, mvcc::RangeOptions o) {
    if (o.revision == 0) o.revision = rev;
    return store.Range(k, e, o);
  };
  absl::StatusOr<TxnPath> path = DecidePath(req, read);
  if (!path.ok()) return ToGrpcStatus(path.status());
  if (absl::Status s = CheckTxnRanges(req, *path, rev, store.CompactMainRevision()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  absl::StatusOr<etcdserverpb::TxnResponse> tr = RunReadOnlyTxn(req, *path, read);
  if (!tr.ok()) return ToGrpcStatus(tr.status());
  *resp = std::move(*tr);
  resp->mutable_header()->set_revision(rev);
  server_->FillHeader(resp->mutable_header());
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* KvService::Range(grpc::CallbackServerContext* ctx,
                                           const etcdserverpb::RangeRequest* req,
                                           etcdserverpb::RangeResponse* resp) {
  if (!req->serializable()) {
    if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return Finished(ctx, s);
  }
  if (absl::Status s = ValidateRange(*req); !s.ok()) return Finished(ctx, ToGrpcStatus(s));
  return Read(ctx, req->serializable(), [this, req, resp] { return DoRange(*req, resp); });
}

grpc::ServerUnaryReactor* KvService::Put(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::PutRequest* req,
                                         etcdserverpb::PutResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return Finished(ctx, s);
  if (absl::Status s = ValidatePut(*req); !s.ok()) return Finished(ctx, ToGrpcStatus(s));
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_put() = *req;
  return Write(ctx, std::move(r), resp);
}

grpc::ServerUnaryReactor* KvService::DeleteRange(grpc::CallbackServerContext* ctx,
                                                 const etcdserverpb::DeleteRangeRequest* req,
                                                 etcdserverpb::DeleteRangeResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return Finished(ctx, s);
  if (absl::Status s = ValidateDeleteRange(*req); !s.ok()) {
    return Finished(ctx, ToGrpcStatus(s));
  }
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_delete_range() = *req;
  return Write(ctx, std::move(r), resp);
}

grpc::ServerUnaryReactor* KvService::Txn(grpc::CallbackServerContext* ctx,
                                         const etcdserverpb::TxnRequest* req,
                                         etcdserverpb::TxnResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return Finished(ctx, s);
  if (absl::Status s = ValidateTxn(*req, server_->max_txn_ops()); !s.ok()) {
    return Finished(ctx, ToGrpcStatus(s));
  }
  if (IsReadOnlyTxn(*req)) {
    // Served from the store like a Range (as etcd does): linearizable unless every range
    // in it is serializable.
    return Read(ctx, IsSerializableTxn(*req),
                [this, req, resp] { return DoReadOnlyTxn(*req, resp); });
  }
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_txn() = *req;
  return Write(ctx, std::move(r), resp);
}

grpc::ServerUnaryReactor* KvService::Compact(grpc::CallbackServerContext* ctx,
                                             const etcdserverpb::CompactionRequest* req,
                                             etcdserverpb::CompactionResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return Finished(ctx, s);
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_compaction() = *req;
  if (!req->physical()) return Write(ctx, std::move(r), resp);
  // etcd answers a physical compaction once the compacted history is deleted.
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  server_->WriteAsync(std::move(r), RequestDeadline(ctx, request_timeout_),
                      [server = server_, reactor, resp](absl::StatusOr<ApplyResult> applied) {
                        grpc::Status s = AnswerWrite(server, std::move(applied), resp);
                        if (!s.ok()) return reactor->Finish(s);
                        server->AfterCompaction(
                            [reactor](absl::Status done) { reactor->Finish(ToGrpcStatus(done)); });
                      });
  return reactor;
}

}  // namespace kvstore::server

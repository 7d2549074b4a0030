#include "kvstore/server/kv_service.h"

#include <algorithm>
#include <utility>

#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "kvstore/server/range.h"
#include "kvstore/server/txn.h"
#include "kvstore/server/validate.h"

namespace kvstore::server {

using common::ToGrpcStatus;

template <typename T>
grpc::Status KvService::Write(const grpc::ServerContext* ctx,
                              kvstore::internal::InternalRaftRequest r, T* resp) {
  if (absl::Status s = server_->CheckRequestSize(r); !s.ok()) return ToGrpcStatus(s);
  return WriteAndAnswer(server_, RequestDeadline(ctx, request_timeout_), std::move(r), resp);
}

grpc::Status KvService::Range(grpc::ServerContext* ctx, const etcdserverpb::RangeRequest* req,
                              etcdserverpb::RangeResponse* resp) {
  if (absl::Status s = ValidateRange(*req); !s.ok()) return ToGrpcStatus(s);
  if (!req->serializable()) {
    absl::Status s = server_->WaitLinearizable(RequestDeadline(ctx, request_timeout_));
    if (!s.ok()) return ToGrpcStatus(s);
  }
  const mvcc::MvccStore& store = server_->store();
  absl::StatusOr<etcdserverpb::RangeResponse> rr =
      ExecuteRange(*req, [&store](std::string_view k, std::string_view e,
                                  const mvcc::RangeOptions& o) { return store.Range(k, e, o); });
  if (!rr.ok()) return ToGrpcStatus(rr.status());
  *resp = std::move(*rr);
  server_->FillHeader(resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status KvService::Put(grpc::ServerContext* ctx, const etcdserverpb::PutRequest* req,
                            etcdserverpb::PutResponse* resp) {
  if (absl::Status s = ValidatePut(*req); !s.ok()) return ToGrpcStatus(s);
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_put() = *req;
  return Write(ctx, std::move(r), resp);
}

grpc::Status KvService::DeleteRange(grpc::ServerContext* ctx,
                                    const etcdserverpb::DeleteRangeRequest* req,
                                    etcdserverpb::DeleteRangeResponse* resp) {
  if (absl::Status s = ValidateDeleteRange(*req); !s.ok()) return ToGrpcStatus(s);
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_delete_range() = *req;
  return Write(ctx, std::move(r), resp);
}

grpc::Status KvService::Txn(grpc::ServerContext* ctx, const etcdserverpb::TxnRequest* req,
                            etcdserverpb::TxnResponse* resp) {
  if (absl::Status s = ValidateTxn(*req, server_->max_txn_ops()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (IsReadOnlyTxn(*req)) {
    // Served from the store like a Range (as etcd does): linearizable unless every range
    // in it is serializable. All reads happen at one revision.
    if (!IsSerializableTxn(*req)) {
      absl::Status s = server_->WaitLinearizable(RequestDeadline(ctx, request_timeout_));
      if (!s.ok()) return ToGrpcStatus(s);
    }
    const mvcc::MvccStore& store = server_->store();
    const int64_t rev = store.CurrentRevision();
    auto read = [&store, rev](std::string_view k, std::string_view e, mvcc::RangeOptions o) {
      if (o.revision == 0) o.revision = rev;
      return store.Range(k, e, o);
    };
    absl::StatusOr<TxnPath> path = DecidePath(*req, read);
    if (!path.ok()) return ToGrpcStatus(path.status());
    if (absl::Status s = CheckTxnRanges(*req, *path, rev, store.CompactedRevision()); !s.ok()) {
      return ToGrpcStatus(s);
    }
    absl::StatusOr<etcdserverpb::TxnResponse> tr = RunReadOnlyTxn(*req, *path, read);
    if (!tr.ok()) return ToGrpcStatus(tr.status());
    *resp = std::move(*tr);
    resp->mutable_header()->set_revision(rev);
    server_->FillHeader(resp->mutable_header());
    return grpc::Status::OK;
  }
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_txn() = *req;
  return Write(ctx, std::move(r), resp);
}

grpc::Status KvService::Compact(grpc::ServerContext* ctx,
                                const etcdserverpb::CompactionRequest* req,
                                etcdserverpb::CompactionResponse* resp) {
  kvstore::internal::InternalRaftRequest r;
  *r.mutable_compaction() = *req;
  return Write(ctx, std::move(r), resp);
}

}  // namespace kvstore::server

#include "kvstore/server/txn.h"

#include <utility>

#include "kvstore/server/errors.h"

namespace kvstore::server {
namespace {

using etcdserverpb::Compare;
using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;

template <typename T>
int CompareValues(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}

bool CompareKv(const Compare& c, const mvcc::KeyValue& kv) {
  int result = 0;
  switch (c.target()) {
    case Compare::VALUE:
      result = CompareValues(kv.value, c.value());
      break;
    case Compare::CREATE:
      result = CompareValues(kv.create_revision, c.create_revision());
      break;
    case Compare::MOD:
      result = CompareValues(kv.mod_revision, c.mod_revision());
      break;
    case Compare::VERSION:
      result = CompareValues(kv.version, c.version());
      break;
    case Compare::LEASE:
      result = CompareValues(kv.lease, c.lease());
      break;
    default:
      return false;
  }
  switch (c.result()) {
    case Compare::EQUAL:
      return result == 0;
    case Compare::NOT_EQUAL:
      return result != 0;
    case Compare::GREATER:
      return result > 0;
    case Compare::LESS:
      return result < 0;
    default:
      return false;
  }
}

bool OpsReadOnly(const google::protobuf::RepeatedPtrField<RequestOp>& ops, bool need_serializable) {
  for (const RequestOp& op : ops) {
    switch (op.request_case()) {
      case RequestOp::kRequestRange:
        if (need_serializable && !op.request_range().serializable()) return false;
        break;
      case RequestOp::kRequestTxn:
        if (!OpsReadOnly(op.request_txn().success(), need_serializable) ||
            !OpsReadOnly(op.request_txn().failure(), need_serializable)) {
          return false;
        }
        break;
      default:
        return false;
    }
  }
  return true;
}

}  // namespace

absl::StatusOr<bool> EvaluateCompare(const Compare& c, RangeReader read) {
  absl::StatusOr<mvcc::RangeResult> rr = read(c.key(), c.range_end(), mvcc::RangeOptions{});
  if (!rr.ok()) return FromStoreError(rr.status());
  if (rr->kvs.empty()) {
    // A value cannot be compared with a key that does not exist.
    if (c.target() == Compare::VALUE) return false;
    return CompareKv(c, mvcc::KeyValue{});
  }
  for (const mvcc::KeyValue& kv : rr->kvs) {
    if (!CompareKv(c, kv)) return false;
  }
  return true;
}

absl::StatusOr<TxnPath> DecidePath(const TxnRequest& r, RangeReader read) {
  TxnPath path;
  path.succeeded = true;
  for (const Compare& c : r.compare()) {
    absl::StatusOr<bool> ok = EvaluateCompare(c, read);
    if (!ok.ok()) return ok.status();
    if (!*ok) {
      path.succeeded = false;
      break;
    }
  }
  for (const RequestOp& op : path.succeeded ? r.success() : r.failure()) {
    if (op.request_case() != RequestOp::kRequestTxn) continue;
    absl::StatusOr<TxnPath> nested = DecidePath(op.request_txn(), read);
    if (!nested.ok()) return nested.status();
    path.nested.push_back(std::move(*nested));
  }
  return path;
}

absl::Status CheckTxnRanges(const TxnRequest& r, const TxnPath& path, int64_t current,
                            int64_t compacted) {
  size_t nested = 0;
  for (const RequestOp& op : path.succeeded ? r.success() : r.failure()) {
    if (op.request_case() == RequestOp::kRequestRange) {
      const int64_t rev = op.request_range().revision();
      if (rev > current) return FutureRevisionError();
      if (rev != 0 && rev < compacted) return CompactedRevisionError();
    } else if (op.request_case() == RequestOp::kRequestTxn) {
      absl::Status s = CheckTxnRanges(op.request_txn(), path.nested[nested++], current, compacted);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

bool IsReadOnlyTxn(const TxnRequest& r) {
  return OpsReadOnly(r.success(), false) && OpsReadOnly(r.failure(), false);
}

bool IsSerializableTxn(const TxnRequest& r) {
  return OpsReadOnly(r.success(), true) && OpsReadOnly(r.failure(), true);
}

absl::StatusOr<etcdserverpb::TxnResponse> RunReadOnlyTxn(const TxnRequest& r, const TxnPath& path,
                                                         RangeReader read) {
  etcdserverpb::TxnResponse resp;
  resp.mutable_header();
  resp.set_succeeded(path.succeeded);
  size_t nested = 0;
  for (const RequestOp& op : path.succeeded ? r.success() : r.failure()) {
    etcdserverpb::ResponseOp* out = resp.add_responses();
    if (op.request_case() == RequestOp::kRequestRange) {
      absl::StatusOr<etcdserverpb::RangeResponse> rr = ExecuteRange(op.request_range(), read);
      if (!rr.ok()) return rr.status();
      *out->mutable_response_range() = std::move(*rr);
    } else if (op.request_case() == RequestOp::kRequestTxn) {
      absl::StatusOr<etcdserverpb::TxnResponse> tr =
          RunReadOnlyTxn(op.request_txn(), path.nested[nested++], read);
      if (!tr.ok()) return tr.status();
      *out->mutable_response_txn() = std::move(*tr);
    }
  }
  return resp;
}

}  // namespace kvstore::server

#include "kvstore/server/validate.h"

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kvstore/server/errors.h"

namespace kvstore::server {

// Checks a txn's ops (nested txns included) without the duplicate-key rule.
absl::Status ValidateTxnOps(const etcdserverpb::TxnRequest& r, int max_ops);

namespace {

using etcdserverpb::RequestOp;

// A deleted key range: [key, end), a single key when end is empty, unbounded when "\0".
struct KeyInterval {
  std::string key;
  std::string end;

  // etcd's duplicate check reads range_end literally, "\0" included (so a delete "from
  // key" overlaps no put): kept identical so that the same txns are accepted.
  bool Contains(const std::string& k) const {
    if (end.empty()) return k == key;
    return k >= key && k < end;
  }
};

struct Writes {
  std::set<std::string> puts;
  std::vector<KeyInterval> deletes;

  bool Deletes(const std::string& k) const {
    for (const KeyInterval& d : deletes) {
      if (d.Contains(k)) return true;
    }
    return false;
  }
};

// The keys one branch puts and the ranges it deletes, nested txns included. A key may be
// put at most once per branch and not also deleted there; the two branches of a nested
// txn exclude each other, so they may put the same key.
absl::StatusOr<Writes> BranchWrites(const google::protobuf::RepeatedPtrField<RequestOp>& ops) {
  Writes w;
  for (const RequestOp& op : ops) {
    if (op.request_case() == RequestOp::kRequestDeleteRange) {
      w.deletes.push_back({op.request_delete_range().key(), op.request_delete_range().range_end()});
    }
  }
  for (const RequestOp& op : ops) {
    if (op.request_case() != RequestOp::kRequestTxn) continue;
    absl::StatusOr<Writes> then = BranchWrites(op.request_txn().success());
    if (!then.ok()) return then.status();
    absl::StatusOr<Writes> otherwise = BranchWrites(op.request_txn().failure());
    if (!otherwise.ok()) return otherwise.status();
    for (const std::string& k : then->puts) {
      if (w.puts.count(k) || w.Deletes(k)) return DuplicateKeyError();
    }
    for (const std::string& k : otherwise->puts) {
      if ((w.puts.count(k) && !then->puts.count(k)) || w.Deletes(k)) return DuplicateKeyError();
    }
    w.puts.insert(then->puts.begin(), then->puts.end());
    w.puts.insert(otherwise->puts.begin(), otherwise->puts.end());
    for (Writes* nested : {&*then, &*otherwise}) {
      w.deletes.insert(w.deletes.end(), nested->deletes.begin(), nested->deletes.end());
    }
  }
  for (const RequestOp& op : ops) {
    if (op.request_case() != RequestOp::kRequestPut) continue;
    const std::string& k = op.request_put().key();
    if (w.puts.count(k) || w.Deletes(k)) return DuplicateKeyError();
    w.puts.insert(k);
  }
  return w;
}

absl::Status ValidateOps(const google::protobuf::RepeatedPtrField<RequestOp>& ops, int max_ops) {
  for (const RequestOp& op : ops) {
    absl::Status s;
    switch (op.request_case()) {
      case RequestOp::kRequestRange:
        s = ValidateRange(op.request_range());
        break;
      case RequestOp::kRequestPut:
        s = ValidatePut(op.request_put());
        break;
      case RequestOp::kRequestDeleteRange:
        s = ValidateDeleteRange(op.request_delete_range());
        break;
      case RequestOp::kRequestTxn:
        s = ValidateTxnOps(op.request_txn(), max_ops);
        break;
      default:
        break;
    }
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRange(const etcdserverpb::RangeRequest& r) {
  if (r.key().empty()) return EmptyKeyError();
  return absl::OkStatus();
}

absl::Status ValidatePut(const etcdserverpb::PutRequest& r) {
  if (r.key().empty()) return EmptyKeyError();
  if (r.ignore_value() && !r.value().empty()) return ValueProvidedError();
  if (r.ignore_lease() && r.lease() != 0) return LeaseProvidedError();
  return absl::OkStatus();
}

absl::Status ValidateDeleteRange(const etcdserverpb::DeleteRangeRequest& r) {
  if (r.key().empty()) return EmptyKeyError();
  return absl::OkStatus();
}

absl::Status ValidateTxnOps(const etcdserverpb::TxnRequest& r, int max_ops) {
  // As etcd: the longest of the three lists counts against the limit, and a nested txn
  // gets what its parent left.
  const int ops = std::max({r.compare_size(), r.success_size(), r.failure_size()});
  if (ops > max_ops) return TooManyOpsError();
  for (const etcdserverpb::Compare& c : r.compare()) {
    if (c.key().empty()) return EmptyKeyError();
  }
  if (absl::Status s = ValidateOps(r.success(), max_ops - ops); !s.ok()) return s;
  return ValidateOps(r.failure(), max_ops - ops);
}

absl::Status ValidateTxn(const etcdserverpb::TxnRequest& r, int max_ops) {
  // Every op is checked, nested txns included, before any duplicate-key check.
  if (absl::Status s = ValidateTxnOps(r, max_ops); !s.ok()) return s;
  if (absl::StatusOr<Writes> w = BranchWrites(r.success()); !w.ok()) return w.status();
  if (absl::StatusOr<Writes> w = BranchWrites(r.failure()); !w.ok()) return w.status();
  return absl::OkStatus();
}

}  // namespace kvstore::server

// The parts of etcd's Txn that do not write: evaluating compares, deciding which branch of
// a txn (and of each nested txn) runs, and running a txn that only reads. The applier uses
// the first two inside a write transaction; the KV service runs read-only txns against the
// store without going through Raft, as etcd does.
#ifndef KVSTORE_SERVER_TXN_H_
#define KVSTORE_SERVER_TXN_H_

#include <vector>

#include "absl/status/statusor.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "kvstore/server/range.h"

namespace kvstore::server {

// Whether every key in the compare's range satisfies it. A missing key compares as a
// KeyValue of zeros, except that a value compare on a missing key always fails.
absl::StatusOr<bool> EvaluateCompare(const etcdserverpb::Compare& c, RangeReader read);

// The branch a txn takes, and those of the nested txns in that branch (one per request_txn
// op, in order), all decided against one state before anything is written.
struct TxnPath {
  bool succeeded = false;
  std::vector<TxnPath> nested;
};
absl::StatusOr<TxnPath> DecidePath(const etcdserverpb::TxnRequest& r, RangeReader read);

// etcd's checks on the ranges of the branches a txn takes, made before it runs: a
// revision above `current` is a future revision; a nonzero one below `compacted` (etcd's
// compactMainRev: MvccStore::CompactMainRevision(), -1 if never compacted) is compacted.
// So a negative revision reads the current one until the first compaction (a Compact(0)
// included), and is compacted from then on.
absl::Status CheckTxnRanges(const etcdserverpb::TxnRequest& r, const TxnPath& path, int64_t current,
                            int64_t compacted);

// A txn with no put or delete anywhere, nested txns included.
bool IsReadOnlyTxn(const etcdserverpb::TxnRequest& r);
// A read-only txn whose every range is serializable (served locally without a quorum).
bool IsSerializableTxn(const etcdserverpb::TxnRequest& r);

// Runs a read-only txn; the header revision is left for the caller.
// REQUIRES: IsReadOnlyTxn(r).
absl::StatusOr<etcdserverpb::TxnResponse> RunReadOnlyTxn(const etcdserverpb::TxnRequest& r,
                                                         const TxnPath& path, RangeReader read);

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_TXN_H_

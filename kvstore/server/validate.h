// Checks on client requests made before anything is proposed, with etcd's errors: empty
// keys, options that contradict each other, too many txn operations, and keys that one
// txn branch would write twice (or put and delete). A request that fails here never
// reaches the Raft log.
#ifndef KVSTORE_SERVER_VALIDATE_H_
#define KVSTORE_SERVER_VALIDATE_H_

#include "absl/status/status.h"
#include "etcd/etcdserverpb/rpc.pb.h"

namespace kvstore::server {

absl::Status ValidateRange(const etcdserverpb::RangeRequest& r);
absl::Status ValidatePut(const etcdserverpb::PutRequest& r);
absl::Status ValidateDeleteRange(const etcdserverpb::DeleteRangeRequest& r);
absl::Status ValidateTxn(const etcdserverpb::TxnRequest& r, int max_ops);

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_VALIDATE_H_

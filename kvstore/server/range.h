// A RangeRequest as etcd answers it, over any reader of the MVCC key space (the store for
// a plain Range, a write transaction for a Range inside a Txn): limit with `more`, count,
// keys_only and count_only, the min/max mod and create revision filters, and sorting.
#ifndef KVSTORE_SERVER_RANGE_H_
#define KVSTORE_SERVER_RANGE_H_

#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "kvstore/storage/mvcc_store.h"

namespace kvstore::server {

using RangeReader = absl::FunctionRef<absl::StatusOr<mvcc::RangeResult>(
    std::string_view key, std::string_view range_end, const mvcc::RangeOptions& options)>;

// Fills everything but the header's cluster, member and term. Errors are etcd's.
absl::StatusOr<etcdserverpb::RangeResponse> ExecuteRange(const etcdserverpb::RangeRequest& r,
                                                         RangeReader read);

void ToProto(const mvcc::KeyValue& kv, mvccpb::KeyValue* out);

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_RANGE_H_

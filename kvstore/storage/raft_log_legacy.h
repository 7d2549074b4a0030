// The Raft log store's first format, a RocksDB database (format "raft-log-store/1"): read
// once, when a store of that format is opened, so that RaftLogStore can move it into its
// write-ahead log, then removed.
//
// Layout: "e" + big-endian index -> entry; "m/hard_state", "m/snapshot_meta",
// "m/snapshot_data", "m/compacted", "m/format" (values as raft_codec.h encodes them).
#ifndef KVSTORE_STORAGE_RAFT_LOG_LEGACY_H_
#define KVSTORE_STORAGE_RAFT_LOG_LEGACY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kvstore/raft/types.h"
#include "kvstore/storage/raft_codec.h"

namespace kvstore::storage {

// Everything a Raft log store holds.
struct RaftLogContents {
  raft::HardState hard_state;
  raft::SnapshotMeta snapshot_meta;
  std::string snapshot_data;
  LogPosition compacted;
  // Exactly (compacted.index, last index], in order.
  std::vector<raft::Entry> entries;
};

// The contents of the RocksDB-format store in `dir`, or nullopt if `dir` holds no RocksDB
// database. FailedPreconditionError if it holds one that is not a Raft log store (or of
// another format); DataLossError if it is damaged or its log has a gap. Writes nothing.
absl::StatusOr<std::optional<RaftLogContents>> ReadRocksDbRaftLog(const std::string& dir);

// Deletes the files of a RocksDB database from `dir`, leaving any other file.
absl::Status RemoveRocksDbFiles(const std::string& dir);

}  // namespace kvstore::storage

#endif  // KVSTORE_STORAGE_RAFT_LOG_LEGACY_H_

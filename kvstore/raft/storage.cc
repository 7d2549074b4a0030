#include "kvstore/raft/storage.h"

namespace raft {

absl::Status CompactedError() {
  return absl::OutOfRangeError("raft: requested index is unavailable due to compaction");
}

absl::Status UnavailableEntryError() {
  return absl::NotFoundError("raft: requested entry at index is unavailable");
}

absl::Status SnapshotTemporarilyUnavailableError() {
  return absl::UnavailableError("raft: snapshot is temporarily unavailable");
}

bool IsCompacted(const absl::Status& s) { return absl::IsOutOfRange(s); }

}  // namespace raft

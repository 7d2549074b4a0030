// The core's read-only view of what the application has made durable.
//
// The core never writes through this interface: the application persists what a Ready
// asks for (entries, hard state, snapshot) in its own way and then makes it visible here.
// Calls come only from the thread that drives the Node.
#ifndef KVSTORE_RAFT_STORAGE_H_
#define KVSTORE_RAFT_STORAGE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kvstore/raft/types.h"

namespace raft {

// The index asked for lies at or below the last compaction.
absl::Status CompactedError();
// The index asked for lies beyond the last stored entry.
absl::Status UnavailableEntryError();
// A snapshot is being prepared; the core retries later.
absl::Status SnapshotTemporarilyUnavailableError();

bool IsCompacted(const absl::Status& s);

struct InitialState {
  HardState hard_state;
  // The configuration as of the index the application has applied (Config::applied).
  ConfState conf_state;
};

class Storage {
 public:
  virtual ~Storage() = default;

  virtual absl::StatusOr<InitialState> GetInitialState() const = 0;
  // Entries in [lo, hi), stopping before `max_bytes` is exceeded but always at least one.
  virtual absl::StatusOr<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi,
                                                     uint64_t max_bytes) const = 0;
  // The term of entry i, for i in [FirstIndex()-1, LastIndex()].
  virtual absl::StatusOr<uint64_t> Term(uint64_t i) const = 0;
  // Index of the first entry still held (the one after the latest snapshot).
  virtual uint64_t FirstIndex() const = 0;
  virtual uint64_t LastIndex() const = 0;
  virtual absl::StatusOr<Snapshot> GetSnapshot() const = 0;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_STORAGE_H_

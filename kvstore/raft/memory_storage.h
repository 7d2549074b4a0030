// An in-memory Storage, used by tests, the simulation and benchmarks. Its contents are
// what a node "persisted": a simulated crash keeps a MemoryStorage and drops everything
// else.
//
// Not thread-safe: one thread drives a node and its storage.
#ifndef KVSTORE_RAFT_MEMORY_STORAGE_H_
#define KVSTORE_RAFT_MEMORY_STORAGE_H_

#include <vector>

#include "kvstore/raft/storage.h"

namespace raft {

class MemoryStorage : public Storage {
 public:
  MemoryStorage();

  // A fresh member of a new cluster: one snapshot at index 1, term 1 holding `voters`.
  // Every initial member bootstraps identically; members added later start empty and
  // receive that configuration from the leader.
  static MemoryStorage Bootstrapped(const std::vector<uint64_t>& voters);

  absl::StatusOr<InitialState> GetInitialState() const override;
  absl::StatusOr<std::vector<Entry>> Entries(uint64_t lo, uint64_t hi,
                                             uint64_t max_bytes) const override;
  absl::StatusOr<uint64_t> Term(uint64_t i) const override;
  uint64_t FirstIndex() const override;
  uint64_t LastIndex() const override;
  absl::StatusOr<Snapshot> GetSnapshot() const override;

  void SetHardState(const HardState& hs) { hard_state_ = hs; }
  const HardState& hard_state() const { return hard_state_; }

  // Replaces the whole log with `snap`. Fails if `snap` is older than the current one.
  absl::Status ApplySnapshot(const Snapshot& snap);
  // Records a snapshot of the application at index i (<= LastIndex()).
  absl::Status CreateSnapshot(uint64_t i, const ConfState& cs, std::string data);
  // Drops entries up to and including i. Fails unless FirstIndex() <= i <= LastIndex().
  absl::Status Compact(uint64_t i);
  // Appends entries, first dropping any stored entries at or after entries[0].index.
  // entries[0].index must be in [FirstIndex(), LastIndex()+1].
  absl::Status Append(const std::vector<Entry>& entries);

 private:
  HardState hard_state_;
  Snapshot snapshot_;
  // entries_[0] is a placeholder holding the index and term of the latest snapshot.
  std::vector<Entry> entries_;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_MEMORY_STORAGE_H_

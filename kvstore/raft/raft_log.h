// The log as the core sees it: a stable prefix in Storage followed by an unstable suffix
// (and possibly an unstable snapshot) that a Ready has handed out, or will hand out, to
// be persisted.
//
// Invariants: FirstIndex()-1 <= applied <= committed <= LastIndex(); entries below
// unstable_offset_ are in Storage; unstable entries, if any, start at unstable_offset_.
#ifndef KVSTORE_RAFT_RAFT_LOG_H_
#define KVSTORE_RAFT_RAFT_LOG_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "kvstore/raft/storage.h"
#include "kvstore/raft/types.h"

namespace raft {

class RaftLog {
 public:
  // `storage` must outlive the log.
  explicit RaftLog(const Storage* storage);

  uint64_t FirstIndex() const;
  uint64_t LastIndex() const;
  uint64_t LastTerm() const;
  // The term of entry i, for i in [FirstIndex()-1, LastIndex()].
  absl::StatusOr<uint64_t> Term(uint64_t i) const;
  // The term of entry i, or 0 if the log does not hold it.
  uint64_t TermOrZero(uint64_t i) const;
  bool MatchTerm(uint64_t i, uint64_t term) const { return TermOrZero(i) == term && Has(i); }

  // A follower's AppendEntries: if the entry at `index` has `log_term`, appends `entries`
  // (truncating any conflicting suffix), advances the commit index to at most
  // min(committed, last new index), and returns the last new index.
  std::optional<uint64_t> MaybeAppend(uint64_t index, uint64_t log_term, uint64_t committed,
                                      const std::vector<Entry>& entries);
  // Appends entries whose indexes continue or overwrite the log; returns LastIndex().
  uint64_t Append(const std::vector<Entry>& entries);
  // The largest index <= `index` whose term is <= `term`: where a leader should probe next
  // after a follower rejected an append (fast backtracking).
  uint64_t FindConflictByTerm(uint64_t index, uint64_t term) const;

  // Entries in [lo, hi), stopping before `max_bytes` but always at least one.
  absl::StatusOr<std::vector<Entry>> Slice(uint64_t lo, uint64_t hi, uint64_t max_bytes) const;
  absl::StatusOr<std::vector<Entry>> EntriesFrom(uint64_t i, uint64_t max_bytes) const;

  // Raft's "at least as up-to-date" comparison, for granting votes.
  bool IsUpToDate(uint64_t last_index, uint64_t term) const;

  // Commits up to `max_index` if that entry is from `term` (a leader commits only entries
  // of its own term by counting replicas).
  bool MaybeCommit(uint64_t max_index, uint64_t term);
  void CommitTo(uint64_t index);
  void AppliedTo(uint64_t index);
  uint64_t committed() const { return committed_; }
  uint64_t applied() const { return applied_; }

  bool HasNextCommittedEntries() const;
  std::vector<Entry> NextCommittedEntries(uint64_t max_bytes) const;
  // Committed entries not yet applied include a configuration change.
  bool HasUnappliedConfChange() const;

  const std::vector<Entry>& UnstableEntries() const { return unstable_; }
  const std::optional<Snapshot>& UnstableSnapshot() const { return unstable_snapshot_; }
  // The application persisted entries up to (index, term) / the unstable snapshot.
  void StableTo(uint64_t index, uint64_t term);
  void StableSnapTo(uint64_t index);

  // Replaces the log with a snapshot received from the leader.
  void Restore(const Snapshot& snap);
  // Counts Restore() calls, so that work handed out before one can be recognized.
  uint64_t restores() const { return restores_; }
  absl::StatusOr<Snapshot> GetSnapshot() const;

  // Used on startup, from the persisted hard state and the application's applied index.
  void InitCommitAndApplied(uint64_t committed, uint64_t applied);

 private:
  bool Has(uint64_t i) const { return i + 1 >= FirstIndex() && i <= LastIndex(); }

  const Storage* storage_;
  std::optional<Snapshot> unstable_snapshot_;
  std::vector<Entry> unstable_;
  uint64_t unstable_offset_;
  uint64_t committed_ = 0;
  uint64_t applied_ = 0;
  uint64_t restores_ = 0;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_RAFT_LOG_H_

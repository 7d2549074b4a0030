// RaftLogStore: what a Raft member must not forget (its log, hard state and snapshot
// metadata) in a write-ahead log of its own (wal.h), and the raft::Storage view the core
// reads.
//
// It answers every raft::Storage call exactly as raft::MemoryStorage does, with the same
// error statuses; Save() does what MemoryStorage's ApplySnapshot + Append + SetHardState
// do, all or nothing.
//
// Threads: none of it is thread-safe. The Raft driver thread makes every call: Save() for
// each Ready before sending its messages, the core's reads in between, Compact() and
// CreateSnapshot() when the application has taken a snapshot. Other threads that want the
// last index or the term ask the driver, which has them from raft::Node::Status().
//
// Durability: every mutation is one WAL record, so after a crash the store holds the state
// after some prefix of the calls that were made, never part of one. Save() with sync=true,
// Bootstrap(), CreateSnapshot() and Compact() return only once the record is on disk;
// Save(sync=false) survives a process crash but not necessarily a power loss. If a write
// fails, what reached the disk is unknown (a failed fsync may have dropped pages), so the
// store refuses every later mutation with FailedPreconditionError: reopen it.
//
// Memory: the whole log since the compaction point is kept in memory, as etcd keeps it
// (raft.MemoryStorage beside its WAL): the driver compacts every --snapshot-count entries,
// so that is at most about that many entries. No raft::Storage call reads the disk.
//
// Records (items, raft_codec.h): a Save is its snapshot (snapshot meta, snapshot data and
// a log reset to the snapshot's position), its entries (an entry at index i replaces those
// from i on) and its hard state; CreateSnapshot() the snapshot meta and data; Compact() the
// new compaction point. Each segment begins with a checkpoint: the format, the compaction
// point and last index, the hard state and the snapshot, so that the segments before the
// last one that began at or below the compaction point can be deleted. A segment is tagged
// with the last index + 1 when it began. Open() replays every record, checking each
// value's CRC as well as the record's: a log that is damaged or has a gap does not open.
//
// A directory of the first format (a RocksDB database, raft_log_legacy.h) is moved into a
// new segment when opened, in one record, and its RocksDB files are then removed.
#ifndef KVSTORE_STORAGE_RAFT_LOG_STORE_H_
#define KVSTORE_STORAGE_RAFT_LOG_STORE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kvstore/raft/node.h"
#include "kvstore/raft/storage.h"
#include "kvstore/raft/types.h"
#include "kvstore/storage/raft_codec.h"
#include "kvstore/storage/wal.h"

namespace kvstore::storage {

class RaftLogStore : public raft::Storage {
 public:
  struct Options {
    // Segment size and file events (tests journal syncs to drop what a power loss would).
    Wal::Options wal;
  };

  // Creates the log in `dir` (and `dir` itself) if missing, or reopens it. Fails with
  // FailedPreconditionError if `dir` cannot be used or holds something else, and with
  // DataLossError if what it holds is corrupt.
  static absl::StatusOr<std::unique_ptr<RaftLogStore>> Open(const std::string& dir);
  static absl::StatusOr<std::unique_ptr<RaftLogStore>> Open(const std::string& dir,
                                                            const Options& options);

  RaftLogStore(const RaftLogStore&) = delete;
  RaftLogStore& operator=(const RaftLogStore&) = delete;
  ~RaftLogStore() override;

  // A fresh member of a new cluster, as raft::MemoryStorage::Bootstrapped: a snapshot at
  // index 1, term 1 holding `voters`, and hard state {term 1, commit 1}.
  // REQUIRES: the store is empty (else FailedPreconditionError).
  absl::Status Bootstrap(const std::vector<uint64_t>& voters);

  // Persists what one Ready asks for, in one write: `snap` (if not null) replaces the whole
  // log; then `entries` replace any stored entries from entries[0].index on; then `hs` (if
  // not null). Fails, writing nothing, if `snap` is older than the stored snapshot
  // (FailedPrecondition), if `entries` are not consecutive or would leave a gap
  // (InvalidArgument); entries at or below the compaction point are skipped.
  absl::Status Save(const raft::HardState* hs, const std::vector<raft::Entry>& entries,
                    const raft::Snapshot* snap, bool sync);
  // Save(rd.hard_state, rd.entries, rd.snapshot, rd.must_sync).
  absl::Status Save(const raft::Ready& rd);

  // Records that the application has a snapshot at `index` (<= LastIndex()) with
  // configuration `cs`; `data` is kept with it. Fails if not newer than the stored one.
  absl::Status CreateSnapshot(uint64_t index, const raft::ConfState& cs, std::string data);
  // Drops the entries up to and including `index`.
  // REQUIRES: FirstIndex() <= index <= LastIndex().
  absl::Status Compact(uint64_t index);

  // raft::Storage.
  absl::StatusOr<raft::InitialState> GetInitialState() const override;
  absl::StatusOr<std::vector<raft::Entry>> Entries(uint64_t lo, uint64_t hi,
                                                   uint64_t max_bytes) const override;
  absl::StatusOr<uint64_t> Term(uint64_t i) const override;
  uint64_t FirstIndex() const override { return compacted_.index + 1; }
  uint64_t LastIndex() const override { return last_index_; }
  absl::StatusOr<raft::Snapshot> GetSnapshot() const override;

  const raft::HardState& hard_state() const { return hard_state_; }
  const raft::SnapshotMeta& snapshot_meta() const { return snapshot_meta_; }
  const std::string& dir() const { return dir_; }

 private:
  RaftLogStore(std::string dir, Options options);

  // Applies one WAL record while opening; then checks that the log has no gap.
  absl::Status Replay(absl::string_view record);
  absl::Status ReplayItem(absl::string_view key, absl::string_view value);
  absl::Status CheckReplayed() const;
  // The first record of a segment begun now.
  std::string CheckpointRecord() const;
  // Writes one record, starting a segment first if it does not fit in the current one.
  absl::Status Write(const std::string& record, bool sync, absl::string_view what);
  // Deletes the segments that hold only entries at or below the compaction point.
  void ReleaseSegments();
  // REQUIRES: compacted_.index <= i <= last_index_.
  uint64_t TermOf(uint64_t i) const;

  // In-memory bookkeeping, called once the corresponding write is durable (and by Replay).
  void ResetLog(const LogPosition& base);
  // Replaces the entries from e.index on with e. REQUIRES: e.index <= last_index_ + 1.
  void AppendInMemory(raft::Entry e);
  void CompactInMemory(const LogPosition& base);

  const std::string dir_;
  const Options options_;
  std::unique_ptr<Wal> wal_;

  raft::HardState hard_state_;
  raft::SnapshotMeta snapshot_meta_;
  std::string snapshot_data_;
  LogPosition compacted_;
  uint64_t last_index_ = 0;
  // The entries (compacted_.index, last_index_] (while replaying, possibly a suffix of them).
  std::deque<raft::Entry> entries_;
  // Whether Replay() has seen the first checkpoint.
  bool replayed_checkpoint_ = false;
  // Set by the first failed write; every mutation after it fails with it.
  absl::Status write_failure_;
};

}  // namespace kvstore::storage

#endif  // KVSTORE_STORAGE_RAFT_LOG_STORE_H_

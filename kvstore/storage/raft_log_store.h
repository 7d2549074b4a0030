// RaftLogStore: what a Raft member must not forget (its log, hard state and snapshot
// metadata) in a RocksDB database of its own, and the raft::Storage view the core reads.
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
// Durability: every mutation is one rocksdb::WriteBatch, so after a crash the store holds
// the state after some prefix of the calls that were made, never part of one. Save() with
// sync=true, Bootstrap(), CreateSnapshot() and Compact() return only once the write is on
// disk; Save(sync=false) survives a process crash but not necessarily a power loss. If a
// write fails, what reached the disk is unknown (a failed fsync may have dropped pages),
// so the store refuses every later mutation with FailedPreconditionError: reopen it.
//
// Memory: FirstIndex(), LastIndex(), the hard state, the snapshot metadata and the term of
// every held entry (one (index, term) pair per term change) are kept in memory, as is a
// byte-bounded cache of the newest entries. Term() never reads RocksDB, nor do Entries()
// that fall inside the cache (the leader's usual case); older entries and the snapshot
// data are read from RocksDB when asked for. Whatever is read from disk is checked against
// its CRC32C: a value that fails is reported as absl::DataLossError, never returned.
// Open() reads and checks the whole log once, so a log that is corrupt or has a gap does
// not open.
//
// Layout (see raft_codec.h): "e" + big-endian index -> entry (term, type, data);
// "m/hard_state", "m/snapshot_meta" (index, term, conf state), "m/snapshot_data",
// "m/compacted" (index and term of the entry before FirstIndex()), "m/format". Invariant:
// the entries held are exactly (compacted.index, LastIndex()], without gaps.
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

namespace rocksdb {
class DB;
class Env;
class WriteBatch;
}  // namespace rocksdb

namespace kvstore::storage {

class RaftLogStore : public raft::Storage {
 public:
  struct Options {
    // Bytes (raft::EntrySize) of the newest entries kept in memory; 0 keeps none.
    uint64_t tail_cache_bytes = 8 << 20;
    // Where RocksDB does its I/O; null: the default. Not owned; must outlive the store.
    // Tests pass one whose disk forgets what was not synced.
    rocksdb::Env* env = nullptr;
  };

  // Creates the database in `dir` (and `dir` itself) if missing, or reopens it. Fails with
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
  // The first index of a run of entries that share a term.
  struct TermRun {
    uint64_t first_index;
    uint64_t term;
  };

  RaftLogStore(std::string dir, Options options, std::unique_ptr<rocksdb::DB> db);

  // Reads the metadata and checks the whole log, filling the in-memory state.
  absl::Status Load();
  absl::Status Write(rocksdb::WriteBatch* batch, bool sync, absl::string_view what);
  // Reads entries [lo, hi) from RocksDB, stopping once `*bytes` would exceed `max_bytes`
  // (but never before `out` holds one entry).
  absl::Status ReadEntries(uint64_t lo, uint64_t hi, uint64_t max_bytes, uint64_t* bytes,
                           std::vector<raft::Entry>* out) const;
  // REQUIRES: compacted_.index <= i <= last_index_.
  uint64_t TermOf(uint64_t i) const;

  // In-memory bookkeeping, called once the corresponding write is durable.
  void ResetLog(const LogPosition& base);
  void TruncateFrom(uint64_t index);
  void AppendInMemory(const raft::Entry& e);
  void CompactInMemory(const LogPosition& base);
  uint64_t TailFirstIndex() const { return last_index_ + 1 - tail_.size(); }

  const std::string dir_;
  const Options options_;
  std::unique_ptr<rocksdb::DB> db_;

  raft::HardState hard_state_;
  raft::SnapshotMeta snapshot_meta_;
  LogPosition compacted_;
  uint64_t last_index_ = 0;
  // Covers (compacted_.index, last_index_]; first_index increases; empty iff no entries.
  std::vector<TermRun> term_runs_;
  // The entries (last_index_ - tail_.size(), last_index_], holding tail_bytes_.
  std::deque<raft::Entry> tail_;
  uint64_t tail_bytes_ = 0;
  // Set by the first failed write; every mutation after it fails with it.
  absl::Status write_failure_;
};

}  // namespace kvstore::storage

#endif  // KVSTORE_STORAGE_RAFT_LOG_STORE_H_

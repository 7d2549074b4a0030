// etcd's MVCC key space (server/mvcc) on RocksDB: revisions, versions, tombstones, reads at
// old revisions, the event history that watches replay, compaction and HashKV, with etcd's
// semantics. Plain C++ types only: the etcd API server above converts to protobuf.
//
// Semantics, as etcd's:
//   - A new store is at revision 1. Each write transaction that changes something is one new
//     main revision; its changes get sub revisions 0, 1, ... A transaction that changes
//     nothing (e.g. a delete matching no key) does not advance the revision.
//   - A put on a new or deleted key sets create_revision = mod_revision = the new revision and
//     version = 1; a put on a live key keeps create_revision and increments version. A delete
//     writes a tombstone into the history.
//   - Compact(rev) drops, for every key, each version older than its newest version at or
//     below rev, and that one too if it is a tombstone. Reads below rev then fail with
//     CompactedError(); reads above the current revision fail with FutureRevisionError().
//
// Cost of operations (the key layout is described in key_codec.h):
//   - Reads use the history key space, ordered by user key then revision. A point read at
//     revision R is one Get if the key's live version is at or below R (the live keys in
//     memory say where its history entry is), else one SeekForPrev. A range or prefix read
//     steps through its keys' versions with Next, as long as a key has at most a few newer
//     than the ones it passed; a key with more costs a SeekForPrev to its version at R and a
//     Seek past its later ones, never a linear walk through its history. So on a compacted
//     store a range costs about one Next per key. The count of keys in the range is part of
//     the result, as in etcd, so keys past `limit` are still stepped over, without copying
//     them.
//   - A put writes its key's history and the revision index, nothing else: what it replaces
//     it learns from the live keys in memory.
//   - Events(start, end) is one Seek into the revision index and one Next per change in
//     [start, end), plus one Get per PUT event for its value.
//   - Compaction walks the revision index from the last compacted revision, one Seek per change,
//     in write batches of at most MvccStoreOptions::compaction_batch_size changes.
//
// Consistency: every write transaction, or group of them (WriteGroup), commits as one
// rocksdb::WriteBatch (data, indexes, revision and applied index together). After each commit the
// store takes a RocksDB snapshot and publishes it together with the new revision; every read works
// on one such (snapshot, revision) pair, so it sees whole transactions only and never blocks on a
// writer. Writes are not synced unless MvccStoreOptions::sync_writes, and may skip RocksDB's
// write-ahead log (MvccStoreOptions::use_wal): the Raft log is the durable record, and
// AppliedIndex() tells the server where to resume replaying it after a crash.
#ifndef KVSTORE_STORAGE_MVCC_STORE_H_
#define KVSTORE_STORAGE_MVCC_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kvstore/storage/mvcc_types.h"

namespace rocksdb {
class DB;
class Iterator;
struct ReadOptions;
struct WriteOptions;
class Snapshot;
class WriteBatchWithIndex;
}  // namespace rocksdb

namespace mvcc {
namespace internal {
class LazyIndexedBatch;
}  // namespace internal

// etcd's mvcc.ErrCompacted ("mvcc: required revision has been compacted"): the revision asked
// for is below the compacted revision. Code OUT_OF_RANGE.
absl::Status CompactedError();
// etcd's mvcc.ErrFutureRev ("mvcc: required revision is a future revision"): the revision
// asked for is above the current revision. Code OUT_OF_RANGE.
absl::Status FutureRevisionError();
// Both errors share a code, as in etcd's gRPC mapping; these tell them apart (by a payload).
bool IsCompactedError(const absl::Status& status);
bool IsFutureRevisionError(const absl::Status& status);

struct MvccStoreOptions {
  // fsync the WAL on every write transaction and compaction step.
  bool sync_writes = false;
  // Write RocksDB's write-ahead log. Without it a crash loses what was written since the
  // last memtable flush, as one whole suffix of transactions: the store reopens at an older
  // AppliedIndex(), consistent with it, and the server replays its Raft log from there. A
  // clean close flushes. The Raft log must then keep every entry above the index Flush()
  // returns. sync_writes needs the log.
  bool use_wal = true;
  // Changes examined per compaction write batch: bounds how long one step takes and how much
  // one batch holds.
  int compaction_batch_size = 10000;
};

struct GroupOptions {
  // Whether each Put reads the value it replaces, for what it returns and for its change's
  // prev_kv. Without, those carry the replaced version's every field but the value (left
  // empty), and a put costs no read of the store: the metadata of every live key is in
  // memory. The server reads values only when a watcher wants prev_kv.
  bool prev_values = true;
};

struct RangeOptions {
  // The revision to read at; 0 = the current revision.
  int64_t revision = 0;
  // At most this many kvs; 0 = no limit. `count` is not limited.
  int64_t limit = 0;
  // Only `count` (and `revision`); no kvs.
  bool count_only = false;
  // kvs without values.
  bool keys_only = false;
};

struct RangeResult {
  // Sorted by key.
  std::vector<KeyValue> kvs;
  // Number of keys in the range at the revision read, regardless of limit.
  int64_t count = 0;
  // The current store revision (not the revision read), as etcd's response header.
  int64_t revision = 0;
};

struct EventsOptions {
  // Stop once at least this many events are collected, at the end of a main revision so that
  // a transaction's events are never split; 0 = no limit.
  int64_t limit = 0;
  // Fill Event::prev_kv as etcd's watch does: the key's version at mod_revision - 1, unless
  // that revision is compacted, the key did not exist then or the event creates the key.
  bool prev_kv = false;
};

struct EventsResult {
  // In revision order.
  std::vector<Event> events;
  // The first revision not covered: resume from here. Equals the end asked for (or current
  // revision + 1) unless the limit stopped the scan earlier.
  int64_t next_revision = 0;
};

struct KvHash {
  // CRC-32C of the history up to `revision` as stored (encoded keys and values), skipping what
  // compaction at `compact_revision` drops whether or not it is physically gone yet.
  uint32_t hash = 0;
  int64_t compact_revision = 0;
  // The revision hashed up to.
  int64_t revision = 0;
};

// A granted lease as the lease layer persists it through WriteTxn::PutLease.
struct LeaseRecord {
  int64_t id = kNoLease;
  int64_t ttl = 0;

  friend bool operator==(const LeaseRecord&, const LeaseRecord&) = default;
};

// An active alarm (etcd's Maintenance.Alarm) as the server persists it through
// WriteTxn::SetAlarms: which member raised which kind (the server's numbering).
struct AlarmRecord {
  uint64_t member = 0;
  int32_t type = 0;

  friend auto operator<=>(const AlarmRecord&, const AlarmRecord&) = default;
};

struct LeaseKey {
  int64_t lease = kNoLease;
  std::string key;

  friend bool operator==(const LeaseKey&, const LeaseKey&) = default;
};

class MvccStore;
class WriteGroup;

// A live key's latest version without its key and value, as the store keeps it in memory.
struct KeyMetadata {
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  // The sub revision of the change that wrote it: with mod_revision, where its history
  // entry is.
  int64_t mod_sub = 0;
  int64_t version = 0;
  int64_t lease = kNoLease;
};
// Keys a transaction or group changed: each one's live version, or nullopt if deleted.
using ChangedKeys = absl::flat_hash_map<std::string, std::optional<KeyMetadata>>;

// One write transaction: all its changes become one revision (or none, if it changes
// nothing). Reads through it see its own earlier changes, as etcd's TxnWrite does.
// Begun by MvccStore::BeginWrite() it commits alone: End() writes it. Begun by
// WriteGroup::BeginWrite() it commits with its group: End() adds it to the group, and the
// group's End() writes it. Destroying it without End(), or an End() that fails, discards it
// and leaves its group as it was.
//
// Thread-safety: used by one thread. The store lets only one writer (a lone WriteTxn or a
// WriteGroup) exist at a time: MvccStore::BeginWrite() and BeginGroup() block until the
// previous one has ended or been destroyed. The store (and group) must outlive it.
class WriteTxn {
 public:
  WriteTxn(WriteTxn&& other) noexcept;
  WriteTxn& operator=(WriteTxn&&) = delete;
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  ~WriteTxn();

  // Reads as MvccStore::Range, at this transaction's Revision() by default.
  absl::StatusOr<RangeResult> Range(std::string_view key, std::string_view range_end,
                                    const RangeOptions& options = {});

  // Puts `value` under `key` attached to `lease` (kNoLease for none). Returns the version it
  // replaces, if the key was live (for prev_kv); without its value if the group was begun
  // without GroupOptions::prev_values.
  absl::StatusOr<std::optional<KeyValue>> Put(std::string_view key, std::string_view value,
                                              int64_t lease = kNoLease);

  // Deletes the live keys in the range (range_end as in MvccStore::Range). Returns what was
  // deleted, sorted by key: its size is etcd's `deleted` and its elements are the prev_kvs.
  absl::StatusOr<std::vector<KeyValue>> DeleteRange(std::string_view key,
                                                    std::string_view range_end);

  // Records (or replaces) a granted lease, committed with this transaction. Not a change of
  // the key space: it makes no revision and no event.
  absl::Status PutLease(int64_t id, int64_t ttl);
  // Forgets a lease record. Keys attached to it are not touched: delete them first (revoke).
  absl::Status DeleteLease(int64_t id);
  // Replaces the set of active alarms, committed with this transaction. Not a change of
  // the key space: no revision, no event.
  absl::Status SetAlarms(const std::vector<AlarmRecord>& alarms);

  // Records the Raft index this transaction applies; committed with it and returned by
  // MvccStore::AppliedIndex(). A transaction with only this still commits (without a new
  // revision), so entries that change no key can advance the applied index.
  void SetAppliedIndex(uint64_t index) { applied_index_ = index; }

  // The store revision as this transaction sees it: the revision it began at, plus one once
  // it has changed something. After End() this is the store's revision (etcd's header), or
  // its group's.
  int64_t Revision() const { return begin_revision_ + (changes_.empty() ? 0 : 1); }

  // The changes so far, in sub-revision order, each with the version it replaced as prev_kv
  // (for a key changed twice in one transaction, not etcd's watch prev_kv, which is the key
  // before the revision); a put's prev_kv lacks its value if the group skips reading it
  // (GroupOptions::prev_values). The watch hub sends them to watchers after End().
  const std::vector<Event>& Changes() const { return changes_; }

  // Commits (alone) or adds to its group; on error nothing is. Call at most once.
  // After Put or DeleteRange failed, commits nothing and returns that error.
  absl::Status End();

 private:
  friend class MvccStore;
  friend class WriteGroup;
  // Begins on top of what `group` holds; `owned` is `group` for a lone transaction.
  WriteTxn(WriteGroup* group, std::unique_ptr<WriteGroup> owned);

  // Gives the group back, without this transaction's changes if it did not end well.
  void Release(bool keep);
  // What `key` is as this transaction sees it, from memory: its live version, or nullopt if
  // it is not live.
  std::optional<KeyMetadata> LiveVersion(std::string_view key) const;
  // The group's batch to read [key, range_end) through, or null when the group's snapshot
  // alone answers (one key that neither this transaction nor its group changed).
  absl::StatusOr<rocksdb::WriteBatchWithIndex*> OverlayFor(std::string_view key,
                                                           std::string_view range_end);

  // Null once ended.
  WriteGroup* group_;
  std::unique_ptr<WriteGroup> owned_group_;
  int64_t begin_revision_;
  std::vector<Event> changes_;
  // The keys it changed; its group takes them at End().
  ChangedKeys changed_;
  std::optional<uint64_t> applied_index_;
  // The first failure of Put or DeleteRange; End() then commits nothing and returns it.
  absl::Status error_;
};

// Write transactions that commit together: the server applies all the Raft entries of one
// Ready as one group, so that they cost one RocksDB write and one set of metadata. Each
// transaction reads the ones ended before it in the group; readers of the store see none of
// them until the group's End(), and then all at once.
//
// Thread-safety: as WriteTxn; holds the store's writer slot from MvccStore::BeginGroup()
// until it ends or is destroyed (which discards what it holds).
class WriteGroup {
 public:
  WriteGroup(const WriteGroup&) = delete;
  WriteGroup& operator=(const WriteGroup&) = delete;
  ~WriteGroup();

  // Starts the group's next transaction.
  // REQUIRES: no other transaction of this group is open.
  WriteTxn BeginWrite();

  // As WriteTxn::SetAppliedIndex, for the group: the last index set by it or by one of its
  // ended transactions is committed with the group.
  void SetAppliedIndex(uint64_t index) { applied_index_ = index; }

  // The store revision after the transactions ended so far.
  int64_t Revision() const { return revision_; }

  // Writes every ended transaction in one RocksDB write batch and publishes the result to
  // readers. On error nothing is committed. Call at most once, with no transaction open.
  absl::Status End();

 private:
  friend class MvccStore;
  friend class WriteTxn;
  WriteGroup(MvccStore* store, const GroupOptions& options, int64_t revision,
             std::shared_ptr<const rocksdb::Snapshot> snapshot);

  // Releases the store's writer slot if this group still holds it.
  void Release();

  // Null once ended.
  MvccStore* store_;
  const GroupOptions options_;
  // The store's revision when the group began, and after its ended transactions.
  const int64_t begin_revision_;
  int64_t revision_;
  // The store as of begin_revision_; the batch is read on top of it.
  std::shared_ptr<const rocksdb::Snapshot> snapshot_;
  // Indexed for reads only once one needs it (lazy_indexed_batch.h).
  std::unique_ptr<internal::LazyIndexedBatch> batch_;
  std::optional<uint64_t> applied_index_;
  bool txn_open_ = false;
  // The keys its ended transactions changed; the store's live_ takes them at commit.
  ChangedKeys changed_;
};

// The MVCC key space of one member, persisted in its own RocksDB directory.
//
// Thread-safety: reads (Range, Events, KeysWithLease, AllLeaseKeys, Leases, HashKV, the revision
// accessors, CreateCheckpoint) may run on any number of threads at once, concurrently with one
// writer and with RunCompaction(). Writes (BeginWrite, Compact, ScheduleCompaction) come from
// one thread, the server's apply thread, in Raft log order. RunCompaction() may run on a
// thread of its own. No call may be in flight when the store is destroyed. ReplaceWith()
// (installing a Raft snapshot) comes from the writer's thread and waits for the reads in
// flight; reads that start meanwhile wait for it, then see the new store.
class MvccStore {
 public:
  // Opens or creates the store in `dir` (created if missing; its parent must exist). Fails
  // with FAILED_PRECONDITION naming the directory if it cannot be used: not a directory, not
  // writable, locked by another process or open store, or holding something else than an MVCC
  // store. A compaction that was scheduled but not finished stays pending (CompactionPending())
  // until RunCompaction() is called.
  static absl::StatusOr<std::unique_ptr<MvccStore>> Open(const std::string& dir,
                                                         const MvccStoreOptions& options = {});

  MvccStore(const MvccStore&) = delete;
  MvccStore& operator=(const MvccStore&) = delete;
  ~MvccStore();

  int64_t CurrentRevision() const;
  // Reads below this revision fail with CompactedError(); 0 if never compacted.
  int64_t CompactedRevision() const;
  // etcd's compactMainRev: the revision of the last compaction, -1 if there was none
  // (a Compact(0) makes it 0).
  int64_t CompactMainRevision() const;
  // The last index passed to WriteTxn::SetAppliedIndex or Compact that was committed.
  uint64_t AppliedIndex() const;

  // The keys in the range at options.revision. range_end as etcd's: empty = only `key`;
  // "\0" = every key >= key; otherwise [key, range_end) (empty if range_end <= key).
  absl::StatusOr<RangeResult> Range(std::string_view key, std::string_view range_end,
                                    const RangeOptions& options = {}) const;

  // Starts a write transaction that commits alone; blocks while another writer exists.
  // REQUIRES: the calling thread holds no other WriteTxn or WriteGroup of this store.
  WriteTxn BeginWrite();
  // Starts a group of write transactions that commit together; blocks as BeginWrite().
  std::unique_ptr<WriteGroup> BeginGroup(const GroupOptions& options = {});

  // The changes in revisions [start_rev, end_rev) to keys in the range (range_end as in
  // Range), in revision order. end_rev <= 0 or past the current revision means up to and
  // including the current revision. CompactedError() if start_rev < CompactedRevision(), as
  // etcd's watch (a start at the compacted revision itself is allowed).
  // REQUIRES: start_rev >= 1.
  absl::StatusOr<EventsResult> Events(int64_t start_rev, int64_t end_rev, std::string_view key,
                                      std::string_view range_end,
                                      const EventsOptions& options = {}) const;

  // Marks history below `rev` as compacted (at once, and persisted) and then deletes it, in
  // bounded batches, before returning: ScheduleCompaction() then RunCompaction(). Errors as
  // etcd: CompactedError() if rev <= CompactedRevision() (a store never compacted takes 0,
  // once; etcd's compacted revision starts at -1), FutureRevisionError() if
  // rev > CurrentRevision(). `applied_index`, if given, is committed with the mark.
  absl::Status Compact(int64_t rev, std::optional<uint64_t> applied_index = std::nullopt);
  // Only the mark: reads below `rev` fail from now on; RunCompaction() removes the data.
  absl::Status ScheduleCompaction(int64_t rev,
                                  std::optional<uint64_t> applied_index = std::nullopt);
  // Deletes the history that scheduled compactions dropped, one bounded write batch at a time;
  // returns once none is pending. Resumable: safe to interrupt by a crash and call again after
  // reopening. Calls are serialized.
  absl::Status RunCompaction();
  bool CompactionPending() const;

  // Live keys attached to `lease`, sorted.
  absl::StatusOr<std::vector<std::string>> KeysWithLease(int64_t lease) const;
  // Every lease record, sorted by id: how the lease layer rebuilds its leases at open.
  absl::StatusOr<std::vector<LeaseRecord>> Leases() const;
  // The active alarms as the last committed WriteTxn::SetAlarms left them, sorted.
  absl::StatusOr<std::vector<AlarmRecord>> Alarms() const;
  // Every (lease, key) pair of live keys with a lease, sorted by lease then key: how the lease
  // layer rebuilds its attachments at open.
  absl::StatusOr<std::vector<LeaseKey>> AllLeaseKeys() const;

  // A deterministic hash of the history up to `rev` (0 = current), equal on members with the
  // same history and compaction revision. Errors as etcd's HashByRev: CompactedError() if
  // 0 < rev <= CompactedRevision(), FutureRevisionError() if rev > CurrentRevision().
  absl::StatusOr<KvHash> HashKV(int64_t rev) const;

  // Writes a consistent copy of the store into `dir` (which must not exist), hard-linking
  // files where it can: a snapshot for a new member or for backup; MvccStore::Open reads it.
  absl::Status CreateCheckpoint(const std::string& dir) const;
  // Persists everything committed so far (a memtable flush) and returns the applied index
  // that is now durable even without the write-ahead log.
  absl::StatusOr<uint64_t> Flush();
  // Replaces the whole store by the one in `checkpoint_dir` (a CreateCheckpoint() copy, say
  // one a Raft snapshot brought from the leader), which is moved into this store's
  // directory: the old directory is kept as "<dir>.old" until the new one is open, and
  // Open() finishes or undoes a replacement a crash interrupted. On failure the old store
  // stays (or is reopened) in place.
  // REQUIRES: called on the writer's thread with no WriteTxn open.
  absl::Status ReplaceWith(const std::string& checkpoint_dir);
  const std::string& dir() const { return dir_; }
  // Approximate bytes on disk (etcd's db size in Status).
  uint64_t ApproximateSizeBytes() const;

  // etcd's defragmentation: rewrites every RocksDB file through a full manual compaction,
  // so that space held by deleted and compacted data is returned to the file system. May
  // run concurrently with reads, the writer and RunCompaction().
  absl::Status Defragment();

  // Moves the current revision `amount` revisions forward without any change to the key
  // space (etcdutl's snapshot restore --bump-revision): reads and watches see no event
  // between the old and the new revision. Call Compact(CurrentRevision()) afterwards to mark
  // everything below compacted. Waits for the open write transaction, if any. Meant for a
  // store no server is serving (kvstore restore): nothing tells watchers of the jump.
  // REQUIRES: amount >= 0; the calling thread holds no WriteTxn of this store.
  absl::Status BumpRevision(int64_t amount);

 private:
  friend class WriteTxn;
  friend class WriteGroup;

  // What one read works on: a RocksDB snapshot and the revisions that hold in it.
  struct ReadView {
    std::shared_ptr<const rocksdb::Snapshot> snapshot;
    int64_t revision = 0;
    int64_t compacted = 0;
  };

  MvccStore(std::string dir, const MvccStoreOptions& options, std::unique_ptr<rocksdb::DB> db);

  // Opens the RocksDB database in `dir`.
  static absl::StatusOr<std::unique_ptr<rocksdb::DB>> OpenDb(const std::string& dir);
  // Reads the metadata (upgrading a mvcc-v1 store) and builds live_ from the history.
  absl::Status LoadMeta();
  rocksdb::WriteOptions WriteOpts() const;
  std::shared_ptr<const rocksdb::Snapshot> TakeSnapshot();
  ReadView CurrentView() const;

  // The range at `read_revision` on `snapshot`, with `overlay` (a write group's batch) on
  // top if not null, from the history. `count`, `kvs` only; the caller sets `revision`.
  // `latest`, for a single key: its live version at a revision at or after read_revision,
  // if memory tells it; a read of it, if not newer than read_revision, is one Get.
  // REQUIRES: `read_revision` already validated against the current and compacted revisions.
  absl::StatusOr<RangeResult> RangeAt(const rocksdb::Snapshot* snapshot,
                                      rocksdb::WriteBatchWithIndex* overlay, int64_t read_revision,
                                      std::string_view key, std::string_view range_end,
                                      const RangeOptions& options,
                                      std::optional<KeyMetadata> latest = std::nullopt) const;
  // `key`'s live version as last committed (live_), or nullopt if it is not live.
  std::optional<KeyMetadata> CommittedVersion(std::string_view key) const;
  // The version of `key` that the put at `rev` wrote, read from its history entry (one Get);
  // DATA_LOSS if there is none, or it is a tombstone.
  absl::StatusOr<KeyValue> PutAt(const rocksdb::Snapshot* snapshot,
                                 rocksdb::WriteBatchWithIndex* overlay, std::string_view key,
                                 Revision rev) const;

  // The version of `key` at `rev` from the history (on `snapshot`, with `overlay` on top if
  // not null), if it was live then.
  absl::StatusOr<std::optional<KeyValue>> HistoryGet(const rocksdb::Snapshot* snapshot,
                                                     rocksdb::WriteBatchWithIndex* overlay,
                                                     std::string_view key, int64_t rev) const;
  // An iterator over `snapshot` with `overlay` on top if not null. The overlay's entries are
  // not bounded by `ro`'s iterate bounds.
  std::unique_ptr<rocksdb::Iterator> NewIterator(const rocksdb::ReadOptions& ro,
                                                 rocksdb::WriteBatchWithIndex* overlay) const;

  bool WriterFree() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !writer_active_; }
  int64_t CompactMainRevisionLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return ever_compacted_ ? compacted_revision_ : -1;
  }
  absl::Status Commit(WriteGroup* group);
  void ReleaseWriter();

  // One bounded step of compaction towards `target`, from `*cursor`; clears *cursor when
  // every change up to `target` has been examined.
  absl::Status CompactionStep(int64_t target, std::optional<Revision>* cursor);

  const std::string dir_;
  const MvccStoreOptions options_;
  // Held shared by every call that uses db_ from a thread other than the writer's, and
  // exclusively by ReplaceWith(), which replaces db_. Acquired before everything else.
  mutable absl::Mutex swap_mu_ ABSL_ACQUIRED_BEFORE(compaction_mu_, mu_);
  // Declared before everything that holds snapshots of it.
  std::unique_ptr<rocksdb::DB> db_;

  mutable absl::Mutex mu_;
  int64_t current_revision_ ABSL_GUARDED_BY(mu_) = 1;
  // The scheduled compaction revision: reads below it fail.
  int64_t compacted_revision_ ABSL_GUARDED_BY(mu_) = 0;
  // A compaction was ever scheduled, at 0 included: etcd accepts Compact(0) once.
  bool ever_compacted_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t applied_index_ ABSL_GUARDED_BY(mu_) = 0;
  // Taken after the last commit; matches current_revision_.
  std::shared_ptr<const rocksdb::Snapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  bool writer_active_ ABSL_GUARDED_BY(mu_) = false;

  // History below this revision is physically gone (compaction at it has finished).
  int64_t finished_compaction_ ABSL_GUARDED_BY(mu_) = 0;

  // Every live key's latest version as committed, without its value: how a put learns
  // what it replaces without reading the store, and a point read where the key's history
  // entry is (as etcd's in-memory key index). Changed only by the holder of the writer slot
  // (commits), by ReplaceWith (which requires no writer) and at Open, which scans the history
  // to build it: memory grows with the number of live keys, about 90 bytes plus the key
  // each, and start-up time with the history not yet compacted (as etcd's, which rebuilds
  // its key index from every revision). A commit changes it before it publishes its
  // snapshot, so a reader that looks here after taking its view sees that view or later.
  mutable absl::Mutex live_mu_;
  absl::flat_hash_map<std::string, KeyMetadata> live_ ABSL_GUARDED_BY(live_mu_);

  // Serializes RunCompaction(), which holds it while it works; acquired before mu_.
  absl::Mutex compaction_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

}  // namespace mvcc

#endif  // KVSTORE_STORAGE_MVCC_STORE_H_

#include "kvstore/storage/raft_log_store.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/write_batch.h"

namespace kvstore::storage {
namespace {

// Up to this many entries are deleted one by one; more take one range tombstone. A
// truncated suffix is usually a few entries; a compaction is usually thousands.
constexpr uint64_t kMaxPointDeletes = 64;

// Every entry key starts with kEntryKeyPrefix ('e'); this bounds a scan of all entries.
constexpr absl::string_view kEntriesEnd = "f";

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

absl::Status FromRocksDb(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat("raft log store: ", what, ": ", s.ToString());
  switch (s.code()) {
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(msg);
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(msg);
    case rocksdb::Status::kInvalidArgument:
      return absl::InvalidArgumentError(msg);
    case rocksdb::Status::kNotSupported:
      return absl::UnimplementedError(msg);
    case rocksdb::Status::kBusy:
    case rocksdb::Status::kTimedOut:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(msg);
    default:  // kIOError (disk full, EIO, ...) and the rest
      return absl::InternalError(msg);
  }
}

// Deletes the entries [lo, hi).
void DeleteEntries(rocksdb::WriteBatch* batch, uint64_t lo, uint64_t hi) {
  if (lo >= hi) return;
  if (hi - lo <= kMaxPointDeletes) {
    for (uint64_t i = lo; i < hi; ++i) batch->Delete(ToSlice(EntryKey(i)));
  } else {
    batch->DeleteRange(ToSlice(EntryKey(lo)), ToSlice(EntryKey(hi)));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<RaftLogStore>> RaftLogStore::Open(const std::string& dir) {
  return Open(dir, Options());
}

absl::StatusOr<std::unique_ptr<RaftLogStore>> RaftLogStore::Open(const std::string& dir,
                                                                 const Options& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("raft log store: ", dir, " exists and is not a directory"));
  }
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("raft log store: cannot create directory ", dir, ": ", ec.message()));
  }

  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.keep_log_file_num = 4;  // RocksDB's own info logs, not the WAL
  // RocksDB's default recovery stops quietly before damage in the write-ahead log, which
  // would forget acknowledged entries; only a torn last record (never acknowledged, as it
  // was not synced) may be dropped.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(db_options, dir, &raw);
  if (!s.ok()) {
    const std::string msg =
        absl::StrCat("raft log store: cannot open the database in ", dir, ": ", s.ToString());
    return s.IsCorruption() ? absl::DataLossError(msg) : absl::FailedPreconditionError(msg);
  }
  std::unique_ptr<RaftLogStore> store(
      new RaftLogStore(dir, options, std::unique_ptr<rocksdb::DB>(raw)));
  if (absl::Status loaded = store->Load(); !loaded.ok()) {
    return absl::Status(loaded.code(), absl::StrCat(loaded.message(), " (in ", dir, ")"));
  }
  return store;
}

RaftLogStore::RaftLogStore(std::string dir, Options options, std::unique_ptr<rocksdb::DB> db)
    : dir_(std::move(dir)), options_(options), db_(std::move(db)) {}

RaftLogStore::~RaftLogStore() {
  // Everything written is in the WAL already; closing only releases resources.
  db_->Close().PermitUncheckedError();
}

absl::Status RaftLogStore::Load() {
  const rocksdb::ReadOptions read_options;
  std::string value;

  rocksdb::Status s = db_->Get(read_options, ToSlice(kFormatKey), &value);
  if (s.IsNotFound()) {
    // A new database, or one that something else wrote.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options));
    it->SeekToFirst();
    if (it->Valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "raft log store: ", dir_, " holds a RocksDB database that is not a Raft log store"));
    }
    if (absl::Status st = FromRocksDb(it->status(), "scan"); !st.ok()) return st;
    rocksdb::WriteBatch batch;
    batch.Put(ToSlice(kFormatKey), ToSlice(EncodeBytes(kFormatKey, kFormatVersion)));
    return Write(&batch, /*sync=*/true, "write the format marker");
  }
  if (absl::Status st = FromRocksDb(s, "read the format marker"); !st.ok()) return st;
  absl::StatusOr<std::string> format = DecodeBytes(kFormatKey, value);
  if (!format.ok()) return format.status();
  if (*format != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("raft log store: ", dir_, " has format \"",
                                                      *format, "\"; this build reads \"",
                                                      kFormatVersion, "\""));
  }

  // Reads `key` into `value`; false if it is absent.
  auto read = [&](absl::string_view key) -> absl::StatusOr<bool> {
    rocksdb::Status rs = db_->Get(read_options, ToSlice(key), &value);
    if (rs.IsNotFound()) return false;
    if (!rs.ok()) return FromRocksDb(rs, absl::StrCat("read ", key));
    return true;
  };
  absl::StatusOr<bool> found = read(kHardStateKey);
  if (!found.ok()) return found.status();
  if (*found) {
    absl::StatusOr<raft::HardState> hs = DecodeHardState(kHardStateKey, value);
    if (!hs.ok()) return hs.status();
    hard_state_ = *hs;
  }
  found = read(kSnapshotMetaKey);
  if (!found.ok()) return found.status();
  if (*found) {
    absl::StatusOr<raft::SnapshotMeta> meta = DecodeSnapshotMeta(kSnapshotMetaKey, value);
    if (!meta.ok()) return meta.status();
    snapshot_meta_ = std::move(*meta);
  }
  LogPosition base;
  found = read(kCompactedKey);
  if (!found.ok()) return found.status();
  if (*found) {
    absl::StatusOr<LogPosition> p = DecodeLogPosition(kCompactedKey, value);
    if (!p.ok()) return p.status();
    base = *p;
  }
  ResetLog(base);

  // The log: every entry checked, consecutive from base.index + 1.
  const rocksdb::Slice upper = ToSlice(kEntriesEnd);
  rocksdb::ReadOptions scan_options;
  scan_options.iterate_upper_bound = &upper;
  scan_options.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan_options));
  const std::string first_key = EntryKey(0);
  for (it->Seek(ToSlice(first_key)); it->Valid(); it->Next()) {
    const absl::string_view key = ToView(it->key());
    const std::optional<uint64_t> index = ParseEntryKey(key);
    if (!index) {
      return absl::DataLossError(
          absl::StrCat("raft log store: unexpected key ", DescribeKey(key), " among the entries"));
    }
    if (*index != last_index_ + 1) {
      return absl::DataLossError(absl::StrCat(
          "raft log store: the log holds entry ", *index, " where entry ", last_index_ + 1,
          " belongs (entries held start after the compaction point ", compacted_.index, ")"));
    }
    absl::StatusOr<raft::Entry> e = DecodeEntryValue(key, ToView(it->value()));
    if (!e.ok()) return e.status();
    AppendInMemory(*e);
  }
  return FromRocksDb(it->status(), "scan the log");
}

absl::Status RaftLogStore::Write(rocksdb::WriteBatch* batch, bool sync, absl::string_view what) {
  if (!write_failure_.ok()) return write_failure_;
  rocksdb::WriteOptions write_options;
  write_options.sync = sync;
  absl::Status s = FromRocksDb(db_->Write(write_options, batch), what);
  if (!s.ok()) {
    write_failure_ = absl::FailedPreconditionError(absl::StrCat(
        "raft log store: refusing writes after a failed one (reopen the store): ", s.message()));
  }
  return s;
}

absl::Status RaftLogStore::Bootstrap(const std::vector<uint64_t>& voters) {
  if (voters.empty()) {
    return absl::InvalidArgumentError("raft log store: bootstrap needs at least one voter");
  }
  if (!hard_state_.IsEmpty() || snapshot_meta_.index != 0 || compacted_.index != 0 ||
      last_index_ != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("raft log store: cannot bootstrap ", dir_, ": it already holds state (term ",
                     hard_state_.term, ", snapshot index ", snapshot_meta_.index, ", last index ",
                     last_index_, ")"));
  }
  raft::Snapshot snap;
  snap.meta.index = 1;
  snap.meta.term = 1;
  snap.meta.conf_state.voters = voters;
  const raft::HardState hs{.term = 1, .vote = raft::kNone, .commit = 1};
  return Save(&hs, {}, &snap, /*sync=*/true);
}

absl::Status RaftLogStore::Save(const raft::Ready& rd) {
  return Save(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries,
              rd.snapshot.IsEmpty() ? nullptr : &rd.snapshot, rd.must_sync);
}

absl::Status RaftLogStore::Save(const raft::HardState* hs, const std::vector<raft::Entry>& entries,
                                const raft::Snapshot* snap, bool sync) {
  // Check everything against the state the snapshot (if any) leaves, before writing.
  if (snap != nullptr && snap->meta.index < snapshot_meta_.index) {
    return absl::FailedPreconditionError("raft: snapshot is out of date");
  }
  const LogPosition base =
      snap != nullptr ? LogPosition{snap->meta.index, snap->meta.term} : compacted_;
  const uint64_t last = snap != nullptr ? base.index : last_index_;
  for (size_t k = 1; k < entries.size(); ++k) {
    if (entries[k].index != entries[k - 1].index + 1) {
      return absl::InvalidArgumentError(absl::StrCat("raft log store: entry ", entries[k].index,
                                                     " follows entry ", entries[k - 1].index));
    }
  }
  // entries[skip..] are written; entries at or below the compaction point are dropped.
  size_t skip = entries.size();
  if (!entries.empty() && entries.back().index > base.index) {
    const uint64_t start = entries.front().index;
    if (start > last + 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("raft: missing log entries [last: ", last, ", append at: ", start, "]"));
    }
    skip = start <= base.index ? base.index + 1 - start : 0;
  }

  rocksdb::WriteBatch batch;
  if (snap != nullptr) {
    // The snapshot replaces the whole log, as MemoryStorage::ApplySnapshot does: entries
    // beyond its index came from a log that disagrees with it.
    DeleteEntries(&batch, compacted_.index + 1, last_index_ + 1);
    batch.Put(ToSlice(kSnapshotMetaKey), ToSlice(EncodeSnapshotMeta(kSnapshotMetaKey, snap->meta)));
    batch.Put(ToSlice(kSnapshotDataKey), ToSlice(EncodeBytes(kSnapshotDataKey, snap->data)));
    batch.Put(ToSlice(kCompactedKey), ToSlice(EncodeLogPosition(kCompactedKey, base)));
  }
  if (skip < entries.size()) {
    for (size_t k = skip; k < entries.size(); ++k) {
      const std::string key = EntryKey(entries[k].index);
      batch.Put(ToSlice(key), ToSlice(EncodeEntryValue(key, entries[k])));
    }
    // The stale suffix beyond the new last entry.
    DeleteEntries(&batch, entries.back().index + 1, last + 1);
  }
  if (hs != nullptr) {
    batch.Put(ToSlice(kHardStateKey), ToSlice(EncodeHardState(kHardStateKey, *hs)));
  }
  if (batch.Count() == 0) return absl::OkStatus();
  if (absl::Status s = Write(&batch, sync, "save"); !s.ok()) return s;

  if (snap != nullptr) {
    snapshot_meta_ = snap->meta;
    ResetLog(base);
  }
  if (skip < entries.size()) {
    TruncateFrom(entries[skip].index);
    for (size_t k = skip; k < entries.size(); ++k) AppendInMemory(entries[k]);
  }
  if (hs != nullptr) hard_state_ = *hs;
  return absl::OkStatus();
}

absl::Status RaftLogStore::CreateSnapshot(uint64_t index, const raft::ConfState& cs,
                                          std::string data) {
  if (index <= snapshot_meta_.index) {
    return absl::FailedPreconditionError("raft: snapshot is out of date");
  }
  if (index > last_index_) {
    return absl::OutOfRangeError(
        absl::StrCat("raft: snapshot ", index, " is out of bound lastindex(", last_index_, ")"));
  }
  // The term of a compacted entry is gone (MemoryStorage does not check this case).
  if (index < compacted_.index) return raft::CompactedError();
  raft::SnapshotMeta meta{.index = index, .term = TermOf(index), .conf_state = cs};
  rocksdb::WriteBatch batch;
  batch.Put(ToSlice(kSnapshotMetaKey), ToSlice(EncodeSnapshotMeta(kSnapshotMetaKey, meta)));
  batch.Put(ToSlice(kSnapshotDataKey), ToSlice(EncodeBytes(kSnapshotDataKey, data)));
  if (absl::Status s = Write(&batch, /*sync=*/true, "create snapshot"); !s.ok()) return s;
  snapshot_meta_ = std::move(meta);
  return absl::OkStatus();
}

absl::Status RaftLogStore::Compact(uint64_t index) {
  if (index <= compacted_.index) return raft::CompactedError();
  if (index > last_index_) {
    return absl::OutOfRangeError(
        absl::StrCat("raft: compact ", index, " is out of bound lastindex(", last_index_, ")"));
  }
  const LogPosition base{.index = index, .term = TermOf(index)};
  rocksdb::WriteBatch batch;
  DeleteEntries(&batch, compacted_.index + 1, index + 1);
  batch.Put(ToSlice(kCompactedKey), ToSlice(EncodeLogPosition(kCompactedKey, base)));
  if (absl::Status s = Write(&batch, /*sync=*/true, "compact"); !s.ok()) return s;
  CompactInMemory(base);
  return absl::OkStatus();
}

absl::StatusOr<raft::InitialState> RaftLogStore::GetInitialState() const {
  return raft::InitialState{hard_state_, snapshot_meta_.conf_state};
}

absl::StatusOr<std::vector<raft::Entry>> RaftLogStore::Entries(uint64_t lo, uint64_t hi,
                                                               uint64_t max_bytes) const {
  if (lo <= compacted_.index) return raft::CompactedError();
  if (hi > last_index_ + 1) {
    return absl::OutOfRangeError(
        absl::StrCat("raft: entries' hi(", hi, ") is out of bound lastindex(", last_index_, ")"));
  }
  std::vector<raft::Entry> out;
  if (lo >= hi) return out;
  uint64_t bytes = 0;
  const uint64_t tail_first = TailFirstIndex();
  if (lo < tail_first) {
    const uint64_t disk_hi = std::min(hi, tail_first);
    if (absl::Status s = ReadEntries(lo, disk_hi, max_bytes, &bytes, &out); !s.ok()) return s;
    if (out.size() < disk_hi - lo) return out;  // the size limit was reached
  }
  for (uint64_t i = std::max(lo, tail_first); i < hi; ++i) {
    const raft::Entry& e = tail_[i - tail_first];
    bytes += raft::EntrySize(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

absl::Status RaftLogStore::ReadEntries(uint64_t lo, uint64_t hi, uint64_t max_bytes,
                                       uint64_t* bytes, std::vector<raft::Entry>* out) const {
  const std::string lo_key = EntryKey(lo);
  const std::string hi_key = EntryKey(hi);
  const rocksdb::Slice upper = ToSlice(hi_key);
  rocksdb::ReadOptions read_options;
  read_options.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read_options));
  it->Seek(ToSlice(lo_key));
  for (uint64_t i = lo; i < hi; ++i, it->Next()) {
    if (!it->Valid() || ToView(it->key()) != EntryKey(i)) {
      if (absl::Status s = FromRocksDb(it->status(), "read entries"); !s.ok()) return s;
      return absl::DataLossError(absl::StrCat("raft log store: entry ", i, " is missing"));
    }
    absl::StatusOr<raft::Entry> e = DecodeEntryValue(ToView(it->key()), ToView(it->value()));
    if (!e.ok()) return e.status();
    *bytes += raft::EntrySize(*e);
    if (!out->empty() && *bytes > max_bytes) break;
    out->push_back(std::move(*e));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> RaftLogStore::Term(uint64_t i) const {
  if (i < compacted_.index) return raft::CompactedError();
  if (i > last_index_) return raft::UnavailableEntryError();
  return TermOf(i);
}

uint64_t RaftLogStore::TermOf(uint64_t i) const {
  if (i == compacted_.index) return compacted_.term;
  // The last run starting at or before i.
  auto run = std::upper_bound(term_runs_.begin(), term_runs_.end(), i,
                              [](uint64_t v, const TermRun& r) { return v < r.first_index; });
  return std::prev(run)->term;
}

absl::StatusOr<raft::Snapshot> RaftLogStore::GetSnapshot() const {
  raft::Snapshot snap;
  snap.meta = snapshot_meta_;
  std::string value;
  const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), ToSlice(kSnapshotDataKey), &value);
  if (s.IsNotFound()) return snap;
  if (absl::Status st = FromRocksDb(s, "read the snapshot data"); !st.ok()) return st;
  absl::StatusOr<std::string> data = DecodeBytes(kSnapshotDataKey, value);
  if (!data.ok()) return data.status();
  snap.data = std::move(*data);
  return snap;
}

void RaftLogStore::ResetLog(const LogPosition& base) {
  compacted_ = base;
  last_index_ = base.index;
  term_runs_.clear();
  tail_.clear();
  tail_bytes_ = 0;
}

void RaftLogStore::TruncateFrom(uint64_t index) {
  if (index > last_index_) return;
  while (!term_runs_.empty() && term_runs_.back().first_index >= index) term_runs_.pop_back();
  while (!tail_.empty() && tail_.back().index >= index) {
    tail_bytes_ -= raft::EntrySize(tail_.back());
    tail_.pop_back();
  }
  last_index_ = index - 1;
}

void RaftLogStore::AppendInMemory(const raft::Entry& e) {
  if (term_runs_.empty() || term_runs_.back().term != e.term) {
    term_runs_.push_back(TermRun{.first_index = e.index, .term = e.term});
  }
  last_index_ = e.index;
  const uint64_t size = raft::EntrySize(e);
  if (size > options_.tail_cache_bytes) {
    // The cache must end at the last entry; one that never fits empties it.
    tail_.clear();
    tail_bytes_ = 0;
    return;
  }
  tail_.push_back(e);
  tail_bytes_ += size;
  while (tail_bytes_ > options_.tail_cache_bytes) {
    tail_bytes_ -= raft::EntrySize(tail_.front());
    tail_.pop_front();
  }
}

void RaftLogStore::CompactInMemory(const LogPosition& base) {
  compacted_ = base;
  if (base.index >= last_index_) {
    term_runs_.clear();
  } else {
    // Drop the runs that end at or before base.index; the first one left starts after it.
    size_t drop = 0;
    while (drop + 1 < term_runs_.size() && term_runs_[drop + 1].first_index <= base.index + 1) {
      ++drop;
    }
    term_runs_.erase(term_runs_.begin(), term_runs_.begin() + drop);
    term_runs_.front().first_index = std::max(term_runs_.front().first_index, base.index + 1);
  }
  while (!tail_.empty() && tail_.front().index <= base.index) {
    tail_bytes_ -= raft::EntrySize(tail_.front());
    tail_.pop_front();
  }
}

}  // namespace kvstore::storage

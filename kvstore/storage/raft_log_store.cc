#include "kvstore/storage/raft_log_store.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kvstore/storage/raft_log_legacy.h"

namespace kvstore::storage {
namespace {

absl::Status Malformed(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("raft log store: ", why));
}

void AppendEntryItem(std::string* record, const raft::Entry& e) {
  const std::string key = EntryKey(e.index);
  AppendItem(record, key, EncodeEntryValue(key, e));
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

  std::unique_ptr<RaftLogStore> store(new RaftLogStore(dir, options));
  RaftLogStore* raw = store.get();
  absl::StatusOr<std::unique_ptr<Wal>> wal =
      Wal::Open(dir, options.wal, [raw](absl::string_view record) { return raw->Replay(record); });
  if (!wal.ok()) return wal.status();
  store->wal_ = std::move(*wal);

  if (store->replayed_checkpoint_) {
    if (absl::Status s = store->CheckReplayed(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(s.message(), " (in ", dir, ")"));
    }
  } else if (!store->wal_->SegmentPaths().empty()) {
    return absl::DataLossError(
        absl::StrCat("raft log store: the log segments in ", dir, " hold no records"));
  } else {
    // A new store, or one of the first format: its first segment holds everything.
    absl::StatusOr<std::optional<RaftLogContents>> old = ReadRocksDbRaftLog(dir);
    if (!old.ok()) return old.status();
    if (old->has_value()) {
      RaftLogContents& c = **old;
      store->hard_state_ = c.hard_state;
      store->snapshot_meta_ = std::move(c.snapshot_meta);
      store->snapshot_data_ = std::move(c.snapshot_data);
      store->ResetLog(c.compacted);
    }
    std::string record = store->CheckpointRecord();
    if (old->has_value()) {
      for (raft::Entry& e : (*old)->entries) {
        AppendEntryItem(&record, e);
        store->AppendInMemory(std::move(e));
      }
    }
    if (absl::Status s = store->wal_->StartSegment(store->compacted_.index + 1, record); !s.ok()) {
      return s;
    }
  }
  // The first format's files, once its contents are in a segment (also if an earlier open
  // stopped right after making it), and older segments an unfinished deletion left.
  if (absl::Status s = RemoveRocksDbFiles(dir); !s.ok()) return s;
  if (absl::Status s = store->wal_->DropLeftovers(); !s.ok()) return s;
  return store;
}

RaftLogStore::RaftLogStore(std::string dir, Options options)
    : dir_(std::move(dir)), options_(std::move(options)) {}

RaftLogStore::~RaftLogStore() = default;

std::string RaftLogStore::CheckpointRecord() const {
  std::string record;
  AppendItem(&record, kFormatKey, EncodeBytes(kFormatKey, kFormatVersion));
  AppendItem(&record, kCheckpointKey,
             EncodeCheckpoint(kCheckpointKey,
                              WalCheckpoint{.compacted = compacted_, .last_index = last_index_}));
  AppendItem(&record, kHardStateKey, EncodeHardState(kHardStateKey, hard_state_));
  AppendItem(&record, kSnapshotMetaKey, EncodeSnapshotMeta(kSnapshotMetaKey, snapshot_meta_));
  AppendItem(&record, kSnapshotDataKey, EncodeBytes(kSnapshotDataKey, snapshot_data_));
  return record;
}

absl::Status RaftLogStore::Replay(absl::string_view record) {
  absl::string_view in = record;
  while (!in.empty()) {
    absl::string_view key, value;
    if (!NextItem(&in, &key, &value)) return Malformed("malformed record");
    if (!replayed_checkpoint_ && key != kFormatKey && key != kCheckpointKey) {
      return Malformed(absl::StrCat("the log begins with ", DescribeKey(key),
                                    ", not with a checkpoint"));
    }
    if (absl::Status s = ReplayItem(key, value); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status RaftLogStore::ReplayItem(absl::string_view key, absl::string_view value) {
  if (ParseEntryKey(key)) {
    absl::StatusOr<raft::Entry> e = DecodeEntryValue(key, value);
    if (!e.ok()) return e.status();
    if (e->index > last_index_ + 1) {
      return Malformed(absl::StrCat("the log holds entry ", e->index, " after entry ",
                                    last_index_, ": a gap"));
    }
    if (e->index > compacted_.index) AppendInMemory(std::move(*e));
    return absl::OkStatus();
  }
  if (key == kHardStateKey) {
    absl::StatusOr<raft::HardState> hs = DecodeHardState(key, value);
    if (!hs.ok()) return hs.status();
    hard_state_ = *hs;
  } else if (key == kSnapshotMetaKey) {
    absl::StatusOr<raft::SnapshotMeta> meta = DecodeSnapshotMeta(key, value);
    if (!meta.ok()) return meta.status();
    snapshot_meta_ = std::move(*meta);
  } else if (key == kSnapshotDataKey) {
    absl::StatusOr<std::string> data = DecodeBytes(key, value);
    if (!data.ok()) return data.status();
    snapshot_data_ = std::move(*data);
  } else if (key == kLogResetKey || key == kCompactedKey) {
    absl::StatusOr<LogPosition> p = DecodeLogPosition(key, value);
    if (!p.ok()) return p.status();
    if (key == kLogResetKey) {
      ResetLog(*p);
    } else if (p->index < compacted_.index || p->index > last_index_) {
      return Malformed(absl::StrCat("compaction to ", p->index, " outside the log (",
                                    compacted_.index, ", ", last_index_, "]"));
    } else {
      CompactInMemory(*p);
    }
  } else if (key == kCheckpointKey) {
    absl::StatusOr<WalCheckpoint> c = DecodeCheckpoint(key, value);
    if (!c.ok()) return c.status();
    if (!replayed_checkpoint_) {
      // The entries up to c->last_index are in segments already deleted; the compaction
      // records that follow must drop them all (CheckReplayed).
      compacted_ = c->compacted;
      last_index_ = c->last_index;
      replayed_checkpoint_ = true;
    } else if (c->compacted != compacted_ || c->last_index != last_index_) {
      return Malformed(absl::StrCat("a segment begins at compaction point ", c->compacted.index,
                                    " and last index ", c->last_index, ", but the log before it",
                                    " ends at ", compacted_.index, " and ", last_index_));
    }
  } else if (key == kFormatKey) {
    absl::StatusOr<std::string> format = DecodeBytes(key, value);
    if (!format.ok()) return format.status();
    if (*format != kFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "raft log store: format \"", *format, "\"; this build reads \"", kFormatVersion, "\""));
    }
  } else {
    return Malformed(absl::StrCat("unknown item ", DescribeKey(key)));
  }
  return absl::OkStatus();
}

absl::Status RaftLogStore::CheckReplayed() const {
  const uint64_t first_held = entries_.empty() ? last_index_ + 1 : entries_.front().index;
  if (first_held != compacted_.index + 1) {
    return Malformed(absl::StrCat("entries ", compacted_.index + 1, " to ", first_held - 1,
                                  " are missing"));
  }
  return absl::OkStatus();
}

absl::Status RaftLogStore::Write(const std::string& record, bool sync, absl::string_view what) {
  if (!write_failure_.ok()) return write_failure_;
  absl::Status s;
  if (!wal_->Fits(record.size())) s = wal_->StartSegment(last_index_ + 1, CheckpointRecord());
  if (s.ok()) s = wal_->Append(record, sync);
  if (!s.ok()) {
    write_failure_ = absl::FailedPreconditionError(
        absl::StrCat("raft log store: refusing writes after a failed one (reopen the store): ",
                     what, ": ", s.message()));
  }
  return s;
}

void RaftLogStore::ReleaseSegments() {
  // What is compacted is durable already; a segment that cannot be deleted now is deleted
  // at the next compaction (each deletes all segments wholly below its point).
  wal_->Release(compacted_.index + 1).IgnoreError();
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

  std::string record;
  if (snap != nullptr) {
    // The snapshot replaces the whole log, as MemoryStorage::ApplySnapshot does: entries
    // beyond its index came from a log that disagrees with it.
    AppendItem(&record, kSnapshotMetaKey, EncodeSnapshotMeta(kSnapshotMetaKey, snap->meta));
    AppendItem(&record, kSnapshotDataKey, EncodeBytes(kSnapshotDataKey, snap->data));
    AppendItem(&record, kLogResetKey, EncodeLogPosition(kLogResetKey, base));
  }
  for (size_t k = skip; k < entries.size(); ++k) AppendEntryItem(&record, entries[k]);
  if (hs != nullptr) AppendItem(&record, kHardStateKey, EncodeHardState(kHardStateKey, *hs));
  if (record.empty()) return absl::OkStatus();
  if (absl::Status s = Write(record, sync, "save"); !s.ok()) return s;

  if (snap != nullptr) {
    snapshot_meta_ = snap->meta;
    snapshot_data_ = snap->data;
    ResetLog(base);
  }
  for (size_t k = skip; k < entries.size(); ++k) AppendInMemory(entries[k]);
  if (hs != nullptr) hard_state_ = *hs;
  if (snap != nullptr) ReleaseSegments();
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
  std::string record;
  AppendItem(&record, kSnapshotMetaKey, EncodeSnapshotMeta(kSnapshotMetaKey, meta));
  AppendItem(&record, kSnapshotDataKey, EncodeBytes(kSnapshotDataKey, data));
  if (absl::Status s = Write(record, /*sync=*/true, "create snapshot"); !s.ok()) return s;
  snapshot_meta_ = std::move(meta);
  snapshot_data_ = std::move(data);
  return absl::OkStatus();
}

absl::Status RaftLogStore::Compact(uint64_t index) {
  if (index <= compacted_.index) return raft::CompactedError();
  if (index > last_index_) {
    return absl::OutOfRangeError(
        absl::StrCat("raft: compact ", index, " is out of bound lastindex(", last_index_, ")"));
  }
  const LogPosition base{.index = index, .term = TermOf(index)};
  std::string record;
  AppendItem(&record, kCompactedKey, EncodeLogPosition(kCompactedKey, base));
  if (absl::Status s = Write(record, /*sync=*/true, "compact"); !s.ok()) return s;
  CompactInMemory(base);
  ReleaseSegments();
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
  uint64_t bytes = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const raft::Entry& e = entries_[i - compacted_.index - 1];
    bytes += raft::EntrySize(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<uint64_t> RaftLogStore::Term(uint64_t i) const {
  if (i < compacted_.index) return raft::CompactedError();
  if (i > last_index_) return raft::UnavailableEntryError();
  return TermOf(i);
}

uint64_t RaftLogStore::TermOf(uint64_t i) const {
  return i == compacted_.index ? compacted_.term : entries_[i - compacted_.index - 1].term;
}

absl::StatusOr<raft::Snapshot> RaftLogStore::GetSnapshot() const {
  return raft::Snapshot{.meta = snapshot_meta_, .data = snapshot_data_};
}

void RaftLogStore::ResetLog(const LogPosition& base) {
  compacted_ = base;
  last_index_ = base.index;
  entries_.clear();
}

void RaftLogStore::AppendInMemory(raft::Entry e) {
  if (!entries_.empty() && e.index < entries_.front().index) {
    entries_.clear();
  } else {
    while (!entries_.empty() && entries_.back().index >= e.index) entries_.pop_back();
  }
  last_index_ = e.index;
  entries_.push_back(std::move(e));
}

void RaftLogStore::CompactInMemory(const LogPosition& base) {
  compacted_ = base;
  while (!entries_.empty() && entries_.front().index <= base.index) entries_.pop_front();
}

}  // namespace kvstore::storage

#include "kvstore/storage/mvcc_store.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "kvstore/storage/key_codec.h"
#include "kvstore/storage/lazy_indexed_batch.h"
#include "kvstore/storage/mvcc_internal.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/utilities/write_batch_with_index.h"
#include "rocksdb/write_batch.h"

namespace mvcc {
namespace internal {

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string message = absl::StrCat("mvcc: ", what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsNotFound()) return absl::NotFoundError(message);
  return absl::InternalError(message);
}

absl::Status Corrupt(absl::string_view what, std::string_view raw_key) {
  return absl::DataLossError(
      absl::StrCat("mvcc: corrupt ", what, " at key \"", absl::CHexEscape(Absl(raw_key)), "\""));
}

}  // namespace internal

using internal::Absl;
using internal::Corrupt;
using internal::FromRocks;
using internal::View;

namespace {

// RocksDB's view of InsertHintPrefix().
class InsertHintTransform : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "kvstore.mvcc.InsertHint"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    const std::string_view part = InsertHintPrefix(View(key));
    return rocksdb::Slice(part.data(), part.size());
  }
  // A key without a hint prefix is inserted by a search from the top.
  bool InDomain(const rocksdb::Slice& key) const override {
    return !InsertHintPrefix(View(key)).empty();
  }
};

constexpr absl::string_view kErrorPayloadUrl = "type.googleapis.com/kvstore.mvcc.Error";
constexpr absl::string_view kCompactedTag = "compacted";
constexpr absl::string_view kFutureRevisionTag = "future_revision";

absl::Status TaggedOutOfRange(absl::string_view message, absl::string_view tag) {
  absl::Status s = absl::OutOfRangeError(message);
  s.SetPayload(kErrorPayloadUrl, absl::Cord(tag));
  return s;
}

// `kv`'s metadata; `sub` is the sub revision of the change that wrote it.
KeyMetadata MetadataOf(const KeyValue& kv, int64_t sub) {
  return KeyMetadata{.create_revision = kv.create_revision,
                     .mod_revision = kv.mod_revision,
                     .mod_sub = sub,
                     .version = kv.version,
                     .lease = kv.lease};
}

bool HasTag(const absl::Status& s, absl::string_view tag) {
  if (!absl::IsOutOfRange(s)) return false;
  const auto payload = s.GetPayload(kErrorPayloadUrl);
  return payload.has_value() && *payload == tag;
}

}  // namespace

absl::Status CompactedError() {
  return TaggedOutOfRange("mvcc: required revision has been compacted", kCompactedTag);
}

absl::Status FutureRevisionError() {
  return TaggedOutOfRange("mvcc: required revision is a future revision", kFutureRevisionTag);
}

bool IsCompactedError(const absl::Status& status) { return HasTag(status, kCompactedTag); }

bool IsFutureRevisionError(const absl::Status& status) {
  return HasTag(status, kFutureRevisionTag);
}

// --- WriteTxn ----------------------------------------------------------------------------

WriteTxn::WriteTxn(WriteGroup* group, std::unique_ptr<WriteGroup> owned)
    : group_(group), owned_group_(std::move(owned)), begin_revision_(group->revision_) {
  group_->txn_open_ = true;
  // A lone transaction that fails takes its whole group along: nothing to roll back to.
  if (owned_group_ == nullptr) group_->batch_->SetSavePoint();
}

WriteTxn::WriteTxn(WriteTxn&& other) noexcept
    : group_(std::exchange(other.group_, nullptr)),
      owned_group_(std::move(other.owned_group_)),
      begin_revision_(other.begin_revision_),
      changes_(std::move(other.changes_)),
      changed_(std::move(other.changed_)),
      applied_index_(other.applied_index_),
      error_(std::move(other.error_)) {}

WriteTxn::~WriteTxn() { Release(/*keep=*/false); }

void WriteTxn::Release(bool keep) {
  if (group_ == nullptr) return;
  if (owned_group_ == nullptr) {
    rocksdb::Status s =
        keep ? group_->batch_->PopSavePoint() : group_->batch_->RollbackToSavePoint();
    // Only a missing save point fails, and every group transaction sets one.
    s.PermitUncheckedError();
  }
  group_->txn_open_ = false;
  group_ = nullptr;
  owned_group_.reset();
}

absl::StatusOr<RangeResult> WriteTxn::Range(std::string_view key, std::string_view range_end,
                                            const RangeOptions& options) {
  if (group_ == nullptr) return absl::FailedPreconditionError("mvcc: write transaction ended");
  MvccStore* store = group_->store_;
  const int64_t current = Revision();
  int64_t rev = options.revision;
  if (rev > current) return FutureRevisionError();
  if (rev <= 0) rev = current;
  if (rev < store->CompactedRevision()) return CompactedError();
  // The snapshot holds the store as the group began; the group's batch, read through
  // unless the key is one the group did not change, lifts it to `current` and holds the
  // history of the revisions in between.
  absl::StatusOr<rocksdb::WriteBatchWithIndex*> overlay = OverlayFor(key, range_end);
  if (!overlay.ok()) return overlay.status();
  absl::StatusOr<RangeResult> result =
      store->RangeAt(group_->snapshot_.get(), *overlay, rev, key, range_end, options,
                     range_end.empty() ? LiveVersion(key) : std::nullopt);
  if (result.ok()) result->revision = current;
  return result;
}

absl::StatusOr<std::optional<KeyValue>> WriteTxn::Put(std::string_view key, std::string_view value,
                                                      int64_t lease) {
  if (group_ == nullptr) return absl::FailedPreconditionError("mvcc: write transaction ended");
  if (!error_.ok()) return error_;

  internal::LazyIndexedBatch* batch = group_->batch_.get();
  std::optional<KeyValue> prev;
  if (std::optional<KeyMetadata> live = LiveVersion(key)) {
    if (group_->options_.prev_values) {
      absl::StatusOr<rocksdb::WriteBatchWithIndex*> overlay = OverlayFor(key, "");
      if (!overlay.ok()) return error_ = overlay.status();
      absl::StatusOr<KeyValue> read =
          group_->store_->PutAt(group_->snapshot_.get(), *overlay, key,
                                mvcc::Revision{live->mod_revision, live->mod_sub});
      if (!read.ok()) return error_ = read.status();
      prev = *std::move(read);
    } else {
      prev = KeyValue{.key = std::string(key),
                      .create_revision = live->create_revision,
                      .mod_revision = live->mod_revision,
                      .version = live->version,
                      .lease = live->lease};
    }
  }

  const mvcc::Revision rev{begin_revision_ + 1, static_cast<int64_t>(changes_.size())};
  KeyValue kv{
      .key = std::string(key),
      .create_revision = prev ? prev->create_revision : rev.main,
      .mod_revision = rev.main,
      .version = prev ? prev->version + 1 : 1,
      .value = std::string(value),
      .lease = lease,
  };
  rocksdb::Status s = batch->Put(HistoryKey(key, rev), EncodeHistoryValue(ChangeKind::kPut, kv));
  if (s.ok()) s = batch->Put(RevisionKey(rev), EncodeRevisionValue(ChangeKind::kPut, key));
  if (s.ok() && prev && prev->lease != kNoLease && prev->lease != lease) {
    s = batch->Delete(LeaseIndexKey(prev->lease, key));
  }
  if (s.ok() && lease != kNoLease && !(prev && prev->lease == lease)) {
    s = batch->Put(LeaseIndexKey(lease, key), "");
  }
  if (!s.ok()) return error_ = FromRocks(s, "batching a put");

  changed_.insert_or_assign(kv.key, MetadataOf(kv, rev.sub));
  changes_.push_back(Event{.type = Event::Type::kPut, .kv = std::move(kv), .prev_kv = prev});
  return prev;
}

absl::StatusOr<rocksdb::WriteBatchWithIndex*> WriteTxn::OverlayFor(std::string_view key,
                                                                    std::string_view range_end) {
  // One key that neither this transaction nor its group changed reads the same from the
  // group's snapshot alone.
  if (range_end.empty() && !changed_.contains(Absl(key)) &&
      !group_->changed_.contains(Absl(key))) {
    return nullptr;
  }
  return group_->batch_->Overlay();
}

std::optional<KeyMetadata> WriteTxn::LiveVersion(std::string_view key) const {
  // This transaction's own changes, then the group's, then the store's.
  if (auto own = changed_.find(Absl(key)); own != changed_.end()) return own->second;
  if (auto grouped = group_->changed_.find(Absl(key)); grouped != group_->changed_.end()) {
    return grouped->second;
  }
  return group_->store_->CommittedVersion(key);
}

absl::StatusOr<std::vector<KeyValue>> WriteTxn::DeleteRange(std::string_view key,
                                                            std::string_view range_end) {
  if (group_ == nullptr) return absl::FailedPreconditionError("mvcc: write transaction ended");
  if (!error_.ok()) return error_;

  // Everything live as this transaction sees it: the snapshot plus its group's batch.
  internal::LazyIndexedBatch* batch = group_->batch_.get();
  const int64_t current = Revision();
  absl::StatusOr<rocksdb::WriteBatchWithIndex*> overlay = OverlayFor(key, range_end);
  if (!overlay.ok()) return error_ = overlay.status();
  absl::StatusOr<RangeResult> live =
      group_->store_->RangeAt(group_->snapshot_.get(), *overlay, current, key, range_end,
                              RangeOptions{}, range_end.empty() ? LiveVersion(key) : std::nullopt);
  if (!live.ok()) return error_ = live.status();

  for (const KeyValue& prev : live->kvs) {
    const mvcc::Revision rev{begin_revision_ + 1, static_cast<int64_t>(changes_.size())};
    rocksdb::Status s =
        batch->Put(HistoryKey(prev.key, rev), EncodeHistoryValue(ChangeKind::kDelete, prev));
    if (s.ok()) {
      s = batch->Put(RevisionKey(rev), EncodeRevisionValue(ChangeKind::kDelete, prev.key));
    }
    if (s.ok() && prev.lease != kNoLease) s = batch->Delete(LeaseIndexKey(prev.lease, prev.key));
    if (!s.ok()) return error_ = FromRocks(s, "batching a delete");
    changed_.insert_or_assign(prev.key, std::nullopt);
    changes_.push_back(Event{.type = Event::Type::kDelete,
                             .kv = KeyValue{.key = prev.key, .mod_revision = rev.main},
                             .prev_kv = prev});
  }
  return std::move(live->kvs);
}

absl::Status WriteTxn::PutLease(int64_t id, int64_t ttl) {
  if (group_ == nullptr) return absl::FailedPreconditionError("mvcc: write transaction ended");
  if (!error_.ok()) return error_;
  std::string value;
  AppendVarint64(static_cast<uint64_t>(ttl), &value);
  rocksdb::Status s = group_->batch_->Put(LeaseRecordKey(id), value);
  if (!s.ok()) return error_ = FromRocks(s, "batching a lease");
  return absl::OkStatus();
}

absl::Status WriteTxn::DeleteLease(int64_t id) {
  if (group_ == nullptr) return absl::FailedPreconditionError("mvcc: write transaction ended");
  if (!error_.ok()) return error_;
  rocksdb::Status s = group_->batch_->Delete(LeaseRecordKey(id));
  if (!s.ok()) return error_ = FromRocks(s, "batching a lease revoke");
  return absl::OkStatus();
}

absl::Status WriteTxn::End() {
  if (group_ == nullptr) return absl::FailedPreconditionError("mvcc: write transaction ended");
  if (!error_.ok()) {
    Release(/*keep=*/false);
    return error_;
  }
  group_->revision_ = Revision();
  if (applied_index_) group_->applied_index_ = applied_index_;
  for (auto& [key, m] : changed_) group_->changed_.insert_or_assign(key, m);
  if (owned_group_ == nullptr) {
    Release(/*keep=*/true);
    return absl::OkStatus();
  }
  std::unique_ptr<WriteGroup> group = std::move(owned_group_);
  group_ = nullptr;
  group->txn_open_ = false;
  return group->End();
}

absl::Status WriteTxn::SetAlarms(const std::vector<AlarmRecord>& alarms) {
  if (group_ == nullptr) return absl::FailedPreconditionError("mvcc: write transaction ended");
  if (!error_.ok()) return error_;
  std::string value;
  for (const AlarmRecord& a : alarms) {
    AppendVarint64(a.member, &value);
    AppendVarint64(static_cast<uint32_t>(a.type), &value);
  }
  rocksdb::Status s = group_->batch_->Put(MetaKey(kMetaAlarms), value);
  if (!s.ok()) return error_ = FromRocks(s, "batching alarms");
  return absl::OkStatus();
}

// --- WriteGroup --------------------------------------------------------------------------

WriteGroup::WriteGroup(MvccStore* store, const GroupOptions& options, int64_t revision,
                       std::shared_ptr<const rocksdb::Snapshot> snapshot)
    : store_(store),
      options_(options),
      begin_revision_(revision),
      revision_(revision),
      snapshot_(std::move(snapshot)),
      batch_(std::make_unique<internal::LazyIndexedBatch>()) {}

WriteGroup::~WriteGroup() { Release(); }

void WriteGroup::Release() {
  if (store_ == nullptr) return;
  snapshot_.reset();
  store_->ReleaseWriter();
  store_ = nullptr;
}

WriteTxn WriteGroup::BeginWrite() { return WriteTxn(this, nullptr); }

absl::Status WriteGroup::End() {
  if (store_ == nullptr) return absl::FailedPreconditionError("mvcc: write group ended");
  if (txn_open_) {
    return absl::FailedPreconditionError("mvcc: a transaction of the write group is open");
  }
  absl::Status s = store_->Commit(this);
  Release();
  return s;
}

// --- MvccStore ---------------------------------------------------------------------------

MvccStore::MvccStore(std::string dir, const MvccStoreOptions& options,
                     std::unique_ptr<rocksdb::DB> db)
    : dir_(std::move(dir)), options_(options), db_(std::move(db)) {}

MvccStore::~MvccStore() {
  {
    absl::MutexLock l(&mu_);
    snapshot_.reset();
  }
  db_->Close().PermitUncheckedError();
}

absl::StatusOr<std::unique_ptr<MvccStore>> MvccStore::Open(const std::string& dir,
                                                           const MvccStoreOptions& options) {
  if (options.compaction_batch_size <= 0) {
    return absl::InvalidArgumentError("mvcc: compaction_batch_size must be positive");
  }
  // A ReplaceWith() that a crash interrupted: undone before the new store moved in,
  // finished after.
  std::error_code ec;
  const std::string old = dir + ".old";
  if (std::filesystem::exists(old, ec)) {
    if (!std::filesystem::exists(dir, ec)) {
      std::filesystem::rename(old, dir, ec);
    } else {
      std::filesystem::remove_all(old, ec);
    }
    if (ec) {
      return absl::FailedPreconditionError(absl::StrCat(
          "mvcc: cannot recover the interrupted replacement of \"", dir, "\": ", ec.message()));
    }
  }
  absl::StatusOr<std::unique_ptr<rocksdb::DB>> db = OpenDb(dir);
  if (!db.ok()) return db.status();
  std::unique_ptr<MvccStore> store = absl::WrapUnique(new MvccStore(dir, options, std::move(*db)));
  absl::Status loaded = store->LoadMeta();
  if (!loaded.ok()) return loaded;
  return store;
}

absl::StatusOr<std::unique_ptr<rocksdb::DB>> MvccStore::OpenDb(const std::string& dir) {
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  // Writes are not synced: after a crash RocksDB replays the WAL up to the last whole batch,
  // and the applied index in that batch says where the Raft log must be replayed from.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  rocksdb::BlockBasedTableOptions table_options;
  // Point reads: a Get of the history entry the live keys in memory name.
  table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  // The revision index's and the metadata's inserts land next to the last one with the same
  // hint prefix (key_codec.h): the memtable finds the spot from there instead of searching
  // from the top each time.
  db_options.memtable_insert_with_hint_prefix_extractor = std::make_shared<InsertHintTransform>();

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, &raw);
  if (!s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("mvcc: cannot open data dir \"", dir, "\": ", s.ToString()));
  }
  return std::unique_ptr<rocksdb::DB>(raw);
}

absl::Status MvccStore::ReplaceWith(const std::string& checkpoint_dir) {
  absl::WriterMutexLock swap(&swap_mu_);
  {
    absl::MutexLock l(&mu_);
    if (writer_active_) {
      return absl::FailedPreconditionError("mvcc: cannot replace the store during a write");
    }
    snapshot_.reset();
  }
  db_->Close().PermitUncheckedError();
  db_.reset();
  const std::string old = dir_ + ".old";
  const std::string parent = std::filesystem::path(dir_).parent_path().string();
  std::error_code ec;
  std::filesystem::remove_all(old, ec);
  std::filesystem::rename(dir_, old, ec);
  if (!ec) {
    std::filesystem::rename(checkpoint_dir, dir_, ec);
    if (ec) {
      std::error_code back;
      std::filesystem::rename(old, dir_, back);
    }
  }
  absl::Status replaced =
      ec ? absl::InternalError(
               absl::StrCat("mvcc: cannot move ", checkpoint_dir, " to ", dir_, ": ", ec.message()))
         : common::SyncDirectory(parent);
  absl::StatusOr<std::unique_ptr<rocksdb::DB>> db = OpenDb(dir_);
  if (replaced.ok()) replaced = db.status();
  if (!replaced.ok() && !ec) {
    // The new store does not open (or its move is not durable): put the old one back.
    db = absl::UnknownError("not reopened");
    std::error_code back;
    std::filesystem::remove_all(dir_, back);
    std::filesystem::rename(old, dir_, back);
    common::SyncDirectory(parent).IgnoreError();
    db = OpenDb(dir_);
  }
  if (!db.ok()) return db.status();  // neither opens: the store is unusable
  db_ = std::move(*db);
  if (absl::Status s = LoadMeta(); !s.ok()) return s;
  if (replaced.ok()) std::filesystem::remove_all(old, ec);
  return replaced;
}

absl::Status MvccStore::LoadMeta() {
  rocksdb::ReadOptions ro;
  std::string format;
  rocksdb::Status s = db_->Get(ro, MetaKey(kMetaFormat), &format);
  if (s.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    it->SeekToFirst();
    if (it->Valid()) {
      return absl::FailedPreconditionError(
          absl::StrCat("mvcc: data dir \"", dir_, "\" holds a database that is not an MVCC store"));
    }
    if (!it->status().ok()) return FromRocks(it->status(), "reading a new data dir");
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db_->Put(wo, MetaKey(kMetaFormat), kFormatVersion);
    if (!s.ok()) return FromRocks(s, "initializing the data dir");
  } else if (!s.ok()) {
    return FromRocks(s, "reading the store format");
  } else if (format == kFormatVersionV1) {
    // Everything mvcc-v1 has but the latest versions' key space is the same in mvcc-v2.
    rocksdb::WriteBatch upgrade;
    s = upgrade.DeleteRange(std::string(1, kV1LatestPrefix), KeySpaceEnd(kV1LatestPrefix));
    if (s.ok()) s = upgrade.Put(MetaKey(kMetaFormat), kFormatVersion);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (s.ok()) s = db_->Write(wo, &upgrade);
    if (!s.ok()) return FromRocks(s, "upgrading the data dir from mvcc-v1");
  } else if (format != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "mvcc: data dir \"", dir_, "\" has unknown format \"", absl::CHexEscape(format), "\""));
  }

  auto read_meta = [&](std::string_view name) -> absl::StatusOr<std::optional<uint64_t>> {
    std::string value;
    rocksdb::Status st = db_->Get(ro, MetaKey(name), &value);
    if (st.IsNotFound()) return std::nullopt;
    if (!st.ok()) return FromRocks(st, absl::StrCat("reading ", Absl(name)));
    std::string_view in = value;
    uint64_t v = 0;
    if (!ConsumeBigEndian64(&in, &v) || !in.empty()) return Corrupt("meta value", name);
    return v;
  };
  auto read_u64 = [&](std::string_view name, uint64_t fallback) -> absl::StatusOr<uint64_t> {
    absl::StatusOr<std::optional<uint64_t>> v = read_meta(name);
    if (!v.ok()) return v.status();
    return v->value_or(fallback);
  };
  absl::StatusOr<uint64_t> revision = read_u64(kMetaRevision, 1);
  if (!revision.ok()) return revision.status();
  absl::StatusOr<uint64_t> applied = read_u64(kMetaAppliedIndex, 0);
  if (!applied.ok()) return applied.status();
  absl::StatusOr<std::optional<uint64_t>> scheduled = read_meta(kMetaCompactScheduled);
  if (!scheduled.ok()) return scheduled.status();
  absl::StatusOr<uint64_t> finished = read_u64(kMetaCompactFinished, 0);
  if (!finished.ok()) return finished.status();

  // Each key's last history entry is its latest version: live unless a tombstone.
  absl::MutexLock live(&live_mu_);
  live_.clear();
  const std::string history_end = KeySpaceEnd(kHistoryPrefix);
  const rocksdb::Slice history_end_slice(history_end);
  rocksdb::ReadOptions scan;
  scan.iterate_upper_bound = &history_end_slice;
  scan.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(scan));
  std::string last_key;
  std::string last_value;
  for (it->Seek(std::string(1, kHistoryPrefix)); it->Valid();) {
    last_key.assign(View(it->key()));
    last_value.assign(View(it->value()));
    it->Next();
    Revision rev;
    if (!ParseHistoryKeyRevision(last_key, &rev)) return Corrupt("history key", last_key);
    // ESC(key) is never a prefix of another key's, so this is the key's next version.
    if (it->Valid() &&
        View(it->key()).starts_with(std::string_view(last_key).substr(0, last_key.size() - 16))) {
      continue;
    }
    std::string user_key;
    if (!ParseHistoryKey(last_key, &user_key, &rev)) return Corrupt("history key", last_key);
    ChangeKind kind;
    KeyValue kv;
    if (!DecodeHistoryValue(last_value, /*keys_only=*/true, &kind, &kv)) {
      return Corrupt("history value", last_key);
    }
    if (kind == ChangeKind::kPut) live_.emplace(std::move(user_key), MetadataOf(kv, rev.sub));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "reading the live keys");

  std::shared_ptr<const rocksdb::Snapshot> snapshot = TakeSnapshot();
  absl::MutexLock l(&mu_);
  current_revision_ = static_cast<int64_t>(*revision);
  applied_index_ = *applied;
  compacted_revision_ = static_cast<int64_t>(scheduled->value_or(0));
  ever_compacted_ = scheduled->has_value();
  finished_compaction_ = static_cast<int64_t>(*finished);
  snapshot_ = std::move(snapshot);
  return absl::OkStatus();
}

std::shared_ptr<const rocksdb::Snapshot> MvccStore::TakeSnapshot() {
  rocksdb::DB* db = db_.get();
  return std::shared_ptr<const rocksdb::Snapshot>(
      db->GetSnapshot(), [db](const rocksdb::Snapshot* s) { db->ReleaseSnapshot(s); });
}

MvccStore::ReadView MvccStore::CurrentView() const {
  absl::MutexLock l(&mu_);
  return ReadView{snapshot_, current_revision_, compacted_revision_};
}

int64_t MvccStore::CurrentRevision() const {
  absl::MutexLock l(&mu_);
  return current_revision_;
}

int64_t MvccStore::CompactedRevision() const {
  absl::MutexLock l(&mu_);
  return compacted_revision_;
}

int64_t MvccStore::CompactMainRevision() const {
  absl::MutexLock l(&mu_);
  return CompactMainRevisionLocked();
}

uint64_t MvccStore::AppliedIndex() const {
  absl::MutexLock l(&mu_);
  return applied_index_;
}

bool MvccStore::CompactionPending() const {
  absl::MutexLock l(&mu_);
  return finished_compaction_ < compacted_revision_;
}

// --- Writes ------------------------------------------------------------------------------

WriteTxn MvccStore::BeginWrite() {
  std::unique_ptr<WriteGroup> group = BeginGroup();
  WriteGroup* g = group.get();
  return WriteTxn(g, std::move(group));
}

std::unique_ptr<WriteGroup> MvccStore::BeginGroup(const GroupOptions& options) {
  absl::MutexLock l(&mu_, absl::Condition(this, &MvccStore::WriterFree));
  writer_active_ = true;
  return absl::WrapUnique(new WriteGroup(this, options, current_revision_, snapshot_));
}

void MvccStore::ReleaseWriter() {
  absl::MutexLock l(&mu_);
  writer_active_ = false;
}

absl::Status MvccStore::Commit(WriteGroup* group) {
  const int64_t new_revision = group->revision_;
  const bool changed = new_revision != group->begin_revision_;
  rocksdb::Status s;
  if (changed) {
    s = group->batch_->Put(MetaKey(kMetaRevision), EncodeBigEndian64(new_revision));
  }
  if (s.ok() && group->applied_index_) {
    s = group->batch_->Put(MetaKey(kMetaAppliedIndex), EncodeBigEndian64(*group->applied_index_));
  }
  if (!s.ok()) return FromRocks(s, "batching metadata");
  rocksdb::WriteBatch* batch = group->batch_->Batch();
  if (batch->Count() == 0) return absl::OkStatus();

  const rocksdb::WriteOptions wo = WriteOpts();
  s = db_->Write(wo, batch);
  if (!s.ok()) return FromRocks(s, "committing a write transaction");
  {
    absl::MutexLock live(&live_mu_);
    for (auto& [key, m] : group->changed_) {
      if (m) {
        live_.insert_or_assign(key, *m);
      } else {
        live_.erase(key);
      }
    }
  }

  std::shared_ptr<const rocksdb::Snapshot> snapshot = changed ? TakeSnapshot() : nullptr;
  absl::MutexLock l(&mu_);
  if (changed) {
    current_revision_ = new_revision;
    snapshot_ = std::move(snapshot);
  }
  if (group->applied_index_) applied_index_ = *group->applied_index_;
  return absl::OkStatus();
}

// --- Leases and files --------------------------------------------------------------------

absl::StatusOr<std::vector<std::string>> MvccStore::KeysWithLease(int64_t lease) const {
  absl::ReaderMutexLock swap(&swap_mu_);
  const ReadView view = CurrentView();
  rocksdb::ReadOptions ro;
  ro.snapshot = view.snapshot.get();
  const std::string prefix = LeaseIndexKeyPrefix(lease);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  std::vector<std::string> keys;
  for (it->Seek(prefix); it->Valid() && View(it->key()).starts_with(prefix); it->Next()) {
    keys.emplace_back(View(it->key()).substr(prefix.size()));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "lease index read");
  return keys;
}

absl::StatusOr<std::vector<LeaseRecord>> MvccStore::Leases() const {
  absl::ReaderMutexLock swap(&swap_mu_);
  const ReadView view = CurrentView();
  rocksdb::ReadOptions ro;
  ro.snapshot = view.snapshot.get();
  const std::string upper = KeySpaceEnd(kLeaseRecordPrefix);
  const rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  std::vector<LeaseRecord> out;
  for (it->Seek(std::string(1, kLeaseRecordPrefix)); it->Valid(); it->Next()) {
    LeaseRecord record;
    std::string_view value = View(it->value());
    uint64_t ttl = 0;
    if (!ParseLeaseRecordKey(View(it->key()), &record.id) || !ConsumeVarint64(&value, &ttl) ||
        !value.empty()) {
      return Corrupt("lease record", View(it->key()));
    }
    record.ttl = static_cast<int64_t>(ttl);
    out.push_back(record);
  }
  if (!it->status().ok()) return FromRocks(it->status(), "lease records read");
  return out;
}

absl::StatusOr<std::vector<AlarmRecord>> MvccStore::Alarms() const {
  absl::ReaderMutexLock swap(&swap_mu_);
  // The latest committed set: a transaction that changes only alarms makes no revision,
  // and so no new read snapshot.
  std::string raw;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MetaKey(kMetaAlarms), &raw);
  std::vector<AlarmRecord> out;
  if (s.IsNotFound()) return out;
  if (!s.ok()) return FromRocks(s, "alarms read");
  std::string_view in = raw;
  while (!in.empty()) {
    uint64_t member = 0, type = 0;
    if (!ConsumeVarint64(&in, &member) || !ConsumeVarint64(&in, &type)) {
      return Corrupt("alarms", MetaKey(kMetaAlarms));
    }
    out.push_back(AlarmRecord{member, static_cast<int32_t>(type)});
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::vector<LeaseKey>> MvccStore::AllLeaseKeys() const {
  absl::ReaderMutexLock swap(&swap_mu_);
  const ReadView view = CurrentView();
  rocksdb::ReadOptions ro;
  ro.snapshot = view.snapshot.get();
  const std::string upper = KeySpaceEnd(kLeasePrefix);
  const rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  std::vector<LeaseKey> out;
  for (it->Seek(std::string(1, kLeasePrefix)); it->Valid(); it->Next()) {
    LeaseKey lk;
    if (!ParseLeaseIndexKey(View(it->key()), &lk.lease, &lk.key)) {
      return Corrupt("lease index key", View(it->key()));
    }
    out.push_back(std::move(lk));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "lease index read");
  return out;
}

rocksdb::WriteOptions MvccStore::WriteOpts() const {
  rocksdb::WriteOptions wo;
  wo.disableWAL = !options_.use_wal;
  wo.sync = options_.sync_writes && options_.use_wal;
  return wo;
}

absl::StatusOr<uint64_t> MvccStore::Flush() {
  absl::ReaderMutexLock swap(&swap_mu_);
  // Whatever is committed when the flush starts is in it: read the index first.
  const uint64_t applied = AppliedIndex();
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (rocksdb::Status s = db_->Flush(fo); !s.ok()) return FromRocks(s, "flushing the memtable");
  return applied;
}

absl::Status MvccStore::CreateCheckpoint(const std::string& dir) const {
  absl::ReaderMutexLock swap(&swap_mu_);
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  if (!s.ok()) return FromRocks(s, "creating a checkpoint");
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocks(checkpoint->CreateCheckpoint(dir), absl::StrCat("checkpoint into ", dir));
}

absl::Status MvccStore::Defragment() {
  absl::ReaderMutexLock swap(&swap_mu_);
  rocksdb::CompactRangeOptions options;
  // Rewrite the last level too, so that tombstones and dropped history leave the files.
  options.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  return FromRocks(db_->CompactRange(options, nullptr, nullptr), "defragmenting");
}

absl::Status MvccStore::BumpRevision(int64_t amount) {
  if (amount < 0) return absl::InvalidArgumentError("mvcc: the revision cannot move back");
  // Holding the writer slot keeps every other write transaction out while the revision moves.
  WriteTxn writer = BeginWrite();
  absl::ReaderMutexLock swap(&swap_mu_);
  const int64_t revision = writer.Revision() + amount;
  const rocksdb::WriteOptions wo = WriteOpts();
  rocksdb::Status s = db_->Put(wo, MetaKey(kMetaRevision), EncodeBigEndian64(revision));
  if (!s.ok()) return FromRocks(s, "bumping the revision");
  std::shared_ptr<const rocksdb::Snapshot> snapshot = TakeSnapshot();
  absl::MutexLock l(&mu_);
  current_revision_ = revision;
  snapshot_ = std::move(snapshot);
  return absl::OkStatus();
}

uint64_t MvccStore::ApproximateSizeBytes() const {
  absl::ReaderMutexLock swap(&swap_mu_);
  uint64_t sst = 0;
  uint64_t memtables = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kTotalSstFilesSize, &sst)) sst = 0;
  if (!db_->GetIntProperty(rocksdb::DB::Properties::kSizeAllMemTables, &memtables)) memtables = 0;
  return sst + memtables;
}

}  // namespace mvcc

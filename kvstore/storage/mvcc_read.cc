// MvccStore's reads: Range (history), Events (revision index) and HashKV.
#include <array>
#include <limits>
#include <utility>

#include "kvstore/storage/key_codec.h"
#include "kvstore/storage/mvcc_internal.h"
#include "kvstore/storage/mvcc_store.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/utilities/write_batch_with_index.h"

namespace mvcc {

using internal::Corrupt;
using internal::FromRocks;
using internal::KeyRange;
using internal::View;

namespace {

constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    table[i] = c;
  }
  return table;
}

// CRC-32C (Castagnoli), the checksum etcd's HashKV uses, over our own encoding.
class Crc32c {
 public:
  void Update(std::string_view data) {
    for (char c : data) {
      crc_ = kTable[(crc_ ^ static_cast<uint8_t>(c)) & 0xff] ^ (crc_ >> 8);
    }
  }
  // Length-prefixed, so that adjacent fields cannot trade bytes.
  void UpdateField(std::string_view data) {
    std::string length;
    AppendVarint64(data.size(), &length);
    Update(length);
    Update(data);
  }
  uint32_t Value() const { return ~crc_; }

 private:
  static constexpr std::array<uint32_t, 256> kTable = MakeCrc32cTable();

  uint32_t crc_ = 0xffffffffu;
};

// How many newer versions of a key a range read steps over with Next before it seeks to the
// one it wants instead (RocksDB's own iterators switch from Next to Seek after 8 steps too).
constexpr int kMaxVersionSteps = 8;

// Collects a range's result: counts every key, keeps at most `limit` kvs.
class RangeCollector {
 public:
  explicit RangeCollector(const RangeOptions& options) : options_(options) {}

  // Whether the next key's kv is kept (so worth decoding).
  bool WantsNext() const {
    return !options_.count_only &&
           (options_.limit <= 0 || static_cast<int64_t>(result_.kvs.size()) < options_.limit);
  }
  void Count() { ++result_.count; }
  void Add(KeyValue kv) {
    ++result_.count;
    result_.kvs.push_back(std::move(kv));
  }
  bool keys_only() const { return options_.keys_only; }
  RangeResult Take() { return std::move(result_); }

 private:
  const RangeOptions& options_;
  RangeResult result_;
};

}  // namespace

absl::StatusOr<RangeResult> MvccStore::Range(std::string_view key, std::string_view range_end,
                                             const RangeOptions& options) const {
  absl::ReaderMutexLock swap(&swap_mu_);
  const ReadView view = CurrentView();
  int64_t rev = options.revision;
  if (rev > view.revision) return FutureRevisionError();
  if (rev <= 0) rev = view.revision;
  if (rev < view.compacted) return CompactedError();
  absl::StatusOr<RangeResult> result =
      RangeAt(view.snapshot.get(), nullptr, rev, key, range_end, options,
              range_end.empty() ? CommittedVersion(key) : std::nullopt);
  if (result.ok()) result->revision = view.revision;
  return result;
}

absl::StatusOr<RangeResult> MvccStore::RangeAt(const rocksdb::Snapshot* snapshot,
                                               rocksdb::WriteBatchWithIndex* overlay,
                                               int64_t read_revision, std::string_view key,
                                               std::string_view range_end,
                                               const RangeOptions& options,
                                               std::optional<KeyMetadata> latest) const {
  const KeyRange range = KeyRange::Of(key, range_end);
  RangeCollector out(options);
  if (range.kind == KeyRange::Kind::kEmpty) return out.Take();

  if (range.kind == KeyRange::Kind::kSingle) {
    absl::StatusOr<std::optional<KeyValue>> kv;
    if (latest && latest->mod_revision <= read_revision) {
      // The live version is the one at read_revision: nothing changed the key in between.
      kv = PutAt(snapshot, overlay, key, mvcc::Revision{latest->mod_revision, latest->mod_sub});
    } else {
      kv = HistoryGet(snapshot, overlay, key, read_revision);
    }
    if (!kv.ok()) return kv.status();
    if (*kv) {
      if (!out.WantsNext()) {
        out.Count();
      } else {
        if (options.keys_only) (*kv)->value.clear();
        out.Add(**std::move(kv));
      }
    }
    return out.Take();
  }

  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  // Per key, the newest history entry at or below the revision.
  const std::string lower = HistoryKeyPrefix(key);
  const std::string upper = range.kind == KeyRange::Kind::kToEnd ? KeySpaceEnd(kHistoryPrefix)
                                                                 : HistoryKeyPrefix(range_end);
  const rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it = NewIterator(ro, overlay);
  std::string user_key;
  mvcc::Revision rev;
  it->Seek(lower);
  while (it->Valid()) {
    const std::string_view k = View(it->key());
    if (k >= upper) break;  // the overlay's entries are not bounded by iterate_upper_bound
    if (!ParseHistoryKey(k, &user_key, &rev)) return Corrupt("history key", k);
    const std::string prefix(k.substr(0, k.size() - 16));
    if (rev.main > read_revision) {
      // The key's oldest remaining version is newer: it did not exist at the revision.
      it->Seek(HistoryKeySuccessor(user_key));
      continue;
    }
    // Step to the newest version at or below the revision; after a few steps, jump there.
    std::string value(View(it->value()));
    bool skip_rest = false;
    int steps = 0;
    for (it->Next(); it->Valid() && View(it->key()).starts_with(prefix); it->Next()) {
      mvcc::Revision next;
      if (!ParseHistoryKeyRevision(View(it->key()), &next)) {
        return Corrupt("history key", View(it->key()));
      }
      skip_rest = true;
      if (next.main > read_revision) break;
      if (++steps > kMaxVersionSteps) {
        std::string target = prefix;
        AppendRevision(mvcc::Revision{read_revision, std::numeric_limits<int64_t>::max()}, &target);
        it->SeekForPrev(target);
        if (!it->Valid() || !View(it->key()).starts_with(prefix)) {
          if (!it->status().ok()) return FromRocks(it->status(), "history read");
          return Corrupt("history of key", prefix);
        }
        value.assign(View(it->value()));
        break;
      }
      value.assign(View(it->value()));
      skip_rest = false;
    }
    if (skip_rest) it->Seek(HistoryKeySuccessor(user_key));
    if (value.empty()) return Corrupt("history value", prefix);
    if (value[0] == static_cast<char>(ChangeKind::kDelete)) continue;
    if (!out.WantsNext()) {
      out.Count();
      continue;
    }
    ChangeKind kind;
    KeyValue kv;
    if (!DecodeHistoryValue(value, out.keys_only(), &kind, &kv)) {
      return Corrupt("history value", prefix);
    }
    kv.key = user_key;
    out.Add(std::move(kv));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "history read");
  return out.Take();
}

std::unique_ptr<rocksdb::Iterator> MvccStore::NewIterator(
    const rocksdb::ReadOptions& ro, rocksdb::WriteBatchWithIndex* overlay) const {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  if (overlay != nullptr) {
    it.reset(overlay->NewIteratorWithBase(db_->DefaultColumnFamily(), it.release(), &ro));
  }
  return it;
}

std::optional<KeyMetadata> MvccStore::CommittedVersion(std::string_view key) const {
  absl::ReaderMutexLock l(&live_mu_);
  auto it = live_.find(internal::Absl(key));
  if (it == live_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<KeyValue> MvccStore::PutAt(const rocksdb::Snapshot* snapshot,
                                          rocksdb::WriteBatchWithIndex* overlay,
                                          std::string_view key, mvcc::Revision rev) const {
  const std::string history_key = HistoryKey(key, rev);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  std::string raw;
  rocksdb::Status s = overlay != nullptr
                          ? overlay->GetFromBatchAndDB(db_.get(), ro, history_key, &raw)
                          : db_->Get(ro, history_key, &raw);
  if (s.IsNotFound()) return Corrupt("missing history entry", history_key);
  if (!s.ok()) return FromRocks(s, "point read");
  ChangeKind kind;
  KeyValue kv;
  if (!DecodeHistoryValue(raw, /*keys_only=*/false, &kind, &kv) || kind != ChangeKind::kPut) {
    return Corrupt("history value", history_key);
  }
  kv.key = std::string(key);
  return kv;
}

absl::StatusOr<std::optional<KeyValue>> MvccStore::HistoryGet(const rocksdb::Snapshot* snapshot,
                                                              rocksdb::WriteBatchWithIndex* overlay,
                                                              std::string_view key,
                                                              int64_t rev) const {
  const std::string prefix = HistoryKeyPrefix(key);
  const rocksdb::Slice lower(prefix);
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  ro.iterate_lower_bound = &lower;
  std::unique_ptr<rocksdb::Iterator> it = NewIterator(ro, overlay);
  std::string target = prefix;
  AppendRevision(mvcc::Revision{rev, std::numeric_limits<int64_t>::max()}, &target);
  it->SeekForPrev(target);
  if (!it->Valid()) {
    if (!it->status().ok()) return FromRocks(it->status(), "history read");
    return std::nullopt;
  }
  if (!View(it->key()).starts_with(prefix)) return std::nullopt;
  ChangeKind kind;
  KeyValue kv;
  if (!DecodeHistoryValue(View(it->value()), /*keys_only=*/false, &kind, &kv)) {
    return Corrupt("history value", View(it->key()));
  }
  if (kind == ChangeKind::kDelete) return std::nullopt;
  kv.key = std::string(key);
  return kv;
}

absl::StatusOr<EventsResult> MvccStore::Events(int64_t start_rev, int64_t end_rev,
                                               std::string_view key, std::string_view range_end,
                                               const EventsOptions& options) const {
  if (start_rev < 1) return absl::InvalidArgumentError("mvcc: events start at revision 1");
  absl::ReaderMutexLock swap(&swap_mu_);
  const ReadView view = CurrentView();
  if (start_rev < view.compacted) return CompactedError();
  int64_t stop = view.revision + 1;
  if (end_rev > 0 && end_rev < stop) stop = end_rev;
  EventsResult result;
  result.next_revision = stop;
  if (start_rev >= stop) {
    result.next_revision = start_rev;
    return result;
  }

  const KeyRange range = KeyRange::Of(key, range_end);
  rocksdb::ReadOptions ro;
  ro.snapshot = view.snapshot.get();
  const std::string upper = RevisionKey(mvcc::Revision{stop, 0});
  const rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  rocksdb::ReadOptions point_ro;
  point_ro.snapshot = view.snapshot.get();

  int64_t last_main = 0;
  std::string user_key;
  for (it->Seek(RevisionKey(mvcc::Revision{start_rev, 0})); it->Valid(); it->Next()) {
    mvcc::Revision rev;
    ChangeKind kind;
    if (!ParseRevisionKey(View(it->key()), &rev) ||
        !DecodeRevisionValue(View(it->value()), &kind, &user_key)) {
      return Corrupt("revision index entry", View(it->key()));
    }
    if (options.limit > 0 && static_cast<int64_t>(result.events.size()) >= options.limit &&
        rev.main != last_main) {
      result.next_revision = rev.main;
      break;
    }
    if (!range.Contains(user_key)) continue;

    if (rev.main == view.compacted) {
      // Compaction at this revision keeps only each key's last change in it, and not if that
      // is a delete. Apply that rule here too, so that the answer does not depend on how far
      // the physical compaction has got.
      if (kind == ChangeKind::kDelete) continue;
      std::unique_ptr<rocksdb::Iterator> hist(db_->NewIterator(point_ro));
      hist->Seek(HistoryKey(user_key, mvcc::Revision{rev.main, rev.sub + 1}));
      mvcc::Revision later;
      if (hist->Valid() && View(hist->key()).starts_with(HistoryKeyPrefix(user_key)) &&
          ParseHistoryKeyRevision(View(hist->key()), &later) && later.main == rev.main) {
        continue;
      }
      if (!hist->status().ok()) return FromRocks(hist->status(), "history read");
    }

    Event event;
    if (kind == ChangeKind::kPut) {
      absl::StatusOr<KeyValue> put = PutAt(view.snapshot.get(), nullptr, user_key, rev);
      if (!put.ok()) return put.status();
      event.kv = *std::move(put);
      event.type = Event::Type::kPut;
    } else {
      event.type = Event::Type::kDelete;
      event.kv.mod_revision = rev.main;
    }
    event.kv.key = user_key;
    // etcd's watch reads prev_kv with a Range at mod_revision - 1, which fails (and so gives
    // none) below the compacted revision, and skips the read for an event that creates the
    // key (the key may have existed then: deleted and put again in this revision).
    const bool creates =
        event.type == Event::Type::kPut && event.kv.create_revision == event.kv.mod_revision;
    if (options.prev_kv && !creates && rev.main - 1 >= view.compacted && rev.main > 1) {
      absl::StatusOr<std::optional<KeyValue>> prev =
          HistoryGet(view.snapshot.get(), nullptr, user_key, rev.main - 1);
      if (!prev.ok()) return prev.status();
      event.prev_kv = *std::move(prev);
    }
    result.events.push_back(std::move(event));
    last_main = rev.main;
  }
  if (!it->status().ok()) return FromRocks(it->status(), "events read");
  return result;
}

absl::StatusOr<KvHash> MvccStore::HashKV(int64_t rev) const {
  absl::ReaderMutexLock swap(&swap_mu_);
  const ReadView view = CurrentView();
  if (rev < 0) return absl::InvalidArgumentError("mvcc: negative revision");
  if (rev > 0 && rev <= view.compacted) return CompactedError();
  if (rev > view.revision) return FutureRevisionError();
  if (rev == 0) rev = view.revision;

  rocksdb::ReadOptions ro;
  ro.snapshot = view.snapshot.get();
  const std::string upper = KeySpaceEnd(kHistoryPrefix);
  const rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));

  Crc32c crc;
  crc.UpdateField("mvcc history");
  // Per key: the newest entry at or below the compacted revision, which compaction keeps
  // unless it is a tombstone; entries below it are hashed as if already gone.
  std::string group;
  std::string kept_key;
  std::string kept_value;
  bool has_kept = false;
  auto flush_kept = [&] {
    if (has_kept && !kept_value.empty() &&
        kept_value[0] != static_cast<char>(ChangeKind::kDelete)) {
      crc.UpdateField(kept_key);
      crc.UpdateField(kept_value);
    }
    has_kept = false;
  };
  for (it->Seek(std::string(1, kHistoryPrefix)); it->Valid(); it->Next()) {
    const std::string_view k = View(it->key());
    mvcc::Revision r;
    if (!ParseHistoryKeyRevision(k, &r)) return Corrupt("history key", k);
    const std::string_view prefix = k.substr(0, k.size() - 16);
    if (prefix != group) {
      flush_kept();
      group.assign(prefix);
    }
    if (r.main > rev) continue;
    if (r.main <= view.compacted) {
      kept_key.assign(k);
      kept_value.assign(View(it->value()));
      has_kept = true;
      continue;
    }
    flush_kept();
    crc.UpdateField(k);
    crc.UpdateField(View(it->value()));
  }
  flush_kept();
  if (!it->status().ok()) return FromRocks(it->status(), "hash read");
  return KvHash{.hash = crc.Value(), .compact_revision = view.compacted, .revision = rev};
}

}  // namespace mvcc

// MvccStore's compaction: the mark (ScheduleCompaction) and the bounded deletion batches.
#include <limits>

#include "kvstore/storage/key_codec.h"
#include "kvstore/storage/mvcc_internal.h"
#include "kvstore/storage/mvcc_store.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace mvcc {

using internal::Corrupt;
using internal::FromRocks;
using internal::View;

namespace {

// The revision just before `rev` in (main, sub) order.
Revision Before(Revision rev) {
  if (rev.sub > 0) return Revision{rev.main, rev.sub - 1};
  return Revision{rev.main - 1, std::numeric_limits<int64_t>::max()};
}

}  // namespace

absl::Status MvccStore::Compact(int64_t rev, std::optional<uint64_t> applied_index) {
  absl::Status s = ScheduleCompaction(rev, applied_index);
  if (!s.ok()) return s;
  return RunCompaction();
}

absl::Status MvccStore::ScheduleCompaction(int64_t rev, std::optional<uint64_t> applied_index) {
  absl::ReaderMutexLock swap(&swap_mu_);
  {
    absl::MutexLock l(&mu_);
    if (rev <= CompactMainRevisionLocked()) return CompactedError();
    if (rev > current_revision_) return FutureRevisionError();
  }
  rocksdb::WriteBatch batch;
  rocksdb::Status s = batch.Put(MetaKey(kMetaCompactScheduled), EncodeBigEndian64(rev));
  if (s.ok() && applied_index) {
    s = batch.Put(MetaKey(kMetaAppliedIndex), EncodeBigEndian64(*applied_index));
  }
  const rocksdb::WriteOptions wo = WriteOpts();
  if (s.ok()) s = db_->Write(wo, &batch);
  if (!s.ok()) return FromRocks(s, "scheduling compaction");
  absl::MutexLock l(&mu_);
  compacted_revision_ = rev;
  ever_compacted_ = true;
  if (applied_index) applied_index_ = *applied_index;
  return absl::OkStatus();
}

absl::Status MvccStore::RunCompaction() {
  absl::ReaderMutexLock swap(&swap_mu_);
  absl::MutexLock run(&compaction_mu_);
  while (true) {
    int64_t target = 0;
    int64_t finished = 0;
    {
      absl::MutexLock l(&mu_);
      target = compacted_revision_;
      finished = finished_compaction_;
    }
    if (finished >= target) return absl::OkStatus();
    std::optional<mvcc::Revision> cursor = mvcc::Revision{finished + 1, 0};
    while (cursor.has_value()) {
      absl::Status s = CompactionStep(target, &cursor);
      if (!s.ok()) return s;
    }
    const rocksdb::WriteOptions wo = WriteOpts();
    rocksdb::Status s = db_->Put(wo, MetaKey(kMetaCompactFinished), EncodeBigEndian64(target));
    if (!s.ok()) return FromRocks(s, "finishing compaction");
    absl::MutexLock l(&mu_);
    finished_compaction_ = target;
  }
}

// Every change e with revision in (finished, target] makes its key's previous version
// obsolete (a newer one exists at or below target), and a delete at or below target is
// obsolete itself. Deleting exactly those, in revision order, keeps for each key its newest
// version at or below target unless that is a tombstone, as etcd's compaction does; a key's
// tombstone and everything before it go in the same batch, so reads at or above target give
// the same answer at every step. Re-running a step deletes nothing that should stay.
absl::Status MvccStore::CompactionStep(int64_t target, std::optional<mvcc::Revision>* cursor) {
  std::shared_ptr<const rocksdb::Snapshot> snapshot = TakeSnapshot();
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.get();
  const std::string upper = RevisionKey(mvcc::Revision{target + 1, 0});
  const rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> changes(db_->NewIterator(ro));
  rocksdb::ReadOptions history_ro;
  history_ro.snapshot = snapshot.get();
  std::unique_ptr<rocksdb::Iterator> history(db_->NewIterator(history_ro));

  rocksdb::WriteBatch batch;
  rocksdb::Status s;
  std::string user_key;
  int examined = 0;
  changes->Seek(RevisionKey(**cursor));
  for (; changes->Valid() && examined < options_.compaction_batch_size && s.ok();
       changes->Next(), ++examined) {
    mvcc::Revision rev;
    ChangeKind kind;
    if (!ParseRevisionKey(View(changes->key()), &rev) ||
        !DecodeRevisionValue(View(changes->value()), &kind, &user_key)) {
      return Corrupt("revision index entry", View(changes->key()));
    }
    const std::string prefix = HistoryKeyPrefix(user_key);
    history->SeekForPrev(HistoryKey(user_key, Before(rev)));
    if (history->Valid() && View(history->key()).starts_with(prefix)) {
      mvcc::Revision obsolete;
      if (!ParseHistoryKeyRevision(View(history->key()), &obsolete)) {
        return Corrupt("history key", View(history->key()));
      }
      s = batch.Delete(history->key());
      if (s.ok()) s = batch.Delete(RevisionKey(obsolete));
    }
    if (!history->status().ok()) return FromRocks(history->status(), "compaction read");
    if (s.ok() && kind == ChangeKind::kDelete) {
      s = batch.Delete(HistoryKey(user_key, rev));
      if (s.ok()) s = batch.Delete(changes->key());
    }
  }
  if (!s.ok()) return FromRocks(s, "batching compaction");
  if (!changes->status().ok()) return FromRocks(changes->status(), "compaction read");
  if (changes->Valid()) {
    mvcc::Revision next;
    if (!ParseRevisionKey(View(changes->key()), &next)) {
      return Corrupt("revision index entry", View(changes->key()));
    }
    *cursor = next;
  } else {
    cursor->reset();
  }
  if (batch.Count() == 0) return absl::OkStatus();
  const rocksdb::WriteOptions wo = WriteOpts();
  return FromRocks(db_->Write(wo, &batch), "compaction write");
}

}  // namespace mvcc

// LazyIndexedBatch: a write group's RocksDB batch, indexed for reads only once a read needs
// it. Most groups (the server's Readies of plain puts) never read what they wrote, and
// indexing every put in a rocksdb::WriteBatchWithIndex was a fifth to a quarter of what
// applying a group cost (mvcc_apply_bench); a group whose transactions do read their own
// writes (a compare after another transaction's put, a range over keys the group changed)
// pays for the index from that read on, replaying what came before once.
//
// Only Put and Delete are batched; save points nest as WriteBatch's do.
//
// Thread-safety: none; the write group's thread uses it.
#ifndef KVSTORE_STORAGE_LAZY_INDEXED_BATCH_H_
#define KVSTORE_STORAGE_LAZY_INDEXED_BATCH_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "rocksdb/slice.h"
#include "rocksdb/status.h"
#include "rocksdb/utilities/write_batch_with_index.h"
#include "rocksdb/write_batch.h"

namespace mvcc::internal {

class LazyIndexedBatch {
 public:
  LazyIndexedBatch() = default;
  LazyIndexedBatch(const LazyIndexedBatch&) = delete;
  LazyIndexedBatch& operator=(const LazyIndexedBatch&) = delete;

  rocksdb::Status Put(const rocksdb::Slice& key, const rocksdb::Slice& value);
  rocksdb::Status Delete(const rocksdb::Slice& key);

  void SetSavePoint();
  // Drops the newest save point, keeping what was batched since.
  rocksdb::Status PopSavePoint();
  // Drops what was batched since the newest save point, and the save point.
  rocksdb::Status RollbackToSavePoint();

  // The batch, indexed, to read through (a key's latest change in it hides the database's);
  // built now if it was not yet. Null while nothing is batched: read the database alone.
  absl::StatusOr<rocksdb::WriteBatchWithIndex*> Overlay();

  // What to write.
  rocksdb::WriteBatch* Batch() {
    return indexed_ != nullptr ? indexed_->GetWriteBatch() : &plain_;
  }

 private:
  // Until the first Overlay(): the batch and, per open save point, its Count() then.
  rocksdb::WriteBatch plain_;
  std::vector<uint32_t> save_counts_;
  // From the first Overlay() on, everything is batched here instead.
  std::unique_ptr<rocksdb::WriteBatchWithIndex> indexed_;
};

}  // namespace mvcc::internal

#endif  // KVSTORE_STORAGE_LAZY_INDEXED_BATCH_H_

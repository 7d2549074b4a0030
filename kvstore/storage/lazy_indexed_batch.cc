#include "kvstore/storage/lazy_indexed_batch.h"

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "rocksdb/comparator.h"

namespace mvcc::internal {
namespace {

// Replays a plain batch into an indexed one, setting its save points at the same places.
class Replay : public rocksdb::WriteBatch::Handler {
 public:
  Replay(rocksdb::WriteBatchWithIndex* out, const std::vector<uint32_t>& save_counts)
      : out_(out), save_counts_(save_counts) {
    SavePointsUpTo(0);
  }

  rocksdb::Status PutCF(uint32_t cf, const rocksdb::Slice& key,
                        const rocksdb::Slice& value) override {
    if (cf != 0) return rocksdb::Status::NotSupported("column families");
    rocksdb::Status s = out_->Put(key, value);
    SavePointsUpTo(++count_);
    return s;
  }
  rocksdb::Status DeleteCF(uint32_t cf, const rocksdb::Slice& key) override {
    if (cf != 0) return rocksdb::Status::NotSupported("column families");
    rocksdb::Status s = out_->Delete(key);
    SavePointsUpTo(++count_);
    return s;
  }

 private:
  void SavePointsUpTo(uint32_t count) {
    while (next_ < save_counts_.size() && save_counts_[next_] == count) {
      out_->SetSavePoint();
      ++next_;
    }
  }

  rocksdb::WriteBatchWithIndex* const out_;
  const std::vector<uint32_t>& save_counts_;
  uint32_t count_ = 0;
  size_t next_ = 0;
};

}  // namespace

rocksdb::Status LazyIndexedBatch::Put(const rocksdb::Slice& key, const rocksdb::Slice& value) {
  return indexed_ != nullptr ? indexed_->Put(key, value) : plain_.Put(key, value);
}

rocksdb::Status LazyIndexedBatch::Delete(const rocksdb::Slice& key) {
  return indexed_ != nullptr ? indexed_->Delete(key) : plain_.Delete(key);
}

void LazyIndexedBatch::SetSavePoint() {
  if (indexed_ != nullptr) {
    indexed_->SetSavePoint();
    return;
  }
  plain_.SetSavePoint();
  save_counts_.push_back(plain_.Count());
}

rocksdb::Status LazyIndexedBatch::PopSavePoint() {
  if (indexed_ != nullptr) return indexed_->PopSavePoint();
  rocksdb::Status s = plain_.PopSavePoint();
  if (s.ok()) save_counts_.pop_back();
  return s;
}

rocksdb::Status LazyIndexedBatch::RollbackToSavePoint() {
  if (indexed_ != nullptr) return indexed_->RollbackToSavePoint();
  rocksdb::Status s = plain_.RollbackToSavePoint();
  if (s.ok()) save_counts_.pop_back();
  return s;
}

absl::StatusOr<rocksdb::WriteBatchWithIndex*> LazyIndexedBatch::Overlay() {
  if (indexed_ != nullptr) return indexed_.get();
  if (plain_.Count() == 0) return nullptr;
  auto indexed = std::make_unique<rocksdb::WriteBatchWithIndex>(rocksdb::BytewiseComparator(), 0,
                                                                /*overwrite_key=*/true);
  Replay replay(indexed.get(), save_counts_);
  if (rocksdb::Status s = plain_.Iterate(&replay); !s.ok()) {
    return absl::InternalError("mvcc: indexing a write batch: " + s.ToString());
  }
  indexed_ = std::move(indexed);
  plain_.Clear();
  save_counts_.clear();
  return indexed_.get();
}

}  // namespace mvcc::internal

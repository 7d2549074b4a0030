// Helpers shared by the MVCC store's source files (mvcc_store.cc, mvcc_read.cc,
// mvcc_compaction.cc). Not part of the store's interface.
#ifndef KVSTORE_STORAGE_MVCC_INTERNAL_H_
#define KVSTORE_STORAGE_MVCC_INTERNAL_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "rocksdb/slice.h"
#include "rocksdb/status.h"

namespace mvcc::internal {

// Debian's abseil has its own string_view type; the store's interface uses std's.
inline absl::string_view Absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

inline std::string_view View(const rocksdb::Slice& s) {
  return std::string_view(s.data(), s.size());
}

// A RocksDB failure while doing `what`: DATA_LOSS for corruption, INTERNAL otherwise.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);
// A stored record that does not decode (DATA_LOSS), naming its RocksDB key.
absl::Status Corrupt(absl::string_view what, std::string_view raw_key);

// The user-key range of a request, as etcd reads `key` and `range_end`.
struct KeyRange {
  enum class Kind { kSingle, kToEnd, kBounded, kEmpty };
  Kind kind;
  std::string_view begin;
  std::string_view end;  // kBounded only

  static KeyRange Of(std::string_view key, std::string_view range_end) {
    if (range_end.empty()) return {Kind::kSingle, key, {}};
    if (range_end == std::string_view("\0", 1)) return {Kind::kToEnd, key, {}};
    if (range_end <= key) return {Kind::kEmpty, key, {}};
    return {Kind::kBounded, key, range_end};
  }

  bool Contains(std::string_view k) const {
    switch (kind) {
      case Kind::kSingle:
        return k == begin;
      case Kind::kToEnd:
        return k >= begin;
      case Kind::kBounded:
        return k >= begin && k < end;
      case Kind::kEmpty:
        return false;
    }
    return false;
  }
};

}  // namespace mvcc::internal

#endif  // KVSTORE_STORAGE_MVCC_INTERNAL_H_

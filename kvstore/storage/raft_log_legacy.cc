#include "kvstore/storage/raft_log_legacy.h"

#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"

namespace kvstore::storage {
namespace {

namespace fs = std::filesystem;

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

absl::Status FromRocksDb(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat("raft log store: ", what, ": ", s.ToString());
  return s.IsCorruption() ? absl::DataLossError(msg) : absl::InternalError(msg);
}

// Reads the value under `key` into `*out` with `decode`; leaves `*out` alone if absent.
template <typename T, typename Decode>
absl::Status ReadValue(rocksdb::DB* db, absl::string_view key, Decode decode, T* out) {
  std::string value;
  const rocksdb::Status s = db->Get(rocksdb::ReadOptions(), ToSlice(key), &value);
  if (s.IsNotFound()) return absl::OkStatus();
  if (!s.ok()) return FromRocksDb(s, absl::StrCat("read ", key));
  absl::StatusOr<T> decoded = decode(key, value);
  if (!decoded.ok()) return decoded.status();
  *out = std::move(*decoded);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::optional<RaftLogContents>> ReadRocksDbRaftLog(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "CURRENT", ec)) return std::nullopt;
  rocksdb::Options options;
  // Only a torn last record of the RocksDB write-ahead log may be dropped.
  options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status opened = rocksdb::DB::OpenForReadOnly(options, dir, &raw);
  if (!opened.ok()) {
    const std::string msg =
        absl::StrCat("raft log store: cannot open the database in ", dir, ": ", opened.ToString());
    return opened.IsCorruption() ? absl::DataLossError(msg) : absl::FailedPreconditionError(msg);
  }
  std::unique_ptr<rocksdb::DB> db(raw);

  std::string format;
  if (absl::Status s = ReadValue(db.get(), kFormatKey, DecodeBytes, &format); !s.ok()) return s;
  if (format.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "raft log store: ", dir, " holds a RocksDB database that is not a Raft log store"));
  }
  if (format != kRocksDbFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("raft log store: ", dir, " has format \"", format, "\"; this build reads \"",
                     kRocksDbFormatVersion, "\" and \"", kFormatVersion, "\""));
  }
  RaftLogContents out;
  absl::Status s = ReadValue(db.get(), kHardStateKey, DecodeHardState, &out.hard_state);
  if (s.ok()) s = ReadValue(db.get(), kSnapshotMetaKey, DecodeSnapshotMeta, &out.snapshot_meta);
  if (s.ok()) s = ReadValue(db.get(), kSnapshotDataKey, DecodeBytes, &out.snapshot_data);
  if (s.ok()) s = ReadValue(db.get(), kCompactedKey, DecodeLogPosition, &out.compacted);
  if (!s.ok()) return s;

  // Every entry key starts with 'e'; "f" bounds them.
  const rocksdb::Slice upper("f");
  rocksdb::ReadOptions scan;
  scan.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(scan));
  uint64_t next = out.compacted.index + 1;
  for (it->Seek(ToSlice(EntryKey(0))); it->Valid(); it->Next(), ++next) {
    const absl::string_view key = ToView(it->key());
    const std::optional<uint64_t> index = ParseEntryKey(key);
    if (!index || *index != next) {
      return absl::DataLossError(absl::StrCat("raft log store: the log in ", dir, " holds ",
                                              DescribeKey(key), " where entry ", next,
                                              " belongs"));
    }
    absl::StatusOr<raft::Entry> e = DecodeEntryValue(key, ToView(it->value()));
    if (!e.ok()) return e.status();
    out.entries.push_back(std::move(*e));
  }
  if (absl::Status st = FromRocksDb(it->status(), "scan the log"); !st.ok()) return st;
  return out;
}

absl::Status RemoveRocksDbFiles(const std::string& dir) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const bool rocksdb_file =
        name == "CURRENT" || name == "IDENTITY" || name == "LOCK" ||
        absl::StartsWith(name, "LOG") || absl::StartsWith(name, "MANIFEST-") ||
        absl::StartsWith(name, "OPTIONS-") || absl::EndsWith(name, ".log") ||
        absl::EndsWith(name, ".sst") || absl::EndsWith(name, ".blob") ||
        absl::EndsWith(name, ".dbtmp");
    // CURRENT goes last: while it is there the database counts as present.
    if (rocksdb_file && name != "CURRENT") fs::remove(entry.path(), ec);
    if (ec) break;
  }
  if (!ec) fs::remove(fs::path(dir) / "CURRENT", ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("raft log store: cannot remove the old database in ", dir, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace kvstore::storage

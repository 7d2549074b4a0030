// The on-disk encoding of the Raft log store (see raft_log_store.h for how it is used).
//
// Items: what the store writes is a list of (key, value) items. The keys name what a value
// is: "e" + the entry index as 8 big-endian bytes for an entry, "m/..." for the rest. The
// store's write-ahead log records (wal.h) are lists of items; the RocksDB database of the
// first format (raft_log_legacy.h) held the same items as RocksDB keys and values.
//
// Values: a body of LEB128 varints (and raw bytes), then a CRC32C of key and body as
// 4 little-endian bytes. Covering the key as well means a value found under the wrong
// key fails its check like a flipped bit does. Every decoder checks the CRC first, then
// that the body parses exactly, and answers absl::DataLossError otherwise; none of them
// trusts a length read from disk before checking it against the bytes at hand.
//
// Free functions over bytes: no state, no I/O, safe to call from any thread. This layer
// deliberately depends on neither protobuf nor gRPC.
#ifndef KVSTORE_STORAGE_RAFT_CODEC_H_
#define KVSTORE_STORAGE_RAFT_CODEC_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kvstore/raft/types.h"

namespace kvstore::storage {

// CRC32C (Castagnoli polynomial, reflected, as in iSCSI, ext4 and RocksDB).
// Crc32cExtend(Crc32c(a), b) == Crc32c(a + b).
uint32_t Crc32cExtend(uint32_t crc, absl::string_view data);
inline uint32_t Crc32c(absl::string_view data) { return Crc32cExtend(0, data); }

// 4 little-endian bytes.
void PutFixed32(std::string* out, uint32_t v);
uint32_t DecodeFixed32(const char* p);

// Unsigned LEB128, at most 10 bytes for a uint64_t.
void PutVarint64(std::string* out, uint64_t v);
// Reads one varint from the front of `*in` and drops it from `*in`. False when the bytes
// end inside the varint or it does not fit in 64 bits.
bool GetVarint64(absl::string_view* in, uint64_t* v);

// --- Keys -------------------------------------------------------------------------------

inline constexpr char kEntryKeyPrefix = 'e';
inline constexpr size_t kEntryKeySize = 9;
// Marks the database as a Raft log store and names the encoding version.
inline constexpr absl::string_view kFormatKey = "m/format";
inline constexpr absl::string_view kHardStateKey = "m/hard_state";
// The entry just before the first one held: (index, term) of the last entry dropped by a
// snapshot or a compaction. Absent: (0, 0).
inline constexpr absl::string_view kCompactedKey = "m/compacted";
inline constexpr absl::string_view kSnapshotMetaKey = "m/snapshot_meta";
inline constexpr absl::string_view kSnapshotDataKey = "m/snapshot_data";
// Replaces the whole log with an empty one after a position (a snapshot was installed).
inline constexpr absl::string_view kLogResetKey = "m/log_reset";
// The state a log segment starts from (WalCheckpoint).
inline constexpr absl::string_view kCheckpointKey = "m/checkpoint";

std::string EntryKey(uint64_t index);
// The index of an entry key, or nullopt if `key` is not one.
std::optional<uint64_t> ParseEntryKey(absl::string_view key);
// A key as text fit for an error message ("e#42", "m/hard_state").
std::string DescribeKey(absl::string_view key);

// --- Values -----------------------------------------------------------------------------

// The log position of the entry before FirstIndex() (see kCompactedKey).
struct LogPosition {
  uint64_t index = 0;
  uint64_t term = 0;

  bool operator==(const LogPosition&) const = default;
};

// What kFormatKey holds in this version: items in write-ahead log segments.
inline constexpr absl::string_view kFormatVersion = "raft-log-store/2";
// The first format: items as keys and values of a RocksDB database.
inline constexpr absl::string_view kRocksDbFormatVersion = "raft-log-store/1";

// Where the log stood when a segment began: the compaction point and the last index. The
// entries between them are in earlier segments.
struct WalCheckpoint {
  LogPosition compacted;
  uint64_t last_index = 0;

  bool operator==(const WalCheckpoint&) const = default;
};

// Each Encode* returns the whole value to store under `key`, checksum included.
// Entries: the index lives in the key only.
std::string EncodeEntryValue(absl::string_view key, const raft::Entry& e);
absl::StatusOr<raft::Entry> DecodeEntryValue(absl::string_view key, absl::string_view value);

std::string EncodeHardState(absl::string_view key, const raft::HardState& hs);
absl::StatusOr<raft::HardState> DecodeHardState(absl::string_view key, absl::string_view value);

std::string EncodeLogPosition(absl::string_view key, const LogPosition& p);
absl::StatusOr<LogPosition> DecodeLogPosition(absl::string_view key, absl::string_view value);

std::string EncodeSnapshotMeta(absl::string_view key, const raft::SnapshotMeta& m);
absl::StatusOr<raft::SnapshotMeta> DecodeSnapshotMeta(absl::string_view key,
                                                      absl::string_view value);

std::string EncodeCheckpoint(absl::string_view key, const WalCheckpoint& c);
absl::StatusOr<WalCheckpoint> DecodeCheckpoint(absl::string_view key, absl::string_view value);

// Opaque bytes (the snapshot's data, the format marker), checksummed.
std::string EncodeBytes(absl::string_view key, absl::string_view bytes);
absl::StatusOr<std::string> DecodeBytes(absl::string_view key, absl::string_view value);

// --- Item lists -------------------------------------------------------------------------

// Appends one item: varint key size, key, varint value size, value.
void AppendItem(std::string* out, absl::string_view key, absl::string_view value);
// Reads the item at the front of `*in` and drops it from `*in`; false if it is malformed.
bool NextItem(absl::string_view* in, absl::string_view* key, absl::string_view* value);

}  // namespace kvstore::storage

#endif  // KVSTORE_STORAGE_RAFT_CODEC_H_

// Wal: an append-only log of opaque records in preallocated segment files, the way etcd's
// WAL keeps Raft's log. It knows nothing of Raft: RaftLogStore says what a record holds.
//
// Files: `dir`/wal.lock, locked (flock) while the log is open, and the segments
// `dir`/<seq>-<tag>.wal, both 16 hex digits. seq numbers the segments 1, 2, ...;
// tag is the caller's number for the segment (RaftLogStore: its last log index + 1 when
// the segment began), used by Release(). A segment is created under a temporary name,
// filled with its first record, synced and renamed, so it is either whole or absent. It is
// preallocated to Options::segment_bytes, so that an append does not change the file's
// size: an fdatasync then has no inode size to write (about 170 -> 115 us per sync on
// this machine's ext4).
//
// Records: [u32 length][u32 CRC32C][payload][zeros to an 8-byte boundary], integers little
// endian. The CRC covers the segment's seq, the length and the payload, so a record copied
// from another segment fails its check. A zero header (length 0) ends a segment: what
// follows the last record of a preallocated file reads as zeros.
//
// Damage. Open() reads every segment. A bad record (its CRC fails or it runs past the end
// of the file) in any segment but the last is DataLossError. In the last segment a bad
// record is the torn end of a write that was never synced, and so never acknowledged, if no
// valid record follows it; if one does, the bad one was synced once: DataLossError, as
// etcd's WAL refuses a CRC mismatch that is not a torn write. (A power loss that kept a
// later unsynced record and tore an earlier one looks the same, and is refused rather than
// guessed at.) A zero header ends the log as a torn write does: whatever follows it was
// never synced either. Open() zeroes everything after the last good record of the last
// segment, and appends there.
//
// Threads: not thread-safe; one thread makes every call.
#ifndef KVSTORE_STORAGE_WAL_H_
#define KVSTORE_STORAGE_WAL_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kvstore::storage {

class Wal {
 public:
  // Told of each change to the files after it happened; crash tests journal these to drop
  // what a power loss would.
  class FileEvents {
   public:
    virtual ~FileEvents() = default;
    // `path` now exists; none of its bytes are durable yet.
    virtual void Created(const std::string& path) = 0;
    // The first `bytes` bytes of `path` are durable.
    virtual void Synced(const std::string& path, uint64_t bytes) = 0;
    virtual void Deleted(const std::string& path) = 0;
  };

  struct Options {
    // Each segment is preallocated to this size; a record that does not fit in what is
    // left goes to a new segment (one larger than a whole segment gets a segment to itself).
    uint64_t segment_bytes = 64 << 20;
    // Not owned; null: none. Must outlive the Wal.
    FileEvents* events = nullptr;
  };

  // Opens the log in `dir` (which must exist) and calls `replay` with every record in order;
  // an error from `replay` stops the open and is returned. Leftovers of an interrupted
  // StartSegment() are removed (those of Release(): DropLeftovers()). A log without segments
  // is valid: the caller must StartSegment() before it can Append(). Records are at most
  // 4 GiB - 1 bytes (InvalidArgumentError).
  static absl::StatusOr<std::unique_ptr<Wal>> Open(
      const std::string& dir, const Options& options,
      const std::function<absl::Status(absl::string_view record)>& replay);

  Wal(const Wal&) = delete;
  Wal& operator=(const Wal&) = delete;
  ~Wal();

  // Whether a record of `size` bytes can go into the current segment (false if there is
  // none). A segment holding only its first record takes a record of any size.
  bool Fits(size_t size) const;
  // Syncs the current segment, then makes a new one whose first record is `first_record`
  // and which is tagged `tag`, and syncs it and the directory: afterwards everything
  // appended so far is durable.
  absl::Status StartSegment(uint64_t tag, absl::string_view first_record);
  // Appends to the current segment; with `sync` it is durable on return, and so is
  // everything appended before it. REQUIRES: Fits(record.size()) or a segment just started.
  absl::Status Append(absl::string_view record, bool sync);
  // Deletes the segments before the last one whose tag is at most `tag`.
  absl::Status Release(uint64_t tag);
  // Deletes the segments Open() found before a gap in the seqs (what an interrupted
  // Release() leaves): call once the replayed log is known to be whole without them.
  absl::Status DropLeftovers();

  // Segment files, oldest first (for tests and tools).
  std::vector<std::string> SegmentPaths() const;

 private:
  struct Segment {
    uint64_t seq;
    uint64_t tag;
  };

  Wal(std::string dir, const Options& options);

  std::string PathOf(const Segment& s) const;
  // Writes `data` at the current end of the current segment.
  absl::Status Write(absl::string_view data);
  absl::Status Sync();

  const std::string dir_;
  const Options options_;
  // Oldest first; the last one is being written. Consecutive seqs.
  std::vector<Segment> segments_;
  // Paths for DropLeftovers().
  std::vector<std::string> leftovers_;
  int lock_fd_ = -1;     // holds an flock on `dir`/wal.lock while open
  int fd_ = -1;          // of segments_.back(), or -1
  std::string path_;     // of segments_.back()
  uint64_t offset_ = 0;  // where the next record goes in it
  uint64_t first_record_end_ = 0;
  uint64_t synced_ = 0;  // bytes of it known durable
};

// The bytes Wal stores for `payload` in segment `seq` (exposed for tests that damage logs).
std::string FrameWalRecord(uint64_t seq, absl::string_view payload);

}  // namespace kvstore::storage

#endif  // KVSTORE_STORAGE_WAL_H_

// The bytes of a kvstore snapshot, as Maintenance.Snapshot streams them, `etcdctl snapshot
// save` stores them and `kvstore restore` reads them.
//
// Framing, as etcd's: the payload, then the SHA-256 of the payload (32 bytes). The payload's
// length is a multiple of 512, so the file is 32 bytes more than a multiple of 512: that is
// what `etcdctl snapshot save` checks before keeping a file ("sha256 checksum not found"
// otherwise), and how etcd's restore tells a snapshot with a trailer from a raw database
// file. etcd's payload is its bbolt file; ours is a POSIX ustar archive, so that
// `head -c -32 FILE | tar -tv` lists it:
//
//   kvstore-snapshot   the first entry: text lines "name value" (format, revision, ...)
//   mvcc/<file>        every file of an MvccStore checkpoint (MvccStore::CreateCheckpoint)
//   two zero blocks    the end of the archive
//
// Every header has mode 0644, owner 0 and mtime 0, so the archive depends only on the files.
// The checkpoint holds the store's applied index, lease records and compaction marks.
//
// Threads: a SnapshotWriter is used by one thread at a time; the functions are reentrant.
#ifndef KVSTORE_SERVER_SNAPSHOT_FORMAT_H_
#define KVSTORE_SERVER_SNAPSHOT_FORMAT_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvstore::server {

inline constexpr char kSnapshotFormat[] = "kvstore-snapshot-v1";
inline constexpr uint64_t kSnapshotBlock = 512;
inline constexpr uint64_t kSnapshotTrailerSize = 32;  // SHA-256

// What the first archive entry records about the checkpoint.
struct SnapshotInfo {
  int64_t revision = 0;          // the store revision the checkpoint holds
  int64_t compact_revision = 0;  // its compacted revision
  uint64_t member_id = 0;        // who took it (informational)
  uint64_t cluster_id = 0;
};

// Produces a snapshot's bytes from a checkpoint directory, chunk by chunk, reading each
// file as it goes. Ownership: the checkpoint directory must outlive the writer and stay
// unchanged (checkpoint files are immutable).
class SnapshotWriter {
 public:
  static absl::StatusOr<std::unique_ptr<SnapshotWriter>> Open(const std::string& checkpoint_dir,
                                                              const SnapshotInfo& info);
  ~SnapshotWriter();

  // Every byte the writer produces, trailer included.
  uint64_t size() const { return payload_size_ + kSnapshotTrailerSize; }
  // The payload bytes (size() minus the trailer).
  uint64_t payload_size() const { return payload_size_; }
  // The next at most `max_bytes` bytes (never empty before the end; the trailer comes alone,
  // as the last chunk); an empty string once everything has been produced.
  absl::StatusOr<std::string> Next(size_t max_bytes);

 private:
  struct Segment {
    std::string bytes;  // literal bytes, or
    std::string path;   // a file of `file_size` bytes
    uint64_t file_size = 0;
  };
  class Sha256;

  SnapshotWriter();

  std::vector<Segment> segments_;
  uint64_t payload_size_ = 0;
  size_t segment_ = 0;
  uint64_t offset_ = 0;  // within segments_[segment_]
  std::ifstream file_;   // open while in a file segment
  std::unique_ptr<Sha256> sha_;
  bool trailer_sent_ = false;
};

// Checks a snapshot file's framing and, unless `skip_hash_check`, its SHA-256; returns the
// payload's size. Errors (InvalidArgument / DataLoss / NotFound) say what is wrong, in
// etcd's words where etcd has them. With `skip_hash_check` a file without a trailer
// (a bare payload) is accepted too.
absl::StatusOr<uint64_t> VerifySnapshotFile(const std::string& path, bool skip_hash_check);

// Unpacks the checkpoint in the first `payload_size` bytes of `path` into `mvcc_dir`
// (created; it must not exist) and returns what the archive says about it. Anything but a
// well-formed archive of ours is refused (DataLoss), without writing outside `mvcc_dir`.
absl::StatusOr<SnapshotInfo> ExtractSnapshot(const std::string& path, uint64_t payload_size,
                                             const std::string& mvcc_dir);

// The 512-byte ustar header of a regular file (exposed for tests).
std::string UstarHeader(const std::string& name, uint64_t size);

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_SNAPSHOT_FORMAT_H_

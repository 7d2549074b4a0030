// The snapshot stream of the RaftPeer service (SendSnapshot in proto/raft/raft_peer.proto):
// a MsgSnap followed by the files of the leader's state machine checkpoint, in chunks that
// each carry a CRC-32C, closed by a SHA-256 of the whole stream.
//
// WriteSnapshotStream() produces the chunks from a checkpoint directory; a
// SnapshotReceiver checks them and writes the files into a directory of its own, which a
// receiving member later swaps in as its state machine (MvccStore::ReplaceWith).
//
// Threads: neither keeps state between calls beyond the receiver object, which one thread
// uses.
#ifndef KVSTORE_SERVER_SNAPSHOT_STREAM_H_
#define KVSTORE_SERVER_SNAPSHOT_STREAM_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kvstore/raft/types.h"
#include "raft/raft_peer.pb.h"

namespace kvstore::server {

class SnapshotStreamHash;

// Chunk size of the stream.
inline constexpr size_t kSnapshotChunkBytes = 1 << 20;

// Where a checked snapshot for `meta` waits in `snapshot_dir` until the Raft driver installs it.
std::string ReceivedSnapshotPath(const std::string& snapshot_dir, const raft::SnapshotMeta& meta);

struct StreamStats {
  uint64_t files = 0;
  uint64_t bytes = 0;
};

// Streams `m` and the regular files of `dir` through `write`, which returns false once the
// stream broke (then this returns UnavailableError).
absl::StatusOr<StreamStats> WriteSnapshotStream(
    const std::string& dir, uint64_t cluster_id, const raft::Message& m, size_t chunk_bytes,
    absl::FunctionRef<bool(const kvstore::raftpb::SnapshotChunk&)> write);

// Receives one stream into `dir` (created, must not exist).
class SnapshotReceiver {
 public:
  SnapshotReceiver(std::string dir, uint64_t cluster_id);
  ~SnapshotReceiver();

  // Checks one chunk and writes its data. An error ends the stream (the caller deletes dir).
  absl::Status Add(const kvstore::raftpb::SnapshotChunk& chunk);
  // After the last chunk: the files are synced; returns the MsgSnap.
  absl::StatusOr<raft::Message> Finish();

 private:
  absl::Status CloseFile();

  const std::string dir_;
  const uint64_t cluster_id_;
  std::unique_ptr<SnapshotStreamHash> sha_;
  bool started_ = false;
  bool last_seen_ = false;
  raft::Message message_;
  std::string file_;  // the file being written
  int fd_ = -1;
  uint64_t written_ = 0;  // bytes of file_ so far
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_SNAPSHOT_STREAM_H_

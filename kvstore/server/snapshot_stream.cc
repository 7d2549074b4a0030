#include "kvstore/server/snapshot_stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kvstore/server/peer_codec.h"
#include "kvstore/server/sha256.h"
#include "kvstore/storage/raft_codec.h"

namespace kvstore::server {

// The stream's hash: each file chunk as its file name, a NUL, then its bytes.
class SnapshotStreamHash : public Sha256Digest {
 public:
  void AddChunk(const std::string& file, const char* data, size_t size) {
    Update(file);
    Update(std::string_view("", 1));
    Update(std::string_view(data, size));
  }
  std::string Digest() { return Final(); }
};

std::string ReceivedSnapshotPath(const std::string& snapshot_dir, const raft::SnapshotMeta& meta) {
  return (std::filesystem::path(snapshot_dir) / absl::StrCat("recv-", meta.index, "-", meta.term))
      .string();
}

absl::StatusOr<StreamStats> WriteSnapshotStream(
    const std::string& dir, uint64_t cluster_id, const raft::Message& m, size_t chunk_bytes,
    absl::FunctionRef<bool(const kvstore::raftpb::SnapshotChunk&)> write) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) {
      return absl::FailedPreconditionError(
          absl::StrCat("snapshot: ", entry.path().string(), " is not a regular file"));
    }
    files.push_back(entry.path().filename().string());
  }
  if (ec) return absl::InternalError(absl::StrCat("snapshot: cannot list ", dir, ": ", ec.message()));
  std::sort(files.begin(), files.end());

  SnapshotStreamHash sha;
  kvstore::raftpb::SnapshotChunk chunk;
  chunk.set_cluster_id(cluster_id);
  ToProto(m, chunk.mutable_message());
  StreamStats stats;
  bool first = true;
  auto send = [&]() -> absl::Status {
    if (!first) {
      chunk.clear_cluster_id();
      chunk.clear_message();
    }
    first = false;
    if (!write(chunk)) return absl::UnavailableError("snapshot: the stream broke");
    return absl::OkStatus();
  };
  std::string buffer(chunk_bytes, '\0');
  for (const std::string& name : files) {
    std::ifstream in(std::filesystem::path(dir) / name, std::ios::binary);
    if (!in) return absl::InternalError(absl::StrCat("snapshot: cannot read ", dir, "/", name));
    uint64_t offset = 0;
    do {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const size_t n = static_cast<size_t>(in.gcount());
      if (in.bad()) return absl::InternalError(absl::StrCat("snapshot: cannot read ", name));
      chunk.set_file(name);
      chunk.set_offset(offset);
      chunk.set_data(buffer.data(), n);
      chunk.set_crc32c(storage::Crc32c(chunk.data()));
      sha.AddChunk(name, buffer.data(), n);
      if (absl::Status s = send(); !s.ok()) return s;
      offset += n;
      stats.bytes += n;
    } while (in.good());
    ++stats.files;
  }
  chunk.Clear();
  chunk.set_last(true);
  chunk.set_sha256(sha.Digest());
  if (absl::Status s = send(); !s.ok()) return s;
  return stats;
}

SnapshotReceiver::SnapshotReceiver(std::string dir, uint64_t cluster_id)
    : dir_(std::move(dir)), cluster_id_(cluster_id), sha_(std::make_unique<SnapshotStreamHash>()) {}

SnapshotReceiver::~SnapshotReceiver() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status SnapshotReceiver::CloseFile() {
  if (fd_ < 0) return absl::OkStatus();
  const int rc = ::fsync(fd_);
  ::close(fd_);
  fd_ = -1;
  if (rc != 0) return absl::InternalError(absl::StrCat("snapshot: cannot sync ", dir_, "/", file_));
  return absl::OkStatus();
}

absl::Status SnapshotReceiver::Add(const kvstore::raftpb::SnapshotChunk& c) {
  if (last_seen_) return absl::InvalidArgumentError("snapshot: a chunk after the last one");
  if (!started_) {
    if (c.cluster_id() != cluster_id_) {
      return absl::FailedPreconditionError("raft: snapshot from a member of another cluster");
    }
    absl::StatusOr<raft::Message> m = FromProto(c.message());
    if (!m.ok()) return m.status();
    if (m->type != raft::MessageType::kSnap) {
      return absl::InvalidArgumentError("snapshot: the stream does not start with a MsgSnap");
    }
    message_ = std::move(*m);
    std::error_code ec;
    if (!std::filesystem::create_directory(dir_, ec) || ec) {
      return absl::InternalError(absl::StrCat("snapshot: cannot create ", dir_, ": ", ec.message()));
    }
    started_ = true;
  }
  if (c.last()) {
    last_seen_ = true;
    if (absl::Status s = CloseFile(); !s.ok()) return s;
    if (c.sha256() != sha_->Digest()) {
      return absl::DataLossError("snapshot: the stream's SHA-256 does not match");
    }
    return absl::OkStatus();
  }
  const std::string& name = c.file();
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot: bad file name \"", name, "\""));
  }
  if (storage::Crc32c(c.data()) != c.crc32c()) {
    return absl::DataLossError(absl::StrCat("snapshot: chunk of ", name, " at ", c.offset(),
                                            " fails its CRC-32C"));
  }
  if (name != file_ || fd_ < 0) {
    if (name == file_ || c.offset() != 0) {
      return absl::InvalidArgumentError(absl::StrCat("snapshot: ", name, " out of order"));
    }
    if (absl::Status s = CloseFile(); !s.ok()) return s;
    file_ = name;
    written_ = 0;
    const std::string path = dir_ + "/" + name;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd_ < 0) return absl::InternalError(absl::StrCat("snapshot: cannot create ", path));
  }
  if (c.offset() != written_) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot: chunk of ", name, " at ",
                                                   c.offset(), ", expected ", written_));
  }
  const std::string& data = c.data();
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("snapshot: cannot write ", dir_, "/", name));
    }
    done += static_cast<size_t>(n);
  }
  written_ += data.size();
  sha_->AddChunk(name, data.data(), data.size());
  return absl::OkStatus();
}

absl::StatusOr<raft::Message> SnapshotReceiver::Finish() {
  if (!last_seen_) return absl::DataLossError("snapshot: the stream ended early");
  const int fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return absl::InternalError(absl::StrCat("snapshot: cannot open ", dir_));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return absl::InternalError(absl::StrCat("snapshot: cannot sync ", dir_));
  return message_;
}

}  // namespace kvstore::server

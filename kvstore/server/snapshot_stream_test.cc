// The snapshot stream: a checkpoint directory goes through WriteSnapshotStream and a
// SnapshotReceiver byte for byte; a flipped bit, a wrong hash, a bad name or a stream that
// ends early is refused.
#include "kvstore/server/snapshot_stream.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kvstore/storage/raft_codec.h"

namespace kvstore::server {
namespace {

class TempDir {
 public:
  TempDir() {
    std::string pattern = testing::TempDir() + "snapshot_stream_test.XXXXXX";
    EXPECT_NE(mkdtemp(pattern.data()), nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

raft::Message Snap() {
  raft::Message m;
  m.type = raft::MessageType::kSnap;
  m.from = 1;
  m.to = 2;
  m.term = 3;
  m.snapshot.meta.index = 1234;
  m.snapshot.meta.term = 3;
  m.snapshot.meta.conf_state.voters = {1, 2, 3};
  return m;
}

class SnapshotStreamTest : public testing::Test {
 protected:
  void SetUp() override {
    src_ = dir_.path() + "/src";
    std::filesystem::create_directory(src_);
    std::string big;
    for (int i = 0; i < 10000; ++i) big += static_cast<char>(i * 7 + i / 13);
    WriteFile(src_ + "/000001.sst", big);
    WriteFile(src_ + "/CURRENT", "MANIFEST-000002\n");
    WriteFile(src_ + "/EMPTY", "");
    WriteFile(src_ + "/exact", std::string(4096, 'x'));
  }

  std::vector<kvstore::raftpb::SnapshotChunk> Chunks() {
    std::vector<kvstore::raftpb::SnapshotChunk> chunks;
    absl::StatusOr<StreamStats> stats =
        WriteSnapshotStream(src_, 42, Snap(), 1024, [&](const kvstore::raftpb::SnapshotChunk& c) {
          chunks.push_back(c);
          return true;
        });
    EXPECT_TRUE(stats.ok()) << stats.status();
    if (stats.ok()) {
      EXPECT_EQ(stats->files, 4u);
      EXPECT_EQ(stats->bytes, 10000u + 16 + 4096);
    }
    return chunks;
  }

  absl::Status Receive(const std::vector<kvstore::raftpb::SnapshotChunk>& chunks,
                       raft::Message* out = nullptr) {
    SnapshotReceiver r(dir_.path() + "/dst" + std::to_string(++n_), 42);
    for (const kvstore::raftpb::SnapshotChunk& c : chunks) {
      if (absl::Status s = r.Add(c); !s.ok()) return s;
    }
    absl::StatusOr<raft::Message> m = r.Finish();
    if (!m.ok()) return m.status();
    if (out != nullptr) *out = *m;
    return absl::OkStatus();
  }

  TempDir dir_;
  std::string src_;
  int n_ = 0;
};

TEST_F(SnapshotStreamTest, RoundTripsEveryFile) {
  std::vector<kvstore::raftpb::SnapshotChunk> chunks = Chunks();
  EXPECT_EQ(chunks.size(), 10u + 1 + 1 + 5 + 1);  // 10 + CURRENT + EMPTY + 4 + 1 empty, last
  raft::Message m;
  ASSERT_TRUE(Receive(chunks, &m).ok());
  EXPECT_EQ(m.snapshot.meta.index, 1234u);
  EXPECT_EQ(m.snapshot.meta.conf_state.voters, (std::vector<uint64_t>{1, 2, 3}));
  for (const char* f : {"000001.sst", "CURRENT", "EMPTY", "exact"}) {
    EXPECT_EQ(ReadFile(dir_.path() + "/dst1/" + f), ReadFile(src_ + "/" + f)) << f;
  }
}

TEST_F(SnapshotStreamTest, RefusesDamagedStreams) {
  const std::vector<kvstore::raftpb::SnapshotChunk> good = Chunks();

  std::vector<kvstore::raftpb::SnapshotChunk> flipped = good;
  (*flipped[3].mutable_data())[100] ^= 1;
  EXPECT_EQ(Receive(flipped).code(), absl::StatusCode::kDataLoss);

  std::vector<kvstore::raftpb::SnapshotChunk> rehashed = good;
  (*rehashed[3].mutable_data())[100] ^= 1;
  rehashed[3].set_crc32c(storage::Crc32c(rehashed[3].data()));  // a consistent chunk...
  EXPECT_EQ(Receive(rehashed).code(), absl::StatusCode::kDataLoss);  // ...but not the stream

  std::vector<kvstore::raftpb::SnapshotChunk> dropped = good;
  dropped.erase(dropped.begin() + 4);
  EXPECT_FALSE(Receive(dropped).ok());

  std::vector<kvstore::raftpb::SnapshotChunk> early(good.begin(), good.end() - 1);
  EXPECT_EQ(Receive(early).code(), absl::StatusCode::kDataLoss);

  std::vector<kvstore::raftpb::SnapshotChunk> escaping = good;
  escaping[0].set_file("../evil");
  EXPECT_EQ(Receive(escaping).code(), absl::StatusCode::kInvalidArgument);

  std::vector<kvstore::raftpb::SnapshotChunk> foreign = good;
  foreign[0].set_cluster_id(7);
  EXPECT_EQ(Receive(foreign).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kvstore::server

// PeerFaults (test-only partitions): the file's ids are blocked, a rewrite takes effect
// once the reading is stale, an absent file blocks nobody, and a malformed one keeps the
// last good reading.
#include "kvstore/server/peer_faults.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace kvstore::server {
namespace {

class PeerFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("peer-faults-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "faults").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(const std::string& text) {
    std::ofstream(path_ + ".tmp") << text;
    std::filesystem::rename(path_ + ".tmp", path_);
  }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(PeerFaultsTest, BlocksTheIdsInTheFileAndFollowsRewrites) {
  // A zero interval: every lookup reads the file again.
  PeerFaults faults(path_, absl::ZeroDuration());
  EXPECT_FALSE(faults.Blocked(0xab));  // no file yet
  Write("ab\n1917df935f518fda 3\n");
  EXPECT_TRUE(faults.Blocked(0xab));
  EXPECT_TRUE(faults.Blocked(0x1917df935f518fda));
  EXPECT_TRUE(faults.Blocked(3));
  EXPECT_FALSE(faults.Blocked(4));
  Write("not-an-id\n");  // keeps the last good reading
  EXPECT_TRUE(faults.Blocked(0xab));
  Write("");
  EXPECT_FALSE(faults.Blocked(0xab));
  Write("4");
  EXPECT_TRUE(faults.Blocked(4));
  std::filesystem::remove(path_);  // no file: nobody
  EXPECT_FALSE(faults.Blocked(4));
}

TEST_F(PeerFaultsTest, ReadsAgainOnlyOnceTheReadingIsStale) {
  PeerFaults faults(path_, absl::Hours(1));
  Write("7");
  EXPECT_TRUE(faults.Blocked(7));
  Write("");
  EXPECT_TRUE(faults.Blocked(7));  // within the hour: the first reading stands
}

}  // namespace
}  // namespace kvstore::server

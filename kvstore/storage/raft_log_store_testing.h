// Test support shared by the raft log store's tests: temporary directories, opening a
// store inside a test, readable printing of the core's value types, and seeds.
//
// Test-only; gtest assertions are used throughout.
#ifndef KVSTORE_STORAGE_RAFT_LOG_STORE_TESTING_H_
#define KVSTORE_STORAGE_RAFT_LOG_STORE_TESTING_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "kvstore/raft/types.h"
#include "kvstore/storage/raft_log_store.h"

namespace raft {
// Readable failure messages for the core's value types (found by gtest through ADL).
inline void PrintTo(const Entry& e, std::ostream* os) {
  *os << "{index=" << e.index << " term=" << e.term << " type=" << static_cast<int>(e.type)
      << " data=" << e.data.size() << "B}";
}
inline void PrintTo(const HardState& hs, std::ostream* os) {
  *os << "{term=" << hs.term << " vote=" << hs.vote << " commit=" << hs.commit << "}";
}
inline void PrintTo(const Snapshot& s, std::ostream* os) {
  *os << "{index=" << s.meta.index << " term=" << s.meta.term
      << " voters=" << s.meta.conf_state.voters.size() << " data=" << s.data.size() << "B}";
}
}  // namespace raft

#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)

namespace kvstore::storage::raft_log_testing {

inline constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

// A fresh directory under $TMPDIR, removed with everything in it when this goes away.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "raft_log_store_test.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string Sub(absl::string_view name) const {
    return (std::filesystem::path(path_) / std::string(name)).string();
  }

 private:
  std::string path_;
};

// Opens the store in `dir`; on failure records a test failure and returns null.
inline std::unique_ptr<RaftLogStore> OpenStore(const std::string& dir,
                                               const RaftLogStore::Options& options = {}) {
  absl::StatusOr<std::unique_ptr<RaftLogStore>> store = RaftLogStore::Open(dir, options);
  if (!store.ok()) {
    ADD_FAILURE() << "open " << dir << ": " << store.status();
    return nullptr;
  }
  return std::move(*store);
}

// Entries first..last of `term`, each holding "<tag>entry-<index>".
inline std::vector<raft::Entry> MakeEntries(uint64_t first, uint64_t last, uint64_t term,
                                            absl::string_view tag = "") {
  std::vector<raft::Entry> out;
  for (uint64_t i = first; i <= last; ++i) {
    out.push_back(raft::Entry{.term = term, .index = i, .data = absl::StrCat(tag, "entry-", i)});
  }
  return out;
}

// $RAFT_LOG_STORE_TEST_SEED if set, else `fallback`: every random test prints its seed.
inline uint64_t TestSeed(uint64_t fallback) {
  const char* env = std::getenv("RAFT_LOG_STORE_TEST_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : fallback;
}

}  // namespace kvstore::storage::raft_log_testing

#endif  // KVSTORE_STORAGE_RAFT_LOG_STORE_TESTING_H_

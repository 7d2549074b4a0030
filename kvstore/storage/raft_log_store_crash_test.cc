// Crash tests: a child process appends with Save(sync=true) and acknowledges each Save on
// a pipe; the test SIGKILLs it at a random moment, optionally makes the disk forget what
// was not synced, reopens the store and checks that nothing acknowledged was lost.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kvstore/storage/raft_log_store.h"
#include "kvstore/storage/raft_log_store_testing.h"

extern char** environ;

namespace kvstore::storage {
namespace {

namespace fs = std::filesystem;
using raft_log_testing::kNoLimit;
using raft_log_testing::OpenStore;
using raft_log_testing::TempDir;
using raft_log_testing::TestSeed;

bool WriteAll(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Notes in a journal (outside the log) how many bytes of each file a sync has made
// durable, so that after the process is killed the test can drop the rest, as a power loss
// would. The journal is written with one write(2) per line, which survives SIGKILL.
//
// Lines: "C\t<path>" created, "S\t<bytes>\t<path>" synced up to <bytes>, "D\t<path>"
// deleted. Directory entries are taken as durable (the log fsyncs its directory after
// creating a segment); only file contents are forgotten.
class SyncJournal : public Wal::FileEvents {
 public:
  explicit SyncJournal(int fd) : fd_(fd) {}

  void Created(const std::string& path) override { Note(absl::StrCat("C\t", path)); }
  void Synced(const std::string& path, uint64_t bytes) override {
    Note(absl::StrCat("S\t", bytes, "\t", path));
  }
  void Deleted(const std::string& path) override { Note(absl::StrCat("D\t", path)); }

 private:
  void Note(const std::string& line) const {
    const std::string l = line + "\n";
    if (!WriteAll(fd_, l.data(), l.size())) std::_Exit(7);
  }

  const int fd_;
};

// Applies a journal: every file touched in it reads as zeros past what its last sync made
// durable (all of it, if it was never synced), as a preallocated file does after a power
// loss. Returns how many bytes were dropped.
uint64_t ForgetUnsynced(const std::string& journal) {
  std::map<std::string, uint64_t> durable;
  std::ifstream in(journal);
  std::string line;
  while (std::getline(in, line)) {
    const std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f[0] == "C" && f.size() == 2) {
      durable[f[1]] = 0;
    } else if (f[0] == "S" && f.size() == 3) {
      durable[f[2]] = std::strtoull(f[1].c_str(), nullptr, 10);
    } else if (f[0] == "D" && f.size() == 2) {
      durable.erase(f[1]);
    } else {
      ADD_FAILURE() << "bad journal line: " << line;
    }
  }
  uint64_t dropped = 0;
  for (const auto& [path, bytes] : durable) {
    std::string data;
    {
      std::ifstream f(path, std::ios::binary);
      if (!f) continue;
      data.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    const size_t end = data.find_last_not_of('\0') + 1;  // 0 if all zeros
    if (end <= bytes) continue;
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(bytes));
    const std::string zeros(end - bytes, '\0');
    f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    EXPECT_TRUE(f.good()) << path;
    dropped += end - bytes;
  }
  return dropped;
}

// The crash test's child runs this binary again with these set (a fresh process, as a
// restarted member is).
constexpr char kChildDirEnv[] = "RAFT_LOG_STORE_CRASH_DIR";
constexpr char kChildFdEnv[] = "RAFT_LOG_STORE_CRASH_FD";
constexpr char kChildTermEnv[] = "RAFT_LOG_STORE_CRASH_TERM";
constexpr char kChildJournalEnv[] = "RAFT_LOG_STORE_CRASH_JOURNAL";
constexpr char kChildTestName[] = "RaftLogStoreCrashTest.ChildAppendsUntilKilled";
constexpr uint64_t kCrashSegmentBytes = 64 << 10;

// What entry `index` of term `term` holds in the crash test: sizes vary from 0 to ~2 KiB.
std::string CrashEntryData(uint64_t index, uint64_t term) {
  std::string data = absl::StrCat(index, "/", term, "/");
  data.resize(data.size() + (index * 2654435761u) % 2000, static_cast<char>('a' + index % 26));
  return data;
}

TEST(RaftLogStoreCrashTest, ChildAppendsUntilKilled) {
  const char* dir = std::getenv(kChildDirEnv);
  if (dir == nullptr) GTEST_SKIP() << "runs only as the child of the SIGKILL tests below";
  const int fd = std::atoi(std::getenv(kChildFdEnv));
  const uint64_t term = std::strtoull(std::getenv(kChildTermEnv), nullptr, 10);
  // Small segments: the child begins new ones and deletes old ones as it goes.
  RaftLogStore::Options options{.wal = {.segment_bytes = kCrashSegmentBytes}};
  std::unique_ptr<SyncJournal> journal;
  if (const char* path = std::getenv(kChildJournalEnv); path != nullptr) {
    const int journal_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (journal_fd < 0) std::_Exit(8);
    journal = std::make_unique<SyncJournal>(journal_fd);
    options.wal.events = journal.get();
  }
  std::unique_ptr<RaftLogStore> store = OpenStore(dir, options);
  if (store == nullptr) std::_Exit(2);
  std::mt19937_64 rng(term);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < give_up) {
    const uint64_t first = store->LastIndex() + 1;
    const uint64_t last = first + rng() % 8;
    std::vector<raft::Entry> entries;
    for (uint64_t i = first; i <= last; ++i) {
      entries.push_back(raft::Entry{.term = term, .index = i, .data = CrashEntryData(i, term)});
    }
    const raft::HardState hs{.term = term, .vote = 1, .commit = last};
    if (absl::Status s = store->Save(&hs, entries, nullptr, /*sync=*/true); !s.ok()) {
      std::cerr << "child: " << s << "\n";
      std::_Exit(3);
    }
    // Acknowledged: from here on the entries must survive anything.
    if (!WriteAll(fd, &last, sizeof(last))) std::_Exit(4);
    if (last / 256 != first / 256 && last > 200) {
      if (absl::Status s = store->Compact(last - 128); !s.ok()) {
        std::cerr << "child: " << s << "\n";
        std::_Exit(5);
      }
    }
  }
  std::_Exit(6);
}

// Reads whatever 8-byte acknowledgements are available, waiting at most `timeout_ms`;
// false at end of file.
bool ReadAcks(int fd, int timeout_ms, std::string* pending, uint64_t* acked, int* count) {
  pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
  if (poll(&p, 1, timeout_ms) <= 0) return true;
  char buf[4096];
  const ssize_t n = read(fd, buf, sizeof(buf));
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return false;
  pending->append(buf, static_cast<size_t>(n));
  while (pending->size() >= sizeof(uint64_t)) {
    uint64_t v;
    std::memcpy(&v, pending->data(), sizeof(v));
    pending->erase(0, sizeof(v));
    *acked = std::max(*acked, v);
    ++*count;
  }
  return true;
}

// Rounds of: a child appends with Save(sync=true) and acknowledges each Save on a pipe; the
// test SIGKILLs it at a random moment (sometimes while it is still opening the store),
// optionally drops every byte not yet synced, reopens the store and checks that every
// acknowledged entry is there and intact, the log has no gaps, and each Save was atomic.
void RunCrashRounds(bool forget_unsynced, uint64_t seed) {
  std::mt19937_64 rng(seed);
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  const std::string journal = tmp.Sub("sync-journal");
  {
    std::unique_ptr<RaftLogStore> store = OpenStore(dir);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Bootstrap({1}));
  }

  constexpr int kRounds = 8;
  uint64_t acked = 1;  // the bootstrap snapshot
  uint64_t last_seen = 1;
  int total_acks = 0;
  uint64_t total_dropped = 0;
  for (uint64_t round = 1; round <= kRounds; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0) << std::strerror(errno);
    // Everything the child needs is built before fork(): after it, only async-signal-safe
    // calls until execve().
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "GTEST_", 6) != 0) env_strings.emplace_back(*e);
    }
    env_strings.push_back(absl::StrCat(kChildDirEnv, "=", dir));
    env_strings.push_back(absl::StrCat(kChildFdEnv, "=", fds[1]));
    env_strings.push_back(absl::StrCat(kChildTermEnv, "=", round + 1));
    if (forget_unsynced) env_strings.push_back(absl::StrCat(kChildJournalEnv, "=", journal));
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe";
    std::string filter = absl::StrCat("--gtest_filter=", kChildTestName);
    char* argv[] = {exe.data(), filter.data(), nullptr};
    const int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    ASSERT_GE(devnull, 0);

    const pid_t pid = fork();
    ASSERT_GE(pid, 0) << std::strerror(errno);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
      fcntl(fds[1], F_SETFD, 0);         // the ack pipe stays open across execve
      dup2(devnull, STDOUT_FILENO);
      execve(exe.c_str(), argv, envp.data());
      _exit(127);
    }
    close(fds[1]);
    close(devnull);

    std::string pending;
    int acks = 0;
    const bool early = rng() % 4 == 0;
    const auto spawn = std::chrono::steady_clock::now();
    bool open = true;
    if (!early) {
      while (open && acks == 0 &&
             std::chrono::steady_clock::now() - spawn < std::chrono::seconds(30)) {
        open = ReadAcks(fds[0], 100, &pending, &acked, &acks);
      }
      EXPECT_GT(acks, 0) << "the child made no progress";
    }
    const auto kill_at =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(rng() % (early ? 100 : 300));
    while (open && std::chrono::steady_clock::now() < kill_at) {
      open = ReadAcks(fds[0], 5, &pending, &acked, &acks);
    }
    kill(pid, SIGKILL);
    while (ReadAcks(fds[0], 1000, &pending, &acked, &acks)) {
    }
    close(fds[0]);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL)
        << "the child ended on its own, status " << wstatus;
    total_acks += acks;
    if (forget_unsynced) {
      total_dropped += ForgetUnsynced(journal);
      fs::remove(journal);
    }

    std::unique_ptr<RaftLogStore> store = OpenStore(dir);
    ASSERT_NE(store, nullptr);
    EXPECT_GE(store->LastIndex(), acked);
    EXPECT_LE(store->FirstIndex(), acked + 1);
    EXPECT_EQ(store->hard_state().commit, store->LastIndex());
    absl::StatusOr<std::vector<raft::Entry>> log =
        store->Entries(store->FirstIndex(), store->LastIndex() + 1, kNoLimit);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_EQ(log->size(), store->LastIndex() + 1 - store->FirstIndex());
    for (size_t k = 0; k < log->size(); ++k) {
      const raft::Entry& e = (*log)[k];
      ASSERT_EQ(e.index, store->FirstIndex() + k);
      ASSERT_EQ(e.data, CrashEntryData(e.index, e.term)) << "entry " << e.index;
      // Entries written this round carry its term; earlier ones an earlier term.
      ASSERT_EQ(e.term <= round, e.index <= last_seen) << "entry " << e.index;
      ASSERT_LE(e.term, round + 1);
    }
    last_seen = store->LastIndex();
    if (::testing::Test::HasFailure()) return;
  }
  EXPECT_GT(total_acks, kRounds) << "too little progress to mean anything";
  std::cerr << "crash test: " << kRounds << " kills, " << total_acks << " acknowledged saves, "
            << last_seen << " entries";
  if (forget_unsynced) std::cerr << ", " << total_dropped << " unsynced bytes dropped";
  std::cerr << "\n";
}

TEST(RaftLogStoreCrashTest, AcknowledgedEntriesSurviveSigkill) {
  const uint64_t seed = TestSeed(20240601);
  SCOPED_TRACE(absl::StrCat("seed ", seed, " (rerun with RAFT_LOG_STORE_TEST_SEED=", seed, ")"));
  RunCrashRounds(/*forget_unsynced=*/false, seed);
}

TEST(RaftLogStoreCrashTest, AcknowledgedEntriesSurviveSigkillAndLostPageCache) {
  const uint64_t seed = TestSeed(20240602);
  SCOPED_TRACE(absl::StrCat("seed ", seed, " (rerun with RAFT_LOG_STORE_TEST_SEED=", seed, ")"));
  RunCrashRounds(/*forget_unsynced=*/true, seed);
}

}  // namespace
}  // namespace kvstore::storage

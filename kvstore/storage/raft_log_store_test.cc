// RaftLogStore against MemoryStorage, across reopening, under corruption, and driving a
// real raft::Node. The SIGKILL tests are in raft_log_store_crash_test.cc.
#include "kvstore/storage/raft_log_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kvstore/raft/memory_storage.h"
#include "kvstore/raft/node.h"
#include "kvstore/storage/raft_codec.h"
#include "kvstore/storage/raft_log_store_testing.h"
#include "kvstore/storage/wal.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"

namespace kvstore::storage {
namespace {

namespace fs = std::filesystem;
using raft_log_testing::kNoLimit;
using raft_log_testing::MakeEntries;
using raft_log_testing::OpenStore;
using raft_log_testing::TempDir;
using raft_log_testing::TestSeed;

// The segment files of a closed store, oldest first.
std::vector<std::string> Segments(const std::string& dir) {
  std::vector<std::string> out;
  for (const fs::directory_entry& f : fs::directory_iterator(dir)) {
    if (f.path().extension() == ".wal") out.push_back(f.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytesAt(const std::string& path, uint64_t offset, absl::string_view bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// A record of a segment: where its frame starts and what it holds.
struct SegmentRecord {
  uint64_t offset;
  std::string payload;
};

// The records of a segment file, by its framing (wal.h): 8-byte header, 8-byte alignment.
std::vector<SegmentRecord> RecordsOf(const std::string& path) {
  const std::string data = ReadBytes(path);
  std::vector<SegmentRecord> out;
  uint64_t pos = 0;
  while (pos + 8 <= data.size()) {
    uint32_t length = 0;
    for (int k = 3; k >= 0; --k) length = length << 8 | static_cast<uint8_t>(data[pos + k]);
    if (length == 0 || pos + 8 + length > data.size()) break;
    out.push_back({pos, data.substr(pos + 8, length)});
    pos += (8 + length + 7) / 8 * 8;
  }
  return out;
}

// The seq a segment file's name gives.
uint64_t SeqOf(const std::string& path) {
  return std::stoull(fs::path(path).filename().string().substr(0, 16), nullptr, 16);
}

void FlipBitAt(const std::string& path, uint64_t offset, int bit) {
  const std::string data = ReadBytes(path);
  ASSERT_LT(offset, data.size());
  WriteBytesAt(path, offset, std::string(1, static_cast<char>(data[offset] ^ (1 << bit))));
}

// --- Basics -----------------------------------------------------------------------------

TEST(RaftLogStoreTest, NewStoreIsEmptyLikeMemoryStorage) {
  TempDir tmp;
  std::unique_ptr<RaftLogStore> store = OpenStore(tmp.Sub("log"));
  ASSERT_NE(store, nullptr);
  raft::MemoryStorage mem;
  EXPECT_EQ(store->FirstIndex(), 1u);
  EXPECT_EQ(store->LastIndex(), 0u);
  EXPECT_TRUE(store->hard_state().IsEmpty());
  absl::StatusOr<raft::Snapshot> snap = store->GetSnapshot();
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_TRUE(snap->IsEmpty());
  EXPECT_EQ(*snap, *mem.GetSnapshot());
  EXPECT_EQ(store->Term(0).value(), 0u);
  EXPECT_EQ(store->Term(1).status(), mem.Term(1).status());
  EXPECT_EQ(store->Entries(1, 2, kNoLimit).status(), mem.Entries(1, 2, kNoLimit).status());
  EXPECT_EQ(store->Entries(0, 1, kNoLimit).status(), raft::CompactedError());
}

TEST(RaftLogStoreTest, BootstrapWritesWhatMemoryStorageBootstrappedHolds) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  const std::vector<uint64_t> voters = {1, 2, 3};
  const raft::MemoryStorage mem = raft::MemoryStorage::Bootstrapped(voters);
  {
    std::unique_ptr<RaftLogStore> store = OpenStore(dir);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Bootstrap(voters));
  }
  std::unique_ptr<RaftLogStore> store = OpenStore(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->hard_state(), mem.hard_state());
  EXPECT_EQ(store->FirstIndex(), mem.FirstIndex());
  EXPECT_EQ(store->LastIndex(), mem.LastIndex());
  EXPECT_EQ(store->Term(1).value(), mem.Term(1).value());
  EXPECT_EQ(store->GetSnapshot().value(), mem.GetSnapshot().value());
  EXPECT_EQ(store->GetInitialState().value().conf_state, mem.GetInitialState().value().conf_state);
  EXPECT_EQ(store->GetInitialState().value().hard_state, mem.GetInitialState().value().hard_state);

  // Twice is an error, and so is bootstrapping a store that holds anything.
  EXPECT_TRUE(absl::IsFailedPrecondition(store->Bootstrap(voters)));
  std::unique_ptr<RaftLogStore> other = OpenStore(tmp.Sub("other"));
  ASSERT_NE(other, nullptr);
  const raft::HardState hs{.term = 2, .vote = 1};
  ASSERT_OK(other->Save(&hs, {}, nullptr, true));
  EXPECT_TRUE(absl::IsFailedPrecondition(other->Bootstrap(voters)));
  std::unique_ptr<RaftLogStore> third = OpenStore(tmp.Sub("third"));
  ASSERT_NE(third, nullptr);
  EXPECT_TRUE(absl::IsInvalidArgument(third->Bootstrap({})));
}

TEST(RaftLogStoreTest, OpenRejectsUnusableDirectories) {
  TempDir tmp;
  const std::string file = tmp.Sub("file");
  { std::ofstream(file) << "not a directory"; }
  absl::StatusOr<std::unique_ptr<RaftLogStore>> s = RaftLogStore::Open(file);
  EXPECT_TRUE(absl::IsFailedPrecondition(s.status())) << s.status();
  EXPECT_NE(s.status().message().find(file), std::string::npos) << s.status();
  s = RaftLogStore::Open(file + "/below");
  EXPECT_TRUE(absl::IsFailedPrecondition(s.status())) << s.status();

  // A RocksDB database that something else wrote.
  const std::string foreign = tmp.Sub("foreign");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, foreign, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "/registry/pods/x", "y").ok());
  }
  s = RaftLogStore::Open(foreign);
  EXPECT_TRUE(absl::IsFailedPrecondition(s.status())) << s.status();

  // A store already open (the log's lock).
  std::unique_ptr<RaftLogStore> first = OpenStore(tmp.Sub("log"));
  ASSERT_NE(first, nullptr);
  s = RaftLogStore::Open(tmp.Sub("log"));
  EXPECT_TRUE(absl::IsFailedPrecondition(s.status())) << s.status();
}

TEST(RaftLogStoreTest, SaveIsAllOrNothing) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  std::unique_ptr<RaftLogStore> store = OpenStore(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Bootstrap({1}));
  ASSERT_OK(store->Save(nullptr, MakeEntries(2, 10, 2), nullptr, true));
  const raft::HardState hs_before = store->hard_state();

  // A valid snapshot and hard state with entries that leave a gap after the snapshot.
  raft::Snapshot snap;
  snap.meta = {.index = 20, .term = 3, .conf_state = {.voters = {1}}};
  const raft::HardState hs{.term = 3, .vote = 1, .commit = 20};
  absl::Status s = store->Save(&hs, MakeEntries(22, 23, 3), &snap, true);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // Not consecutive.
  std::vector<raft::Entry> holes = MakeEntries(11, 13, 2);
  holes.erase(holes.begin() + 1);
  s = store->Save(&hs, holes, nullptr, true);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // Older than the stored snapshot.
  raft::Snapshot old = snap;
  old.meta.index = 0;
  s = store->Save(&hs, {}, &old, true);
  EXPECT_EQ(s, absl::FailedPreconditionError("raft: snapshot is out of date"));

  for (int reopen = 0; reopen < 2; ++reopen) {
    EXPECT_EQ(store->hard_state(), hs_before);
    EXPECT_EQ(store->FirstIndex(), 2u);
    EXPECT_EQ(store->LastIndex(), 10u);
    EXPECT_EQ(store->GetSnapshot().value().meta.index, 1u);
    store.reset();
    store = OpenStore(dir);
    ASSERT_NE(store, nullptr);
  }
}

// --- The same answers as MemoryStorage ----------------------------------------------------

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  // Uniform in [lo, hi]; lo if hi < lo.
  uint64_t Between(uint64_t lo, uint64_t hi) { return hi <= lo ? lo : lo + rng_() % (hi - lo + 1); }
  bool OneIn(uint64_t n) { return rng_() % n == 0; }
  std::string Data() {
    std::string s(OneIn(10) ? Between(100, 400) : Between(0, 40), '\0');
    for (char& c : s) c = static_cast<char>(rng_());
    return s;
  }
  raft::ConfState Conf() {
    raft::ConfState cs;
    for (uint64_t id = 1; id <= 5; ++id) {
      if (OneIn(2)) cs.voters.push_back(id);
      if (OneIn(4)) cs.learners.push_back(id + 10);
    }
    if (OneIn(4)) cs.voters_outgoing = {1, 2, 3};
    cs.auto_leave = OneIn(2);
    return cs;
  }

 private:
  std::mt19937_64 rng_;
};

// MemoryStorage's ApplySnapshot + Append + SetHardState, all or nothing: the reference for
// Save.
absl::Status ReferenceSave(raft::MemoryStorage& mem, const raft::HardState* hs,
                           const std::vector<raft::Entry>& entries, const raft::Snapshot* snap) {
  raft::MemoryStorage before = mem;
  absl::Status s;
  if (snap != nullptr) s = mem.ApplySnapshot(*snap);
  if (s.ok()) s = mem.Append(entries);
  if (!s.ok()) {
    mem = std::move(before);
    return s;
  }
  if (hs != nullptr) mem.SetHardState(*hs);
  return absl::OkStatus();
}

template <typename T>
void ExpectSameAnswer(const absl::StatusOr<T>& got, const absl::StatusOr<T>& want,
                      absl::string_view call) {
  EXPECT_EQ(got.status(), want.status()) << call;
  if (got.ok() && want.ok()) {
    EXPECT_EQ(*got, *want) << call;
  }
}

void ExpectSameState(const raft::MemoryStorage& mem, const RaftLogStore& store) {
  ASSERT_EQ(store.FirstIndex(), mem.FirstIndex());
  ASSERT_EQ(store.LastIndex(), mem.LastIndex());
  EXPECT_EQ(store.hard_state(), mem.hard_state());
  ExpectSameAnswer(store.GetSnapshot(), mem.GetSnapshot(), "GetSnapshot");
  absl::StatusOr<raft::InitialState> got = store.GetInitialState();
  absl::StatusOr<raft::InitialState> want = mem.GetInitialState();
  ASSERT_TRUE(got.ok() && want.ok());
  EXPECT_EQ(got->hard_state, want->hard_state);
  EXPECT_EQ(got->conf_state, want->conf_state);
  const uint64_t first = mem.FirstIndex();
  for (uint64_t i = first >= 2 ? first - 2 : 0; i <= mem.LastIndex() + 1; ++i) {
    ExpectSameAnswer(store.Term(i), mem.Term(i), absl::StrCat("Term(", i, ")"));
  }
  ExpectSameAnswer(store.Entries(first, mem.LastIndex() + 1, kNoLimit),
                   mem.Entries(first, mem.LastIndex() + 1, kNoLimit), "Entries(all)");
}

// What a random sequence exercised, so that a change that stops exercising something
// shows up in the test's output.
struct Coverage {
  int saves_ok = 0, saves_failed = 0, snapshots_installed = 0, truncations = 0;
  int compactions_ok = 0, snapshots_created = 0, reads = 0, reopens = 0;
};

void RunRandomSequence(uint64_t seed, const RaftLogStore::Options& options, int ops,
                       Coverage* cov) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  std::unique_ptr<RaftLogStore> store = OpenStore(dir, options);
  ASSERT_NE(store, nullptr);
  raft::MemoryStorage mem;
  Random r(seed);
  if (r.OneIn(2)) {
    ASSERT_OK(store->Bootstrap({1, 2, 3}));
    mem = raft::MemoryStorage::Bootstrapped({1, 2, 3});
  }
  for (int op = 0; op < ops; ++op) {
    SCOPED_TRACE(absl::StrCat("op ", op));
    const uint64_t first = mem.FirstIndex();
    const uint64_t last = mem.LastIndex();
    const uint64_t snap_index = mem.GetSnapshot().value().meta.index;
    const uint64_t dice = r.Between(0, 99);
    if (dice < 40) {
      std::optional<raft::HardState> hs;
      if (r.OneIn(2)) {
        hs = raft::HardState{
            .term = r.Between(0, 9), .vote = r.Between(0, 3), .commit = r.Between(0, last + 3)};
      }
      std::optional<raft::Snapshot> snap;
      uint64_t base = first - 1, end = last;
      if (r.OneIn(12)) {
        snap.emplace();
        snap->meta.index = r.Between(snap_index == 0 ? 1 : snap_index - 1, last + 5);
        snap->meta.term = r.Between(1, 9);
        snap->meta.conf_state = r.Conf();
        snap->data = r.Data();
        base = end = snap->meta.index;
      }
      std::vector<raft::Entry> entries;
      if (!r.OneIn(5)) {
        const uint64_t start = r.Between(base >= 2 ? base - 2 : 1, end + 2);
        uint64_t term = r.Between(1, 6);
        const uint64_t n = r.Between(0, 8);
        for (uint64_t k = 0; k < n; ++k) {
          if (r.OneIn(4)) term += r.Between(1, 2);
          entries.push_back(raft::Entry{
              .term = term,
              .index = start + k,
              .type = r.OneIn(8) ? raft::EntryType::kConfChange : raft::EntryType::kNormal,
              .data = r.Data()});
        }
      }
      const raft::HardState* hs_ptr = hs ? &*hs : nullptr;
      const raft::Snapshot* snap_ptr = snap ? &*snap : nullptr;
      const uint64_t last_before = mem.LastIndex();
      const absl::Status want = ReferenceSave(mem, hs_ptr, entries, snap_ptr);
      EXPECT_EQ(store->Save(hs_ptr, entries, snap_ptr, r.OneIn(4)), want) << "Save";
      ++(want.ok() ? cov->saves_ok : cov->saves_failed);
      if (want.ok() && snap) ++cov->snapshots_installed;
      if (want.ok() && !snap && !entries.empty() && entries.front().index <= last_before &&
          entries.back().index >= mem.FirstIndex()) {
        ++cov->truncations;
      }
    } else if (dice < 50) {
      const uint64_t i = r.Between(first >= 2 ? first - 2 : 0, last + 2);
      const absl::Status want = mem.Compact(i);
      EXPECT_EQ(store->Compact(i), want) << "Compact(" << i << ")";
      if (want.ok()) ++cov->compactions_ok;
    } else if (dice < 58) {
      const uint64_t i = r.Between(snap_index == 0 ? 0 : snap_index - 1, last + 2);
      // MemoryStorage reads outside its log for a snapshot below its compaction point.
      if (i > snap_index && i < first - 1) continue;
      const raft::ConfState cs = r.Conf();
      const std::string data = r.Data();
      const absl::Status want = mem.CreateSnapshot(i, cs, data);
      EXPECT_EQ(store->CreateSnapshot(i, cs, data), want) << "CreateSnapshot(" << i << ")";
      if (want.ok()) ++cov->snapshots_created;
    } else if (dice < 78) {
      const uint64_t lo = r.Between(first >= 2 ? first - 2 : 0, last + 2);
      const uint64_t hi = r.Between(lo >= 1 ? lo - 1 : 0, last + 3);
      const uint64_t limits[] = {0, 1, 60, 200, 1000, kNoLimit};
      const uint64_t max_bytes = limits[r.Between(0, std::size(limits) - 1)];
      ExpectSameAnswer(store->Entries(lo, hi, max_bytes), mem.Entries(lo, hi, max_bytes),
                       absl::StrCat("Entries(", lo, ", ", hi, ", ", max_bytes, ")"));
      ++cov->reads;
    } else if (dice < 95) {
      const uint64_t i = r.Between(0, last + 3);
      ExpectSameAnswer(store->Term(i), mem.Term(i), absl::StrCat("Term(", i, ")"));
      ++cov->reads;
    } else {
      ++cov->reopens;
      store.reset();
      store = OpenStore(dir, options);
      ASSERT_NE(store, nullptr);
    }
    ExpectSameState(mem, *store);
    if (::testing::Test::HasFailure()) return;
  }
  // And once more from disk.
  store.reset();
  store = OpenStore(dir, options);
  ASSERT_NE(store, nullptr);
  ExpectSameState(mem, *store);
}

TEST(RaftLogStoreTest, MatchesMemoryStorageOnRandomOperations) {
  const uint64_t base_seed = TestSeed(1);
  // Small segments make the log begin new ones and delete old ones all the time.
  const uint64_t segment_sizes[] = {512, 4 << 10, 64 << 20};
  Coverage cov;
  for (uint64_t k = 0; k < 12; ++k) {
    const uint64_t seed = base_seed + k;
    const uint64_t segment = segment_sizes[k % std::size(segment_sizes)];
    SCOPED_TRACE(absl::StrCat("seed ", seed, " (rerun with RAFT_LOG_STORE_TEST_SEED=", seed,
                              "), segments of ", segment, " bytes"));
    RunRandomSequence(seed, RaftLogStore::Options{.wal = {.segment_bytes = segment}}, 300, &cov);
    if (HasFailure()) return;
  }
  std::cerr << "random operations: " << cov.saves_ok << " saves (" << cov.snapshots_installed
            << " installing a snapshot, " << cov.truncations << " replacing a suffix), "
            << cov.saves_failed << " refused; " << cov.compactions_ok << " compactions, "
            << cov.snapshots_created << " snapshots created, " << cov.reads << " reads, "
            << cov.reopens << " reopens\n";
  EXPECT_GT(cov.snapshots_installed, 10);
  EXPECT_GT(cov.truncations, 50);
  EXPECT_GT(cov.compactions_ok, 50);
}

// --- Persistence -------------------------------------------------------------------------

TEST(RaftLogStoreTest, ReopenKeepsExactlyWhatWasSaved) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  raft::MemoryStorage mem = raft::MemoryStorage::Bootstrapped({1, 2, 3});
  std::unique_ptr<RaftLogStore> store = OpenStore(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Bootstrap({1, 2, 3}));
  auto save = [&](const raft::HardState* hs, const std::vector<raft::Entry>& entries,
                  const raft::Snapshot* snap) {
    ASSERT_OK(ReferenceSave(mem, hs, entries, snap));
    ASSERT_OK(store->Save(hs, entries, snap, true));
  };
  auto reopen_and_compare = [&] {
    store.reset();
    store = OpenStore(dir);
    ASSERT_NE(store, nullptr);
    ExpectSameState(mem, *store);
  };

  raft::HardState hs{.term = 2, .vote = 1, .commit = 5};
  save(&hs, MakeEntries(2, 200, 2, "a"), nullptr);
  reopen_and_compare();

  // A new leader replaces a short suffix...
  hs = {.term = 3, .vote = 2, .commit = 150};
  save(&hs, MakeEntries(190, 195, 3, "b"), nullptr);
  ASSERT_EQ(store->LastIndex(), 195u);
  reopen_and_compare();
  EXPECT_EQ(store->LastIndex(), 195u);
  EXPECT_EQ(store->Term(189).value(), 2u);
  EXPECT_EQ(store->Term(190).value(), 3u);
  EXPECT_TRUE(raft::IsCompacted(store->Term(0).status()));
  EXPECT_EQ(store->Term(196).status(), raft::UnavailableEntryError());

  // ... and a long one.
  hs = {.term = 4, .vote = 3, .commit = 60};
  save(&hs, MakeEntries(61, 70, 4, "c"), nullptr);
  reopen_and_compare();
  EXPECT_EQ(store->LastIndex(), 70u);
  EXPECT_EQ(store->Entries(61, 62, kNoLimit).value().front().data, "centry-61");

  // Compaction and a snapshot taken by the application.
  ASSERT_OK(mem.CreateSnapshot(60, {.voters = {1, 2, 3}}, "state@60"));
  ASSERT_OK(store->CreateSnapshot(60, {.voters = {1, 2, 3}}, "state@60"));
  ASSERT_OK(mem.Compact(55));
  ASSERT_OK(store->Compact(55));
  reopen_and_compare();
  EXPECT_EQ(store->FirstIndex(), 56u);
  EXPECT_EQ(store->GetSnapshot().value().data, "state@60");

  // A snapshot from the leader replaces the log, then entries follow it.
  raft::Snapshot snap;
  snap.meta = {.index = 300, .term = 5, .conf_state = {.voters = {1, 2, 3, 4}}};
  snap.data = "state@300";
  hs = {.term = 5, .vote = 0, .commit = 300};
  save(&hs, MakeEntries(301, 305, 5, "d"), &snap);
  reopen_and_compare();
  EXPECT_EQ(store->FirstIndex(), 301u);
  EXPECT_EQ(store->LastIndex(), 305u);
  EXPECT_EQ(store->GetSnapshot().value(), snap);
}

// A snapshot inside a long log: the record drops the old log and the new entries, written
// after it in the same record, replace part of what it covered.
TEST(RaftLogStoreTest, SnapshotInsideALongLogReplacesIt) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  std::unique_ptr<RaftLogStore> store = OpenStore(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Bootstrap({1}));
  ASSERT_OK(store->Save(nullptr, MakeEntries(2, 300, 2, "old"), nullptr, true));
  raft::Snapshot snap;
  snap.meta = {.index = 100, .term = 3, .conf_state = {.voters = {1}}};
  const raft::HardState hs{.term = 3, .vote = 0, .commit = 100};
  ASSERT_OK(store->Save(&hs, MakeEntries(101, 105, 3, "new"), &snap, true));
  for (int reopen = 0; reopen < 2; ++reopen) {
    EXPECT_EQ(store->FirstIndex(), 101u);
    EXPECT_EQ(store->LastIndex(), 105u);
    EXPECT_EQ(store->Term(100).value(), 3u);
    EXPECT_EQ(store->Entries(101, 106, kNoLimit).value(), MakeEntries(101, 105, 3, "new"));
    store.reset();
    store = OpenStore(dir);
    ASSERT_NE(store, nullptr);
  }
}

TEST(RaftLogStoreTest, CompactionDeletesSegmentsAndKeepsTheLog) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  const RaftLogStore::Options options{.wal = {.segment_bytes = 4 << 10}};
  std::unique_ptr<RaftLogStore> store = OpenStore(dir, options);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Bootstrap({1}));
  raft::MemoryStorage mem = raft::MemoryStorage::Bootstrapped({1});
  for (uint64_t i = 2; i <= 2001; i += 50) {
    const raft::HardState hs{.term = i / 500 + 1, .vote = 1, .commit = i};
    const std::vector<raft::Entry> entries = MakeEntries(i, i + 49, i / 500 + 1);
    ASSERT_OK(ReferenceSave(mem, &hs, entries, nullptr));
    ASSERT_OK(store->Save(&hs, entries, nullptr, false));
  }
  store.reset();
  const size_t before = Segments(dir).size();
  EXPECT_GT(before, 10u);

  store = OpenStore(dir, options);
  ASSERT_NE(store, nullptr);
  ExpectSameState(mem, *store);
  ASSERT_OK(mem.Compact(1900));
  ASSERT_OK(store->Compact(1900));
  store.reset();
  const size_t after = Segments(dir).size();
  EXPECT_LT(after, 5u) << "before compaction " << before;
  store = OpenStore(dir, options);
  ASSERT_NE(store, nullptr);
  ExpectSameState(mem, *store);
  EXPECT_EQ(store->Entries(1901, 1902, kNoLimit).value(), MakeEntries(1901, 1901, 4));

  // A snapshot from a leader drops every segment but the current one.
  raft::Snapshot snap;
  snap.meta = {.index = 5000, .term = 9, .conf_state = {.voters = {1}}};
  ASSERT_OK(store->Save(nullptr, {}, &snap, true));
  store.reset();
  EXPECT_EQ(Segments(dir).size(), 1u);
  store = OpenStore(dir, options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->FirstIndex(), 5001u);
  EXPECT_EQ(store->GetSnapshot().value(), snap);
}

// A store of the first format (a RocksDB database) is moved into the write-ahead log.
TEST(RaftLogStoreTest, OpeningARocksDbFormatStoreMovesItIntoTheLog) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  const raft::HardState hs{.term = 3, .vote = 2, .commit = 40};
  const raft::SnapshotMeta meta{.index = 20, .term = 2, .conf_state = {.voters = {1, 2, 3}}};
  const LogPosition compacted{.index = 15, .term = 2};
  const std::vector<raft::Entry> entries = MakeEntries(16, 50, 3, "old");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, dir, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    auto put = [&](absl::string_view key, const std::string& value) {
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size()), value)
                      .ok());
    };
    put(kFormatKey, EncodeBytes(kFormatKey, kRocksDbFormatVersion));
    put(kHardStateKey, EncodeHardState(kHardStateKey, hs));
    put(kSnapshotMetaKey, EncodeSnapshotMeta(kSnapshotMetaKey, meta));
    put(kSnapshotDataKey, EncodeBytes(kSnapshotDataKey, "state@20"));
    put(kCompactedKey, EncodeLogPosition(kCompactedKey, compacted));
    for (const raft::Entry& e : entries) put(EntryKey(e.index), EncodeEntryValue(EntryKey(e.index), e));
  }
  for (int reopen = 0; reopen < 2; ++reopen) {
    std::unique_ptr<RaftLogStore> store = OpenStore(dir);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->hard_state(), hs);
    EXPECT_EQ(store->snapshot_meta(), meta);
    EXPECT_EQ(store->GetSnapshot().value().data, "state@20");
    EXPECT_EQ(store->FirstIndex(), 16u);
    EXPECT_EQ(store->Term(15).value(), 2u);
    EXPECT_EQ(store->Entries(16, 51, kNoLimit).value(), entries);
    EXPECT_FALSE(fs::exists(fs::path(dir) / "CURRENT"));
    EXPECT_EQ(Segments(dir).size(), 1u);
  }

  // A RocksDB database with a gap in its log does not open, and is left as it was.
  const std::string gap = tmp.Sub("gap");
  {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(o, gap, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), std::string(kFormatKey),
                        EncodeBytes(kFormatKey, kRocksDbFormatVersion))
                    .ok());
    const raft::Entry e{.term = 1, .index = 2};
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), EntryKey(2), EncodeEntryValue(EntryKey(2), e)).ok());
  }
  const absl::Status s = RaftLogStore::Open(gap).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(fs::exists(fs::path(gap) / "CURRENT"));
}

// --- Damage ------------------------------------------------------------------------------

// A log of several segments: bootstrap, 29 entries, a snapshot at 10, compaction to 5.
class RaftLogStoreCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::unique_ptr<RaftLogStore> store = OpenStore(dir_, options_);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Bootstrap({1, 2, 3}));
    for (uint64_t i = 2; i <= 30; ++i) {
      const raft::HardState hs{.term = 2, .vote = 1, .commit = i - 1};
      ASSERT_OK(store->Save(&hs, MakeEntries(i, i, 2), nullptr, true));
    }
    ASSERT_OK(store->CreateSnapshot(10, {.voters = {1, 2, 3}}, "application state"));
    ASSERT_OK(store->Compact(5));
    store.reset();
    segments_ = Segments(dir_);
    ASSERT_GE(segments_.size(), 3u);
  }

  absl::Status OpenStatus() { return RaftLogStore::Open(dir_, options_).status(); }

  // Rewrites a record in place with a valid frame around `payload` (same size or smaller).
  void ReplaceRecord(const std::string& segment, const SegmentRecord& r,
                     absl::string_view payload) {
    std::string frame = FrameWalRecord(SeqOf(segment), payload);
    frame.resize((8 + r.payload.size() + 7) / 8 * 8, '\0');
    WriteBytesAt(segment, r.offset, frame);
  }

  TempDir tmp_;
  const std::string dir_ = tmp_.Sub("log");
  const RaftLogStore::Options options_{.wal = {.segment_bytes = 512}};
  std::vector<std::string> segments_;
};

TEST_F(RaftLogStoreCorruptionTest, EveryFlippedByteOfARecordIsDataLoss) {
  // A segment in the middle: nothing in it can be a torn write.
  const std::string segment = segments_[1];
  const std::vector<SegmentRecord> records = RecordsOf(segment);
  ASSERT_GE(records.size(), 2u);
  const SegmentRecord& r = records[1];
  for (uint64_t byte = r.offset; byte < r.offset + 8 + r.payload.size(); ++byte) {
    FlipBitAt(segment, byte, static_cast<int>(byte % 8));
    const absl::Status s = OpenStatus();
    EXPECT_TRUE(absl::IsDataLoss(s)) << "byte " << byte << ": " << s;
    EXPECT_NE(s.message().find(segment), std::string::npos) << s;
    FlipBitAt(segment, byte, static_cast<int>(byte % 8));  // repair
  }
  ASSERT_OK(OpenStatus());
}

TEST_F(RaftLogStoreCorruptionTest, DamageBeforeIntactRecordsOfTheLastSegmentIsDataLoss) {
  const std::string segment = segments_.back();
  const std::vector<SegmentRecord> records = RecordsOf(segment);
  ASSERT_GE(records.size(), 2u);
  FlipBitAt(segment, records[0].offset + 9, 1);
  const absl::Status s = OpenStatus();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("before records that are intact"), std::string::npos) << s;
}

// What a crash leaves at the end of the log: a record cut short, or half zeros. It was
// never acknowledged, so it goes; the log opens without it and goes on.
TEST_F(RaftLogStoreCorruptionTest, ATornLastRecordIsDropped) {
  uint64_t last = 0;
  {
    std::unique_ptr<RaftLogStore> store = OpenStore(dir_, options_);
    ASSERT_NE(store, nullptr);
    last = store->LastIndex();
  }
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    {
      std::unique_ptr<RaftLogStore> store = OpenStore(dir_, options_);
      ASSERT_NE(store, nullptr);
      ASSERT_OK(store->Save(nullptr, MakeEntries(last + 1, last + 1, 3, "torn"), nullptr, true));
    }
    const std::string segment = Segments(dir_).back();
    const std::vector<SegmentRecord> records = RecordsOf(segment);
    ASSERT_GE(records.size(), 2u);  // a checkpoint and the entry
    const SegmentRecord& r = records.back();
    if (round == 0) {
      WriteBytesAt(segment, r.offset + 8 + r.payload.size() / 2, std::string(8, '\0'));
    } else if (round == 1) {
      fs::resize_file(segment, r.offset + 8 + r.payload.size() / 2);
    } else {
      FlipBitAt(segment, r.offset + 8 + r.payload.size() - 1, 0);
    }
    std::unique_ptr<RaftLogStore> store = OpenStore(dir_, options_);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->LastIndex(), last);
    const raft::HardState hs{.term = 3, .vote = 1, .commit = last};
    ASSERT_OK(store->Save(&hs, MakeEntries(last + 1, last + 2, 3, "after"), nullptr, true));
    store.reset();
    store = OpenStore(dir_, options_);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->LastIndex(), last + 2);
    EXPECT_EQ(store->Entries(last + 2, last + 3, kNoLimit).value(),
              MakeEntries(last + 2, last + 2, 3, "after"));
    last = store->LastIndex();
  }
}

// What an interrupted StartSegment() or Release() leaves: a half-made segment under its
// temporary name, a new segment whose first record never reached the disk, and old
// segments a compaction did not finish deleting. Open() removes them and goes on.
TEST_F(RaftLogStoreCorruptionTest, LeftoversOfUnfinishedSegmentChangesAreRemoved) {
  uint64_t last = 0;
  {
    std::unique_ptr<RaftLogStore> store = OpenStore(dir_, options_);
    ASSERT_NE(store, nullptr);
    last = store->LastIndex();
    ASSERT_OK(store->Compact(last - 1));
  }
  segments_ = Segments(dir_);
  const std::string newest = segments_.back();
  const uint64_t seq = SeqOf(newest);
  const std::string temp =
      (fs::path(dir_) / absl::StrFormat("%016x-%016x.wal.tmp", seq + 1, last + 1)).string();
  const std::string unfinished =
      (fs::path(dir_) / absl::StrFormat("%016x-%016x.wal", seq + 1, last + 1)).string();
  const std::string stale = (fs::path(dir_) / absl::StrFormat("%016x-%016x.wal", 1, 1)).string();
  ASSERT_GT(SeqOf(segments_.front()), 2u);  // so that seq 1 is not part of the run
  { std::ofstream(temp) << "half a segment"; }
  { std::ofstream(unfinished) << std::string(4096, '\0'); }
  { std::ofstream(stale) << "an old segment's bytes"; }

  std::unique_ptr<RaftLogStore> store = OpenStore(dir_, options_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LastIndex(), last);
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(unfinished));
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_EQ(Segments(dir_), segments_);
  ASSERT_OK(store->Save(nullptr, MakeEntries(last + 1, last + 1, 3), nullptr, true));
  store.reset();
  store = OpenStore(dir_, options_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LastIndex(), last + 1);
}

TEST_F(RaftLogStoreCorruptionTest, CorruptValuesInsideRecordsAreDataLoss) {
  // Each record's frame is valid, but a value inside fails its own CRC.
  for (size_t k = 0; k < 2; ++k) {
    const std::string segment = segments_[k];
    const std::vector<SegmentRecord> records = RecordsOf(segment);
    std::string payload = records[0].payload;  // a checkpoint, ending with the snapshot data
    payload[payload.size() - 2] = static_cast<char>(payload[payload.size() - 2] ^ 4);
    ReplaceRecord(segment, records[0], payload);
    const absl::Status s = OpenStatus();
    EXPECT_TRUE(absl::IsDataLoss(s)) << s;
    EXPECT_NE(s.message().find("checksum mismatch"), std::string::npos) << s;
    ReplaceRecord(segment, records[0], records[0].payload);
  }
  ASSERT_OK(OpenStatus());
}

TEST_F(RaftLogStoreCorruptionTest, AMissingSegmentIsDataLoss) {
  fs::remove(segments_[1]);
  const absl::Status s = OpenStatus();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("missing"), std::string::npos) << s;
  // What is left stays, for whoever repairs it.
  EXPECT_TRUE(fs::exists(segments_[0]));
}

// A power loss can keep a later unsynced record and lose an earlier one (its page reads as
// zeros). The log ends at the lost one; the survivor after it must not come back once new
// records fill the gap.
TEST_F(RaftLogStoreCorruptionTest, ARecordAfterALostOneIsDropped) {
  // Segments with room for all three records.
  const RaftLogStore::Options roomy{.wal = {.segment_bytes = 64 << 10}};
  uint64_t last = 0;
  {
    std::unique_ptr<RaftLogStore> store = OpenStore(dir_, roomy);
    ASSERT_NE(store, nullptr);
    last = store->LastIndex();
    const raft::HardState hs{.term = 2, .vote = 1, .commit = last};
    ASSERT_OK(store->Save(&hs, MakeEntries(last + 1, last + 1, 2), nullptr, true));
    ASSERT_OK(store->Save(nullptr, MakeEntries(last + 2, last + 2, 2, "lost"), nullptr, false));
    ASSERT_OK(store->Save(nullptr, MakeEntries(last + 3, last + 3, 2, "kept"), nullptr, false));
  }
  const std::string segment = Segments(dir_).back();
  std::vector<SegmentRecord> records = RecordsOf(segment);
  ASSERT_GE(records.size(), 3u);
  const SegmentRecord lost = records[records.size() - 2];
  WriteBytesAt(segment, lost.offset, std::string((8 + lost.payload.size() + 7) / 8 * 8, '\0'));

  std::unique_ptr<RaftLogStore> store = OpenStore(dir_, roomy);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LastIndex(), last + 1);
  // A record of the lost one's size, ending where the survivor begins.
  ASSERT_OK(store->Save(nullptr, MakeEntries(last + 2, last + 2, 3, "lost"), nullptr, true));
  records = RecordsOf(segment);
  ASSERT_EQ(records.back().offset, lost.offset);
  store.reset();
  store = OpenStore(dir_, roomy);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LastIndex(), last + 2);
  EXPECT_EQ(store->Term(last + 2).value(), 3u);
}

// Segments that read as zeros (a disk that lost them) are not a new, empty log.
TEST_F(RaftLogStoreCorruptionTest, SegmentsWithoutRecordsAreDataLoss) {
  for (const std::string& segment : segments_) {
    WriteBytesAt(segment, 0, std::string(fs::file_size(segment), '\0'));
  }
  // Not the last one: that could be a segment whose first record never reached the disk.
  fs::remove(segments_.back());
  const absl::Status s = OpenStatus();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("hold no records"), std::string::npos) << s;
}

TEST_F(RaftLogStoreCorruptionTest, AGapInsideTheLogIsDataLoss) {
  // An entry record rewritten to hold an entry two places further on.
  const std::string segment = segments_[1];
  const std::vector<SegmentRecord> records = RecordsOf(segment);
  ASSERT_GE(records.size(), 2u);
  absl::string_view in = records[1].payload;
  absl::string_view key, value;
  ASSERT_TRUE(NextItem(&in, &key, &value));
  const std::optional<uint64_t> index = ParseEntryKey(key);
  ASSERT_TRUE(index.has_value());
  const raft::Entry moved{.term = 2, .index = *index + 2};
  std::string payload;
  AppendItem(&payload, EntryKey(moved.index), EncodeEntryValue(EntryKey(moved.index), moved));
  ASSERT_LE(payload.size(), records[1].payload.size());
  ReplaceRecord(segment, records[1], payload);
  const absl::Status s = OpenStatus();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("a gap"), std::string::npos) << s;
}

// --- A real Raft node --------------------------------------------------------------------

std::string EncodeState(const std::vector<std::string>& state) {
  std::string out;
  for (const std::string& s : state) {
    PutVarint64(&out, s.size());
    out += s;
  }
  return out;
}

std::vector<std::string> DecodeState(absl::string_view in) {
  std::vector<std::string> state;
  uint64_t n;
  while (GetVarint64(&in, &n) && n <= in.size()) {
    state.emplace_back(in.substr(0, n));
    in.remove_prefix(n);
  }
  return state;
}

// One member driven as the server's driver will: persist each Ready with Save(), then
// apply, then Advance(). A single voter sends no messages.
class SingleVoter {
 public:
  explicit SingleVoter(RaftLogStore* store) : store_(store) {}

  absl::Status Start() {
    absl::StatusOr<raft::Snapshot> snap = store_->GetSnapshot();
    if (!snap.ok()) return snap.status();
    state_ = DecodeState(snap->data);
    applied_ = snap->meta.index;
    raft::Config c;
    c.id = 1;
    c.storage = store_;
    c.applied = applied_;
    absl::StatusOr<std::unique_ptr<raft::Node>> node = raft::Node::Create(c);
    if (!node.ok()) return node.status();
    node_ = std::move(*node);
    return Drain();
  }

  absl::Status Drain() {
    while (node_->HasReady()) {
      raft::Ready rd = node_->GetReady();
      if (absl::Status s = store_->Save(rd); !s.ok()) return s;
      for (const raft::Entry& e : rd.committed_entries) {
        if (e.index <= applied_) continue;
        if (e.index != applied_ + 1) {
          return absl::InternalError(absl::StrCat("applied ", applied_, " then ", e.index));
        }
        applied_ = e.index;
        if (e.type == raft::EntryType::kNormal && !e.data.empty()) state_.push_back(e.data);
      }
      node_->Advance();
    }
    return absl::OkStatus();
  }

  absl::Status Propose(const std::string& data) {
    if (absl::Status s = node_->Propose(data); !s.ok()) return s;
    return Drain();
  }

  absl::Status SnapshotAndCompact(uint64_t keep) {
    absl::Status s =
        store_->CreateSnapshot(applied_, node_->Status().conf_state, EncodeState(state_));
    if (!s.ok()) return s;
    return store_->Compact(applied_ - keep);
  }

  raft::Node& node() { return *node_; }
  const std::vector<std::string>& state() const { return state_; }
  uint64_t applied() const { return applied_; }

 private:
  RaftLogStore* const store_;
  std::unique_ptr<raft::Node> node_;
  std::vector<std::string> state_;
  uint64_t applied_ = 0;
};

TEST(RaftLogStoreNodeTest, NodeRestartsFromTheStoreAndCarriesOn) {
  TempDir tmp;
  const std::string dir = tmp.Sub("log");
  std::unique_ptr<RaftLogStore> store = OpenStore(dir);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Bootstrap({1}));

  std::vector<std::string> want;
  raft::HardState hs_before;
  std::vector<raft::Entry> log_before;
  {
    SingleVoter member(store.get());
    ASSERT_OK(member.Start());
    member.node().Campaign();
    ASSERT_OK(member.Drain());
    ASSERT_EQ(member.node().Status().soft_state.role, raft::Role::kLeader);
    for (int i = 0; i < 40; ++i) {
      want.push_back(absl::StrCat("put-", i));
      ASSERT_OK(member.Propose(want.back()));
      if (i == 25) ASSERT_OK(member.SnapshotAndCompact(10));
    }
    ASSERT_EQ(member.state(), want);
    hs_before = member.node().Status().hard_state;
    EXPECT_EQ(store->hard_state(), hs_before);
    EXPECT_EQ(hs_before.commit, store->LastIndex());
    EXPECT_EQ(member.node().LastIndex(), store->LastIndex());
    log_before = store->Entries(store->FirstIndex(), store->LastIndex() + 1, kNoLimit).value();
  }
  const uint64_t first_before = store->FirstIndex();
  store.reset();

  store = OpenStore(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->hard_state(), hs_before);
  EXPECT_EQ(store->FirstIndex(), first_before);
  EXPECT_EQ(store->Entries(store->FirstIndex(), store->LastIndex() + 1, kNoLimit).value(),
            log_before);

  SingleVoter member(store.get());
  ASSERT_OK(member.Start());  // replays the committed entries after the snapshot
  EXPECT_EQ(member.state(), want);
  EXPECT_EQ(member.node().Status().hard_state, hs_before);
  member.node().Campaign();
  ASSERT_OK(member.Drain());
  ASSERT_EQ(member.node().Status().soft_state.role, raft::Role::kLeader);
  EXPECT_GT(member.node().Status().hard_state.term, hs_before.term);
  want.push_back("after-restart");
  ASSERT_OK(member.Propose(want.back()));
  EXPECT_EQ(member.state(), want);
  EXPECT_EQ(store->hard_state().commit, store->LastIndex());
  EXPECT_EQ(
      store->Entries(store->LastIndex(), store->LastIndex() + 1, kNoLimit).value().front().data,
      "after-restart");
}

}  // namespace
}  // namespace kvstore::storage

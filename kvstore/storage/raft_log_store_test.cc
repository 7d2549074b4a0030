// RaftLogStore against MemoryStorage, across reopening, under corruption, and driving a
// real raft::Node. The SIGKILL tests are in raft_log_store_crash_test.cc.
#include "kvstore/storage/raft_log_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kvstore/raft/memory_storage.h"
#include "kvstore/raft/node.h"
#include "kvstore/storage/raft_codec.h"
#include "kvstore/storage/raft_log_store_testing.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/perf_context.h"
#include "rocksdb/perf_level.h"

namespace kvstore::storage {
namespace {

namespace fs = std::filesystem;
using raft_log_testing::kNoLimit;
using raft_log_testing::MakeEntries;
using raft_log_testing::OpenStore;
using raft_log_testing::TempDir;
using raft_log_testing::TestSeed;

// Writes directly to the RocksDB database of a closed store, as a bad disk or a bug would.
void WithRawDb(const std::string& dir, const std::function<void(rocksdb::DB*)>& fn) {
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), dir, &raw);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::unique_ptr<rocksdb::DB> db(raw);
  fn(db.get());
  db->Close().PermitUncheckedError();
}

void FlipBit(const std::string& dir, absl::string_view key, size_t byte, int bit = 0) {
  WithRawDb(dir, [&](rocksdb::DB* db) {
    std::string value;
    ASSERT_TRUE(
        db->Get(rocksdb::ReadOptions(), rocksdb::Slice(key.data(), key.size()), &value).ok());
    ASSERT_LT(byte, value.size());
    value[byte] = static_cast<char>(value[byte] ^ (1 << bit));
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), rocksdb::Slice(key.data(), key.size()), value).ok());
  });
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

  // A store already open (RocksDB's lock).
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
  const uint64_t cache_sizes[] = {0, 300, 8 << 20};
  Coverage cov;
  for (uint64_t k = 0; k < 12; ++k) {
    const uint64_t seed = base_seed + k;
    const uint64_t cache = cache_sizes[k % std::size(cache_sizes)];
    SCOPED_TRACE(absl::StrCat("seed ", seed, " (rerun with RAFT_LOG_STORE_TEST_SEED=", seed,
                              "), tail cache ", cache, " bytes"));
    RunRandomSequence(seed, RaftLogStore::Options{.tail_cache_bytes = cache}, 300, &cov);
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

  // A new leader replaces a short suffix (point deletes of the stale entries)...
  hs = {.term = 3, .vote = 2, .commit = 150};
  save(&hs, MakeEntries(190, 195, 3, "b"), nullptr);
  ASSERT_EQ(store->LastIndex(), 195u);
  reopen_and_compare();
  EXPECT_EQ(store->LastIndex(), 195u);
  EXPECT_EQ(store->Term(189).value(), 2u);
  EXPECT_EQ(store->Term(190).value(), 3u);
  EXPECT_TRUE(raft::IsCompacted(store->Term(0).status()));
  EXPECT_EQ(store->Term(196).status(), raft::UnavailableEntryError());

  // ... and a long one (a range delete).
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

// A snapshot inside a long log: one range tombstone drops the old log and the new entries,
// written after it in the same batch, replace part of what it covers.
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
    store = OpenStore(dir, RaftLogStore::Options{.tail_cache_bytes = 0});
    ASSERT_NE(store, nullptr);
  }
}

TEST(RaftLogStoreTest, TermAndTailEntriesDoNotReadRocksDb) {
  TempDir tmp;
  std::unique_ptr<RaftLogStore> store =
      OpenStore(tmp.Sub("log"), RaftLogStore::Options{.tail_cache_bytes = 64 << 10});
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->Bootstrap({1}));
  for (uint64_t i = 2; i <= 2001; i += 100) {
    ASSERT_OK(store->Save(nullptr, MakeEntries(i, i + 99, i / 500 + 1), nullptr, false));
  }
  // About 30 bytes an entry: the cache holds the newest two thousand or so.
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kEnableCount);
  rocksdb::PerfContext* perf = rocksdb::get_perf_context();
  perf->Reset();
  for (uint64_t i = 1; i <= 2001; ++i) ASSERT_TRUE(store->Term(i).ok());
  absl::StatusOr<std::vector<raft::Entry>> tail = store->Entries(1900, 2002, kNoLimit);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(tail->size(), 102u);
  EXPECT_EQ(perf->get_from_memtable_count + perf->seek_on_memtable_count, 0u);

  // A new store over the same data has the same cache; a read far back goes to RocksDB.
  store.reset();
  store = OpenStore(tmp.Sub("log"), RaftLogStore::Options{.tail_cache_bytes = 1 << 10});
  ASSERT_NE(store, nullptr);
  perf->Reset();
  absl::StatusOr<std::vector<raft::Entry>> old = store->Entries(2, 12, kNoLimit);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->front().data, "entry-2");
  EXPECT_GT(perf->seek_on_memtable_count + perf->block_read_count, 0u);
  rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable);
}

// --- Corruption --------------------------------------------------------------------------

class RaftLogStoreCorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::unique_ptr<RaftLogStore> store = OpenStore(dir_);
    ASSERT_NE(store, nullptr);
    ASSERT_OK(store->Bootstrap({1, 2, 3}));
    const raft::HardState hs{.term = 2, .vote = 1, .commit = 20};
    ASSERT_OK(store->Save(&hs, MakeEntries(2, 30, 2), nullptr, true));
    ASSERT_OK(store->CreateSnapshot(10, {.voters = {1, 2, 3}}, "application state"));
    ASSERT_OK(store->Compact(5));
  }

  absl::Status OpenStatus() { return RaftLogStore::Open(dir_).status(); }

  TempDir tmp_;
  const std::string dir_ = tmp_.Sub("log");
};

TEST_F(RaftLogStoreCorruptionTest, EveryFlippedByteOfAnEntryIsDataLoss) {
  std::string value;
  WithRawDb(dir_, [&](rocksdb::DB* db) {
    ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), EntryKey(17), &value).ok());
  });
  for (size_t byte = 0; byte < value.size(); ++byte) {
    FlipBit(dir_, EntryKey(17), byte, static_cast<int>(byte % 8));
    const absl::Status s = OpenStatus();
    EXPECT_TRUE(absl::IsDataLoss(s)) << "byte " << byte << ": " << s;
    EXPECT_NE(s.message().find("e#17"), std::string::npos) << s;
    FlipBit(dir_, EntryKey(17), byte, static_cast<int>(byte % 8));  // repair
  }
  std::unique_ptr<RaftLogStore> store = OpenStore(dir_);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Entries(17, 18, kNoLimit).value().front().data, "entry-17");
}

TEST_F(RaftLogStoreCorruptionTest, CorruptMetadataIsDataLoss) {
  for (absl::string_view key : {kHardStateKey, kSnapshotMetaKey, kCompactedKey, kFormatKey}) {
    FlipBit(dir_, key, 0, 3);
    const absl::Status s = OpenStatus();
    EXPECT_TRUE(absl::IsDataLoss(s)) << key << ": " << s;
    FlipBit(dir_, key, 0, 3);
  }
  // The snapshot data is read when asked for, not at open.
  FlipBit(dir_, kSnapshotDataKey, 2);
  std::unique_ptr<RaftLogStore> store = OpenStore(dir_);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(absl::IsDataLoss(store->GetSnapshot().status()));
}

TEST_F(RaftLogStoreCorruptionTest, AMissingEntryIsDataLoss) {
  WithRawDb(dir_, [](rocksdb::DB* db) {
    ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), EntryKey(12)).ok());
  });
  const absl::Status s = OpenStatus();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_NE(s.message().find("entry 12"), std::string::npos) << s;
}

TEST_F(RaftLogStoreCorruptionTest, AnEntryBelowTheCompactionPointIsDataLoss) {
  WithRawDb(dir_, [](rocksdb::DB* db) {
    const std::string key = EntryKey(3);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), key,
                        EncodeEntryValue(key, raft::Entry{.term = 2, .index = 3}))
                    .ok());
  });
  EXPECT_TRUE(absl::IsDataLoss(OpenStatus()));
}

// RocksDB's write-ahead log, damaged in the middle: acknowledged writes would be lost, so
// the store must not open (RocksDB's default recovery would silently stop before the
// damage).
TEST_F(RaftLogStoreCorruptionTest, DamagedWriteAheadLogDoesNotOpen) {
  std::vector<fs::path> wals;
  for (const fs::directory_entry& f : fs::directory_iterator(dir_)) {
    if (f.path().extension() == ".log") wals.push_back(f.path());
  }
  ASSERT_FALSE(wals.empty());
  fs::path wal = *std::max_element(wals.begin(), wals.end(), [](const auto& a, const auto& b) {
    return fs::file_size(a) < fs::file_size(b);
  });
  const uintmax_t size = fs::file_size(wal);
  ASSERT_GT(size, 200u);
  {
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size / 2));
    char c;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(size / 2));
    f.put(static_cast<char>(c ^ 0x20));
  }
  const absl::Status s = OpenStatus();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
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

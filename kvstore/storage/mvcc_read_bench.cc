// What reads at the current revision cost the MVCC store: a point read of a random key and a
// range of 100 consecutive keys, on a store of 10,000 keys with 256-byte values, each key
// written once or 4 times (the second argument; nothing compacted, as between a server's
// periodic compactions). The store is flushed first, so that reads find the data in table
// files, as on a member that has run for a while. Items/s is keys read per second on one
// thread.
//
// The store lives under $TMPDIR, else /tmp.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include "kvstore/storage/mvcc_store.h"

namespace mvcc {
namespace {

namespace fs = std::filesystem;

constexpr int kKeys = 10000;
constexpr int kRangeKeys = 100;

std::string Key(int i) {
  char key[16];
  std::snprintf(key, sizeof key, "k%07d", i);
  return key;
}

// A store filled as the file comment says, removed when done.
class FilledStore {
 public:
  explicit FilledStore(int versions) {
    dir_ = (fs::temp_directory_path() / "mvcc_read_bench.XXXXXX").string();
    if (mkdtemp(dir_.data()) == nullptr) std::abort();
    absl::StatusOr<std::unique_ptr<MvccStore>> store =
        MvccStore::Open(dir_ + "/db", MvccStoreOptions{.use_wal = false});
    if (!store.ok()) std::abort();
    store_ = *std::move(store);
    const std::string value(256, 'v');
    for (int v = 0; v < versions; ++v) {
      for (int i = 0; i < kKeys; i += 100) {
        std::unique_ptr<WriteGroup> group = store_->BeginGroup();
        for (int j = i; j < i + 100; ++j) {
          WriteTxn txn = group->BeginWrite();
          if (!txn.Put(Key(j), value).ok() || !txn.End().ok()) std::abort();
        }
        if (!group->End().ok()) std::abort();
      }
    }
    if (!store_->Flush().ok()) std::abort();
  }
  ~FilledStore() {
    store_.reset();
    fs::remove_all(dir_);
  }
  const MvccStore& store() const { return *store_; }

 private:
  std::string dir_;
  std::unique_ptr<MvccStore> store_;
};

void BM_PointRead(benchmark::State& state) {
  FilledStore filled(static_cast<int>(state.range(0)));
  std::mt19937 rng(1);
  for (auto _ : state) {
    absl::StatusOr<RangeResult> r = filled.store().Range(Key(static_cast<int>(rng() % kKeys)), "");
    if (!r.ok() || r->kvs.size() != 1) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PointRead)->Arg(1)->Arg(4)->Unit(benchmark::kMicrosecond);

void BM_RangeRead(benchmark::State& state) {
  FilledStore filled(static_cast<int>(state.range(0)));
  std::mt19937 rng(1);
  for (auto _ : state) {
    const int first = static_cast<int>(rng() % (kKeys - kRangeKeys));
    absl::StatusOr<RangeResult> r = filled.store().Range(Key(first), Key(first + kRangeKeys));
    if (!r.ok() || r->kvs.size() != kRangeKeys) std::abort();
  }
  state.SetItemsProcessed(state.iterations() * kRangeKeys);
}
BENCHMARK(BM_RangeRead)->Arg(1)->Arg(4)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace mvcc

BENCHMARK_MAIN();

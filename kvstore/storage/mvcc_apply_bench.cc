// What applying a put costs the MVCC store, alone (one WriteTxn per put, as before write
// groups) and in write groups of 8 and 32 puts (as the server applies one Ready). Puts go
// to random keys among 10,000 or 100,000 (the second argument) with 256-byte values, as
// kvbench's put workload does, on a store that already holds 50,000 such puts, so that the
// memtable is as large as a running member's. With more keys than puts per memtable, more
// writes are a key's first in the memtable, which no insert hint helps. The third argument
// is GroupOptions::prev_values: 1 reads each replaced value, as the server does when a
// watcher wants prev_kv, 0 does not. Items/s is puts per second on one thread.
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

constexpr int kPrefill = 50000;

class Puts {
 public:
  explicit Puts(int keys) : keys_(keys) {}
  std::string Key() {
    char key[16];
    std::snprintf(key, sizeof key, "k%07u", static_cast<unsigned>(rng_() % keys_));
    return key;
  }
  const std::string& Value() const { return value_; }

 private:
  const unsigned keys_;
  std::mt19937 rng_{1};
  const std::string value_ = std::string(256, 'v');
};

void Put(WriteTxn txn, Puts& puts) {
  if (!txn.Put(puts.Key(), puts.Value()).ok() || !txn.End().ok()) std::abort();
}

void BM_ApplyPuts(benchmark::State& state) {
  const int group = static_cast<int>(state.range(0));
  std::string pattern = (fs::temp_directory_path() / "mvcc_apply_bench.XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) std::abort();
  {
    absl::StatusOr<std::unique_ptr<MvccStore>> store =
        MvccStore::Open(pattern + "/db", MvccStoreOptions{.use_wal = false});
    if (!store.ok()) std::abort();
    Puts puts(static_cast<int>(state.range(1)));
    for (int i = 0; i < kPrefill; ++i) Put((*store)->BeginWrite(), puts);
    uint64_t index = 0;
    for (auto _ : state) {
      if (group == 0) {
        WriteTxn txn = (*store)->BeginWrite();
        txn.SetAppliedIndex(++index);
        if (!txn.Put(puts.Key(), puts.Value()).ok() || !txn.End().ok()) std::abort();
        continue;
      }
      std::unique_ptr<WriteGroup> g =
          (*store)->BeginGroup(GroupOptions{.prev_values = state.range(2) != 0});
      for (int i = 0; i < group; ++i) Put(g->BeginWrite(), puts);
      g->SetAppliedIndex(++index);
      if (!g->End().ok()) std::abort();
    }
    state.SetItemsProcessed(state.iterations() * std::max(group, 1));
  }
  fs::remove_all(pattern);
}
// 0: each put its own transaction, committed alone. Each run applies the same 32,000 puts.
constexpr int kPuts = 32000;
BENCHMARK(BM_ApplyPuts)
    ->ArgsProduct({{0}, {10000, 100000}, {1}})
    ->Iterations(kPuts)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ApplyPuts)
    ->ArgsProduct({{8}, {10000, 100000}, {1, 0}})
    ->Iterations(kPuts / 8)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ApplyPuts)
    ->ArgsProduct({{32}, {10000, 100000}, {1, 0}})
    ->Iterations(kPuts / 32)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace mvcc

BENCHMARK_MAIN();

// What one Save() costs: synced (one fdatasync of the write-ahead log per call) and not,
// with 1 and 64 entries a call. The driver's group commit turns many proposals into one
// Save per Ready, so "entries=64,sync=1" against "entries=1,sync=1" is what group commit
// buys on this disk.
//
// The store lives under $RAFT_LOG_STORE_BENCH_DIR, else $TMPDIR, else /tmp: point it at
// the disk you care about (a tmpfs makes fsync free and the numbers meaningless).
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kvstore/storage/raft_log_store.h"

namespace kvstore::storage {
namespace {

namespace fs = std::filesystem;

std::string MakeBenchDir() {
  const char* base = std::getenv("RAFT_LOG_STORE_BENCH_DIR");
  std::string pattern = ((base != nullptr ? fs::path(base) : fs::temp_directory_path()) /
                         "raft_log_store_bench.XXXXXX")
                            .string();
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

// Args: entries per Save, bytes per entry, sync (0 or 1).
void BM_Save(benchmark::State& state) {
  const uint64_t entries_per_save = static_cast<uint64_t>(state.range(0));
  const size_t entry_bytes = static_cast<size_t>(state.range(1));
  const bool sync = state.range(2) != 0;
  const std::string dir = MakeBenchDir();
  if (dir.empty()) {
    state.SkipWithError(std::strerror(errno));
    return;
  }
  {
    absl::StatusOr<std::unique_ptr<RaftLogStore>> opened = RaftLogStore::Open(dir + "/log");
    if (!opened.ok() || !(*opened)->Bootstrap({1}).ok()) {
      state.SkipWithError("cannot open or bootstrap the store");
      return;
    }
    RaftLogStore& store = **opened;
    const std::string payload(entry_bytes, 'x');
    std::vector<raft::Entry> batch(entries_per_save);
    raft::HardState hs{.term = 2, .vote = 1, .commit = 1};
    uint64_t next = store.LastIndex() + 1;
    for (auto _ : state) {
      for (uint64_t k = 0; k < entries_per_save; ++k) {
        batch[k] = raft::Entry{.term = 2, .index = next + k, .data = payload};
      }
      next += entries_per_save;
      hs.commit = next - 1;
      if (absl::Status s = store.Save(&hs, batch, nullptr, sync); !s.ok()) {
        state.SkipWithError(std::string(s.message()).c_str());
        break;
      }
      // Keep the log about as long as a server keeps it between snapshots.
      if (next - store.FirstIndex() > 20000) {
        state.PauseTiming();
        if (!store.Compact(next - 1 - 5000).ok()) state.SkipWithError("compact failed");
        state.ResumeTiming();
      }
    }
    const double saves = static_cast<double>(state.iterations());
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(entries_per_save));
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(entries_per_save) *
                            static_cast<int64_t>(entry_bytes));
    state.counters["saves/s"] = benchmark::Counter(saves, benchmark::Counter::kIsRate);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

BENCHMARK(BM_Save)
    ->ArgNames({"entries", "bytes", "sync"})
    ->Args({1, 256, 1})
    ->Args({64, 256, 1})
    ->Args({1, 256, 0})
    ->Args({64, 256, 0})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace kvstore::storage

BENCHMARK_MAIN();

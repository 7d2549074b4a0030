// Proposals per second through a 3-member Raft cluster whose network and disks are in
// memory, so that what is measured is the consensus core itself: building Readies,
// appending, counting acknowledgements and handing out committed entries.
//
//   build/bin/raft_bench                      both variants
//   build/bin/raft_bench --benchmark_filter=Batched --benchmark_repetitions=5
//
// Unbatched (batch:1): one proposal at a time, each waiting for its commit: one append
// round trip and one Ready per proposal. Batched: `batch` proposals go in as one
// Node::ProposeBatch, so one Ready persists them all and one append carries them to each
// follower, as the server's driver does with the client requests that queue up.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "kvstore/raft/testing/scripted_network.h"

namespace raft {
namespace {

using testing::ScriptedNetwork;

// Clusters are rebuilt this often so that the in-memory logs stay small.
constexpr int64_t kProposalsPerCluster = 50000;

std::unique_ptr<ScriptedNetwork> ElectedCluster() {
  auto net = std::make_unique<ScriptedNetwork>(3);
  if (!net->Elect(1)) std::abort();
  return net;
}

void BM_Proposals(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const std::string payload(128, 'x');
  std::unique_ptr<ScriptedNetwork> net = ElectedCluster();
  int64_t in_cluster = 0;
  int64_t proposed = 0;
  for (auto _ : state) {
    if (in_cluster >= kProposalsPerCluster) {
      state.PauseTiming();
      net = ElectedCluster();
      in_cluster = 0;
      state.ResumeTiming();
    }
    if (batch == 1) {
      if (!net->node(1).Propose(payload).ok()) std::abort();
    } else if (!net->node(1).ProposeBatch(std::vector<std::string>(batch, payload)).ok()) {
      std::abort();
    }
    net->Stabilize();
    in_cluster += batch;
    proposed += batch;
  }
  if (net->host(3).applied_index() < net->host(1).applied_index()) {
    state.SkipWithError("followers did not apply everything");
  }
  state.counters["proposals/s"] =
      benchmark::Counter(static_cast<double>(proposed), benchmark::Counter::kIsRate);
}

BENCHMARK(BM_Proposals)->ArgName("batch")->Arg(1)->Arg(16)->Arg(256);

}  // namespace
}  // namespace raft

BENCHMARK_MAIN();

// Runs the seeded Raft simulation in CI. The seeds are split by cluster size so that ctest
// can run the shards in parallel. A failure prints the command that replays it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <string>

#include "kvstore/raft/sim/simulator.h"

namespace raft::sim {
namespace {

// RAFT_SIM_SEEDS overrides how many seeds each size runs (CI: 500 a size, 2,000 in all).
int SeedsPerSize() {
  const char* env = std::getenv("RAFT_SIM_SEEDS");
  return env != nullptr ? std::atoi(env) : 500;
}

SimResult RunSeeds(const SimOptions& base, uint64_t first_seed, int runs) {
  SimResult total;
  for (int i = 0; i < runs; ++i) {
    SimOptions o = base;
    o.seed = first_seed + i;
    SimResult r = RunSimulation(o);
    EXPECT_TRUE(r.ok) << r.violation << "\n  settings: " << r.config
                      << "\n  replay: " << ReplayCommand(o);
    if (!r.ok) break;
    total.committed += r.committed;
    total.reads_checked += r.reads_checked;
    total.leaders += r.leaders;
    total.crashes += r.crashes;
    total.conf_changes += r.conf_changes;
    total.snapshots_sent += r.snapshots_sent;
    total.partitions += r.partitions;
  }
  std::cout << runs << " runs of " << base.cluster_size << " members"
            << (base.leader_churn ? " (leader churn)" : "") << ": committed " << total.committed
            << ", reads checked " << total.reads_checked << ", leaders " << total.leaders
            << ", crashes " << total.crashes << ", partitions " << total.partitions
            << ", membership changes " << total.conf_changes << ", snapshots sent "
            << total.snapshots_sent << "\n";
  return total;
}

void RunSize(int size) {
  SimOptions o;
  o.cluster_size = size;
  RunSeeds(o, 1000 * size, SeedsPerSize());
}

TEST(SimulationTest, Size1) { RunSize(1); }
TEST(SimulationTest, Size3) { RunSize(3); }
TEST(SimulationTest, Size5) { RunSize(5); }
TEST(SimulationTest, Size7) { RunSize(7); }

// The figure-8 nemesis, without planted bugs, must find nothing either.
TEST(SimulationTest, LeaderChurn) {
  SimOptions o;
  o.leader_churn = true;
  o.fault_intensity = 3.0;
  for (int size : {3, 5}) {
    o.cluster_size = size;
    RunSeeds(o, 50000 + 1000 * size, SeedsPerSize() / 4);
  }
}

// Each planted bug must be caught: the simulation is only as good as the bugs it finds.
void ExpectCaught(SimOptions o, int max_seeds, const std::string& property) {
  for (int i = 0; i < max_seeds; ++i) {
    o.seed = 7000 + i;
    SimResult r = RunSimulation(o);
    if (r.ok) continue;
    EXPECT_NE(r.violation.find(property), std::string::npos)
        << "caught, but as: " << r.violation << "\n  replay: " << ReplayCommand(o);
    std::cout << PlantedBugName(o.planted_bug) << " caught after " << (i + 1)
              << " runs: " << r.violation << "\n  replay: " << ReplayCommand(o) << "\n";
    return;
  }
  ADD_FAILURE() << PlantedBugName(o.planted_bug) << " was not caught in " << max_seeds << " runs";
}

TEST(PlantedBugTest, TwoVotesInOneTermIsCaught) {
  ExpectCaught({.cluster_size = 5, .planted_bug = PlantedBug::kGrantTwoVotesInOneTerm}, 200,
               "election safety");
}

TEST(PlantedBugTest, ReadIndexWithoutHeartbeatIsCaught) {
  ExpectCaught({.cluster_size = 3, .planted_bug = PlantedBug::kReadIndexWithoutHeartbeat}, 200,
               "linearizable read");
}

// A leader that commits an earlier term's entry by counting loses it when a leader with a
// different entry at that index takes over: the new leader lacks a committed entry.
TEST(PlantedBugTest, CommitOfPreviousTermEntryByCountingIsCaught) {
  ExpectCaught({.cluster_size = 3,
                .planted_bug = PlantedBug::kCommitPreviousTermByCounting,
                .fault_intensity = 3.0,
                .leader_churn = true},
               1000, "leader completeness");
}

}  // namespace
}  // namespace raft::sim

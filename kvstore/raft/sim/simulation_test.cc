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

void RunSeeds(int size) {
  SimResult total;
  for (int i = 0; i < SeedsPerSize(); ++i) {
    SimOptions o;
    o.seed = 1000 * size + i;
    o.cluster_size = size;
    SimResult r = RunSimulation(o);
    ASSERT_TRUE(r.ok) << r.violation << "\n  settings: " << r.config
                      << "\n  replay: " << ReplayCommand(o);
    total.committed += r.committed;
    total.reads_checked += r.reads_checked;
    total.leaders += r.leaders;
    total.crashes += r.crashes;
    total.conf_changes += r.conf_changes;
    total.snapshots_sent += r.snapshots_sent;
    total.partitions += r.partitions;
  }
  std::cout << SeedsPerSize() << " runs of " << size << " members: committed "
            << total.committed << ", reads checked " << total.reads_checked << ", leaders "
            << total.leaders << ", crashes " << total.crashes << ", partitions "
            << total.partitions << ", membership changes " << total.conf_changes
            << ", snapshots sent " << total.snapshots_sent << "\n";
}

TEST(SimulationTest, Size1) { RunSeeds(1); }
TEST(SimulationTest, Size3) { RunSeeds(3); }
TEST(SimulationTest, Size5) { RunSeeds(5); }
TEST(SimulationTest, Size7) { RunSeeds(7); }

// Each planted bug must be caught: the simulation is only as good as the bugs it finds.
void ExpectCaught(PlantedBug bug, int size, double intensity, int max_seeds,
                  const std::string& property) {
  for (int i = 0; i < max_seeds; ++i) {
    SimOptions o;
    o.seed = 7000 + i;
    o.cluster_size = size;
    o.fault_intensity = intensity;
    o.planted_bug = bug;
    SimResult r = RunSimulation(o);
    if (r.ok) continue;
    EXPECT_NE(r.violation.find(property), std::string::npos)
        << "caught, but as: " << r.violation << "\n  replay: " << ReplayCommand(o);
    std::cout << PlantedBugName(bug) << " caught after " << (i + 1) << " runs: " << r.violation
              << "\n  replay: " << ReplayCommand(o) << "\n";
    return;
  }
  ADD_FAILURE() << PlantedBugName(bug) << " was not caught in " << max_seeds << " runs";
}

TEST(PlantedBugTest, TwoVotesInOneTermIsCaught) {
  ExpectCaught(PlantedBug::kGrantTwoVotesInOneTerm, 5, 1.0, 200, "election safety");
}

TEST(PlantedBugTest, ReadIndexWithoutHeartbeatIsCaught) {
  ExpectCaught(PlantedBug::kReadIndexWithoutHeartbeat, 3, 1.0, 200, "linearizable read");
}

TEST(PlantedBugTest, CommitOfPreviousTermEntryByCountingIsCaught) {
  ExpectCaught(PlantedBug::kCommitPreviousTermByCounting, 3, 3.0, 3000, "");
}

}  // namespace
}  // namespace raft::sim

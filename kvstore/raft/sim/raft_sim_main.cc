// Runs the Raft simulation: one seed to replay a failure, or many for a soak.
//
//   raft_sim --seed=42 --size=5 --verbose       replay one run with a trace
//   raft_sim --seed=1 --runs=100000             soak over sizes 1, 3, 5 and 7
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "kvstore/raft/sim/simulator.h"

ABSL_FLAG(uint64_t, seed, 1, "first seed");
ABSL_FLAG(int, runs, 1, "number of seeds to run, from --seed on");
ABSL_FLAG(int, size, 0, "cluster size; 0 cycles through 1, 3, 5 and 7");
ABSL_FLAG(int, fault_ticks, 1500, "ticks with faults active");
ABSL_FLAG(int, recovery_ticks, 600, "ticks allowed for recovery after the faults heal");
ABSL_FLAG(double, intensity, 1.0, "fault rate multiplier");
ABSL_FLAG(std::string, bug, "none",
          "planted bug: none, commit-previous-term, double-vote, read-without-heartbeat");
ABSL_FLAG(bool, leader_churn, false, "nemesis: one entry per append, new leaders often killed");
ABSL_FLAG(bool, verbose, false, "trace the run");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  raft::sim::SimOptions o;
  const std::string bug = absl::GetFlag(FLAGS_bug);
  bool known = false;
  for (raft::PlantedBug b :
       {raft::PlantedBug::kNone, raft::PlantedBug::kCommitPreviousTermByCounting,
        raft::PlantedBug::kGrantTwoVotesInOneTerm, raft::PlantedBug::kReadIndexWithoutHeartbeat}) {
    if (bug == raft::sim::PlantedBugName(b)) {
      o.planted_bug = b;
      known = true;
    }
  }
  if (!known) {
    std::cerr << "raft_sim: unknown --bug=" << bug << "\n";
    return 2;
  }
  o.fault_ticks = absl::GetFlag(FLAGS_fault_ticks);
  o.recovery_ticks = absl::GetFlag(FLAGS_recovery_ticks);
  o.fault_intensity = absl::GetFlag(FLAGS_intensity);
  o.leader_churn = absl::GetFlag(FLAGS_leader_churn);
  o.verbose = absl::GetFlag(FLAGS_verbose);
  const int runs = absl::GetFlag(FLAGS_runs);
  const int sizes[] = {1, 3, 5, 7};
  int failures = 0;
  uint64_t committed = 0, reads = 0, leaders = 0, crashes = 0, changes = 0, snapshots = 0;
  for (int i = 0; i < runs; ++i) {
    o.seed = absl::GetFlag(FLAGS_seed) + i;
    o.cluster_size = absl::GetFlag(FLAGS_size) != 0 ? absl::GetFlag(FLAGS_size) : sizes[i % 4];
    raft::sim::SimResult r = raft::sim::RunSimulation(o);
    committed += r.committed;
    reads += r.reads_checked;
    leaders += r.leaders;
    crashes += r.crashes;
    changes += r.conf_changes;
    snapshots += r.snapshots_sent;
    if (!r.ok || runs == 1) {
      std::cout << (r.ok ? "ok" : "FAIL") << " seed=" << o.seed << " " << r.config << "\n";
    }
    if (!r.ok) {
      ++failures;
      std::cout << "  " << r.violation << "\n  replay: " << raft::sim::ReplayCommand(o) << "\n";
    }
    if (runs > 1 && (i + 1) % 1000 == 0) {
      std::cout << (i + 1) << " runs, " << failures << " failures\n" << std::flush;
    }
  }
  std::cout << runs << " runs, " << failures << " failures; committed entries " << committed
            << ", reads checked " << reads << ", leaders " << leaders << ", crashes " << crashes
            << ", membership changes " << changes << ", snapshots sent " << snapshots << "\n";
  return failures == 0 ? 0 : 1;
}

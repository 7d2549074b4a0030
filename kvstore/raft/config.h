// How a Raft node is set up. Times are in ticks: the application decides how long a tick
// is and calls Node::Tick() that often.
#ifndef KVSTORE_RAFT_CONFIG_H_
#define KVSTORE_RAFT_CONFIG_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "kvstore/raft/storage.h"

namespace raft {

// Test-only switches that plant known safety bugs, so that tests can show the simulation's
// checkers catch them. Never set outside tests.
enum class PlantedBug : uint8_t {
  kNone,
  // A leader commits an entry of an earlier term once a majority holds it (Raft §5.4.2).
  kCommitPreviousTermByCounting,
  // A member grants its vote to every up-to-date candidate, even twice in one term.
  kGrantTwoVotesInOneTerm,
  // A leader answers ReadIndex at once, without confirming leadership with a quorum.
  kReadIndexWithoutHeartbeat,
};

struct Config {
  uint64_t id = 0;
  // A follower that hears no leader for a random time in [election_tick, 2*election_tick)
  // campaigns. Must be larger than heartbeat_tick.
  int election_tick = 10;
  int heartbeat_tick = 1;
  // Not owned; must outlive the node.
  const Storage* storage = nullptr;
  // The last index the application has applied (0: the storage's snapshot index). The
  // storage's configuration must be the one in force at that index.
  uint64_t applied = 0;
  // Caps on one append message and on the appends in flight to one follower.
  uint64_t max_size_per_msg = 1 << 20;
  size_t max_inflight_msgs = 256;
  uint64_t max_inflight_bytes = 0;  // 0: unbounded
  // Cap on the committed entries handed out in one Ready.
  uint64_t max_committed_size_per_ready = 64 << 20;
  // A leader steps down when it has not heard from a quorum for an election timeout, and
  // followers that hear from a live leader ignore campaigns.
  bool check_quorum = true;
  // Campaign first with a pre-vote that does not raise terms, so that a member coming back
  // from a partition does not depose a working leader.
  bool pre_vote = true;
  // A leader whose commit index moves sends no append only to say so: the followers learn
  // it from the next append or heartbeat, or when the application calls
  // Node::AnnounceCommit (because no append followed soon). A follower that forwarded
  // entries is told at once when they commit, since it waits to apply them. Saves a
  // message and its answer per follower and commit; followers apply a little later.
  bool defer_commit_broadcast = false;
  // Seeds the randomized election timeout; with the same seed a node behaves identically.
  uint64_t seed = 0;
  PlantedBug planted_bug = PlantedBug::kNone;

  absl::Status Validate() const;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_CONFIG_H_

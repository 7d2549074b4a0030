// The leader's and candidate's view of the cluster: the configuration in force, each
// member's replication progress, and votes in the current election. All quorum arithmetic
// (single or joint majorities) lives here.
#ifndef KVSTORE_RAFT_TRACKER_H_
#define KVSTORE_RAFT_TRACKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>

#include "kvstore/raft/conf_change.h"
#include "kvstore/raft/progress.h"

namespace raft {

enum class VoteResult : uint8_t { kPending, kLost, kWon };

class ProgressTracker {
 public:
  ProgressTracker(size_t max_inflight, uint64_t max_inflight_bytes)
      : max_inflight_(max_inflight), max_inflight_bytes_(max_inflight_bytes) {}

  const Configuration& config() const { return config_; }
  // Installs a configuration: members who joined get a progress starting at `next_index`,
  // members who left lose theirs.
  void SetConfig(const Configuration& c, uint64_t next_index);

  Progress* Get(uint64_t id);
  std::map<uint64_t, Progress>& progress() { return progress_; }
  const std::map<uint64_t, Progress>& progress() const { return progress_; }
  // Resets every progress as a new leader does.
  void ResetProgress(uint64_t next_index);

  // The largest index replicated on a quorum (of both halves when joint).
  uint64_t CommittedIndex() const;
  // Whether the given members form a quorum.
  bool IsQuorum(const std::set<uint64_t>& ids) const;
  // Whether a quorum was heard from (recent_active) since the last check.
  bool QuorumActive() const;

  void ResetVotes() { votes_.clear(); }
  void RecordVote(uint64_t id, bool granted);
  VoteResult TallyVotes() const;

 private:
  Configuration config_;
  std::map<uint64_t, Progress> progress_;
  std::map<uint64_t, bool> votes_;
  size_t max_inflight_;
  uint64_t max_inflight_bytes_;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_TRACKER_H_

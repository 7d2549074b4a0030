// What a leader knows about one follower's log, and the flow control of appends to it.
#ifndef KVSTORE_RAFT_PROGRESS_H_
#define KVSTORE_RAFT_PROGRESS_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

namespace raft {

// The appends sent to a follower and not yet acknowledged, bounded in count and bytes so
// that a slow follower cannot make the leader buffer without limit.
class Inflights {
 public:
  Inflights(size_t max_count, uint64_t max_bytes) : max_count_(max_count), max_bytes_(max_bytes) {}

  void Add(uint64_t last_index, uint64_t bytes);
  // The follower acknowledged everything up to `index`.
  void FreeLE(uint64_t index);
  bool Full() const;
  size_t Count() const { return inflight_.size(); }
  void Reset();

 private:
  size_t max_count_;
  uint64_t max_bytes_;  // 0: unbounded
  uint64_t bytes_ = 0;
  std::deque<std::pair<uint64_t, uint64_t>> inflight_;  // (last index, bytes)
};

enum class ProgressState : uint8_t {
  kProbe,      // next is a guess: one append at a time until the follower answers
  kReplicate,  // the follower keeps up: appends are pipelined, next moves optimistically
  kSnapshot,   // a snapshot is on its way; nothing else is sent
};

const char* ProgressStateName(ProgressState s);

struct Progress {
  Progress(size_t max_inflight, uint64_t max_inflight_bytes)
      : inflights(max_inflight, max_inflight_bytes) {}

  uint64_t match = 0;
  uint64_t next = 1;
  ProgressState state = ProgressState::kProbe;
  // In kProbe: an append is outstanding; wait for its answer or the next heartbeat.
  bool probe_sent = false;
  uint64_t pending_snapshot = 0;
  // Heard from since the last check-quorum round.
  bool recent_active = false;
  // The highest commit index our appends and heartbeats let the follower reach.
  uint64_t commit_sent = 0;
  // The last entry of each proposal the follower forwarded that is not committed yet.
  std::deque<uint64_t> forwarded;
  Inflights inflights;

  void BecomeProbe();
  void BecomeReplicate();
  void BecomeSnapshot(uint64_t snapshot_index);
  // The follower acknowledged entries up to n; returns whether that is news.
  bool MaybeUpdate(uint64_t n);
  // The follower rejected an append after `rejected`; `hint` is where to probe next.
  // Returns false if the rejection is stale.
  bool MaybeDecrTo(uint64_t rejected, uint64_t hint);
  // Records that entries up to `last_index` (`bytes` in all, `count` entries) were sent.
  void SentEntries(uint64_t last_index, size_t count, uint64_t bytes);
  bool IsPaused() const;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_PROGRESS_H_

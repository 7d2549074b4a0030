// Bookkeeping for ReadIndex on the leader. A read request records the commit index at
// arrival; it is answered once a quorum has acknowledged a heartbeat round sent after it
// arrived, which proves the leader was still the leader when the request came in.
//
// Requests that arrive between two Readies share one heartbeat round (batching): the
// round is broadcast when the next Ready is assembled.
#ifndef KVSTORE_RAFT_READ_ONLY_H_
#define KVSTORE_RAFT_READ_ONLY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <vector>

namespace raft {

struct ReadRequest {
  uint64_t index = 0;       // the commit index when the request arrived
  uint64_t from = 0;        // the member that asked (the leader itself for local reads)
  uint64_t request_id = 0;  // chosen by the application that asked
  uint64_t round = 0;       // the heartbeat round that confirms it
};

class ReadOnly {
 public:
  void Add(uint64_t index, uint64_t from, uint64_t request_id);
  // Starts the round that pending requests wait for, if any; returns its number.
  std::optional<uint64_t> StartRound(uint64_t self);
  bool HasUnstartedRound() const { return unstarted_; }
  // Records that `from` acknowledged `round` (and so every earlier round) and returns the
  // requests that a quorum has now confirmed.
  std::vector<ReadRequest> Ack(uint64_t from, uint64_t round,
                               const std::function<bool(const std::set<uint64_t>&)>& is_quorum);
  size_t PendingCount() const { return queue_.size(); }
  void Reset();

 private:
  std::deque<ReadRequest> queue_;          // in round order
  std::map<uint64_t, std::set<uint64_t>> acks_;  // started round -> members that acked
  uint64_t next_round_ = 1;
  bool unstarted_ = false;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_READ_ONLY_H_

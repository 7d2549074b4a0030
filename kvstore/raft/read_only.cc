#include "kvstore/raft/read_only.h"

namespace raft {

void ReadOnly::Add(uint64_t index, uint64_t from, uint64_t request_id) {
  queue_.push_back(ReadRequest{index, from, request_id, next_round_});
  unstarted_ = true;
}

std::optional<uint64_t> ReadOnly::StartRound(uint64_t self) {
  if (!unstarted_) return std::nullopt;
  unstarted_ = false;
  const uint64_t round = next_round_++;
  acks_[round].insert(self);
  return round;
}

std::vector<ReadRequest> ReadOnly::Ack(
    uint64_t from, uint64_t round,
    const std::function<bool(const std::set<uint64_t>&)>& is_quorum) {
  std::vector<ReadRequest> done;
  uint64_t confirmed = 0;
  // An ack of a round vouches for every round started before it.
  for (auto& [r, members] : acks_) {
    if (r > round) break;
    members.insert(from);
    if (is_quorum(members)) confirmed = r;
  }
  if (confirmed == 0) return done;
  acks_.erase(acks_.begin(), acks_.upper_bound(confirmed));
  while (!queue_.empty() && queue_.front().round <= confirmed) {
    done.push_back(queue_.front());
    queue_.pop_front();
  }
  return done;
}

void ReadOnly::Reset() {
  queue_.clear();
  acks_.clear();
  unstarted_ = false;
}

}  // namespace raft

#include "kvstore/raft/tracker.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace raft {
namespace {

// The largest index acknowledged by a majority of `voters`; an empty set agrees to
// everything so that it drops out of a joint minimum.
uint64_t MajorityIndex(const std::set<uint64_t>& voters,
                       const std::map<uint64_t, Progress>& progress) {
  if (voters.empty()) return std::numeric_limits<uint64_t>::max();
  std::vector<uint64_t> match;
  match.reserve(voters.size());
  for (uint64_t id : voters) {
    auto it = progress.find(id);
    match.push_back(it == progress.end() ? 0 : it->second.match);
  }
  std::sort(match.begin(), match.end());
  return match[match.size() - (match.size() / 2 + 1)];
}

VoteResult MajorityVote(const std::set<uint64_t>& voters, const std::map<uint64_t, bool>& votes) {
  if (voters.empty()) return VoteResult::kWon;
  size_t granted = 0, missing = 0;
  for (uint64_t id : voters) {
    auto it = votes.find(id);
    if (it == votes.end()) {
      ++missing;
    } else if (it->second) {
      ++granted;
    }
  }
  const size_t quorum = voters.size() / 2 + 1;
  if (granted >= quorum) return VoteResult::kWon;
  if (granted + missing >= quorum) return VoteResult::kPending;
  return VoteResult::kLost;
}

VoteResult JointVote(const Configuration& c, const std::map<uint64_t, bool>& votes) {
  const VoteResult a = MajorityVote(c.voters, votes);
  const VoteResult b = MajorityVote(c.voters_outgoing, votes);
  if (a == b) return a;
  if (a == VoteResult::kLost || b == VoteResult::kLost) return VoteResult::kLost;
  return VoteResult::kPending;
}

}  // namespace

void ProgressTracker::SetConfig(const Configuration& c, uint64_t next_index) {
  config_ = c;
  const std::set<uint64_t> members = c.Members();
  for (auto it = progress_.begin(); it != progress_.end();) {
    it = members.count(it->first) ? std::next(it) : progress_.erase(it);
  }
  for (uint64_t id : members) {
    if (progress_.count(id)) continue;
    Progress pr(max_inflight_, max_inflight_bytes_);
    pr.next = next_index;
    // A new member counts as active so that check-quorum does not fire before it answers.
    pr.recent_active = true;
    progress_.emplace(id, std::move(pr));
  }
}

Progress* ProgressTracker::Get(uint64_t id) {
  auto it = progress_.find(id);
  return it == progress_.end() ? nullptr : &it->second;
}

void ProgressTracker::ResetProgress(uint64_t next_index) {
  for (auto& [id, pr] : progress_) {
    Progress fresh(max_inflight_, max_inflight_bytes_);
    fresh.next = next_index;
    fresh.recent_active = true;
    pr = std::move(fresh);
  }
}

uint64_t ProgressTracker::CommittedIndex() const {
  const uint64_t index = std::min(MajorityIndex(config_.voters, progress_),
                                  MajorityIndex(config_.voters_outgoing, progress_));
  return index == std::numeric_limits<uint64_t>::max() ? 0 : index;
}

bool ProgressTracker::IsQuorum(const std::set<uint64_t>& ids) const {
  std::map<uint64_t, bool> votes;
  for (uint64_t id : config_.Members()) votes[id] = ids.count(id) > 0;
  return JointVote(config_, votes) == VoteResult::kWon;
}

bool ProgressTracker::QuorumActive() const {
  std::set<uint64_t> active;
  for (const auto& [id, pr] : progress_) {
    if (pr.recent_active) active.insert(id);
  }
  return IsQuorum(active);
}

void ProgressTracker::RecordVote(uint64_t id, bool granted) { votes_.emplace(id, granted); }

VoteResult ProgressTracker::TallyVotes() const { return JointVote(config_, votes_); }

}  // namespace raft

// Checks Raft's safety properties on the events of a simulated run:
//   - election safety: at most one leader per term;
//   - log matching: two persisted logs that agree on (index, term) agree on every entry
//     up to there (checked with a hash chain over each member's persisted log);
//   - leader completeness: a new leader holds every entry known to be committed;
//   - state-machine safety: no two members apply different entries at one index, and a
//     snapshot installs exactly the state that applying the log gives;
//   - linearizable reads: a ReadIndex answer is never older than a write acknowledged
//     before the read began.
// The first violation is kept; later ones are ignored.
#ifndef KVSTORE_RAFT_SIM_CHECKER_H_
#define KVSTORE_RAFT_SIM_CHECKER_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvstore/raft/types.h"

namespace raft::sim {

class SafetyChecker {
 public:
  bool ok() const { return violation_.empty(); }
  const std::string& violation() const { return violation_; }

  // A member's disk starts out holding just a snapshot at (index, term): (1, 1) for a
  // bootstrapped member, (0, 0) for one that joins later.
  void OnDiskCreated(uint64_t id, uint64_t index, uint64_t term);
  // A member persisted entries / a snapshot (its disk now holds them).
  void OnPersist(uint64_t id, const std::vector<Entry>& entries);
  void OnPersistSnapshot(uint64_t id, const SnapshotMeta& meta);
  // A member applied an entry / replaced its state with a snapshot's / restarted from its
  // disk's snapshot with that state.
  void OnApply(uint64_t id, const Entry& e);
  void OnStateReset(uint64_t id, uint64_t index, const std::vector<std::string>& state);
  // A member is leader in `term`; `term_at` reads its log.
  template <typename TermAt>
  void OnLeader(uint64_t id, uint64_t term, const TermAt& term_at, uint64_t first_index);

  // Client operations, in the order they happen.
  void OnWriteAcked(uint64_t index) { max_acked_ = std::max(max_acked_, index); }
  // Returns what the read must see: the latest write acknowledged before it began.
  uint64_t OnReadStart() const { return max_acked_; }
  void OnReadIndex(uint64_t id, uint64_t required, uint64_t read_index);

  uint64_t max_applied_index() const { return canonical_.empty() ? 0 : canonical_.rbegin()->first; }
  size_t leaders_seen() const { return leaders_.size(); }
  size_t reads_checked() const { return reads_checked_; }

 private:
  struct Applied {
    uint64_t term;
    uint64_t entry_hash;
    uint64_t state_digest;  // digest of the state after applying this index
  };

  void Fail(std::string what);
  void CheckLeaderCompleteness(uint64_t id, uint64_t first_index, uint64_t term_at_c);

  std::string violation_;
  std::map<uint64_t, uint64_t> leaders_;  // term -> leader
  // Global: (index, term) -> hash of the log prefix ending there.
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> prefix_;
  // Per member: hash chain of its persisted log, from chain_base_ on.
  std::unordered_map<uint64_t, std::vector<uint64_t>> chain_;
  std::unordered_map<uint64_t, uint64_t> chain_base_;
  // Global: what was applied at each index, and each member's state digest.
  std::map<uint64_t, Applied> canonical_;
  std::unordered_map<uint64_t, uint64_t> digest_;
  std::unordered_map<uint64_t, uint64_t> applied_index_;
  uint64_t max_acked_ = 0;
  size_t reads_checked_ = 0;
};

uint64_t HashString(const std::string& s);
uint64_t Mix(uint64_t a, uint64_t b);
uint64_t StateDigest(const std::vector<std::string>& state);

template <typename TermAt>
void SafetyChecker::OnLeader(uint64_t id, uint64_t term, const TermAt& term_at,
                             uint64_t first_index) {
  auto [it, inserted] = leaders_.emplace(term, id);
  if (!inserted && it->second != id) {
    Fail("election safety: members " + std::to_string(it->second) + " and " +
         std::to_string(id) + " both lead term " + std::to_string(term));
    return;
  }
  if (!inserted) return;
  if (canonical_.empty()) return;
  const uint64_t c = canonical_.rbegin()->first;
  CheckLeaderCompleteness(id, first_index, c >= first_index ? term_at(c) : 0);
}

}  // namespace raft::sim

#endif  // KVSTORE_RAFT_SIM_CHECKER_H_

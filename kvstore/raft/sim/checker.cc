#include "kvstore/raft/sim/checker.h"

#include <algorithm>

namespace raft::sim {

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t z = a ^ (b + 0x9E3779B97F4A7C15ULL + (a << 6) + (a >> 2));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t HashString(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

uint64_t StateDigest(const std::vector<std::string>& state) {
  uint64_t d = 0;
  for (const std::string& s : state) d = Mix(d, HashString(s));
  return d;
}

void SafetyChecker::Fail(std::string what) {
  if (violation_.empty()) violation_ = std::move(what);
}

void SafetyChecker::OnDiskCreated(uint64_t id, uint64_t index, uint64_t term) {
  const uint64_t h = index == 0 ? 0 : Mix(index, term);
  prefix_.emplace(std::make_pair(index, term), h);
  chain_base_[id] = index;
  chain_[id].assign(1, h);
}

void SafetyChecker::OnPersist(uint64_t id, const std::vector<Entry>& entries) {
  if (entries.empty()) return;
  std::vector<uint64_t>& chain = chain_[id];
  const uint64_t base = chain_base_[id];  // index of chain[0], the disk's snapshot
  const uint64_t first = entries.front().index;
  if (first <= base || first > base + chain.size()) {
    Fail("log matching: member " + std::to_string(id) + " persisted index " +
         std::to_string(first) + " outside its log (" + std::to_string(base) + ", " +
         std::to_string(base + chain.size()) + "]");
    return;
  }
  chain.resize(first - base);
  for (const Entry& e : entries) {
    const uint64_t h = Mix(Mix(chain.back(), e.term), HashString(e.data) + (uint64_t)e.type);
    chain.push_back(h);
    auto [it, inserted] = prefix_.emplace(std::make_pair(e.index, e.term), h);
    if (!inserted && it->second != h) {
      Fail("log matching: member " + std::to_string(id) + " holds entry (index " +
           std::to_string(e.index) + ", term " + std::to_string(e.term) +
           ") with a log prefix that differs from another member's");
      return;
    }
  }
}

void SafetyChecker::OnPersistSnapshot(uint64_t id, const SnapshotMeta& meta) {
  auto it = prefix_.find({meta.index, meta.term});
  chain_base_[id] = meta.index;
  std::vector<uint64_t>& chain = chain_[id];
  chain.assign(1, it == prefix_.end() ? 0 : it->second);
  if (it == prefix_.end() && meta.index > 1) {
    Fail("log matching: member " + std::to_string(id) + " installed a snapshot at (index " +
         std::to_string(meta.index) + ", term " + std::to_string(meta.term) +
         ") that no member ever persisted");
  }
}

void SafetyChecker::OnApply(uint64_t id, const Entry& e) {
  uint64_t& applied = applied_index_[id];
  if (applied != 0 && e.index != applied + 1) {
    Fail("state-machine safety: member " + std::to_string(id) + " applied index " +
         std::to_string(e.index) + " after " + std::to_string(applied));
    return;
  }
  applied = e.index;
  uint64_t& digest = digest_[id];
  if (e.type == EntryType::kNormal && !e.data.empty()) digest = Mix(digest, HashString(e.data));
  const uint64_t entry_hash = Mix(HashString(e.data), e.term);
  auto [it, inserted] = canonical_.emplace(e.index, Applied{e.term, entry_hash, digest});
  if (!inserted && (it->second.entry_hash != entry_hash || it->second.state_digest != digest)) {
    Fail("state-machine safety: member " + std::to_string(id) + " applied a different entry " +
         "(term " + std::to_string(e.term) + ") at index " + std::to_string(e.index) +
         " than another member (term " + std::to_string(it->second.term) + ")");
  }
}

void SafetyChecker::OnStateReset(uint64_t id, uint64_t index,
                                 const std::vector<std::string>& state) {
  const uint64_t digest = StateDigest(state);
  digest_[id] = digest;
  applied_index_[id] = index;
  auto it = canonical_.find(index);
  if (it != canonical_.end() && it->second.state_digest != digest) {
    Fail("state-machine safety: member " + std::to_string(id) + " has a snapshot at index " +
         std::to_string(index) + " whose state differs from the applied log's");
  }
}

void SafetyChecker::CheckLeaderCompleteness(uint64_t id, uint64_t first_index,
                                            uint64_t term_at_c) {
  const uint64_t c = canonical_.rbegin()->first;
  if (c < first_index) return;  // inside the leader's snapshot: committed by construction
  const uint64_t want = canonical_.rbegin()->second.term;
  if (term_at_c != want) {
    Fail("leader completeness: new leader " + std::to_string(id) + " has term " +
         std::to_string(term_at_c) + " at committed index " + std::to_string(c) +
         ", which was applied with term " + std::to_string(want));
  }
}

void SafetyChecker::OnReadIndex(uint64_t id, uint64_t required, uint64_t read_index) {
  ++reads_checked_;
  if (read_index < required) {
    Fail("linearizable read: member " + std::to_string(id) + " got read index " +
         std::to_string(read_index) + " although a write at index " + std::to_string(required) +
         " was acknowledged before the read began");
  }
}

}  // namespace raft::sim

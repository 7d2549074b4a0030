#include "kvstore/raft/progress.h"

#include <algorithm>

namespace raft {

void Inflights::Add(uint64_t last_index, uint64_t bytes) {
  inflight_.emplace_back(last_index, bytes);
  bytes_ += bytes;
}

void Inflights::FreeLE(uint64_t index) {
  while (!inflight_.empty() && inflight_.front().first <= index) {
    bytes_ -= inflight_.front().second;
    inflight_.pop_front();
  }
}

bool Inflights::Full() const {
  return inflight_.size() >= max_count_ || (max_bytes_ != 0 && bytes_ >= max_bytes_);
}

void Inflights::Reset() {
  inflight_.clear();
  bytes_ = 0;
}

const char* ProgressStateName(ProgressState s) {
  switch (s) {
    case ProgressState::kProbe: return "probe";
    case ProgressState::kReplicate: return "replicate";
    case ProgressState::kSnapshot: return "snapshot";
  }
  return "unknown";
}

void Progress::BecomeProbe() {
  // After a snapshot, probe from just past it: the follower will have it or ask again.
  if (state == ProgressState::kSnapshot) {
    next = std::max(match + 1, pending_snapshot + 1);
  } else {
    next = match + 1;
  }
  state = ProgressState::kProbe;
  probe_sent = false;
  pending_snapshot = 0;
  inflights.Reset();
}

void Progress::BecomeReplicate() {
  state = ProgressState::kReplicate;
  next = match + 1;
  probe_sent = false;
  pending_snapshot = 0;
  inflights.Reset();
}

void Progress::BecomeSnapshot(uint64_t snapshot_index) {
  state = ProgressState::kSnapshot;
  probe_sent = false;
  pending_snapshot = snapshot_index;
  inflights.Reset();
}

bool Progress::MaybeUpdate(uint64_t n) {
  bool updated = false;
  if (match < n) {
    match = n;
    updated = true;
    probe_sent = false;
  }
  next = std::max(next, n + 1);
  return updated;
}

bool Progress::MaybeDecrTo(uint64_t rejected, uint64_t hint) {
  if (state == ProgressState::kReplicate) {
    if (rejected <= match) return false;  // stale: already matched beyond it
    next = match + 1;
    return true;
  }
  // In probe only the answer to the latest probe (sent at next-1) counts.
  if (next == 0 || next - 1 != rejected) return false;
  next = std::max(std::min(rejected, hint + 1), match + 1);
  probe_sent = false;
  return true;
}

void Progress::SentEntries(uint64_t last_index, size_t count, uint64_t bytes) {
  if (state == ProgressState::kReplicate) {
    if (count > 0) {
      next = last_index + 1;
      inflights.Add(last_index, bytes);
    }
  } else if (state == ProgressState::kProbe) {
    probe_sent = true;
  }
}

bool Progress::IsPaused() const {
  switch (state) {
    case ProgressState::kProbe: return probe_sent;
    case ProgressState::kReplicate: return inflights.Full();
    case ProgressState::kSnapshot: return true;
  }
  return true;
}

}  // namespace raft

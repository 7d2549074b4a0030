#include "kvstore/raft/raft_log.h"

#include <algorithm>

namespace raft {

RaftLog::RaftLog(const Storage* storage)
    : storage_(storage), unstable_offset_(storage->LastIndex() + 1) {
  committed_ = storage->FirstIndex() - 1;
  applied_ = committed_;
}

void RaftLog::InitCommitAndApplied(uint64_t committed, uint64_t applied) {
  committed_ = std::max(committed_, std::min(committed, LastIndex()));
  applied_ = std::clamp(applied, applied_, committed_);
}

uint64_t RaftLog::FirstIndex() const {
  if (unstable_snapshot_) return unstable_snapshot_->meta.index + 1;
  return storage_->FirstIndex();
}

uint64_t RaftLog::LastIndex() const {
  if (!unstable_.empty()) return unstable_.back().index;
  if (unstable_snapshot_) return unstable_snapshot_->meta.index;
  return storage_->LastIndex();
}

uint64_t RaftLog::LastTerm() const { return TermOrZero(LastIndex()); }

absl::StatusOr<uint64_t> RaftLog::Term(uint64_t i) const {
  if (i + 1 < FirstIndex()) return CompactedError();
  if (i > LastIndex()) return UnavailableEntryError();
  if (i >= unstable_offset_ && !unstable_.empty()) {
    return unstable_[i - unstable_offset_].term;
  }
  if (unstable_snapshot_ && i == unstable_snapshot_->meta.index) {
    return unstable_snapshot_->meta.term;
  }
  return storage_->Term(i);
}

uint64_t RaftLog::TermOrZero(uint64_t i) const {
  absl::StatusOr<uint64_t> t = Term(i);
  return t.ok() ? *t : 0;
}

std::optional<uint64_t> RaftLog::MaybeAppend(uint64_t index, uint64_t log_term,
                                             uint64_t committed,
                                             const std::vector<Entry>& entries) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  const uint64_t last_new = index + entries.size();
  // Skip the entries we already hold; append from the first conflict or new entry.
  size_t k = 0;
  while (k < entries.size() && MatchTerm(entries[k].index, entries[k].term)) ++k;
  if (k < entries.size()) {
    std::vector<Entry> rest(entries.begin() + k, entries.end());
    Append(rest);
  }
  CommitTo(std::min(committed, last_new));
  return last_new;
}

uint64_t RaftLog::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return LastIndex();
  const uint64_t after = entries.front().index;
  if (after == unstable_offset_ + unstable_.size()) {
    unstable_.insert(unstable_.end(), entries.begin(), entries.end());
  } else if (after <= unstable_offset_) {
    // Replaces part of the stable log; the application truncates it when persisting.
    unstable_offset_ = after;
    unstable_ = entries;
  } else {
    unstable_.resize(after - unstable_offset_);
    unstable_.insert(unstable_.end(), entries.begin(), entries.end());
  }
  return LastIndex();
}

uint64_t RaftLog::FindConflictByTerm(uint64_t index, uint64_t term) const {
  index = std::min(index, LastIndex());
  while (index > 0) {
    absl::StatusOr<uint64_t> t = Term(index);
    if (!t.ok() || *t <= term) break;
    --index;
  }
  return index;
}

absl::StatusOr<std::vector<Entry>> RaftLog::Slice(uint64_t lo, uint64_t hi,
                                                  uint64_t max_bytes) const {
  if (lo < FirstIndex()) return CompactedError();
  if (hi > LastIndex() + 1 || lo > hi) return UnavailableEntryError();
  std::vector<Entry> out;
  if (lo == hi) return out;
  uint64_t bytes = 0;
  if (lo < unstable_offset_) {
    absl::StatusOr<std::vector<Entry>> stored =
        storage_->Entries(lo, std::min(hi, unstable_offset_), max_bytes);
    if (!stored.ok()) return stored.status();
    out = std::move(*stored);
    if (out.size() < std::min(hi, unstable_offset_) - lo) return out;  // size-limited
    for (const Entry& e : out) bytes += EntrySize(e);
  }
  for (uint64_t i = std::max(lo, unstable_offset_); i < hi; ++i) {
    const Entry& e = unstable_[i - unstable_offset_];
    bytes += EntrySize(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<std::vector<Entry>> RaftLog::EntriesFrom(uint64_t i, uint64_t max_bytes) const {
  if (i > LastIndex()) return std::vector<Entry>();
  return Slice(i, LastIndex() + 1, max_bytes);
}

bool RaftLog::IsUpToDate(uint64_t last_index, uint64_t term) const {
  const uint64_t my_term = LastTerm();
  return term > my_term || (term == my_term && last_index >= LastIndex());
}

bool RaftLog::MaybeCommit(uint64_t max_index, uint64_t term) {
  if (max_index > committed_ && TermOrZero(max_index) == term) {
    CommitTo(max_index);
    return true;
  }
  return false;
}

void RaftLog::CommitTo(uint64_t index) {
  if (index > committed_) committed_ = std::min(index, LastIndex());
}

void RaftLog::AppliedTo(uint64_t index) {
  if (index > applied_) applied_ = std::min(index, committed_);
}

bool RaftLog::HasNextCommittedEntries() const {
  return committed_ + 1 > std::max(applied_ + 1, FirstIndex());
}

std::vector<Entry> RaftLog::NextCommittedEntries(uint64_t max_bytes) const {
  const uint64_t lo = std::max(applied_ + 1, FirstIndex());
  if (committed_ + 1 <= lo) return {};
  absl::StatusOr<std::vector<Entry>> ents = Slice(lo, committed_ + 1, max_bytes);
  return ents.ok() ? std::move(*ents) : std::vector<Entry>();
}

bool RaftLog::HasUnappliedConfChange() const {
  const uint64_t lo = std::max(applied_ + 1, FirstIndex());
  if (committed_ + 1 <= lo) return false;
  absl::StatusOr<std::vector<Entry>> ents = Slice(lo, committed_ + 1, UINT64_MAX);
  if (!ents.ok()) return false;
  return std::any_of(ents->begin(), ents->end(),
                     [](const Entry& e) { return e.type == EntryType::kConfChange; });
}

void RaftLog::StableTo(uint64_t index, uint64_t term) {
  if (index < unstable_offset_ || unstable_.empty()) return;
  const uint64_t k = index - unstable_offset_;
  // Entries handed out for persisting may since have been replaced by a new leader's.
  if (k >= unstable_.size() || unstable_[k].term != term) return;
  unstable_.erase(unstable_.begin(), unstable_.begin() + k + 1);
  unstable_offset_ = index + 1;
}

void RaftLog::StableSnapTo(uint64_t index) {
  if (unstable_snapshot_ && unstable_snapshot_->meta.index == index) unstable_snapshot_.reset();
}

void RaftLog::Restore(const Snapshot& snap) {
  ++restores_;
  committed_ = snap.meta.index;
  unstable_snapshot_ = snap;
  unstable_.clear();
  unstable_offset_ = snap.meta.index + 1;
}

absl::StatusOr<Snapshot> RaftLog::GetSnapshot() const {
  if (unstable_snapshot_) return *unstable_snapshot_;
  return storage_->GetSnapshot();
}

}  // namespace raft

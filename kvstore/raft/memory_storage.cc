#include "kvstore/raft/memory_storage.h"

#include "absl/strings/str_cat.h"

namespace raft {

MemoryStorage::MemoryStorage() : entries_(1) {}

MemoryStorage MemoryStorage::Bootstrapped(const std::vector<uint64_t>& voters) {
  MemoryStorage s;
  Snapshot snap;
  snap.meta.index = 1;
  snap.meta.term = 1;
  snap.meta.conf_state.voters = voters;
  s.ApplySnapshot(snap).IgnoreError();
  s.hard_state_ = HardState{.term = 1, .vote = kNone, .commit = 1};
  return s;
}

absl::StatusOr<InitialState> MemoryStorage::GetInitialState() const {
  return InitialState{hard_state_, snapshot_.meta.conf_state};
}

absl::StatusOr<std::vector<Entry>> MemoryStorage::Entries(uint64_t lo, uint64_t hi,
                                                          uint64_t max_bytes) const {
  const uint64_t offset = entries_[0].index;
  if (lo <= offset) return CompactedError();
  if (hi > LastIndex() + 1) {
    return absl::OutOfRangeError(
        absl::StrCat("raft: entries' hi(", hi, ") is out of bound lastindex(", LastIndex(), ")"));
  }
  std::vector<Entry> out;
  uint64_t bytes = 0;
  for (uint64_t i = lo; i < hi; ++i) {
    const Entry& e = entries_[i - offset];
    bytes += EntrySize(e);
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<uint64_t> MemoryStorage::Term(uint64_t i) const {
  const uint64_t offset = entries_[0].index;
  if (i < offset) return CompactedError();
  if (i - offset >= entries_.size()) return UnavailableEntryError();
  return entries_[i - offset].term;
}

uint64_t MemoryStorage::FirstIndex() const { return entries_[0].index + 1; }

uint64_t MemoryStorage::LastIndex() const { return entries_[0].index + entries_.size() - 1; }

absl::StatusOr<Snapshot> MemoryStorage::GetSnapshot() const { return snapshot_; }

absl::Status MemoryStorage::ApplySnapshot(const Snapshot& snap) {
  if (snap.meta.index < snapshot_.meta.index) {
    return absl::FailedPreconditionError("raft: snapshot is out of date");
  }
  snapshot_ = snap;
  entries_.assign(1, Entry{.term = snap.meta.term, .index = snap.meta.index});
  return absl::OkStatus();
}

absl::Status MemoryStorage::CreateSnapshot(uint64_t i, const ConfState& cs, std::string data) {
  if (i <= snapshot_.meta.index) {
    return absl::FailedPreconditionError("raft: snapshot is out of date");
  }
  if (i > LastIndex()) {
    return absl::OutOfRangeError(
        absl::StrCat("raft: snapshot ", i, " is out of bound lastindex(", LastIndex(), ")"));
  }
  const uint64_t offset = entries_[0].index;
  // The log was compacted past i (beyond the latest snapshot): its term is gone.
  if (i < offset) return CompactedError();
  snapshot_.meta.index = i;
  snapshot_.meta.term = entries_[i - offset].term;
  snapshot_.meta.conf_state = cs;
  snapshot_.data = std::move(data);
  return absl::OkStatus();
}

absl::Status MemoryStorage::Compact(uint64_t i) {
  const uint64_t offset = entries_[0].index;
  if (i <= offset) return CompactedError();
  if (i > LastIndex()) {
    return absl::OutOfRangeError(
        absl::StrCat("raft: compact ", i, " is out of bound lastindex(", LastIndex(), ")"));
  }
  const uint64_t k = i - offset;
  Entry head{.term = entries_[k].term, .index = entries_[k].index};
  std::vector<Entry> rest;
  rest.reserve(entries_.size() - k);
  rest.push_back(std::move(head));
  for (uint64_t j = k + 1; j < entries_.size(); ++j) rest.push_back(std::move(entries_[j]));
  entries_ = std::move(rest);
  return absl::OkStatus();
}

absl::Status MemoryStorage::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return absl::OkStatus();
  const uint64_t first = FirstIndex();
  const uint64_t last = entries.back().index;
  if (last < first) return absl::OkStatus();  // everything is already compacted
  const uint64_t start = entries[0].index;
  if (start > LastIndex() + 1) {
    return absl::InvalidArgumentError(absl::StrCat("raft: missing log entries [last: ",
                                                   LastIndex(), ", append at: ", start, "]"));
  }
  size_t skip = start < first ? first - start : 0;
  const uint64_t offset = entries_[0].index;
  entries_.resize(entries[skip].index - offset);
  for (size_t j = skip; j < entries.size(); ++j) entries_.push_back(entries[j]);
  return absl::OkStatus();
}

}  // namespace raft

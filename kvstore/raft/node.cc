#include "kvstore/raft/node.h"

namespace raft {

absl::StatusOr<std::unique_ptr<Node>> Node::Create(const Config& c) {
  if (absl::Status s = c.Validate(); !s.ok()) return s;
  absl::StatusOr<InitialState> init = c.storage->GetInitialState();
  if (!init.ok()) return init.status();
  const uint64_t last = c.storage->LastIndex();
  if (init->hard_state.commit > last) {
    return absl::DataLossError("raft: persisted commit index is beyond the last stored entry");
  }
  return std::unique_ptr<Node>(new Node(c));
}

Node::Node(const Config& c)
    : raft_(c),
      max_committed_size_per_ready_(c.max_committed_size_per_ready),
      prev_soft_(raft_.soft_state()),
      prev_hard_(raft_.hard_state()) {}

absl::Status Node::Propose(std::string data) {
  Entry e;
  e.data = std::move(data);
  return raft_.Propose({std::move(e)});
}

absl::Status Node::ProposeBatch(std::vector<std::string> batch) {
  std::vector<Entry> entries(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) entries[i].data = std::move(batch[i]);
  return raft_.Propose(std::move(entries));
}

absl::Status Node::ProposeConfChange(const ConfChange& cc) {
  Entry e;
  e.type = EntryType::kConfChange;
  e.data = EncodeConfChange(cc);
  return raft_.Propose({std::move(e)});
}

absl::Status Node::Step(const Message& m) {
  if (m.from == kNone) return absl::InvalidArgumentError("raft: message without a sender");
  return raft_.Step(m);
}

bool Node::HasReady() const {
  if (awaiting_advance_) return false;
  const RaftLog& log = raft_.log();
  return raft_.soft_state() != prev_soft_ || raft_.hard_state() != prev_hard_ ||
         raft_.HasPendingOutput() || !log.UnstableEntries().empty() ||
         log.UnstableSnapshot().has_value() || log.HasNextCommittedEntries();
}

Ready Node::GetReady() {
  Ready rd;
  if (awaiting_advance_) return rd;
  awaiting_advance_ = true;
  raft_.StartReadRound();
  RaftLog& log = raft_.log();

  const SoftState ss = raft_.soft_state();
  if (ss != prev_soft_) {
    rd.soft_state = ss;
    prev_soft_ = ss;
  }
  const HardState hs = raft_.hard_state();
  if (hs != prev_hard_) {
    rd.must_sync = hs.term != prev_hard_.term || hs.vote != prev_hard_.vote;
    rd.hard_state = hs;
    prev_hard_ = hs;
  }
  if (log.UnstableSnapshot()) {
    rd.snapshot = *log.UnstableSnapshot();
    pending_snapshot_index_ = rd.snapshot.meta.index;
    rd.must_sync = true;
  }
  rd.entries = log.UnstableEntries();
  if (!rd.entries.empty()) {
    pending_stable_ = {rd.entries.back().index, rd.entries.back().term};
    rd.must_sync = true;
  }
  rd.committed_entries = log.NextCommittedEntries(max_committed_size_per_ready_);
  pending_apply_ = rd.committed_entries;
  restores_at_ready_ = log.restores();
  rd.messages = raft_.TakeMessages();
  rd.read_states = raft_.TakeReadStates();
  return rd;
}

void Node::Advance() {
  if (!awaiting_advance_) return;
  awaiting_advance_ = false;
  RaftLog& log = raft_.log();
  if (pending_snapshot_index_ != 0) {
    log.StableSnapTo(pending_snapshot_index_);
    log.AppliedTo(pending_snapshot_index_);
    pending_snapshot_index_ = 0;
  }
  if (pending_stable_) {
    log.StableTo(pending_stable_->first, pending_stable_->second);
    raft_.OnPersisted(pending_stable_->first, pending_stable_->second);
    pending_stable_.reset();
  }
  if (!pending_apply_.empty()) {
    // A snapshot restored since GetReady() carries the configuration that these entries
    // led to; applying them again would undo later changes.
    const bool superseded = log.restores() != restores_at_ready_;
    for (const Entry& e : pending_apply_) {
      if (superseded || e.type != EntryType::kConfChange) continue;
      absl::StatusOr<ConfChange> cc = DecodeConfChange(e.data);
      if (cc.ok()) raft_.ApplyConfChange(*cc);
    }
    log.AppliedTo(pending_apply_.back().index);
    pending_apply_.clear();
    raft_.OnApplied();
  }
}

NodeStatus Node::Status() const {
  NodeStatus s;
  s.id = raft_.id();
  s.hard_state = raft_.hard_state();
  s.soft_state = raft_.soft_state();
  s.applied = raft_.log().applied();
  s.last_index = raft_.log().LastIndex();
  s.lead_transferee = raft_.lead_transferee();
  s.conf_state = raft_.tracker().config().ToConfState();
  return s;
}

}  // namespace raft

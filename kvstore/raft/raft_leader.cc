// Raft: the leader side. Replication and flow control, commitment, ReadIndex, leadership
// transfer and membership changes.
#include <algorithm>

#include "kvstore/raft/raft.h"

namespace raft {

void Raft::BecomeLeader() {
  Reset(term_);
  lead_ = id_;
  role_ = Role::kLeader;
  if (Progress* self = trk_.Get(id_)) self->BecomeReplicate();
  // An uncommitted configuration change may sit anywhere in the log we inherit: allow no
  // new one until everything up to here is applied.
  pending_conf_index_ = log_.LastIndex();
  conf_news_sent_ = 0;
  // The no-op of our term lets us commit (and so serve reads for) what earlier leaders left.
  AppendEntries({Entry{}});
}

bool Raft::AppendEntries(std::vector<Entry> entries) {
  const uint64_t last = log_.LastIndex();
  for (size_t i = 0; i < entries.size(); ++i) {
    entries[i].term = term_;
    entries[i].index = last + 1 + i;
  }
  log_.Append(entries);
  // Our own copy counts toward a quorum once the application has persisted it (OnPersisted).
  return true;
}

void Raft::OnPersisted(uint64_t index, uint64_t term) {
  if (role_ != Role::kLeader || log_.TermOrZero(index) != term) return;
  Progress* self = trk_.Get(id_);
  if (self != nullptr && self->MaybeUpdate(index) && MaybeCommit()) OnCommitAdvanced();
}

bool Raft::MaybeCommit() {
  const uint64_t index = trk_.CommittedIndex();
  if (planted_bug_ == PlantedBug::kCommitPreviousTermByCounting) {
    if (index <= log_.committed()) return false;
    log_.CommitTo(index);
    return true;
  }
  // Only an entry of the current term is committed by counting replicas (Raft §5.4.2).
  return log_.MaybeCommit(index, term_);
}

bool Raft::CommittedEntryInCurrentTerm() const {
  return log_.TermOrZero(log_.committed()) == term_;
}

void Raft::OnCommitAdvanced() {
  if (CommittedEntryInCurrentTerm() && !pending_read_index_messages_.empty()) {
    std::vector<Message> held;
    held.swap(pending_read_index_messages_);
    for (const Message& m : held) LeaderHandleReadIndex(m);
  }
  // A committed configuration change is news at once even when commits are deferred: a
  // member it removes hears nothing from us afterwards.
  const bool conf_committed =
      pending_conf_index_ > conf_news_sent_ && pending_conf_index_ <= log_.committed();
  if (conf_committed) conf_news_sent_ = pending_conf_index_;
  const bool broadcast = !defer_commit_broadcast_ || conf_committed;
  // New entries go out (carrying the commit index); when deferring, an empty append only to
  // a follower that waits for entries it forwarded.
  for (auto& [id, pr] : trk_.progress()) {
    if (id == id_) continue;
    bool waits = false;
    while (!pr.forwarded.empty() && pr.forwarded.front() <= log_.committed()) {
      waits = waits || pr.forwarded.front() > pr.commit_sent;
      pr.forwarded.pop_front();
    }
    SendAppend(id, broadcast || waits);
  }
}

bool Raft::HasUnannouncedCommit() const {
  if (role_ != Role::kLeader) return false;
  for (const auto& [id, pr] : trk_.progress()) {
    if (id != id_ && !pr.IsPaused() && CommitUnannouncedTo(pr)) return true;
  }
  return false;
}

void Raft::AnnounceCommit() {
  if (role_ != Role::kLeader) return;
  for (auto& [id, pr] : trk_.progress()) {
    if (id != id_ && CommitUnannouncedTo(pr)) SendAppend(id);
  }
}

bool Raft::SendAppend(uint64_t to, bool send_if_empty) {
  Progress* pr = trk_.Get(to);
  if (pr == nullptr || pr->IsPaused()) return false;
  Message m;
  m.to = to;
  absl::StatusOr<uint64_t> prev_term = log_.Term(pr->next - 1);
  absl::StatusOr<std::vector<Entry>> ents = log_.EntriesFrom(pr->next, max_size_per_msg_);
  if (!prev_term.ok() || !ents.ok()) {
    // What the follower needs next was compacted away: send a snapshot instead, but only
    // to a follower that answers (a snapshot is expensive).
    if (!pr->recent_active) return false;
    absl::StatusOr<Snapshot> snap = log_.GetSnapshot();
    if (!snap.ok() || snap->IsEmpty()) return false;
    m.type = MessageType::kSnap;
    m.snapshot = std::move(*snap);
    pr->BecomeSnapshot(m.snapshot.meta.index);
    Send(std::move(m));
    return true;
  }
  if (ents->empty() && !send_if_empty) return false;
  m.type = MessageType::kApp;
  m.index = pr->next - 1;
  m.log_term = *prev_term;
  m.commit = log_.committed();
  uint64_t bytes = 0;
  for (const Entry& e : *ents) bytes += EntrySize(e);
  const uint64_t last = ents->empty() ? m.index : ents->back().index;
  pr->SentEntries(last, ents->size(), bytes);
  pr->commit_sent = std::max(pr->commit_sent, std::min(m.commit, last));
  m.entries = std::move(*ents);
  Send(std::move(m));
  return true;
}

void Raft::BroadcastAppend() {
  for (auto& [id, pr] : trk_.progress()) {
    if (id != id_) SendAppend(id);
  }
}

void Raft::BroadcastHeartbeat(uint64_t round) {
  for (auto& [id, pr] : trk_.progress()) {
    if (id == id_) continue;
    Message m;
    m.type = MessageType::kHeartbeat;
    m.to = id;
    // A follower may not hold entries up to our commit index yet.
    m.commit = std::min(pr.match, log_.committed());
    pr.commit_sent = std::max(pr.commit_sent, m.commit);
    m.context = round;
    Send(std::move(m));
  }
}

void Raft::SendTimeoutNow(uint64_t to) {
  Message m;
  m.type = MessageType::kTimeoutNow;
  m.to = to;
  Send(std::move(m));
}

absl::Status Raft::Propose(std::vector<Entry> entries) {
  if (entries.empty()) return absl::InvalidArgumentError("raft: empty proposal");
  Message m;
  m.type = MessageType::kProp;
  m.from = id_;
  m.entries = std::move(entries);
  return Step(m);
}

absl::Status Raft::StepLeader(const Message& m) {
  switch (m.type) {
    case MessageType::kProp: {
      if (m.entries.empty()) return absl::InvalidArgumentError("raft: empty proposal");
      if (!trk_.config().IsVoter(id_) || lead_transferee_ != kNone) return ProposalDroppedError();
      std::vector<Entry> entries = m.entries;
      for (size_t i = 0; i < entries.size(); ++i) {
        Entry& e = entries[i];
        if (e.type != EntryType::kConfChange) continue;
        absl::Status refused;
        absl::StatusOr<ConfChange> cc = DecodeConfChange(e.data);
        if (!cc.ok()) {
          refused = cc.status();
        } else if (pending_conf_index_ > log_.applied()) {
          refused = absl::FailedPreconditionError(
              "raft: a configuration change is already pending; wait until it is applied");
        } else {
          refused = raft::ApplyConfChange(trk_.config(), *cc).status();
        }
        if (!refused.ok()) {
          if (m.from == id_) return refused;
          // A forwarded change cannot be refused to its sender: it becomes a no-op.
          e = Entry{};
          continue;
        }
        pending_conf_index_ = log_.LastIndex() + 1 + i;
      }
      AppendEntries(std::move(entries));
      // Only deferred commit news needs to know who waits for which entries.
      if (Progress* sender = trk_.Get(m.from);
          defer_commit_broadcast_ && sender != nullptr && m.from != id_) {
        sender->forwarded.push_back(log_.LastIndex());
      }
      BroadcastAppend();
      return absl::OkStatus();
    }
    case MessageType::kAppResp:
      LeaderHandleAppendResponse(m);
      break;
    case MessageType::kHeartbeatResp:
      LeaderHandleHeartbeatResponse(m);
      break;
    case MessageType::kReadIndex:
      LeaderHandleReadIndex(m);
      break;
    case MessageType::kTransferLeader:
      LeaderHandleTransfer(m.context);
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

void Raft::LeaderHandleAppendResponse(const Message& m) {
  Progress* pr = trk_.Get(m.from);
  if (pr == nullptr) return;
  pr->recent_active = true;
  if (m.reject) {
    uint64_t next_probe = m.reject_hint;
    if (m.log_term > 0) next_probe = log_.FindConflictByTerm(m.reject_hint, m.log_term);
    if (pr->MaybeDecrTo(m.index, next_probe)) {
      if (pr->state == ProgressState::kReplicate) pr->BecomeProbe();
      SendAppend(m.from);
    }
    return;
  }
  const bool was_paused = pr->IsPaused();
  // An answer to a probe that matches what we already knew still ends the probing.
  const bool probe_matched = pr->state == ProgressState::kProbe && pr->match == m.index;
  if (!pr->MaybeUpdate(m.index) && !probe_matched) return;
  switch (pr->state) {
    case ProgressState::kProbe:
      pr->BecomeReplicate();
      break;
    case ProgressState::kSnapshot:
      // Once the follower can be caught up from our log, replicate to it at once.
      if (pr->match + 1 >= log_.FirstIndex()) {
        pr->BecomeProbe();
        pr->BecomeReplicate();
      }
      break;
    case ProgressState::kReplicate:
      pr->inflights.FreeLE(m.index);
      break;
  }
  if (MaybeCommit()) {
    OnCommitAdvanced();
  } else if (was_paused) {
    SendAppend(m.from);
  }
  // Keep the pipeline to this follower full.
  while (SendAppend(m.from, /*send_if_empty=*/false)) {
  }
  if (m.from == lead_transferee_ && pr->match == log_.LastIndex()) SendTimeoutNow(m.from);
}

void Raft::LeaderHandleHeartbeatResponse(const Message& m) {
  Progress* pr = trk_.Get(m.from);
  if (pr == nullptr) return;
  pr->recent_active = true;
  pr->probe_sent = false;
  // Appends in flight may have been lost: let one more through so that the follower
  // answers (and, if it has a gap, rejects, which puts it back into probing).
  if (pr->state == ProgressState::kReplicate && pr->inflights.Full()) pr->inflights.Reset();
  if (pr->match < log_.LastIndex()) SendAppend(m.from);
  if (m.context == 0) return;
  for (const ReadRequest& r : read_only_.Ack(m.from, m.context, [this](const auto& ids) {
         return trk_.IsQuorum(ids);
       })) {
    AnswerRead(r.from, r.request_id, r.index);
  }
}

void Raft::LeaderHandleReadIndex(const Message& m) {
  if (trk_.IsQuorum({id_})) {
    AnswerRead(m.from, m.context, log_.committed());
    return;
  }
  // Until an entry of our term is committed we may not know the latest commit index.
  if (!CommittedEntryInCurrentTerm()) {
    pending_read_index_messages_.push_back(m);
    return;
  }
  if (planted_bug_ == PlantedBug::kReadIndexWithoutHeartbeat) {
    AnswerRead(m.from, m.context, log_.committed());
    return;
  }
  read_only_.Add(log_.committed(), m.from, m.context);
}

void Raft::StartReadRound() {
  if (role_ != Role::kLeader) return;
  std::optional<uint64_t> round = read_only_.StartRound(id_);
  if (!round) return;
  BroadcastHeartbeat(*round);
}

void Raft::AnswerRead(uint64_t from, uint64_t request_id, uint64_t index) {
  if (from == id_ || from == kNone) {
    read_states_.push_back(ReadState{index, request_id});
    return;
  }
  Message resp;
  resp.type = MessageType::kReadIndexResp;
  resp.to = from;
  resp.index = index;
  resp.context = request_id;
  Send(std::move(resp));
}

void Raft::LeaderHandleTransfer(uint64_t to) {
  if (to == id_ || !trk_.config().IsVoter(to)) return;
  if (lead_transferee_ == to) return;
  AbortLeaderTransfer();
  Progress* pr = trk_.Get(to);
  if (pr == nullptr) return;
  // The transfer must finish within an election timeout (see Tick).
  election_elapsed_ = 0;
  lead_transferee_ = to;
  if (pr->match == log_.LastIndex()) {
    SendTimeoutNow(to);
  } else {
    SendAppend(to);
  }
}

void Raft::ReportUnreachable(uint64_t id) {
  if (role_ != Role::kLeader) return;
  Progress* pr = trk_.Get(id);
  if (pr != nullptr && pr->state == ProgressState::kReplicate) pr->BecomeProbe();
}

void Raft::ReportSnapshot(uint64_t id, bool ok) {
  if (role_ != Role::kLeader) return;
  Progress* pr = trk_.Get(id);
  if (pr == nullptr || pr->state != ProgressState::kSnapshot) return;
  if (!ok) pr->pending_snapshot = 0;
  pr->BecomeProbe();
  // Wait for the follower's answer (or the next heartbeat) before probing again.
  pr->probe_sent = true;
}

void Raft::ApplyConfChange(const ConfChange& cc) {
  absl::StatusOr<Configuration> next = raft::ApplyConfChange(trk_.config(), cc);
  if (!next.ok()) return;  // every member ignores the same invalid change
  // A new member is first probed with our last entry, so that it hears from us at once
  // (below) rather than at the next heartbeat or proposal.
  trk_.SetConfig(*next, std::max<uint64_t>(log_.LastIndex(), 1));
  if (role_ != Role::kLeader) return;
  if (lead_transferee_ != kNone && !next->IsVoter(lead_transferee_)) AbortLeaderTransfer();
  if (!next->IsVoter(id_)) {
    // We were removed. We accept no more proposals but keep leading until a remaining voter
    // holds our whole log (and so learns what is committed), then hand over to it: stepping
    // down at once could leave the others unable to learn that our removal committed.
    HandOffAfterRemoval();
  }
  if (MaybeCommit()) {
    OnCommitAdvanced();
  } else {
    for (auto& [id, pr] : trk_.progress()) {
      if (id != id_) SendAppend(id, /*send_if_empty=*/false);
    }
  }
}

void Raft::HandOffAfterRemoval() {
  if (role_ != Role::kLeader || trk_.config().IsVoter(id_) || lead_transferee_ != kNone) return;
  uint64_t best = kNone, best_match = 0;
  for (uint64_t v : trk_.config().voters) {
    const Progress* pr = trk_.Get(v);
    if (pr != nullptr && (best == kNone || pr->match > best_match)) {
      best = v;
      best_match = pr->match;
    }
  }
  if (best != kNone) LeaderHandleTransfer(best);
}

void Raft::OnApplied() {
  const Configuration& c = trk_.config();
  if (role_ != Role::kLeader || !c.IsJoint() || !c.auto_leave) return;
  if (log_.applied() < pending_conf_index_) return;
  Entry leave;
  leave.type = EntryType::kConfChange;
  leave.data = EncodeConfChange(ConfChange{});
  AppendEntries({leave});
  pending_conf_index_ = log_.LastIndex();
  BroadcastAppend();
}

}  // namespace raft

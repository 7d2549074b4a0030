// Raft: construction, timers, the term rules of Step, elections and the follower side.
// The leader side is in raft_leader.cc.
#include "kvstore/raft/raft.h"

#include <algorithm>

namespace raft {

absl::Status ProposalDroppedError() { return absl::UnavailableError("raft proposal dropped"); }

Raft::Raft(const Config& c)
    : id_(c.id),
      log_(c.storage),
      trk_(c.max_inflight_msgs, c.max_inflight_bytes),
      election_timeout_(c.election_tick),
      heartbeat_timeout_(c.heartbeat_tick),
      check_quorum_(c.check_quorum),
      pre_vote_(c.pre_vote),
      defer_commit_broadcast_(c.defer_commit_broadcast),
      max_size_per_msg_(c.max_size_per_msg),
      planted_bug_(c.planted_bug),
      rng_state_(c.seed * 0x9E3779B97F4A7C15ULL + c.id) {
  absl::StatusOr<InitialState> init = c.storage->GetInitialState();
  if (init.ok()) {
    trk_.SetConfig(Configuration::FromConfState(init->conf_state), log_.LastIndex() + 1);
    term_ = init->hard_state.term;
    vote_ = init->hard_state.vote;
    log_.InitCommitAndApplied(init->hard_state.commit, c.applied);
  }
  BecomeFollower(term_, kNone);
}

uint64_t Raft::NextRandom() {
  // splitmix64: small, fast and fully determined by the seed.
  uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void Raft::ResetRandomizedElectionTimeout() {
  randomized_election_timeout_ =
      election_timeout_ + static_cast<int>(NextRandom() % static_cast<uint64_t>(election_timeout_));
}

void Raft::Reset(uint64_t term) {
  if (term_ != term) {
    term_ = term;
    vote_ = kNone;
  }
  lead_ = kNone;
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  ResetRandomizedElectionTimeout();
  AbortLeaderTransfer();
  trk_.ResetVotes();
  trk_.ResetProgress(log_.LastIndex() + 1);
  pending_conf_index_ = 0;
  read_only_.Reset();
  pending_read_index_messages_.clear();
}

void Raft::BecomeFollower(uint64_t term, uint64_t lead) {
  Reset(term);
  lead_ = lead;
  role_ = Role::kFollower;
}

void Raft::BecomePreCandidate() {
  // A pre-candidate keeps its term and vote: nothing it does here must be persisted.
  trk_.ResetVotes();
  lead_ = kNone;
  role_ = Role::kPreCandidate;
}

void Raft::BecomeCandidate() {
  Reset(term_ + 1);
  vote_ = id_;
  role_ = Role::kCandidate;
}

bool Raft::Promotable() const {
  return trk_.config().IsVoter(id_) && !log_.UnstableSnapshot().has_value();
}

void Raft::Tick() {
  ++election_elapsed_;
  if (role_ != Role::kLeader) {
    if (Promotable() && PastElectionTimeout()) {
      election_elapsed_ = 0;
      Campaign();
    }
    return;
  }
  ++heartbeat_elapsed_;
  if (election_elapsed_ >= election_timeout_) {
    election_elapsed_ = 0;
    // A removed leader does not step down for want of a quorum: it alone may know that
    // its removal committed, and the remaining voters may need that to elect anyone. It
    // accepts no proposals and keeps trying to hand over (below) until a newer term
    // deposes it.
    if (check_quorum_ && trk_.config().IsVoter(id_)) {
      if (!trk_.QuorumActive()) {
        BecomeFollower(term_, kNone);
        return;
      }
      for (auto& [id, pr] : trk_.progress()) pr.recent_active = (id == id_);
    }
    // A transfer that did not finish within an election timeout is abandoned.
    AbortLeaderTransfer();
    HandOffAfterRemoval();
  }
  if (heartbeat_elapsed_ >= heartbeat_timeout_) {
    heartbeat_elapsed_ = 0;
    BroadcastHeartbeat(0);
  }
}

void Raft::ReportPeerDown(uint64_t id) {
  if (role_ != Role::kFollower || id == kNone || id != lead_) return;
  // Past the lease (election_timeout_), short of the randomized timeout by its random part.
  election_elapsed_ = std::max(election_elapsed_, election_timeout_);
}

void Raft::Campaign() {
  if (role_ == Role::kLeader) return;
  CampaignAs(pre_vote_ ? CampaignType::kPreElection : CampaignType::kElection);
}

void Raft::CampaignAs(CampaignType t) {
  if (!Promotable()) return;
  // A configuration change that is committed but not applied could change who may vote.
  if (log_.HasUnappliedConfChange()) return;
  uint64_t vote_term;
  MessageType type;
  if (t == CampaignType::kPreElection) {
    BecomePreCandidate();
    vote_term = term_ + 1;
    type = MessageType::kPreVote;
  } else {
    BecomeCandidate();
    vote_term = term_;
    type = MessageType::kVote;
  }
  trk_.RecordVote(id_, true);
  if (trk_.TallyVotes() == VoteResult::kWon) {
    if (t == CampaignType::kPreElection) {
      CampaignAs(CampaignType::kElection);
    } else {
      BecomeLeader();
    }
    return;
  }
  const Configuration& c = trk_.config();
  std::set<uint64_t> voters = c.voters;
  voters.insert(c.voters_outgoing.begin(), c.voters_outgoing.end());
  for (uint64_t to : voters) {
    if (to == id_) continue;
    Message m;
    m.type = type;
    m.to = to;
    m.term = vote_term;
    m.index = log_.LastIndex();
    m.log_term = log_.LastTerm();
    m.transfer = (t == CampaignType::kTransfer);
    Send(std::move(m));
  }
}

void Raft::Send(Message m) {
  m.from = id_;
  // Votes carry their own term (a pre-vote asks for a future one). Forwarded proposals and
  // read requests carry none, so that the leader treats them as local requests.
  const bool own_term = m.type == MessageType::kVote || m.type == MessageType::kVoteResp ||
                        m.type == MessageType::kPreVote || m.type == MessageType::kPreVoteResp;
  if (!own_term && m.type != MessageType::kProp && m.type != MessageType::kReadIndex) {
    m.term = term_;
  }
  msgs_.push_back(std::move(m));
}

std::vector<Message> Raft::TakeMessages() {
  std::vector<Message> out;
  out.swap(msgs_);
  return out;
}

std::vector<ReadState> Raft::TakeReadStates() {
  std::vector<ReadState> out;
  out.swap(read_states_);
  return out;
}

absl::Status Raft::Step(const Message& m) {
  if (m.term > term_ && m.term != 0) {
    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      // Leader stickiness: while we hear from a live leader, ignore campaigns unless the
      // leader itself asked for them (a transfer).
      const bool in_lease = check_quorum_ && lead_ != kNone && election_elapsed_ < election_timeout_;
      if (!m.transfer && in_lease) return absl::OkStatus();
    }
    if (m.type == MessageType::kPreVote) {
      // Answered below without changing our term.
    } else if (m.type == MessageType::kPreVoteResp && !m.reject) {
      // A granted pre-vote carries the term we are about to campaign in.
    } else if (m.type == MessageType::kApp || m.type == MessageType::kHeartbeat ||
               m.type == MessageType::kSnap) {
      BecomeFollower(m.term, m.from);
    } else {
      BecomeFollower(m.term, kNone);
    }
  } else if (m.term < term_ && m.term != 0) {
    if ((check_quorum_ || pre_vote_) &&
        (m.type == MessageType::kHeartbeat || m.type == MessageType::kApp)) {
      // A stale leader learns our term from this and steps down; without it a leader cut
      // off by check-quorum or pre-vote could keep the cluster from moving on.
      Message resp;
      resp.type = MessageType::kAppResp;
      resp.to = m.from;
      Send(std::move(resp));
    } else if (m.type == MessageType::kPreVote) {
      Message resp;
      resp.type = MessageType::kPreVoteResp;
      resp.to = m.from;
      resp.term = term_;
      resp.reject = true;
      Send(std::move(resp));
    }
    return absl::OkStatus();
  }

  if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
    HandleVoteRequest(m);
    return absl::OkStatus();
  }
  switch (role_) {
    case Role::kLeader: return StepLeader(m);
    case Role::kCandidate:
    case Role::kPreCandidate: return StepCandidate(m);
    case Role::kFollower: return StepFollower(m);
  }
  return absl::OkStatus();
}

void Raft::HandleVoteRequest(const Message& m) {
  const bool is_pre = m.type == MessageType::kPreVote;
  bool can_vote = vote_ == m.from || (vote_ == kNone && lead_ == kNone) ||
                  (is_pre && m.term > term_);
  if (planted_bug_ == PlantedBug::kGrantTwoVotesInOneTerm && !is_pre) can_vote = true;
  Message resp;
  resp.type = is_pre ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  resp.to = m.from;
  if (can_vote && log_.IsUpToDate(m.index, m.log_term)) {
    // A granted pre-vote answers in the term the candidate will campaign in.
    resp.term = m.term;
    if (!is_pre) {
      election_elapsed_ = 0;
      vote_ = m.from;
    }
  } else {
    resp.term = term_;
    resp.reject = true;
  }
  Send(std::move(resp));
}

absl::Status Raft::StepCandidate(const Message& m) {
  const MessageType my_resp =
      role_ == Role::kPreCandidate ? MessageType::kPreVoteResp : MessageType::kVoteResp;
  switch (m.type) {
    case MessageType::kProp:
      return ProposalDroppedError();
    case MessageType::kApp:
      BecomeFollower(m.term, m.from);
      HandleAppend(m);
      break;
    case MessageType::kHeartbeat:
      BecomeFollower(m.term, m.from);
      HandleHeartbeat(m);
      break;
    case MessageType::kSnap:
      BecomeFollower(m.term, m.from);
      HandleSnapshot(m);
      break;
    case MessageType::kPreVoteResp:
    case MessageType::kVoteResp:
      if (m.type != my_resp) break;
      trk_.RecordVote(m.from, !m.reject);
      switch (trk_.TallyVotes()) {
        case VoteResult::kWon:
          if (role_ == Role::kPreCandidate) {
            CampaignAs(CampaignType::kElection);
          } else {
            BecomeLeader();
            BroadcastAppend();
          }
          break;
        case VoteResult::kLost:
          BecomeFollower(term_, kNone);
          break;
        case VoteResult::kPending:
          break;
      }
      break;
    default:
      break;  // kTimeoutNow and the rest mean nothing to a candidate
  }
  return absl::OkStatus();
}

absl::Status Raft::StepFollower(const Message& m) {
  switch (m.type) {
    case MessageType::kProp:
      if (lead_ == kNone) return ProposalDroppedError();
      {
        Message fwd = m;
        fwd.to = lead_;
        Send(std::move(fwd));
      }
      break;
    case MessageType::kApp:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleAppend(m);
      break;
    case MessageType::kHeartbeat:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleHeartbeat(m);
      break;
    case MessageType::kSnap:
      election_elapsed_ = 0;
      lead_ = m.from;
      HandleSnapshot(m);
      break;
    case MessageType::kTransferLeader:
    case MessageType::kReadIndex:
      if (lead_ == kNone) return ProposalDroppedError();
      {
        Message fwd = m;
        fwd.to = lead_;
        Send(std::move(fwd));
      }
      break;
    case MessageType::kTimeoutNow:
      // The leader wants us to take over: campaign at once, skipping pre-vote.
      CampaignAs(CampaignType::kTransfer);
      break;
    case MessageType::kReadIndexResp:
      read_states_.push_back(ReadState{m.index, m.context});
      break;
    default:
      break;
  }
  return absl::OkStatus();
}

void Raft::HandleAppend(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  if (m.index < log_.committed()) {
    resp.index = log_.committed();
    Send(std::move(resp));
    return;
  }
  if (std::optional<uint64_t> last = log_.MaybeAppend(m.index, m.log_term, m.commit, m.entries)) {
    resp.index = *last;
    Send(std::move(resp));
    return;
  }
  // Tell the leader where our log could match, so it skips a whole term per round trip.
  const uint64_t hint = log_.FindConflictByTerm(std::min(m.index, log_.LastIndex()), m.log_term);
  resp.index = m.index;
  resp.reject = true;
  resp.reject_hint = hint;
  resp.log_term = log_.TermOrZero(hint);
  Send(std::move(resp));
}

void Raft::HandleHeartbeat(const Message& m) {
  log_.CommitTo(m.commit);
  Message resp;
  resp.type = MessageType::kHeartbeatResp;
  resp.to = m.from;
  resp.context = m.context;
  Send(std::move(resp));
}

void Raft::HandleSnapshot(const Message& m) {
  Message resp;
  resp.type = MessageType::kAppResp;
  resp.to = m.from;
  resp.index = Restore(m.snapshot) ? log_.LastIndex() : log_.committed();
  Send(std::move(resp));
}

bool Raft::Restore(const Snapshot& snap) {
  if (snap.meta.index <= log_.committed()) return false;
  if (log_.MatchTerm(snap.meta.index, snap.meta.term)) {
    // We already hold the snapshot's last entry: just learn that it is committed.
    log_.CommitTo(snap.meta.index);
    return false;
  }
  log_.Restore(snap);
  trk_.SetConfig(Configuration::FromConfState(snap.meta.conf_state), log_.LastIndex() + 1);
  return true;
}

void Raft::TransferLeadership(uint64_t to) {
  if (role_ == Role::kLeader) {
    LeaderHandleTransfer(to);
    return;
  }
  if (lead_ == kNone) return;
  Message m;
  m.type = MessageType::kTransferLeader;
  m.to = lead_;
  m.context = to;  // the member that should lead
  Send(std::move(m));
}

void Raft::ReadIndex(uint64_t request_id) {
  Message m;
  m.type = MessageType::kReadIndex;
  m.from = id_;
  m.context = request_id;
  if (role_ == Role::kLeader) {
    LeaderHandleReadIndex(m);
  } else if (lead_ != kNone) {
    m.to = lead_;
    Send(std::move(m));
  }
}

}  // namespace raft

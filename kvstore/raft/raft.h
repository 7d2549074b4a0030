// The Raft state machine: election, replication, commitment, ReadIndex, leadership
// transfer, snapshots and membership. It is a pure object: it reacts to Tick() and to
// messages, and leaves its outputs (messages, read states, log changes) for Node to collect
// into a Ready. It never blocks, reads a clock or performs I/O, so a seeded simulation
// replays it exactly.
//
// Thread-compatibility: one thread at a time; Node is its only user.
#ifndef KVSTORE_RAFT_RAFT_H_
#define KVSTORE_RAFT_RAFT_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "kvstore/raft/conf_change.h"
#include "kvstore/raft/config.h"
#include "kvstore/raft/raft_log.h"
#include "kvstore/raft/read_only.h"
#include "kvstore/raft/tracker.h"
#include "kvstore/raft/types.h"

namespace raft {

// Proposal refused: no leader is known, a transfer is under way, or this member was removed.
absl::Status ProposalDroppedError();

class Raft {
 public:
  // REQUIRES: c.Validate() is OK and the storage's initial state is consistent.
  explicit Raft(const Config& c);

  void Tick();
  // Handles a message from a peer, or a forwarded proposal.
  absl::Status Step(const Message& m);
  // Starts an election now (pre-vote first when enabled).
  void Campaign();
  absl::Status Propose(std::vector<Entry> entries);
  void ReadIndex(uint64_t request_id);
  void TransferLeadership(uint64_t to);
  void ReportUnreachable(uint64_t id);
  void ReportSnapshot(uint64_t id, bool ok);
  // See Node::ReportPeerDown.
  void ReportPeerDown(uint64_t id);

  // Called by Node when the application has persisted entries up to (index, term).
  void OnPersisted(uint64_t index, uint64_t term);
  // Called by Node as the application applies a configuration change entry.
  void ApplyConfChange(const ConfChange& cc);
  // Called by Node after entries were applied.
  void OnApplied();
  // Broadcasts the heartbeat round that pending ReadIndex requests wait for.
  void StartReadRound();
  // On a leader (see Config::defer_commit_broadcast): whether a follower we may send to
  // holds entries that are committed without having been told so; and telling them.
  bool HasUnannouncedCommit() const;
  void AnnounceCommit();

  std::vector<Message> TakeMessages();
  std::vector<ReadState> TakeReadStates();
  bool HasPendingOutput() const {
    return !msgs_.empty() || !read_states_.empty() || read_only_.HasUnstartedRound();
  }

  uint64_t id() const { return id_; }
  uint64_t term() const { return term_; }
  uint64_t lead() const { return lead_; }
  Role role() const { return role_; }
  HardState hard_state() const { return HardState{term_, vote_, log_.committed()}; }
  SoftState soft_state() const { return SoftState{lead_, role_}; }
  RaftLog& log() { return log_; }
  const RaftLog& log() const { return log_; }
  const ProgressTracker& tracker() const { return trk_; }
  uint64_t lead_transferee() const { return lead_transferee_; }

 private:
  enum class CampaignType : uint8_t { kPreElection, kElection, kTransfer };

  void BecomeFollower(uint64_t term, uint64_t lead);
  void BecomePreCandidate();
  void BecomeCandidate();
  void BecomeLeader();
  void Reset(uint64_t term);
  void CampaignAs(CampaignType t);
  bool Promotable() const;
  void ResetRandomizedElectionTimeout();
  bool PastElectionTimeout() const { return election_elapsed_ >= randomized_election_timeout_; }

  void Send(Message m);
  // Sends the follower what it lacks; returns whether a message was sent.
  bool SendAppend(uint64_t to, bool send_if_empty = true);
  void BroadcastAppend();
  void BroadcastHeartbeat(uint64_t round);
  void SendTimeoutNow(uint64_t to);
  bool AppendEntries(std::vector<Entry> entries);
  bool MaybeCommit();
  void OnCommitAdvanced();
  bool CommittedEntryInCurrentTerm() const;

  void HandleVoteRequest(const Message& m);
  void HandleAppend(const Message& m);
  void HandleHeartbeat(const Message& m);
  void HandleSnapshot(const Message& m);
  bool Restore(const Snapshot& snap);

  absl::Status StepLeader(const Message& m);
  absl::Status StepCandidate(const Message& m);
  absl::Status StepFollower(const Message& m);
  void LeaderHandleAppendResponse(const Message& m);
  void LeaderHandleHeartbeatResponse(const Message& m);
  void LeaderHandleReadIndex(const Message& m);
  void LeaderHandleTransfer(uint64_t to);
  void AnswerRead(uint64_t from, uint64_t request_id, uint64_t index);
  void AbortLeaderTransfer() { lead_transferee_ = kNone; }
  void HandOffAfterRemoval();
  // Whether the follower holds committed entries it was not told are committed.
  bool CommitUnannouncedTo(const Progress& pr) const {
    return pr.commit_sent < std::min(log_.committed(), pr.match);
  }

  uint64_t NextRandom();

  const uint64_t id_;
  uint64_t term_ = 0;
  uint64_t vote_ = kNone;
  RaftLog log_;
  ProgressTracker trk_;
  Role role_ = Role::kFollower;
  uint64_t lead_ = kNone;
  uint64_t lead_transferee_ = kNone;
  // Index of the latest configuration change the leader appended; none may follow until
  // it is applied.
  uint64_t pending_conf_index_ = 0;
  // The latest pending_conf_index_ whose commit was broadcast at once (see OnCommitAdvanced).
  uint64_t conf_news_sent_ = 0;
  ReadOnly read_only_;
  // ReadIndex requests held until the leader commits an entry of its own term.
  std::vector<Message> pending_read_index_messages_;

  const int election_timeout_;
  const int heartbeat_timeout_;
  int randomized_election_timeout_ = 0;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  const bool check_quorum_;
  const bool pre_vote_;
  const bool defer_commit_broadcast_;
  const uint64_t max_size_per_msg_;
  const PlantedBug planted_bug_;
  uint64_t rng_state_;

  std::vector<Message> msgs_;
  std::vector<ReadState> read_states_;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_RAFT_H_

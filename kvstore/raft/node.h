// The application's handle on one Raft member.
//
// The application drives it from one thread: it calls Tick() at a fixed interval, feeds
// it messages from peers with Step(), proposes with Propose()/ProposeConfChange(), and
// repeatedly collects work with GetReady() and reports it done with Advance():
//
//   while (node.HasReady()) {
//     Ready rd = node.GetReady();
//     persist rd.snapshot, rd.entries and rd.hard_state (one synced write if rd.must_sync);
//     send rd.messages;                        // only after persisting
//     apply rd.committed_entries, and serve reads for rd.read_states;
//     node.Advance();
//   }
//
// Other calls may be made between GetReady() and Advance(); GetReady() may not.
#ifndef KVSTORE_RAFT_NODE_H_
#define KVSTORE_RAFT_NODE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kvstore/raft/conf_change.h"
#include "kvstore/raft/config.h"
#include "kvstore/raft/raft.h"
#include "kvstore/raft/types.h"

namespace raft {

struct Ready {
  std::optional<SoftState> soft_state;  // set when leader or role changed
  std::optional<HardState> hard_state;  // set when it must be persisted
  std::vector<ReadState> read_states;
  // To append to stable storage, replacing any stored entries from entries[0].index on.
  std::vector<Entry> entries;
  // To install in stable storage before `entries` (empty unless one arrived).
  Snapshot snapshot;
  // Committed and ready to apply, in order. Configuration changes among them take effect
  // in the core when Advance() is called.
  std::vector<Entry> committed_entries;
  // To send once the above is persisted.
  std::vector<Message> messages;
  // Whether the write must be synced to disk (new entries, a new term or vote, a snapshot);
  // a commit-index-only change need not be.
  bool must_sync = false;
};

struct NodeStatus {
  uint64_t id = 0;
  HardState hard_state;
  SoftState soft_state;
  uint64_t applied = 0;
  uint64_t last_index = 0;
  uint64_t lead_transferee = kNone;
  ConfState conf_state;
};

class Node {
 public:
  static absl::StatusOr<std::unique_ptr<Node>> Create(const Config& c);

  void Tick() { raft_.Tick(); }
  // Starts an election at once (pre-vote first when enabled).
  void Campaign() { raft_.Campaign(); }
  absl::Status Propose(std::string data);
  // Proposes many entries as one message: the leader appends them together and sends
  // them to each follower in one append (group commit of client requests).
  absl::Status ProposeBatch(std::vector<std::string> batch);
  absl::Status ProposeConfChange(const ConfChange& cc);
  // A message from a peer.
  absl::Status Step(const Message& m);
  // Asks for a read index; the answer arrives in a Ready's read_states with the same id.
  // Requests without an answer (leadership lost, no leader) are dropped: retry.
  void ReadIndex(uint64_t request_id) { raft_.ReadIndex(request_id); }
  void TransferLeadership(uint64_t to) { raft_.TransferLeadership(to); }
  // The transport could not reach `id`; a snapshot to `id` finished or failed.
  void ReportUnreachable(uint64_t id) { raft_.ReportUnreachable(id); }
  void ReportSnapshot(uint64_t id, bool ok) { raft_.ReportSnapshot(id, ok); }
  // The transport saw `id` go away for good (its connection closed: a process that dies
  // has its sockets closed by the kernel). If `id` leads this follower, the leader lease
  // ends now: the member grants other campaigns at once, and campaigns itself once the
  // random part of its election timeout has passed, not a whole timeout more. A leader
  // that is in fact alive is heard again with its next heartbeat, and the other voters,
  // still hearing it, refuse the campaign.
  void ReportPeerDown(uint64_t id) { raft_.ReportPeerDown(id); }
  // With Config::defer_commit_broadcast, on a leader: whether some follower holds
  // committed entries it was not told are committed, and telling them (one append each).
  bool HasUnannouncedCommit() const { return raft_.HasUnannouncedCommit(); }
  void AnnounceCommit() { raft_.AnnounceCommit(); }

  bool HasReady() const;
  // REQUIRES: HasReady(). Returns an empty Ready if the previous one was not advanced.
  Ready GetReady();
  void Advance();

  NodeStatus Status() const;
  // For checkers: the term of entry i in this member's log, or 0.
  uint64_t TermAt(uint64_t i) const { return raft_.log().TermOrZero(i); }
  uint64_t LastIndex() const { return raft_.log().LastIndex(); }
  uint64_t FirstIndex() const { return raft_.log().FirstIndex(); }
  const Raft& raft() const { return raft_; }

 private:
  explicit Node(const Config& c);

  Raft raft_;
  const uint64_t max_committed_size_per_ready_;
  SoftState prev_soft_;
  HardState prev_hard_;
  // What the outstanding Ready handed out, for Advance().
  bool awaiting_advance_ = false;
  std::optional<std::pair<uint64_t, uint64_t>> pending_stable_;  // (index, term)
  uint64_t pending_snapshot_index_ = 0;
  std::vector<Entry> pending_apply_;
  uint64_t restores_at_ready_ = 0;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_NODE_H_

// RaftDriver runs one Raft member: it owns the raft::Node and the thread that drives it.
//
// The driver thread ticks the node on a clock, hands it proposals, peer messages and read
// requests that other threads queued, and works off each Ready in the order the Ready
// contract demands: persist (one RaftLogStore::Save, synced when the Ready says so), then
// send messages, then apply committed entries through the StateMachine, then Advance. A
// leader may send sooner and later than that (see RunOnce): its new entries before it
// persists them, and a Ready without new entries after applying.
// Proposals that queue up while one Ready is being persisted go into the next Ready
// together, so that many client writes share one fsync (group commit). Linearizable read
// requests that queue up likewise share one ReadIndex round.
//
// Snapshots (with a Snapshotter): every snapshot_count applied entries the driver flushes
// the state machine on a thread of its own (applying goes on meanwhile), then records a
// Raft snapshot at the index applied when the flush started and compacts the log behind
// it; a MsgSnap the core emits goes out with a fresh checkpoint of the state machine
// (Transport::SendSnapshot); a snapshot in a Ready is installed in the state machine
// before the log records it.
//
// Threads: every public method may be called from any thread. The node, the log store and
// the StateMachine are used only on the driver thread; Snapshotter::Flush() runs on a
// flush thread of the driver's ("raft-flush"). Callbacks run on the driver thread
// and must not block.
//
// Ownership: the log store, state machine, transport and clock are not owned and must
// outlive the driver; Stop() (or the destructor) joins the thread.
#ifndef KVSTORE_SERVER_RAFT_DRIVER_H_
#define KVSTORE_SERVER_RAFT_DRIVER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock.h"
#include "kvstore/raft/node.h"
#include "kvstore/server/server_metrics.h"
#include "kvstore/storage/raft_log_store.h"

namespace kvstore::server {

// Where committed entries go. Called on the driver thread only, in index order.
class StateMachine {
 public:
  virtual ~StateMachine() = default;
  // Applies committed entries, in index order, all those of one Ready that it does not
  // hold yet: normal entries (including the leader's empty no-ops) and configuration
  // changes, which the driver has already handed to the core. Their effects must be
  // visible (and AppliedIndex() moved) when it returns.
  virtual void Apply(absl::Span<const raft::Entry> entries) = 0;
  // The index up to which the state machine's effects are already durable; entries up to
  // it are not applied again after a restart.
  virtual uint64_t AppliedIndex() const = 0;
};

// How the driver snapshots the state machine, and installs the state a leader sent. Called
// on the driver thread between applying one Ready's entries and the next's, except Flush().
class Snapshotter {
 public:
  virtual ~Snapshotter() = default;
  // Persists at least everything applied before the call; returns the applied index that
  // is now durable. Runs on a thread of the driver's own, at the same time as Apply(),
  // Checkpoint() and Install() on the driver thread.
  virtual absl::StatusOr<uint64_t> Flush() = 0;
  // Writes a consistent copy of the state machine, at its AppliedIndex(), into a new
  // directory for a peer, and returns that directory (the transport deletes it once sent).
  virtual absl::StatusOr<std::string> Checkpoint() = 0;
  // What a snapshot message carries besides the state machine (the member list), as of
  // AppliedIndex(); Install() gets it back in snap.data.
  virtual std::string SnapshotData() = 0;
  // Replaces the state machine by the state the transport received with `snap`; after it
  // AppliedIndex() == snap.meta.index. Durable before it returns.
  virtual absl::Status Install(const raft::Snapshot& snap) = 0;
};

// Carries messages to peers (a single member needs none).
class Transport {
 public:
  virtual ~Transport() = default;
  virtual void Send(std::vector<raft::Message> messages) = 0;
  // Sends `m`, a MsgSnap, together with the state machine copy in `checkpoint_dir`, which
  // the transport now owns (and deletes), and reports the outcome through the sink's
  // ReportSnapshot. By default only the message goes.
  virtual void SendSnapshot(raft::Message m, std::string checkpoint_dir) {
    (void)checkpoint_dir;
    Send({std::move(m)});
  }
};

// Where a transport delivers what arrives from peers, and how sending went: the driver in
// production, a recorder in tests.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  virtual void Step(raft::Message m) = 0;
  virtual void ReportUnreachable(uint64_t id) = 0;
  virtual void ReportSnapshot(uint64_t id, bool ok) = 0;
  // The stream peer `id` wrote to this member closed (see raft::Node::ReportPeerDown).
  virtual void ReportPeerDown(uint64_t id) = 0;
};

// "etcdserver: no leader": nothing can be committed or confirmed right now.
absl::Status NoLeaderError();
// "etcdserver: server stopped".
absl::Status StoppedError();

struct DriverStatus {
  uint64_t id = 0;
  uint64_t leader = raft::kNone;
  raft::Role role = raft::Role::kFollower;
  uint64_t term = 0;
  uint64_t commit = 0;
  uint64_t applied = 0;
  uint64_t last_index = 0;
  // The index of the log's last snapshot.
  uint64_t snapshot_index = 0;
  raft::ConfState conf_state;
  // On the leader: how far each member's log is known to match the leader's (its own
  // included). Empty on other members.
  std::vector<std::pair<uint64_t, uint64_t>> match;
};

class RaftDriver : public MessageSink {
 public:
  using Done = absl::AnyInvocable<void(absl::Status)>;

  struct Options {
    uint64_t id = 0;
    // One tick; heartbeats go out every tick, elections start after election_ticks..2x.
    absl::Duration tick = absl::Milliseconds(100);
    int election_ticks = 10;
    // Seeds the election timeout randomization.
    uint64_t seed = 0;
    // How long a leader may leave followers unaware that the commit index moved, waiting
    // for an append that carries it anyway (raft::Config::defer_commit_broadcast); after
    // that it tells them with an append each. Zero: at once, in an append each, as etcd
    // does. Followers apply (and their watchers see) a write up to this much later; a
    // follower that forwarded the write is told at once.
    absl::Duration commit_announce_delay = absl::Milliseconds(2);
    // A read that no round confirmed within this long is asked again.
    absl::Duration read_retry = absl::Seconds(1);
    // Not owned; may be null.
    ServerMetrics* metrics = nullptr;
    // Not owned; null: the log is never compacted and a snapshot from a leader is fatal.
    Snapshotter* snapshotter = nullptr;
    // etcd's --snapshot-count: once this many entries were applied since the last
    // snapshot, the driver takes one at an index the state machine made durable, and compacts
    // the log up to catchup_entries before it (etcd's snapshot-catchup-entries), so that
    // a follower that is only a little behind gets entries, not a snapshot.
    uint64_t snapshot_count = 100000;
    uint64_t catchup_entries = 5000;
    // Called on the driver thread after each Ready is worked off (its entries applied,
    // its messages sent): a place to hand out at once what applying them produced, and
    // to change the transport. May be empty.
    std::function<void()> after_ready;
  };

  // REQUIRES: `log` holds a bootstrapped or restarted member's state.
  static absl::StatusOr<std::unique_ptr<RaftDriver>> Create(const Options& options,
                                                            storage::RaftLogStore* log,
                                                            StateMachine* sm, Transport* transport,
                                                            const common::Clock* clock);
  ~RaftDriver() override;

  void Start();
  // Stops the thread; queued proposals and reads fail with StoppedError().
  void Stop();

  // Queues `data` for proposal. `on_dropped` runs if the node refused it (no leader,
  // transfer in progress); an accepted proposal reports through the StateMachine.
  void Propose(std::string data, Done on_dropped);
  // Queues a configuration change; `on_dropped` runs if the node refused it (see
  // Raft::StepLeader: no leader, another change pending, invalid). An accepted change
  // reports through the StateMachine.
  void ProposeConfChange(raft::ConfChange cc, Done on_dropped);
  // Calls `done(OK)` once this member has applied everything committed before the call
  // (a linearizable read may then read the state machine), or an error.
  void ReadBarrier(Done done);
  // MessageSink: a message from a peer; a peer that could not be reached; how sending a
  // snapshot to a peer ended; a peer whose stream to this member closed.
  void Step(raft::Message m) override;
  void ReportUnreachable(uint64_t id) override;
  void ReportSnapshot(uint64_t id, bool ok) override;
  void ReportPeerDown(uint64_t id) override;
  void TransferLeadership(uint64_t to);

  // From the state machine (the driver thread), while it applies an entry that other
  // members must hear of at once (a membership change, which may also move or remove the
  // member the news is for): on a leader, tells followers of the commit index in the next
  // Ready instead of commit_announce_delay later. Returns whether it did.
  bool AnnounceCommitNow();

  DriverStatus Status() const;
  uint64_t applied_index() const { return applied_.load(std::memory_order_acquire); }
  // The current term, without copying the whole Status (every response header needs it).
  uint64_t term() const { return term_.load(std::memory_order_acquire); }

 private:
  struct PendingProposal {
    std::string data;
    Done on_dropped;
  };
  struct PendingConfChange {
    raft::ConfChange cc;
    Done on_dropped;
  };
  struct ReadWaiter {
    uint64_t index = 0;  // 0 until the read's round is answered
    Done done;
  };

  RaftDriver(const Options& options, storage::RaftLogStore* log, StateMachine* sm,
             Transport* transport, const common::Clock* clock, std::unique_ptr<raft::Node> node);

  void Run();
  // One pass of the loop: takes queued work, ticks, and works off every Ready.
  void RunOnce() ABSL_LOCKS_EXCLUDED(mu_);
  void HandleReadStates(const std::vector<raft::ReadState>& states);
  // Sends a Ready's messages: MsgSnap through SendSnapshot, the rest through the transport.
  void SendMessages(std::vector<raft::Message> messages);
  // A heartbeat answer from `from`: its round trip goes to the metrics.
  void ObserveRoundTrip(uint64_t from);
  // Replaces the state machine by a snapshot's state (before the log records it).
  void InstallSnapshot(const raft::Snapshot& snap);
  // Sends a MsgSnap with a fresh checkpoint of the state machine, at its applied index.
  void SendSnapshot(raft::Message m);
  // Once snapshot_count entries were applied since the last snapshot, starts flushing the
  // state machine on flush_thread_; once that flush is done, records the snapshot.
  void MaybeSnapshot();
  // Waits for pending_snapshot_'s flush, records the snapshot and compacts the log behind
  // it. On the driver thread, or in Stop() once that thread is gone.
  void FinishSnapshot();
  void ResolveReads();
  void PublishStatus() ABSL_LOCKS_EXCLUDED(mu_);
  void FailEverything(const absl::Status& s) ABSL_LOCKS_EXCLUDED(mu_);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  storage::RaftLogStore* const log_;
  StateMachine* const sm_;
  Transport* const transport_;
  const common::Clock* const clock_;
  std::unique_ptr<raft::Node> node_;  // driver thread only
  std::thread thread_;
  std::atomic<uint64_t> applied_{0};
  std::atomic<uint64_t> term_{0};

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<PendingProposal> proposals_ ABSL_GUARDED_BY(mu_);
  std::vector<PendingConfChange> conf_changes_ ABSL_GUARDED_BY(mu_);
  std::vector<raft::Message> inbox_ ABSL_GUARDED_BY(mu_);
  std::vector<Done> new_reads_ ABSL_GUARDED_BY(mu_);
  uint64_t transfer_to_ ABSL_GUARDED_BY(mu_) = raft::kNone;
  std::vector<uint64_t> unreachable_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> peers_down_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<uint64_t, bool>> snapshot_reports_ ABSL_GUARDED_BY(mu_);
  DriverStatus status_ ABSL_GUARDED_BY(mu_);

  // Driver thread only.
  absl::Time next_tick_;
  // When to tell followers of a commit index no append carried (see Options).
  absl::Time announce_at_ = absl::InfiniteFuture();
  uint64_t last_leader_ = raft::kNone;
  // When the last heartbeat went to each peer (answers carry no id to match them by).
  std::map<uint64_t, absl::Time> heartbeat_sent_;
  // Reads waiting for a ReadIndex round (by request id) and then for the apply index. Ids
  // start from the clock: an answer to a round asked before a restart, arriving late, must
  // not match a new round (it would release the read at an index older than the read).
  uint64_t next_read_id_ = static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())) << 16;
  uint64_t read_in_flight_ = 0;  // request id of the round asked for, or 0
  absl::Time read_asked_at_;
  std::vector<Done> reads_unasked_;
  std::vector<Done> reads_in_round_;
  std::deque<ReadWaiter> reads_confirmed_;
  // The snapshot being taken (driver thread): the index applied and the configuration when
  // its flush started.
  struct PendingSnapshot {
    uint64_t index = 0;
    raft::ConfState conf_state;
    absl::Time started;
  };
  std::optional<PendingSnapshot> pending_snapshot_;
  // Runs Snapshotter::Flush() for pending_snapshot_, and leaves its outcome in flushed_.
  std::thread flush_thread_;
  absl::Mutex flush_mu_;
  std::optional<absl::StatusOr<uint64_t>> flushed_ ABSL_GUARDED_BY(flush_mu_);
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_RAFT_DRIVER_H_

#include "kvstore/server/raft_driver.h"

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "spdlog/spdlog.h"

namespace kvstore::server {

absl::Status NoLeaderError() { return absl::UnavailableError("etcdserver: no leader"); }
absl::Status StoppedError() { return absl::UnavailableError("etcdserver: server stopped"); }

absl::StatusOr<std::unique_ptr<RaftDriver>> RaftDriver::Create(const Options& options,
                                                               storage::RaftLogStore* log,
                                                               StateMachine* sm,
                                                               Transport* transport,
                                                               const common::Clock* clock) {
  raft::Config c;
  c.id = options.id;
  c.election_tick = options.election_ticks;
  c.heartbeat_tick = 1;
  c.storage = log;
  c.seed = options.seed;
  c.defer_commit_broadcast = options.commit_announce_delay > absl::ZeroDuration();
  // The core replays the committed entries after the log's snapshot, so that the
  // configuration changes among them take effect again (its configuration starts as the
  // snapshot's); Apply() below skips what the state machine already holds.
  c.applied = std::max(log->snapshot_meta().index, log->FirstIndex() - 1);
  absl::StatusOr<std::unique_ptr<raft::Node>> node = raft::Node::Create(c);
  if (!node.ok()) return node.status();
  return std::unique_ptr<RaftDriver>(
      new RaftDriver(options, log, sm, transport, clock, std::move(*node)));
}

RaftDriver::RaftDriver(const Options& options, storage::RaftLogStore* log, StateMachine* sm,
                       Transport* transport, const common::Clock* clock,
                       std::unique_ptr<raft::Node> node)
    : options_(options),
      log_(log),
      sm_(sm),
      transport_(transport),
      clock_(clock),
      node_(std::move(node)) {
  applied_.store(sm_->AppliedIndex(), std::memory_order_release);
  PublishStatus();
}

RaftDriver::~RaftDriver() { Stop(); }

void RaftDriver::Start() {
  absl::MutexLock l(&mu_);
  if (started_) return;
  started_ = true;
  next_tick_ = clock_->Now() + options_.tick;
  // The only voter need not wait out an election timeout to lead.
  const raft::ConfState cs = node_->Status().conf_state;
  if (cs.voters == std::vector<uint64_t>{options_.id} && cs.voters_outgoing.empty()) {
    node_->Campaign();
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "raft-driver");
    Run();
  });
}

void RaftDriver::Stop() {
  {
    absl::MutexLock l(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
  // The driver thread is gone: a flush still running ends here and its snapshot is
  // recorded on this thread, so that a restart replays no more than it must.
  if (pending_snapshot_) FinishSnapshot();
  FailEverything(StoppedError());
}

void RaftDriver::Propose(std::string data, Done on_dropped) {
  {
    absl::MutexLock l(&mu_);
    if (!stopping_) {
      proposals_.push_back(PendingProposal{std::move(data), std::move(on_dropped)});
      return;
    }
  }
  on_dropped(StoppedError());
}

bool RaftDriver::AnnounceCommitNow() {
  if (!node_->HasUnannouncedCommit()) return false;
  node_->AnnounceCommit();
  return true;
}

void RaftDriver::ProposeConfChange(raft::ConfChange cc, Done on_dropped) {
  {
    absl::MutexLock l(&mu_);
    if (!stopping_) {
      conf_changes_.push_back(PendingConfChange{std::move(cc), std::move(on_dropped)});
      return;
    }
  }
  on_dropped(StoppedError());
}

void RaftDriver::ReadBarrier(Done done) {
  {
    absl::MutexLock l(&mu_);
    if (!stopping_) {
      new_reads_.push_back(std::move(done));
      return;
    }
  }
  done(StoppedError());
}

void RaftDriver::Step(raft::Message m) {
  absl::MutexLock l(&mu_);
  if (!stopping_) inbox_.push_back(std::move(m));
}

void RaftDriver::ReportUnreachable(uint64_t id) {
  absl::MutexLock l(&mu_);
  if (!stopping_) unreachable_.push_back(id);
}

void RaftDriver::ReportPeerDown(uint64_t id) {
  absl::MutexLock l(&mu_);
  if (!stopping_) peers_down_.push_back(id);
}

void RaftDriver::ReportSnapshot(uint64_t id, bool ok) {
  absl::MutexLock l(&mu_);
  if (!stopping_) snapshot_reports_.emplace_back(id, ok);
}

void RaftDriver::TransferLeadership(uint64_t to) {
  absl::MutexLock l(&mu_);
  transfer_to_ = to;
}

DriverStatus RaftDriver::Status() const {
  absl::MutexLock l(&mu_);
  return status_;
}

bool RaftDriver::HasWork() const {
  return stopping_ || !proposals_.empty() || !conf_changes_.empty() || !inbox_.empty() ||
         !new_reads_.empty() || transfer_to_ != raft::kNone || !unreachable_.empty() ||
         !peers_down_.empty() || !snapshot_reports_.empty();
}

void RaftDriver::Run() {
  for (;;) {
    {
      absl::MutexLock l(&mu_);
      // The clock may be a test's: never sleep longer than one tick of real time.
      const absl::Duration until_timer = std::clamp(
          std::min(next_tick_, announce_at_) - clock_->Now(), absl::ZeroDuration(), options_.tick);
      mu_.AwaitWithTimeout(absl::Condition(this, &RaftDriver::HasWork), until_timer);
      if (stopping_) return;
    }
    RunOnce();
  }
}

void RaftDriver::RunOnce() {
  std::vector<PendingProposal> proposals;
  std::vector<PendingConfChange> conf_changes;
  std::vector<raft::Message> inbox;
  std::vector<Done> new_reads;
  uint64_t transfer_to;
  std::vector<uint64_t> unreachable;
  std::vector<uint64_t> peers_down;
  std::vector<std::pair<uint64_t, bool>> snapshot_reports;
  {
    absl::MutexLock l(&mu_);
    proposals.swap(proposals_);
    conf_changes.swap(conf_changes_);
    inbox.swap(inbox_);
    new_reads.swap(new_reads_);
    transfer_to = std::exchange(transfer_to_, raft::kNone);
    unreachable.swap(unreachable_);
    peers_down.swap(peers_down_);
    snapshot_reports.swap(snapshot_reports_);
  }

  for (raft::Message& m : inbox) {
    if (m.type == raft::MessageType::kHeartbeatResp) ObserveRoundTrip(m.from);
    node_->Step(m).IgnoreError();  // stale messages are normal
  }
  for (uint64_t id : unreachable) node_->ReportUnreachable(id);
  for (uint64_t id : peers_down) node_->ReportPeerDown(id);
  for (auto [id, ok] : snapshot_reports) {
    if (ok && options_.metrics != nullptr) options_.metrics->snapshots_sent->Add();
    node_->ReportSnapshot(id, ok);
  }
  if (transfer_to != raft::kNone) node_->TransferLeadership(transfer_to);
  if (!proposals.empty()) {
    std::vector<std::string> batch;
    batch.reserve(proposals.size());
    for (PendingProposal& p : proposals) batch.push_back(std::move(p.data));
    absl::Status s = node_->ProposeBatch(std::move(batch));
    if (!s.ok()) {
      const absl::Status why = absl::IsUnavailable(s) ? NoLeaderError() : s;
      for (PendingProposal& p : proposals) p.on_dropped(why);
    }
  }

  for (PendingConfChange& p : conf_changes) {
    absl::Status s = node_->ProposeConfChange(p.cc);
    if (!s.ok()) p.on_dropped(absl::IsUnavailable(s) ? NoLeaderError() : s);
  }

  const absl::Time now = clock_->Now();
  for (Done& d : new_reads) reads_unasked_.push_back(std::move(d));
  if (read_in_flight_ != 0 && now - read_asked_at_ >= options_.read_retry) {
    // The round was lost (leader change, dropped message): ask again, or give up if
    // there is no leader to ask.
    read_in_flight_ = 0;
    if (node_->Status().soft_state.leader == raft::kNone) {
      for (Done& d : reads_in_round_) d(NoLeaderError());
      for (Done& d : reads_unasked_) d(NoLeaderError());
      reads_in_round_.clear();
      reads_unasked_.clear();
    } else {
      for (Done& d : reads_in_round_) reads_unasked_.push_back(std::move(d));
      reads_in_round_.clear();
    }
  }
  if (read_in_flight_ == 0 && !reads_unasked_.empty()) {
    read_in_flight_ = next_read_id_++;
    read_asked_at_ = now;
    reads_in_round_ = std::move(reads_unasked_);
    reads_unasked_.clear();
    node_->ReadIndex(read_in_flight_);
  }

  bool changed = false;
  if (now >= next_tick_) {
    changed = true;  // the leader's view of its followers moves with heartbeats
    node_->Tick();
    next_tick_ += options_.tick;
    // After a stall (a paused process), skip the missed ticks rather than firing them
    // all at once, which would start an election at once.
    if (next_tick_ <= now) next_tick_ = now + options_.tick;
  }
  if (now >= announce_at_) {
    announce_at_ = absl::InfiniteFuture();
    node_->AnnounceCommit();
  }

  while (node_->HasReady()) {
    changed = true;
    raft::Ready rd = node_->GetReady();
    // The state first: a crash in between leaves a state machine ahead of its log, which
    // a restart handles (entries it holds are skipped); the other order would leave a log
    // that starts after what the state machine holds.
    if (!rd.snapshot.IsEmpty()) InstallSnapshot(rd.snapshot);
    // A leader sends new entries before it saves: the followers write them while it writes
    // its own (Raft thesis 10.2.1). Safe because the core counts the leader's copy toward a
    // quorum only once Advance() reports it persisted, and a leader's messages never
    // acknowledge anything of its own log. A leader's Ready without new entries (commit
    // news, heartbeats) is sent after its entries are applied instead, so that applying,
    // which its waiting clients need, does not wait behind those writes (the replies go
    // out in after_ready; answering a lone one before the writes measured no faster). A
    // state machine that changes the transport while applying must wait for after_ready.
    // Anyone else must save before sending: its answers (votes, appends acknowledged)
    // promise what is on its disk.
    enum class SendAt { kBeforeSave, kAfterSave, kAfterApply };
    const SendAt send_at = node_->raft().role() != raft::Role::kLeader ? SendAt::kAfterSave
                           : rd.entries.empty()                        ? SendAt::kAfterApply
                                                                       : SendAt::kBeforeSave;
    if (send_at == SendAt::kBeforeSave) SendMessages(std::move(rd.messages));
    const absl::Time save_start = clock_->Now();
    if (absl::Status s = log_->Save(rd); !s.ok()) {
      // What reached the disk is unknown; carrying on could acknowledge a lost write.
      spdlog::critical("raft log write failed, stopping: {}", s.ToString());
      std::abort();
    }
    if (!rd.snapshot.IsEmpty()) applied_.store(rd.snapshot.meta.index, std::memory_order_release);
    ServerMetrics* m = options_.metrics;
    if (m != nullptr && rd.must_sync)
      m->wal_fsync_seconds->ObserveDuration(clock_->Now() - save_start);
    if (m != nullptr && rd.soft_state) {
      m->has_leader->Set(rd.soft_state->leader != raft::kNone ? 1 : 0);
      m->is_leader->Set(rd.soft_state->role == raft::Role::kLeader ? 1 : 0);
      if (rd.soft_state->leader != raft::kNone && rd.soft_state->leader != last_leader_) {
        m->leader_changes->Add();
      }
    }
    if (rd.soft_state) last_leader_ = rd.soft_state->leader;
    if (send_at == SendAt::kAfterSave) SendMessages(std::move(rd.messages));
    const uint64_t already = sm_->AppliedIndex();
    const absl::Time apply_start = clock_->Now();
    const auto fresh = std::find_if(rd.committed_entries.begin(), rd.committed_entries.end(),
                                    [already](const raft::Entry& e) { return e.index > already; });
    if (fresh != rd.committed_entries.end()) {
      sm_->Apply(absl::MakeConstSpan(&*fresh, rd.committed_entries.end() - fresh));
    }
    if (m != nullptr && !rd.committed_entries.empty()) {
      m->apply_seconds->ObserveDuration(clock_->Now() - apply_start);
      m->proposals_committed->Add(rd.committed_entries.size());
    }
    if (!rd.committed_entries.empty()) {
      applied_.store(std::max(already, rd.committed_entries.back().index),
                     std::memory_order_release);
    }
    if (send_at == SendAt::kAfterApply) SendMessages(std::move(rd.messages));
    HandleReadStates(rd.read_states);
    node_->Advance();
    ResolveReads();
    if (options_.after_ready) options_.after_ready();
  }
  // A commit index that no append carried within the delay is announced on its own.
  if (options_.commit_announce_delay == absl::ZeroDuration() || !node_->HasUnannouncedCommit()) {
    announce_at_ = absl::InfiniteFuture();
  } else if (announce_at_ == absl::InfiniteFuture()) {
    announce_at_ = clock_->Now() + options_.commit_announce_delay;
  }
  if (changed) {
    MaybeSnapshot();
    PublishStatus();
  }
}

void RaftDriver::SendMessages(std::vector<raft::Message> messages) {
  if (transport_ == nullptr || messages.empty()) return;
  if (options_.snapshotter != nullptr) {
    auto is_snap = [](const raft::Message& m) { return m.type == raft::MessageType::kSnap; };
    for (raft::Message& m : messages) {
      if (is_snap(m)) SendSnapshot(std::move(m));
    }
    messages.erase(std::remove_if(messages.begin(), messages.end(), is_snap), messages.end());
  }
  const absl::Time sent = clock_->Now();
  for (const raft::Message& m : messages) {
    if (m.type == raft::MessageType::kHeartbeat) heartbeat_sent_.insert_or_assign(m.to, sent);
  }
  if (!messages.empty()) transport_->Send(std::move(messages));
}

void RaftDriver::ObserveRoundTrip(uint64_t from) {
  auto it = heartbeat_sent_.find(from);
  if (it == heartbeat_sent_.end()) return;
  if (options_.metrics != nullptr) {
    options_.metrics->PeerRoundTrip(from)->ObserveDuration(clock_->Now() - it->second);
  }
  heartbeat_sent_.erase(it);
}

void RaftDriver::InstallSnapshot(const raft::Snapshot& snap) {
  if (options_.snapshotter == nullptr) {
    spdlog::critical("received a snapshot at index {}, which this member cannot install",
                     snap.meta.index);
    std::abort();
  }
  const absl::Time start = clock_->Now();
  if (absl::Status s = options_.snapshotter->Install(snap); !s.ok()) {
    // The log must not record a snapshot whose state the state machine lacks.
    spdlog::critical("installing the snapshot at index {} failed, stopping: {}", snap.meta.index,
                     s.ToString());
    std::abort();
  }
  spdlog::info("installed the snapshot at index {} (term {}) in {}", snap.meta.index,
               snap.meta.term, absl::FormatDuration(clock_->Now() - start));
}

void RaftDriver::SendSnapshot(raft::Message m) {
  // The core asked for its stored snapshot, whose state is long gone from the state
  // machine: send the state as it is now, with the metadata that matches it. The
  // follower answers with the index it reached, which moves it past the core's snapshot.
  const uint64_t index = sm_->AppliedIndex();
  absl::StatusOr<uint64_t> term = log_->Term(index);
  absl::StatusOr<std::string> dir =
      term.ok() ? options_.snapshotter->Checkpoint() : absl::StatusOr<std::string>(term.status());
  if (!dir.ok()) {
    spdlog::error("cannot make a snapshot for {:x}: {}", m.to, dir.status().ToString());
    node_->ReportSnapshot(m.to, false);
    return;
  }
  m.snapshot.meta.index = index;
  m.snapshot.meta.term = *term;
  m.snapshot.meta.conf_state = node_->Status().conf_state;
  m.snapshot.data = options_.snapshotter->SnapshotData();
  spdlog::info("sending a snapshot at index {} (term {}) to {:x}", index, *term, m.to);
  transport_->SendSnapshot(std::move(m), std::move(*dir));
}

void RaftDriver::MaybeSnapshot() {
  Snapshotter* const snapshotter = options_.snapshotter;
  if (snapshotter == nullptr || options_.snapshot_count == 0) return;
  if (pending_snapshot_) {
    bool flushed;
    {
      absl::MutexLock l(&flush_mu_);
      flushed = flushed_.has_value();
    }
    if (flushed) FinishSnapshot();
    return;
  }
  const uint64_t applied = sm_->AppliedIndex();
  if (applied < log_->snapshot_meta().index + options_.snapshot_count) return;
  // Flushing a memtable takes a few hundred milliseconds: on a thread of its own, while
  // this one goes on applying. Flush() makes durable at least what was applied before it
  // started, so at least `applied`, whose configuration is the core's now.
  pending_snapshot_ = PendingSnapshot{applied, node_->Status().conf_state, clock_->Now()};
  flush_thread_ = std::thread([this, snapshotter] {
    pthread_setname_np(pthread_self(), "raft-flush");
    absl::StatusOr<uint64_t> durable = snapshotter->Flush();
    absl::MutexLock l(&flush_mu_);
    flushed_ = std::move(durable);
  });
}

void RaftDriver::FinishSnapshot() {
  flush_thread_.join();
  const PendingSnapshot snap = *std::exchange(pending_snapshot_, std::nullopt);
  std::optional<absl::StatusOr<uint64_t>> flushed;  // set: the flush thread ended
  {
    absl::MutexLock l(&flush_mu_);
    flushed.swap(flushed_);
  }
  const absl::StatusOr<uint64_t>& durable = *flushed;
  if (!durable.ok()) {
    spdlog::error("flushing the state machine failed: {}", durable.status().ToString());
    return;
  }
  // A snapshot installed meanwhile may have moved the log past this one.
  const uint64_t last = log_->snapshot_meta().index;
  if (*durable < snap.index || snap.index <= last) {
    spdlog::warn("state machine durable at {}, snapshot due at {}, log's at {}: no snapshot",
                 *durable, snap.index, last);
    return;
  }
  if (absl::Status s = log_->CreateSnapshot(snap.index, snap.conf_state, ""); !s.ok()) {
    spdlog::error("recording the snapshot at {} failed: {}", snap.index, s.ToString());
    return;
  }
  // Never above the durable index: a crash may take the state machine back to it, and the
  // log must then hold everything after it.
  const uint64_t compact =
      snap.index > options_.catchup_entries ? snap.index - options_.catchup_entries : 0;
  if (compact >= log_->FirstIndex()) {
    if (absl::Status s = log_->Compact(compact); !s.ok()) {
      spdlog::error("compacting the raft log to {} failed: {}", compact, s.ToString());
      return;
    }
  }
  spdlog::info("snapshot at index {}; raft log starts at {} ({} after the flush started)",
               snap.index, log_->FirstIndex(), absl::FormatDuration(clock_->Now() - snap.started));
}

void RaftDriver::HandleReadStates(const std::vector<raft::ReadState>& states) {
  for (const raft::ReadState& rs : states) {
    if (rs.request_id != read_in_flight_) continue;  // an answer to a round given up on
    read_in_flight_ = 0;
    for (Done& d : reads_in_round_) reads_confirmed_.push_back(ReadWaiter{rs.index, std::move(d)});
    reads_in_round_.clear();
  }
}

void RaftDriver::ResolveReads() {
  const uint64_t applied = applied_.load(std::memory_order_acquire);
  // Rounds are confirmed in order, so their indexes never decrease along the queue.
  while (!reads_confirmed_.empty() && reads_confirmed_.front().index <= applied) {
    reads_confirmed_.front().done(absl::OkStatus());
    reads_confirmed_.pop_front();
  }
}

void RaftDriver::PublishStatus() {
  const raft::NodeStatus st = node_->Status();
  term_.store(st.hard_state.term, std::memory_order_release);
  absl::MutexLock l(&mu_);
  status_.id = st.id;
  status_.leader = st.soft_state.leader;
  status_.role = st.soft_state.role;
  status_.term = st.hard_state.term;
  status_.commit = st.hard_state.commit;
  status_.applied = applied_.load(std::memory_order_acquire);
  status_.last_index = st.last_index;
  status_.snapshot_index = log_->snapshot_meta().index;
  status_.conf_state = st.conf_state;
  status_.match.clear();
  if (st.soft_state.role == raft::Role::kLeader) {
    for (const auto& [id, pr] : node_->raft().tracker().progress()) {
      status_.match.emplace_back(id, pr.match);
    }
  }
}

void RaftDriver::FailEverything(const absl::Status& s) {
  std::vector<PendingProposal> proposals;
  std::vector<PendingConfChange> conf_changes;
  std::vector<Done> new_reads;
  {
    absl::MutexLock l(&mu_);
    proposals.swap(proposals_);
    conf_changes.swap(conf_changes_);
    new_reads.swap(new_reads_);
  }
  for (PendingProposal& p : proposals) p.on_dropped(s);
  for (PendingConfChange& p : conf_changes) p.on_dropped(s);
  for (Done& d : new_reads) d(s);
  for (Done& d : reads_unasked_) d(s);
  for (Done& d : reads_in_round_) d(s);
  for (ReadWaiter& w : reads_confirmed_) w.done(s);
  reads_unasked_.clear();
  reads_in_round_.clear();
  reads_confirmed_.clear();
}

}  // namespace kvstore::server

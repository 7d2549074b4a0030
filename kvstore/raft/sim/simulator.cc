#include "kvstore/raft/sim/simulator.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <queue>
#include <set>
#include <unordered_map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kvstore/raft/sim/checker.h"
#include "kvstore/raft/testing/node_host.h"

namespace raft::sim {
namespace {

using testing::NodeHost;

constexpr int kUnitsPerTick = 10;
constexpr size_t kMaxHosts = 14;

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t Uniform(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  bool Chance(double p) { return (Next() >> 11) * (1.0 / 9007199254740992.0) < p; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[Uniform(v.size())]; }

 private:
  uint64_t state_;
};

struct InFlight {
  uint64_t at;
  uint64_t seq;
  Message m;
  enum Kind : uint8_t {
    kMessage,
    kSnapshotReport,  // the transport tells m.from how sending snapshot m to m.to ended
    kCrash,           // m.to crashes
  };
  Kind kind = kMessage;
  bool snapshot_ok = false;
  bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : seq > o.seq; }
};

enum class Membership { kJoining, kMember, kRemoved };

class World {
 public:
  explicit World(const SimOptions& o);
  SimResult Run();

 private:
  void RandomizeSettings();
  void AddHost(uint64_t id, MemoryStorage disk, Membership m);
  void Drain(uint64_t id);
  void Send(Message m);
  void DeliverUntil(uint64_t now);
  void Deliver(const Message& m);
  bool Up(uint64_t id) const;
  std::vector<uint64_t> UpHosts() const;
  uint64_t Leader() const;
  void InjectFaults(uint64_t tick);
  void Crash(uint64_t id, uint64_t tick);
  void ScheduleCrash(uint64_t id, uint64_t delay);
  void Restart(uint64_t id);
  void Partition();
  void ChangeMembership(uint64_t leader);
  void ClientOps();
  void TrackMembership();
  bool Recovered(uint64_t tick);
  uint64_t AppliedSum() const;
  void Log(const std::string& s) const {
    if (o_.verbose) std::cerr << "[t=" << now_ / kUnitsPerTick << "] " << s << "\n";
  }

  const SimOptions o_;
  Rng rng_;
  Config base_;
  double drop_rate_ = 0, dup_rate_ = 0;
  uint64_t max_delay_ = 10;
  uint64_t now_ = 0;
  bool faults_active_ = true;
  uint64_t seq_ = 0;
  SafetyChecker checker_;
  SimResult result_;

  std::map<uint64_t, std::unique_ptr<NodeHost>> hosts_;
  std::map<uint64_t, Membership> membership_;
  std::map<uint64_t, uint64_t> last_seen_member_at_;  // applied index of the latest config with it
  std::map<uint64_t, int> phase_;           // sub-tick at which each member ticks
  std::map<uint64_t, uint64_t> restart_at_;  // crashed members and when they come back
  uint64_t next_id_;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<InFlight>> network_;
  std::set<std::pair<uint64_t, uint64_t>> blocked_;  // directed links that lose everything

  uint64_t next_write_ = 0, next_read_ = 1;
  std::unordered_map<std::string, uint64_t> pending_writes_;  // data -> proposing member
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> pending_reads_;  // (member, id) -> required
  std::string marker_;
  uint64_t marker_index_ = 0;
  uint64_t last_marker_tick_ = 0;
  uint64_t last_leader_ = kNone;
};

World::World(const SimOptions& o) : o_(o), rng_(o.seed * 0x2545F4914F6CDD1DULL + 17) {
  RandomizeSettings();
  std::vector<uint64_t> voters;
  for (int i = 1; i <= o_.cluster_size; ++i) voters.push_back(i);
  for (uint64_t id : voters) {
    AddHost(id, MemoryStorage::Bootstrapped(voters), Membership::kMember);
  }
  next_id_ = voters.size() + 1;
}

void World::RandomizeSettings() {
  base_.election_tick = 10;
  base_.heartbeat_tick = 1 + static_cast<int>(rng_.Uniform(3));
  base_.pre_vote = rng_.Chance(0.75);
  base_.check_quorum = rng_.Chance(0.75);
  base_.max_size_per_msg = rng_.Pick<uint64_t>({1, 100, 1 << 20});
  base_.max_inflight_msgs = rng_.Pick<uint64_t>({1, 4, 256});
  base_.seed = o_.seed;
  base_.planted_bug = o_.planted_bug;
  drop_rate_ = rng_.Pick<double>({0, 0.01, 0.05, 0.1});
  dup_rate_ = rng_.Pick<double>({0, 0.02, 0.05});
  max_delay_ = rng_.Pick<uint64_t>({2, 10, 30});
  base_.defer_commit_broadcast = rng_.Chance(0.5);
  if (o_.leader_churn) {
    base_.max_size_per_msg = 1;
    base_.max_inflight_msgs = 1;
    max_delay_ = 30;
  }
  result_.config = absl::StrCat(
      "size=", o_.cluster_size, " pre_vote=", base_.pre_vote, " check_quorum=",
      base_.check_quorum, " heartbeat_tick=", base_.heartbeat_tick, " max_size_per_msg=",
      base_.max_size_per_msg, " max_inflight=", base_.max_inflight_msgs, " drop=", drop_rate_,
      " dup=", dup_rate_, " max_delay=", max_delay_,
      " defer_commit_broadcast=", base_.defer_commit_broadcast);
}

void World::AddHost(uint64_t id, MemoryStorage disk, Membership m) {
  const SnapshotMeta meta = disk.GetSnapshot()->meta;
  checker_.OnDiskCreated(id, meta.index, meta.term);
  auto host = std::make_unique<NodeHost>(id, std::move(disk), base_);
  host->on_persist = [this](uint64_t id, const std::vector<Entry>& e) { checker_.OnPersist(id, e); };
  host->on_persist_snapshot = [this](uint64_t id, const Snapshot& s) {
    checker_.OnPersistSnapshot(id, s.meta);
  };
  host->on_snapshot = [this](uint64_t id, const Snapshot& s) {
    checker_.OnStateReset(id, s.meta.index, hosts_.at(id)->state());
  };
  host->on_apply = [this](uint64_t id, const Entry& e) {
    checker_.OnApply(id, e);
    auto it = pending_writes_.find(e.data);
    if (it != pending_writes_.end() && it->second == id) {
      checker_.OnWriteAcked(e.index);
      ++result_.acked_writes;
      pending_writes_.erase(it);
    }
    if (!marker_.empty() && e.data == marker_) marker_index_ = e.index;
  };
  host->on_read_state = [this](uint64_t id, const ReadState& rs) {
    auto it = pending_reads_.find({id, rs.request_id});
    if (it == pending_reads_.end()) return;
    checker_.OnReadIndex(id, it->second, rs.index);
    pending_reads_.erase(it);
  };
  checker_.OnStateReset(id, host->applied_index(), host->state());
  hosts_[id] = std::move(host);
  membership_[id] = m;
  phase_[id] = static_cast<int>(rng_.Uniform(kUnitsPerTick));
}

bool World::Up(uint64_t id) const {
  auto it = hosts_.find(id);
  return it != hosts_.end() && it->second->up();
}

std::vector<uint64_t> World::UpHosts() const {
  std::vector<uint64_t> out;
  for (const auto& [id, h] : hosts_) {
    if (h->up()) out.push_back(id);
  }
  return out;
}

uint64_t World::Leader() const {
  uint64_t best = kNone, best_term = 0;
  for (const auto& [id, h] : hosts_) {
    if (!h->IsLeader()) continue;
    const uint64_t term = h->node().Status().hard_state.term;
    if (term > best_term) {
      best = id;
      best_term = term;
    }
  }
  return best;
}

void World::Drain(uint64_t id) {
  NodeHost& h = *hosts_.at(id);
  for (Message& m : h.Drain()) Send(std::move(m));
  if (h.IsLeader()) {
    const Node& n = h.node();
    checker_.OnLeader(
        id, n.Status().hard_state.term, [&n](uint64_t i) { return n.TermAt(i); },
        n.FirstIndex());
    if (id != last_leader_) {
      last_leader_ = id;
      ++result_.leaders;
      Log(absl::StrCat("member ", id, " leads term ", n.Status().hard_state.term));
      // A nemesis that kills new leaders within a few message delays leaves logs that
      // disagree about the last terms: the ground where commitment rules matter.
      const double kill_chance = o_.leader_churn ? 0.5 : 0.05 * o_.fault_intensity;
      if (faults_active_ && rng_.Chance(std::min(1.0, kill_chance))) {
        ScheduleCrash(id, 1 + rng_.Uniform(3 * max_delay_));
      }
    }
  }
}

void World::Send(Message m) {
  if (m.type == MessageType::kSnap) ++result_.snapshots_sent;
  if (rng_.Chance(drop_rate_)) {
    // A snapshot stream that breaks is reported to the sender, as a real transport does.
    if (m.type == MessageType::kSnap) {
      network_.push(InFlight{now_ + 1 + rng_.Uniform(max_delay_), seq_++, std::move(m),
                              InFlight::kSnapshotReport});
    }
    return;
  }
  const int copies = rng_.Chance(dup_rate_) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    uint64_t delay = 1 + rng_.Uniform(max_delay_);
    if (rng_.Chance(0.01)) delay += rng_.Uniform(5 * kUnitsPerTick);  // a straggler
    network_.push(InFlight{now_ + delay, seq_++, m});
  }
}

void World::DeliverUntil(uint64_t now) {
  while (!network_.empty() && network_.top().at <= now) {
    InFlight f = network_.top();
    network_.pop();
    switch (f.kind) {
      case InFlight::kSnapshotReport:
        if (Up(f.m.from)) {
          hosts_.at(f.m.from)->node().ReportSnapshot(f.m.to, f.snapshot_ok);
          Drain(f.m.from);
        }
        break;
      case InFlight::kCrash:
        if (Up(f.m.to) && faults_active_) Crash(f.m.to, now_ / kUnitsPerTick);
        break;
      case InFlight::kMessage:
        Deliver(f.m);
        break;
    }
    if (!checker_.ok()) return;
  }
}

void World::Deliver(const Message& m) {
  const bool delivered = Up(m.to) && !blocked_.count({m.from, m.to});
  if (m.type == MessageType::kSnap) {
    network_.push(InFlight{now_ + 1, seq_++, m, InFlight::kSnapshotReport, delivered});
  }
  if (o_.verbose && std::getenv("SIM_TRACE_MESSAGES")) {
    Log(absl::StrCat(delivered ? "deliver " : "lose ", MessageTypeName(m.type), " ", m.from,
                     "->", m.to, " term ", m.term, " index ", m.index, " log_term ", m.log_term,
                     " entries ", m.entries.size(), " commit ", m.commit, " reject ", m.reject,
                     " hint ", m.reject_hint));
  }
  if (!delivered) return;
  ++result_.messages_delivered;
  hosts_.at(m.to)->node().Step(m).IgnoreError();
  Drain(m.to);
}

void World::ScheduleCrash(uint64_t id, uint64_t delay) {
  if (!faults_active_) return;
  Message target;
  target.to = id;
  network_.push(InFlight{now_ + delay, seq_++, std::move(target), InFlight::kCrash});
}

void World::Crash(uint64_t id, uint64_t tick) {
  hosts_.at(id)->Crash();
  restart_at_[id] = tick + 5 + rng_.Uniform(rng_.Chance(0.5) ? 30 : 200);
  ++result_.crashes;
  // Clients of a crashed member lose their connection: nothing of theirs is acknowledged.
  std::erase_if(pending_writes_, [id](const auto& kv) { return kv.second == id; });
  std::erase_if(pending_reads_, [id](const auto& kv) { return kv.first.first == id; });
  Log(absl::StrCat("crash ", id));
}

void World::Restart(uint64_t id) {
  restart_at_.erase(id);
  NodeHost& h = *hosts_.at(id);
  h.Restart().IgnoreError();
  checker_.OnStateReset(id, h.applied_index(), h.state());
  Log(absl::StrCat("restart ", id));
  Drain(id);
}

void World::Partition() {
  std::vector<uint64_t> ids;
  for (const auto& [id, m] : membership_) {
    if (m != Membership::kRemoved) ids.push_back(id);
  }
  ++result_.partitions;
  if (rng_.Chance(0.5)) {
    // Symmetric: a random side cannot talk to the other.
    std::set<uint64_t> side;
    for (uint64_t id : ids) {
      if (rng_.Chance(0.5)) side.insert(id);
    }
    for (uint64_t a : ids) {
      for (uint64_t b : ids) {
        if (side.count(a) != side.count(b)) blocked_.insert({a, b});
      }
    }
    Log(absl::StrCat("partition, one side has ", side.size(), " of ", ids.size()));
  } else {
    // One way: a hears nothing from b, or b's messages to some members are lost.
    const uint64_t a = rng_.Pick(ids), b = rng_.Pick(ids);
    if (a != b) blocked_.insert({a, b});
    Log(absl::StrCat("one-way cut ", a, " -> ", b));
  }
}

void World::ChangeMembership(uint64_t leader) {
  const ConfState cs = hosts_.at(leader)->node().Status().conf_state;
  ConfChange cc;
  std::optional<uint64_t> new_host;
  const uint64_t r = rng_.Uniform(4);
  if (r == 0 && cs.voters.size() < 7 && hosts_.size() < kMaxHosts) {
    new_host = next_id_++;
    cc.changes.push_back({ConfChangeType::kAddVoter, *new_host});
  } else if (r == 1 && hosts_.size() < kMaxHosts) {
    new_host = next_id_++;
    cc.changes.push_back({ConfChangeType::kAddLearner, *new_host});
  } else if (r == 2 && !cs.learners.empty()) {
    cc.changes.push_back({ConfChangeType::kAddVoter, rng_.Pick(cs.learners)});
  } else if (r == 3 && cs.voters.size() > 1) {
    cc.changes.push_back({ConfChangeType::kRemoveNode, rng_.Pick(cs.voters)});
  } else {
    return;
  }
  if (!hosts_.at(leader)->node().ProposeConfChange(cc).ok()) return;
  ++result_.conf_changes;
  Log(absl::StrCat("leader ", leader, " proposes change type ",
                   static_cast<int>(cc.changes[0].type), " of ", cc.changes[0].node_id));
  if (new_host) AddHost(*new_host, MemoryStorage(), Membership::kJoining);
  Drain(leader);
}

void World::TrackMembership() {
  const uint64_t leader = Leader();
  if (leader == kNone) return;
  const NodeHost& l = *hosts_.at(leader);
  // The configuration in force at the leader's applied index; a leader that has applied
  // less may still show an older one.
  const uint64_t at = l.applied_index();
  const Configuration c = Configuration::FromConfState(l.node().Status().conf_state);
  const std::set<uint64_t> members = c.Members();
  for (auto& [id, m] : membership_) {
    if (members.count(id)) {
      last_seen_member_at_[id] = std::max(last_seen_member_at_[id], at);
      if (m == Membership::kJoining) m = Membership::kMember;
      continue;
    }
    if (m == Membership::kMember && !c.IsJoint() && id != leader &&
        at > last_seen_member_at_[id]) {
      // Its removal is committed: shut it down for good, as an operator would.
      m = Membership::kRemoved;
      hosts_.at(id)->Crash();
      restart_at_.erase(id);
      Log(absl::StrCat("member ", id, " removed and shut down"));
    }
  }
}

void World::InjectFaults(uint64_t tick) {
  const double k = o_.fault_intensity;
  std::vector<uint64_t> up = UpHosts();
  if (!up.empty() && rng_.Chance(0.004 * k)) {
    // Leaders crash more often than others: their crashes are the interesting ones.
    const uint64_t leader = Leader();
    Crash(leader != kNone && rng_.Chance(0.5) ? leader : rng_.Pick(up), tick);
  }
  if (rng_.Chance(0.005 * k)) Partition();
  if (!blocked_.empty() && rng_.Chance(0.01)) {
    blocked_.clear();
    Log("network healed");
  }
  up = UpHosts();
  if (!up.empty() && rng_.Chance(0.01 * k)) {
    const uint64_t id = rng_.Pick(up);
    hosts_.at(id)->SnapshotAndCompact(rng_.Uniform(10)).IgnoreError();
  }
  const uint64_t leader = Leader();
  if (leader != kNone && rng_.Chance(0.003 * k)) {
    const ConfState cs = hosts_.at(leader)->node().Status().conf_state;
    const uint64_t to = rng_.Pick(cs.voters);
    hosts_.at(leader)->node().TransferLeadership(to);
    ++result_.transfers;
    Log(absl::StrCat("leader ", leader, " transfers to ", to));
    Drain(leader);
  }
  if (leader != kNone && !o_.leader_churn && rng_.Chance(0.003 * k)) ChangeMembership(leader);
}

void World::ClientOps() {
  std::vector<uint64_t> up = UpHosts();
  if (up.empty()) return;
  if (rng_.Chance(0.3)) {
    const uint64_t leader = Leader();
    const uint64_t at = (leader != kNone && rng_.Chance(0.8)) ? leader : rng_.Pick(up);
    std::string data = absl::StrCat("w", next_write_++);
    if (hosts_.at(at)->node().Propose(data).ok()) {
      pending_writes_[data] = at;
      Drain(at);
      // Sometimes the leader dies with the proposal barely sent.
      if (at == leader && rng_.Chance(std::min(1.0, 0.01 * o_.fault_intensity))) {
        ScheduleCrash(at, 1 + rng_.Uniform(2 * max_delay_));
      }
    }
  }
  if (rng_.Chance(0.2)) {
    const uint64_t at = rng_.Pick(up);
    const uint64_t id = next_read_++;
    pending_reads_[{at, id}] = checker_.OnReadStart();
    hosts_.at(at)->node().ReadIndex(id);
    Drain(at);
  }
}

uint64_t World::AppliedSum() const {
  uint64_t sum = 0;
  for (const auto& [id, h] : hosts_) {
    if (h->up()) sum += h->applied_index();
  }
  return sum;
}

bool World::Recovered(uint64_t tick) {
  const uint64_t leader = Leader();
  if (leader == kNone) return false;
  NodeHost& l = *hosts_.at(leader);
  if (marker_index_ == 0 || l.applied_index() < marker_index_) {
    // (Re)propose the marker until the current leader applies it.
    if (marker_.empty() || tick >= last_marker_tick_ + 20) {
      marker_ = absl::StrCat("marker", tick);
      marker_index_ = 0;
      last_marker_tick_ = tick;
      l.node().Propose(marker_).IgnoreError();
      Drain(leader);
    }
    return false;
  }
  const Configuration c = Configuration::FromConfState(l.node().Status().conf_state);
  if (c.IsJoint()) return false;
  const uint64_t committed = std::max(marker_index_, checker_.max_applied_index());
  for (uint64_t id : c.Members()) {
    if (!Up(id) || hosts_.at(id)->applied_index() < committed) return false;
  }
  return true;
}

SimResult World::Run() {
  // Recovery must finish within recovery_ticks, or keep making progress: a member that
  // catches up on a long log one small append per round trip may need longer, but it
  // must never stall for kMaxStall ticks, and never take more than 4 x recovery_ticks.
  constexpr uint64_t kMaxStall = 50;
  const uint64_t hard_limit = o_.fault_ticks + 4 * o_.recovery_ticks;
  uint64_t total = o_.fault_ticks + o_.recovery_ticks;
  uint64_t applied_sum = 0;
  uint64_t tick = 0;
  bool recovered = false;
  for (; tick < total && checker_.ok(); ++tick) {
    const bool faults = tick < static_cast<uint64_t>(o_.fault_ticks);
    if (tick == static_cast<uint64_t>(o_.fault_ticks)) {
      faults_active_ = false;
      blocked_.clear();
      drop_rate_ = 0;
      dup_rate_ = 0;
      for (auto [id, at] : std::map<uint64_t, uint64_t>(restart_at_)) Restart(id);
      Log("faults stop");
    }
    for (int sub = 0; sub < kUnitsPerTick && checker_.ok(); ++sub) {
      now_ = tick * kUnitsPerTick + sub;
      DeliverUntil(now_);
      for (auto& [id, h] : hosts_) {
        if (phase_[id] != sub || !h->up()) continue;
        h->node().Tick();
        // As the server's driver does a moment after the commit index moved.
        if (h->node().HasUnannouncedCommit() && rng_.Chance(0.5)) h->node().AnnounceCommit();
        Drain(id);
      }
    }
    for (auto [id, at] : std::map<uint64_t, uint64_t>(restart_at_)) {
      if (at <= tick) Restart(id);
    }
    TrackMembership();
    if (faults) {
      InjectFaults(tick);
      ClientOps();
    } else if (Recovered(tick)) {
      recovered = true;
      break;
    } else if (const uint64_t sum = AppliedSum(); sum > applied_sum) {
      applied_sum = sum;
      total = std::clamp(tick + kMaxStall, total, hard_limit);
    }
  }
  result_.ticks = tick;
  for (const auto& [id, h] : hosts_) {
    if (!h->up()) {
      Log(absl::StrCat("member ", id, ": down"));
      continue;
    }
    const NodeStatus st = h->node().Status();
    Log(absl::StrCat("member ", id, ": ", RoleName(st.soft_state.role), " term ",
                     st.hard_state.term, " vote ", st.hard_state.vote, " lead ",
                     st.soft_state.leader, " commit ", st.hard_state.commit, " applied ",
                     st.applied, " last ", st.last_index, " voters {",
                     absl::StrJoin(st.conf_state.voters, ","), "} outgoing {",
                     absl::StrJoin(st.conf_state.voters_outgoing, ","), "} learners {",
                     absl::StrJoin(st.conf_state.learners, ","), "}"));
    if (st.soft_state.role != Role::kLeader) continue;
    for (const auto& [pid, pr] : h->node().raft().tracker().progress()) {
      Log(absl::StrCat("  progress of ", pid, ": ", ProgressStateName(pr.state), " match ",
                       pr.match, " next ", pr.next, " paused ", pr.IsPaused(), " inflight ",
                       pr.inflights.Count(), " active ", pr.recent_active));
    }
  }
  result_.committed = checker_.max_applied_index();
  result_.reads_checked = checker_.reads_checked();
  if (!checker_.ok()) {
    result_.ok = false;
    result_.violation = absl::StrCat(checker_.violation(), " (at tick ", tick, ")");
  } else if (!recovered) {
    result_.ok = false;
    const uint64_t leader = Leader();
    result_.violation = absl::StrCat(
        "liveness: ", tick - o_.fault_ticks, " ticks after the faults healed, ",
        leader == kNone ? std::string("there is no leader")
                        : absl::StrCat("leader ", leader, " has not applied everything on every member"));
  }
  return result_;
}

}  // namespace

const char* PlantedBugName(PlantedBug b) {
  switch (b) {
    case PlantedBug::kNone: return "none";
    case PlantedBug::kCommitPreviousTermByCounting: return "commit-previous-term";
    case PlantedBug::kGrantTwoVotesInOneTerm: return "double-vote";
    case PlantedBug::kReadIndexWithoutHeartbeat: return "read-without-heartbeat";
  }
  return "unknown";
}

std::string ReplayCommand(const SimOptions& o) {
  std::string cmd = absl::StrCat("build/bin/raft_sim --seed=", o.seed, " --size=", o.cluster_size,
                                 " --fault_ticks=", o.fault_ticks,
                                 " --recovery_ticks=", o.recovery_ticks);
  if (o.fault_intensity != 1.0) absl::StrAppend(&cmd, " --intensity=", o.fault_intensity);
  if (o.leader_churn) absl::StrAppend(&cmd, " --leader_churn");
  if (o.planted_bug != PlantedBug::kNone) {
    absl::StrAppend(&cmd, " --bug=", PlantedBugName(o.planted_bug));
  }
  return cmd + " --verbose";
}

SimResult RunSimulation(const SimOptions& options) { return World(options).Run(); }

}  // namespace raft::sim

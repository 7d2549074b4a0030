#include "kvstore/raft/testing/scripted_network.h"

namespace raft::testing {

Config TestConfig() {
  Config c;
  c.election_tick = 10;
  c.heartbeat_tick = 1;
  c.max_size_per_msg = 1 << 20;
  c.max_inflight_msgs = 256;
  c.check_quorum = true;
  c.pre_vote = true;
  return c;
}

ScriptedNetwork::ScriptedNetwork(int n, Config base) : base_(base) {
  std::vector<uint64_t> voters;
  for (int i = 1; i <= n; ++i) voters.push_back(i);
  for (uint64_t id : voters) {
    hosts_[id] = std::make_unique<NodeHost>(id, MemoryStorage::Bootstrapped(voters), base_);
  }
}

std::vector<uint64_t> ScriptedNetwork::ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, h] : hosts_) out.push_back(id);
  return out;
}

NodeHost& ScriptedNetwork::AddHost(uint64_t id) {
  hosts_[id] = std::make_unique<NodeHost>(id, MemoryStorage(), base_);
  return *hosts_[id];
}

void ScriptedNetwork::Flush() {
  for (auto& [id, h] : hosts_) {
    for (Message& m : h->Drain()) queue_.push_back(std::move(m));
  }
}

void ScriptedNetwork::Tick(uint64_t id, int n) {
  for (int i = 0; i < n; ++i) {
    if (host(id).up()) node(id).Tick();
  }
  Flush();
}

void ScriptedNetwork::TickAll(int n) {
  for (int i = 0; i < n; ++i) {
    for (auto& [id, h] : hosts_) {
      if (h->up()) h->node().Tick();
    }
    Flush();
  }
}

bool ScriptedNetwork::Blocked(const Message& m) const {
  auto it = hosts_.find(m.to);
  if (it == hosts_.end() || !it->second->up()) return true;
  return cut_.count({m.from, m.to}) > 0;
}

void ScriptedNetwork::Deliver(const Message& m) {
  if (Blocked(m)) return;
  host(m.to).node().Step(m).IgnoreError();
  Flush();
}

void ScriptedNetwork::Stabilize(int max_messages) {
  Flush();
  for (int i = 0; i < max_messages && !queue_.empty(); ++i) {
    Message m = std::move(queue_.front());
    queue_.pop_front();
    Deliver(m);
  }
}

int ScriptedNetwork::DeliverIf(const std::function<bool(const Message&)>& pred) {
  Flush();
  std::deque<Message> keep, take;
  for (Message& m : queue_) (pred(m) ? take : keep).push_back(std::move(m));
  queue_ = std::move(keep);
  for (const Message& m : take) Deliver(m);
  return static_cast<int>(take.size());
}

int ScriptedNetwork::DropIf(const std::function<bool(const Message&)>& pred) {
  Flush();
  const size_t before = queue_.size();
  std::erase_if(queue_, pred);
  return static_cast<int>(before - queue_.size());
}

void ScriptedNetwork::MutateQueued(const std::function<void(Message&)>& fn) {
  Flush();
  for (Message& m : queue_) fn(m);
}

void ScriptedNetwork::Cut(uint64_t a, uint64_t b) {
  cut_.insert({a, b});
  cut_.insert({b, a});
}

void ScriptedNetwork::Isolate(uint64_t id) {
  for (const auto& [other, h] : hosts_) {
    if (other != id) Cut(id, other);
  }
}

bool ScriptedNetwork::Elect(uint64_t id) {
  node(id).Campaign();
  Stabilize();
  return host(id).IsLeader();
}

uint64_t ScriptedNetwork::Leader() const {
  uint64_t leader = kNone;
  for (const auto& [id, h] : hosts_) {
    if (h->IsLeader()) {
      if (leader != kNone) return kNone;
      leader = id;
    }
  }
  return leader;
}

absl::Status ScriptedNetwork::ProposeAndCommit(uint64_t id, const std::string& data) {
  absl::Status s = node(id).Propose(data);
  Stabilize();
  return s;
}

}  // namespace raft::testing

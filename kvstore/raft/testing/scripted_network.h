// Test support: a cluster of NodeHosts joined by a network that tests drive step by step.
// Messages wait in a queue until the test delivers them, so a test can script exactly which
// messages arrive, which are lost, and in what order.
#ifndef KVSTORE_RAFT_TESTING_SCRIPTED_NETWORK_H_
#define KVSTORE_RAFT_TESTING_SCRIPTED_NETWORK_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "kvstore/raft/testing/node_host.h"

namespace raft::testing {

// Settings small enough for tests to reason about: elections after 10..19 ticks.
Config TestConfig();

class ScriptedNetwork {
 public:
  // Members 1..n of a freshly bootstrapped cluster.
  explicit ScriptedNetwork(int n, Config base = TestConfig());

  NodeHost& host(uint64_t id) { return *hosts_.at(id); }
  Node& node(uint64_t id) { return host(id).node(); }
  std::vector<uint64_t> ids() const;
  // Adds a member with an empty disk (it learns the cluster from the leader).
  NodeHost& AddHost(uint64_t id);

  // Collects every member's Ready into the queue.
  void Flush();
  void Tick(uint64_t id, int n = 1);
  void TickAll(int n = 1);
  // Delivers queued messages, and the messages they cause, until none is left.
  void Stabilize(int max_messages = 100000);
  // Delivers queued messages that `pred` accepts (once each); the rest stay queued.
  // Returns how many were delivered.
  int DeliverIf(const std::function<bool(const Message&)>& pred);
  // Drops queued messages that `pred` accepts; returns how many.
  int DropIf(const std::function<bool(const Message&)>& pred);
  // Lets a test rewrite queued messages (say, strip some entries).
  void MutateQueued(const std::function<void(Message&)>& fn);
  const std::deque<Message>& queued() const { return queue_; }

  // Links that lose every message, in both directions.
  void Cut(uint64_t a, uint64_t b);
  void Isolate(uint64_t id);
  void Heal() { cut_.clear(); }

  // Campaigns at `id` and stabilizes; returns whether `id` leads afterwards.
  bool Elect(uint64_t id);
  // The member that every up member agrees leads, or kNone.
  uint64_t Leader() const;
  // Proposes at `id` and stabilizes.
  absl::Status ProposeAndCommit(uint64_t id, const std::string& data);

 private:
  void Deliver(const Message& m);
  bool Blocked(const Message& m) const;

  Config base_;
  std::map<uint64_t, std::unique_ptr<NodeHost>> hosts_;
  std::deque<Message> queue_;
  std::set<std::pair<uint64_t, uint64_t>> cut_;
};

}  // namespace raft::testing

#endif  // KVSTORE_RAFT_TESTING_SCRIPTED_NETWORK_H_

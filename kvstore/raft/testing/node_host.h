// Test support: one Raft member with an in-memory "disk" (MemoryStorage) and a trivial
// state machine (the list of applied proposals). It does exactly what the Ready contract
// asks, so tests and the simulation exercise the real persistence and apply sequence, and
// a crash keeps only what was persisted.
#ifndef KVSTORE_RAFT_TESTING_NODE_HOST_H_
#define KVSTORE_RAFT_TESTING_NODE_HOST_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kvstore/raft/memory_storage.h"
#include "kvstore/raft/node.h"

namespace raft::testing {

class NodeHost {
 public:
  // `base` supplies everything but id and storage.
  NodeHost(uint64_t id, MemoryStorage disk, const Config& base);

  uint64_t id() const { return id_; }
  bool up() const { return node_ != nullptr; }
  Node& node() { return *node_; }
  const Node& node() const { return *node_; }
  MemoryStorage& disk() { return disk_; }

  // Runs Ready/Advance until the node is quiet and returns the messages to send.
  std::vector<Message> Drain();

  // Called for every entry as it is applied (after the state machine changed).
  std::function<void(uint64_t id, const Entry&)> on_apply;
  // Called when the state machine is replaced by a snapshot.
  std::function<void(uint64_t id, const Snapshot&)> on_snapshot;
  // Called for each read state handed out.
  std::function<void(uint64_t id, const ReadState&)> on_read_state;
  // Called when a snapshot is persisted (before the entries of the same Ready).
  std::function<void(uint64_t id, const Snapshot&)> on_persist_snapshot;
  // Called for each batch of entries persisted.
  std::function<void(uint64_t id, const std::vector<Entry>&)> on_persist;

  // Proposals applied, in order (no-ops and configuration changes left out).
  const std::vector<std::string>& state() const { return state_; }
  uint64_t applied_index() const { return applied_index_; }
  uint64_t leader() const { return up() ? node_->Status().soft_state.leader : kNone; }
  bool IsLeader() const { return up() && node_->Status().soft_state.role == Role::kLeader; }

  // Takes a snapshot at the applied index and compacts the log up to `keep` entries
  // before it.
  absl::Status SnapshotAndCompact(uint64_t keep);

  // Loses everything not persisted, as a process crash does.
  void Crash();
  absl::Status Restart();

  static std::string EncodeState(const std::vector<std::string>& state);
  static std::vector<std::string> DecodeState(const std::string& data);

 private:
  void Persist(const Ready& rd);
  void Apply(const Ready& rd);

  const uint64_t id_;
  Config config_;
  MemoryStorage disk_;
  std::unique_ptr<Node> node_;
  std::vector<std::string> state_;
  uint64_t applied_index_ = 0;
};

}  // namespace raft::testing

#endif  // KVSTORE_RAFT_TESTING_NODE_HOST_H_

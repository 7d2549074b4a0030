#include "kvstore/raft/testing/node_host.h"

#include <cstdlib>
#include <cstring>
#include <iostream>

namespace raft::testing {

NodeHost::NodeHost(uint64_t id, MemoryStorage disk, const Config& base)
    : id_(id), config_(base), disk_(std::move(disk)) {
  config_.id = id;
  Restart().IgnoreError();
}

absl::Status NodeHost::Restart() {
  // The state machine restarts from the persisted snapshot; the log replays the rest.
  absl::StatusOr<Snapshot> snap = disk_.GetSnapshot();
  if (!snap.ok()) return snap.status();
  state_ = DecodeState(snap->data);
  applied_index_ = snap->meta.index;
  Config c = config_;
  c.storage = &disk_;
  c.applied = applied_index_;
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Create(c);
  if (!node.ok()) {
    std::cerr << "node " << id_ << ": " << node.status() << "\n";
    std::abort();
  }
  node_ = std::move(*node);
  return absl::OkStatus();
}

void NodeHost::Crash() { node_.reset(); }

std::vector<Message> NodeHost::Drain() {
  std::vector<Message> out;
  while (node_ && node_->HasReady()) {
    Ready rd = node_->GetReady();
    Persist(rd);
    for (Message& m : rd.messages) out.push_back(std::move(m));
    Apply(rd);
    node_->Advance();
  }
  return out;
}

void NodeHost::Persist(const Ready& rd) {
  if (!rd.snapshot.IsEmpty()) {
    if (!disk_.ApplySnapshot(rd.snapshot).ok()) std::abort();
    if (on_persist_snapshot) on_persist_snapshot(id_, rd.snapshot);
  }
  if (!rd.entries.empty()) {
    if (!disk_.Append(rd.entries).ok()) std::abort();
    if (on_persist) on_persist(id_, rd.entries);
  }
  if (rd.hard_state) disk_.SetHardState(*rd.hard_state);
}

void NodeHost::Apply(const Ready& rd) {
  if (!rd.snapshot.IsEmpty() && rd.snapshot.meta.index > applied_index_) {
    state_ = DecodeState(rd.snapshot.data);
    applied_index_ = rd.snapshot.meta.index;
    if (on_snapshot) on_snapshot(id_, rd.snapshot);
  }
  for (const Entry& e : rd.committed_entries) {
    if (e.index <= applied_index_) continue;
    if (e.index != applied_index_ + 1) {
      std::cerr << "node " << id_ << ": applied " << applied_index_ << " then " << e.index
                << "\n";
      std::abort();
    }
    applied_index_ = e.index;
    if (e.type == EntryType::kNormal && !e.data.empty()) state_.push_back(e.data);
    if (on_apply) on_apply(id_, e);
  }
  if (on_read_state) {
    for (const ReadState& rs : rd.read_states) on_read_state(id_, rs);
  }
}

absl::Status NodeHost::SnapshotAndCompact(uint64_t keep) {
  if (!up()) return absl::FailedPreconditionError("node is down");
  if (applied_index_ <= disk_.FirstIndex() - 1) return absl::OkStatus();
  if (applied_index_ > disk_.LastIndex()) return absl::OkStatus();
  absl::Status s =
      disk_.CreateSnapshot(applied_index_, node_->Status().conf_state, EncodeState(state_));
  if (!s.ok()) return s;
  if (applied_index_ > keep && applied_index_ - keep >= disk_.FirstIndex()) {
    return disk_.Compact(applied_index_ - keep);
  }
  return absl::OkStatus();
}

std::string NodeHost::EncodeState(const std::vector<std::string>& state) {
  std::string out;
  for (const std::string& s : state) {
    const uint32_t n = s.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof(n));
    out += s;
  }
  return out;
}

std::vector<std::string> NodeHost::DecodeState(const std::string& data) {
  std::vector<std::string> state;
  size_t pos = 0;
  while (pos + sizeof(uint32_t) <= data.size()) {
    uint32_t n;
    std::memcpy(&n, data.data() + pos, sizeof(n));
    pos += sizeof(n);
    state.push_back(data.substr(pos, n));
    pos += n;
  }
  return state;
}

}  // namespace raft::testing

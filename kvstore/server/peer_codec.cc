#include "kvstore/server/peer_codec.h"

#include "absl/strings/str_cat.h"

namespace kvstore::server {
namespace {

constexpr uint32_t kLastMessageType = static_cast<uint32_t>(raft::MessageType::kTransferLeader);
constexpr uint32_t kLastEntryType = static_cast<uint32_t>(raft::EntryType::kConfChange);

void ToProto(const raft::ConfState& cs, kvstore::raftpb::ConfState* out) {
  out->mutable_voters()->Add(cs.voters.begin(), cs.voters.end());
  out->mutable_voters_outgoing()->Add(cs.voters_outgoing.begin(), cs.voters_outgoing.end());
  out->mutable_learners()->Add(cs.learners.begin(), cs.learners.end());
  out->set_auto_leave(cs.auto_leave);
}

raft::ConfState FromProto(const kvstore::raftpb::ConfState& cs) {
  raft::ConfState out;
  out.voters.assign(cs.voters().begin(), cs.voters().end());
  out.voters_outgoing.assign(cs.voters_outgoing().begin(), cs.voters_outgoing().end());
  out.learners.assign(cs.learners().begin(), cs.learners().end());
  out.auto_leave = cs.auto_leave();
  return out;
}

}  // namespace

void ToProto(const raft::Message& m, kvstore::raftpb::Message* out) {
  out->set_type(static_cast<uint32_t>(m.type));
  out->set_from(m.from);
  out->set_to(m.to);
  out->set_term(m.term);
  out->set_log_term(m.log_term);
  out->set_index(m.index);
  out->mutable_entries()->Reserve(static_cast<int>(m.entries.size()));
  for (const raft::Entry& e : m.entries) {
    kvstore::raftpb::Entry* pe = out->add_entries();
    pe->set_term(e.term);
    pe->set_index(e.index);
    pe->set_type(static_cast<uint32_t>(e.type));
    pe->set_data(e.data);
  }
  out->set_commit(m.commit);
  out->set_reject(m.reject);
  out->set_reject_hint(m.reject_hint);
  out->set_context(m.context);
  out->set_transfer(m.transfer);
  if (m.type == raft::MessageType::kSnap) {
    out->mutable_snapshot_meta()->set_index(m.snapshot.meta.index);
    out->mutable_snapshot_meta()->set_term(m.snapshot.meta.term);
    ToProto(m.snapshot.meta.conf_state, out->mutable_snapshot_meta()->mutable_conf_state());
    out->set_snapshot_data(m.snapshot.data);
  }
}

absl::StatusOr<raft::Message> FromProto(const kvstore::raftpb::Message& m) {
  if (m.type() > kLastMessageType) {
    return absl::InvalidArgumentError(absl::StrCat("unknown raft message type ", m.type()));
  }
  raft::Message out;
  out.type = static_cast<raft::MessageType>(m.type());
  out.from = m.from();
  out.to = m.to();
  out.term = m.term();
  out.log_term = m.log_term();
  out.index = m.index();
  out.entries.reserve(m.entries_size());
  for (const kvstore::raftpb::Entry& pe : m.entries()) {
    if (pe.type() > kLastEntryType) {
      return absl::InvalidArgumentError(absl::StrCat("unknown raft entry type ", pe.type()));
    }
    out.entries.push_back(
        raft::Entry{pe.term(), pe.index(), static_cast<raft::EntryType>(pe.type()), pe.data()});
  }
  out.commit = m.commit();
  out.reject = m.reject();
  out.reject_hint = m.reject_hint();
  out.context = m.context();
  out.transfer = m.transfer();
  if (out.type == raft::MessageType::kSnap) {
    out.snapshot.meta.index = m.snapshot_meta().index();
    out.snapshot.meta.term = m.snapshot_meta().term();
    out.snapshot.meta.conf_state = FromProto(m.snapshot_meta().conf_state());
    out.snapshot.data = m.snapshot_data();
  }
  return out;
}

}  // namespace kvstore::server

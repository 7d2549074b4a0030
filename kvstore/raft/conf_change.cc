#include "kvstore/raft/conf_change.h"

#include "absl/strings/str_cat.h"

namespace raft {
namespace {

constexpr char kEncodingVersion = 1;

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool GetU64(const std::string& in, size_t* pos, uint64_t* v) {
  if (*pos + 8 > in.size()) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i) {
    *v |= static_cast<uint64_t>(static_cast<unsigned char>(in[*pos + i])) << (8 * i);
  }
  *pos += 8;
  return true;
}

}  // namespace

std::string EncodeConfChange(const ConfChange& cc) {
  std::string out;
  out.push_back(kEncodingVersion);
  PutU64(&out, cc.changes.size());
  for (const ConfChangeSingle& c : cc.changes) {
    out.push_back(static_cast<char>(c.type));
    PutU64(&out, c.node_id);
  }
  PutU64(&out, cc.context.size());
  out += cc.context;
  return out;
}

absl::StatusOr<ConfChange> DecodeConfChange(const std::string& data) {
  const absl::Status corrupt = absl::DataLossError("raft: malformed configuration change entry");
  if (data.empty() || data[0] != kEncodingVersion) return corrupt;
  size_t pos = 1;
  uint64_t n = 0;
  if (!GetU64(data, &pos, &n) || n > (data.size() - pos) / 9) return corrupt;
  ConfChange cc;
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t type = static_cast<uint8_t>(data[pos++]);
    if (type > static_cast<uint8_t>(ConfChangeType::kRemoveNode)) return corrupt;
    ConfChangeSingle c;
    c.type = static_cast<ConfChangeType>(type);
    if (!GetU64(data, &pos, &c.node_id)) return corrupt;
    cc.changes.push_back(c);
  }
  uint64_t len = 0;
  if (!GetU64(data, &pos, &len) || len != data.size() - pos) return corrupt;
  cc.context = data.substr(pos);
  return cc;
}

std::set<uint64_t> Configuration::Members() const {
  std::set<uint64_t> all = voters;
  all.insert(voters_outgoing.begin(), voters_outgoing.end());
  all.insert(learners.begin(), learners.end());
  return all;
}

Configuration Configuration::FromConfState(const ConfState& cs) {
  Configuration c;
  c.voters.insert(cs.voters.begin(), cs.voters.end());
  c.voters_outgoing.insert(cs.voters_outgoing.begin(), cs.voters_outgoing.end());
  c.learners.insert(cs.learners.begin(), cs.learners.end());
  c.auto_leave = cs.auto_leave;
  return c;
}

ConfState Configuration::ToConfState() const {
  ConfState cs;
  cs.voters.assign(voters.begin(), voters.end());
  cs.voters_outgoing.assign(voters_outgoing.begin(), voters_outgoing.end());
  cs.learners.assign(learners.begin(), learners.end());
  cs.auto_leave = auto_leave;
  return cs;
}

absl::StatusOr<Configuration> ApplyConfChange(const Configuration& current, const ConfChange& cc) {
  if (cc.IsLeaveJoint()) {
    if (!current.IsJoint()) {
      return absl::FailedPreconditionError("raft: not in a joint configuration");
    }
    Configuration next = current;
    next.voters_outgoing.clear();
    next.auto_leave = false;
    return next;
  }
  if (current.IsJoint()) {
    return absl::FailedPreconditionError(
        "raft: configuration is joint; it must be left before another change");
  }
  Configuration next = current;
  for (const ConfChangeSingle& c : cc.changes) {
    if (c.node_id == kNone) return absl::InvalidArgumentError("raft: node id 0 is reserved");
    switch (c.type) {
      case ConfChangeType::kAddVoter:
        next.learners.erase(c.node_id);
        next.voters.insert(c.node_id);
        break;
      case ConfChangeType::kAddLearner:
        if (next.voters.count(c.node_id)) {
          return absl::FailedPreconditionError(
              absl::StrCat("raft: node ", c.node_id, " is a voter; demotion is not supported"));
        }
        next.learners.insert(c.node_id);
        break;
      case ConfChangeType::kRemoveNode:
        next.voters.erase(c.node_id);
        next.learners.erase(c.node_id);
        break;
    }
  }
  if (next.voters.empty()) {
    return absl::FailedPreconditionError("raft: the change would remove every voter");
  }
  if (next.voters != current.voters) {
    next.voters_outgoing = current.voters;
    next.auto_leave = true;
  }
  return next;
}

}  // namespace raft

// Membership changes. Every change of the voter set goes through a joint configuration
// (the old and the new voters must each agree) that the leader leaves automatically once
// entering it is applied. Changes that touch only learners take effect directly.
//
// A ConfChange travels in a log entry of type kConfChange and takes effect on each member
// when that entry is applied, so every member sees the same sequence of configurations.
#ifndef KVSTORE_RAFT_CONF_CHANGE_H_
#define KVSTORE_RAFT_CONF_CHANGE_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kvstore/raft/types.h"

namespace raft {

enum class ConfChangeType : uint8_t {
  kAddVoter = 0,    // adds a voter, or promotes a learner
  kAddLearner = 1,  // adds a non-voting member that receives the log
  kRemoveNode = 2,
};

struct ConfChangeSingle {
  ConfChangeType type = ConfChangeType::kAddVoter;
  uint64_t node_id = kNone;

  bool operator==(const ConfChangeSingle&) const = default;
};

struct ConfChange {
  // Empty: leave the current joint configuration.
  std::vector<ConfChangeSingle> changes;
  // Carried for the application (etcd puts the member's URLs here).
  std::string context;

  bool operator==(const ConfChange&) const = default;
  bool IsLeaveJoint() const { return changes.empty(); }
};

std::string EncodeConfChange(const ConfChange& cc);
absl::StatusOr<ConfChange> DecodeConfChange(const std::string& data);

// A configuration as the core works with it.
struct Configuration {
  std::set<uint64_t> voters;           // incoming voters
  std::set<uint64_t> voters_outgoing;  // non-empty only while joint
  std::set<uint64_t> learners;
  bool auto_leave = false;

  bool IsJoint() const { return !voters_outgoing.empty(); }
  bool IsVoter(uint64_t id) const { return voters.count(id) || voters_outgoing.count(id); }
  bool IsLearner(uint64_t id) const { return learners.count(id) > 0; }
  // Everybody who receives the log.
  std::set<uint64_t> Members() const;

  static Configuration FromConfState(const ConfState& cs);
  ConfState ToConfState() const;
  bool operator==(const Configuration&) const = default;
};

// The configuration that results from applying `cc` to `current`, or why it is invalid.
// A pure function: every member reaches the same verdict for the same entry.
absl::StatusOr<Configuration> ApplyConfChange(const Configuration& current, const ConfChange& cc);

}  // namespace raft

#endif  // KVSTORE_RAFT_CONF_CHANGE_H_

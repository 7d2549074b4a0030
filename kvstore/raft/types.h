// Plain value types of the consensus core: log entries, persistent state, snapshots and
// the messages that Raft peers exchange. They carry no behaviour; the transport and the
// storage layers translate them to and from their own encodings.
#ifndef KVSTORE_RAFT_TYPES_H_
#define KVSTORE_RAFT_TYPES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace raft {

// Node ids are chosen by the application; 0 means "nobody".
inline constexpr uint64_t kNone = 0;

enum class EntryType : uint8_t {
  kNormal = 0,      // application data; an empty one is the leader's no-op
  kConfChange = 1,  // an encoded ConfChange (see conf_change.h)
};

struct Entry {
  uint64_t term = 0;
  uint64_t index = 0;
  EntryType type = EntryType::kNormal;
  std::string data;

  bool operator==(const Entry&) const = default;
};

// Bytes an entry contributes to message and Ready size limits.
inline uint64_t EntrySize(const Entry& e) { return e.data.size() + 16; }

// State that must reach stable storage before any message of the same Ready is sent.
struct HardState {
  uint64_t term = 0;
  uint64_t vote = kNone;
  uint64_t commit = 0;

  bool operator==(const HardState&) const = default;
  bool IsEmpty() const { return term == 0 && vote == kNone && commit == 0; }
};

// A cluster configuration. While `voters_outgoing` is non-empty the cluster is in a joint
// configuration and every decision needs a majority of both voter sets.
struct ConfState {
  std::vector<uint64_t> voters;
  std::vector<uint64_t> voters_outgoing;
  std::vector<uint64_t> learners;
  // In a joint configuration: the leader proposes leaving it as soon as entering is applied.
  bool auto_leave = false;

  bool operator==(const ConfState&) const = default;
};

struct SnapshotMeta {
  uint64_t index = 0;
  uint64_t term = 0;
  ConfState conf_state;

  bool operator==(const SnapshotMeta&) const = default;
};

// The application's state as of `meta.index`, opaque to the core.
struct Snapshot {
  SnapshotMeta meta;
  std::string data;

  bool IsEmpty() const { return meta.index == 0; }
  bool operator==(const Snapshot&) const = default;
};

enum class MessageType : uint8_t {
  kProp,             // client proposal, forwarded by a follower to the leader
  kApp,              // AppendEntries
  kAppResp,
  kVote,             // RequestVote
  kVoteResp,
  kPreVote,          // a vote that would be granted, asked without raising the term
  kPreVoteResp,
  kSnap,             // InstallSnapshot
  kHeartbeat,
  kHeartbeatResp,
  kTimeoutNow,       // leadership transfer: campaign at once
  kReadIndex,        // follower asks the leader for a read index
  kReadIndexResp,
  kTransferLeader,   // follower forwards a transfer request to the leader
};

const char* MessageTypeName(MessageType t);

struct Message {
  MessageType type = MessageType::kApp;
  uint64_t from = kNone;
  uint64_t to = kNone;
  uint64_t term = 0;
  // kApp: index and term of the entry preceding `entries`.
  // kVote/kPreVote: the candidate's last log index and term.
  // kAppResp: with reject, the follower's hint term (see reject_hint).
  uint64_t log_term = 0;
  uint64_t index = 0;
  std::vector<Entry> entries;
  uint64_t commit = 0;
  bool reject = false;
  // kAppResp with reject: the largest index at which the follower's term is <= log_term.
  uint64_t reject_hint = 0;
  // kHeartbeat(Resp): the read round being confirmed; kReadIndex(Resp): the request id.
  uint64_t context = 0;
  // kVote/kPreVote: set when campaigning because of a leadership transfer, so that voters
  // that still hear from the old leader do not ignore it.
  bool transfer = false;
  Snapshot snapshot;  // kSnap only
};

// The answer to a ReadIndex request: once the applied index reaches `index`, a read of the
// state machine is linearizable.
struct ReadState {
  uint64_t index = 0;
  uint64_t request_id = 0;

  bool operator==(const ReadState&) const = default;
};

enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };

const char* RoleName(Role r);

// Volatile state reported for information (metrics, routing); never persisted.
struct SoftState {
  uint64_t leader = kNone;
  Role role = Role::kFollower;

  bool operator==(const SoftState&) const = default;
};

}  // namespace raft

#endif  // KVSTORE_RAFT_TYPES_H_

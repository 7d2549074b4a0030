#include "kvstore/raft/config.h"

namespace raft {

absl::Status Config::Validate() const {
  if (id == 0) return absl::InvalidArgumentError("raft: id 0 is reserved");
  if (heartbeat_tick <= 0) return absl::InvalidArgumentError("raft: heartbeat_tick must be > 0");
  if (election_tick <= heartbeat_tick) {
    return absl::InvalidArgumentError("raft: election_tick must be greater than heartbeat_tick");
  }
  if (storage == nullptr) return absl::InvalidArgumentError("raft: storage is required");
  if (max_inflight_msgs == 0) {
    return absl::InvalidArgumentError("raft: max_inflight_msgs must be > 0");
  }
  return absl::OkStatus();
}

}  // namespace raft

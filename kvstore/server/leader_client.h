// LeaderClient: gRPC channels from a follower to a member's client URL, for the requests
// only the leader can answer (etcd forwards lease keep-alives and time-to-live queries to
// the leader, so that clients may talk to any member). One channel per member, made on
// first use from the member list's client URLs and kept.
//
// Threads: every method may be called from any thread.
#ifndef KVSTORE_SERVER_LEADER_CLIENT_H_
#define KVSTORE_SERVER_LEADER_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "kvstore/server/membership.h"

namespace kvstore::server {

class LeaderClient {
 public:
  // `members` must outlive the client.
  explicit LeaderClient(const Membership* members) : members_(members) {}

  // A channel to member `id`'s first client URL; Unavailable if the member has published
  // none (yet).
  absl::StatusOr<std::shared_ptr<grpc::Channel>> ChannelTo(uint64_t id);

 private:
  const Membership* const members_;
  absl::Mutex mu_;
  std::map<uint64_t, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_LEADER_CLIENT_H_

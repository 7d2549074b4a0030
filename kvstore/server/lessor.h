// Lessor: the leases of one member, as etcd's lessor. Which leases exist (with their TTL),
// which keys each holds, and, on the leader only, when each expires.
//
// Existence and attachments change only as committed entries are applied (Grant, Revoke,
// Attach, Detach, on the driver thread), so they are the same on every member; they are
// rebuilt from the MVCC store at start. Expiry is the leader's alone and is not replicated:
// a new leader gives every lease its full TTL again from the moment it takes over
// (Promote), so that no lease expires early because leadership moved; keep-alives renew
// on the leader. When a lease expires the leader proposes its revocation through Raft.
//
// Thread-safety: every method may be called from any thread.
#ifndef KVSTORE_SERVER_LESSOR_H_
#define KVSTORE_SERVER_LESSOR_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace kvstore::server {

// etcd's cap on a lease's TTL, in seconds.
inline constexpr int64_t kMaxLeaseTtl = 9'000'000'000;

struct LeaseInfo {
  int64_t id = 0;
  int64_t granted_ttl = 0;  // seconds, as granted
  // Seconds left, as etcd reports it (truncated); -1 if this member does not track expiry
  // (it is not the leader).
  int64_t remaining_ttl = -1;
  std::vector<std::string> keys;  // sorted
};

class Lessor {
 public:
  // `min_ttl`: shorter grants get this TTL (seconds), as etcd's minimum lease TTL.
  Lessor(const common::Clock* clock, int64_t min_ttl);

  int64_t min_ttl() const { return min_ttl_; }
  // The TTL a grant asking for `ttl` seconds receives.
  int64_t EffectiveTtl(int64_t ttl) const { return ttl < min_ttl_ ? min_ttl_ : ttl; }

  // Applied state (driver thread, after the change committed).
  void Grant(int64_t id, int64_t ttl);
  void Revoke(int64_t id);
  void Attach(int64_t id, const std::string& key);
  void Detach(int64_t id, const std::string& key);
  bool Exists(int64_t id) const;
  std::vector<std::string> Keys(int64_t id) const;
  std::vector<int64_t> Ids() const;

  // Leadership. Promote: from now on this member tracks expiry, every lease expiring its
  // full TTL from now. Demote: it stops (followers never expire leases).
  void Promote();
  void Demote();
  bool is_primary() const;

  // A keep-alive: the lease expires its full TTL from now. Returns the TTL, NotFound for an
  // unknown lease, and FailedPrecondition if this member is not the primary.
  absl::StatusOr<int64_t> Renew(int64_t id);
  absl::StatusOr<LeaseInfo> Info(int64_t id) const;
  // Primary only: leases past their expiry, not yet handed out by this call within the
  // last `retry` (their revocation is in flight).
  std::vector<int64_t> TakeExpired(absl::Duration retry);

 private:
  struct Lease {
    int64_t ttl = 0;
    absl::Time expiry = absl::InfiniteFuture();
    absl::Time revoke_asked = absl::InfinitePast();
    std::set<std::string> keys;
  };

  const common::Clock* const clock_;
  const int64_t min_ttl_;
  mutable absl::Mutex mu_;
  std::map<int64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  bool primary_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_LESSOR_H_

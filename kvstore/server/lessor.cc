#include "kvstore/server/lessor.h"

#include <cmath>

#include "kvstore/server/errors.h"

namespace kvstore::server {

Lessor::Lessor(const common::Clock* clock, int64_t min_ttl) : clock_(clock), min_ttl_(min_ttl) {}

void Lessor::Grant(int64_t id, int64_t ttl) {
  absl::MutexLock l(&mu_);
  Lease& lease = leases_[id];
  lease.ttl = ttl;
  if (primary_) lease.expiry = clock_->Now() + absl::Seconds(ttl);
}

void Lessor::Revoke(int64_t id) {
  absl::MutexLock l(&mu_);
  leases_.erase(id);
}

void Lessor::Attach(int64_t id, const std::string& key) {
  absl::MutexLock l(&mu_);
  auto it = leases_.find(id);
  if (it != leases_.end()) it->second.keys.insert(key);
}

void Lessor::Detach(int64_t id, const std::string& key) {
  absl::MutexLock l(&mu_);
  auto it = leases_.find(id);
  if (it != leases_.end()) it->second.keys.erase(key);
}

bool Lessor::Exists(int64_t id) const {
  absl::MutexLock l(&mu_);
  return leases_.count(id) > 0;
}

std::vector<std::string> Lessor::Keys(int64_t id) const {
  absl::MutexLock l(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return {};
  return std::vector<std::string>(it->second.keys.begin(), it->second.keys.end());
}

std::vector<int64_t> Lessor::Ids() const {
  absl::MutexLock l(&mu_);
  std::vector<int64_t> ids;
  ids.reserve(leases_.size());
  for (const auto& [id, lease] : leases_) ids.push_back(id);
  return ids;
}

void Lessor::Promote() {
  absl::MutexLock l(&mu_);
  primary_ = true;
  const absl::Time now = clock_->Now();
  for (auto& [id, lease] : leases_) {
    lease.expiry = now + absl::Seconds(lease.ttl);
    lease.revoke_asked = absl::InfinitePast();
  }
}

void Lessor::Demote() {
  absl::MutexLock l(&mu_);
  primary_ = false;
  for (auto& [id, lease] : leases_) lease.expiry = absl::InfiniteFuture();
}

bool Lessor::is_primary() const {
  absl::MutexLock l(&mu_);
  return primary_;
}

absl::StatusOr<int64_t> Lessor::Renew(int64_t id) {
  absl::MutexLock l(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return LeaseNotFoundError();
  if (!primary_) return absl::FailedPreconditionError("etcdserver: not leader");
  const absl::Time now = clock_->Now();
  // A lease already past its expiry is being revoked: it cannot be renewed.
  if (it->second.expiry <= now) return LeaseNotFoundError();
  it->second.expiry = now + absl::Seconds(it->second.ttl);
  return it->second.ttl;
}

absl::StatusOr<LeaseInfo> Lessor::Info(int64_t id) const {
  absl::MutexLock l(&mu_);
  auto it = leases_.find(id);
  if (it == leases_.end()) return LeaseNotFoundError();
  LeaseInfo info;
  info.id = id;
  info.granted_ttl = it->second.ttl;
  if (primary_) {
    // Whole seconds, truncated: etcd reports int64(Remaining().Seconds()), so a lease
    // granted for 10s shows 9 at once.
    const double left = absl::ToDoubleSeconds(it->second.expiry - clock_->Now());
    info.remaining_ttl = left <= 0 ? 0 : static_cast<int64_t>(left);
  }
  info.keys.assign(it->second.keys.begin(), it->second.keys.end());
  return info;
}

std::vector<int64_t> Lessor::TakeExpired(absl::Duration retry) {
  absl::MutexLock l(&mu_);
  std::vector<int64_t> expired;
  if (!primary_) return expired;
  const absl::Time now = clock_->Now();
  for (auto& [id, lease] : leases_) {
    if (lease.expiry > now || now - lease.revoke_asked < retry) continue;
    lease.revoke_asked = now;
    expired.push_back(id);
  }
  return expired;
}

}  // namespace kvstore::server

#include "kvstore/server/leader_client.h"

#include "absl/strings/str_cat.h"

namespace kvstore::server {

absl::StatusOr<std::shared_ptr<grpc::Channel>> LeaderClient::ChannelTo(uint64_t id) {
  absl::MutexLock l(&mu_);
  if (auto it = channels_.find(id); it != channels_.end()) return it->second;
  const std::optional<MemberInfo> m = members_->Find(id);
  if (!m || m->client_urls.empty()) {
    return absl::UnavailableError(
        absl::StrCat("etcdserver: no client URL known for leader ", absl::Hex(id)));
  }
  absl::StatusOr<std::string> address = UrlHostPort(m->client_urls.front());
  if (!address.ok()) return address.status();
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(*address, grpc::InsecureChannelCredentials());
  channels_.emplace(id, channel);
  return channel;
}

}  // namespace kvstore::server

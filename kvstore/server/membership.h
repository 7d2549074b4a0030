// Who is in the cluster: how a new member's flags describe it (etcd's --initial-cluster,
// checked as etcd checks it), and the member list a member keeps in its data directory.
//
// Ids are computed as etcd computes them, so that etcd's tools and clients see the same
// member and cluster ids a real etcd with the same flags would have:
//   member id  = first 8 bytes (big-endian) of SHA-1(sorted peer URLs joined, + token)
//   cluster id = first 8 bytes of SHA-1(the sorted member ids, 8 bytes each, big-endian)
//
// Membership keeps <data-dir>/member/cluster (a kvstore.internal.ClusterRecord followed by
// a CRC32C of it): this member's id, the cluster id and every member's name, peer URLs and
// client URLs. It is written when the member is bootstrapped and again whenever a committed
// Raft entry publishes a member's attributes (name and client URLs), always as a whole new
// file renamed over the old one after an fsync, so that a crash leaves the old record or
// the new one. A restart reads it and ignores --initial-cluster, as etcd does. Applying an
// attribute entry again after a crash (the MVCC store's applied index is not synced) sets
// the same attributes again: harmless.
//
// Members added, removed, promoted or given new peer URLs by committed configuration
// changes are written the same way (Add, Remove, Promote, UpdatePeerUrls).
//
// Threads: every Membership method may be called from any thread; SetAttributes is called
// by the applier on the Raft driver thread, readers (MemberList, the publisher) elsewhere.
#ifndef KVSTORE_SERVER_MEMBERSHIP_H_
#define KVSTORE_SERVER_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace kvstore::server {

// etcd's member id for a member with these peer URLs in a cluster with this token.
uint64_t ComputeMemberId(std::vector<std::string> peer_urls, const std::string& cluster_token);
// etcd's cluster id for these member ids.
uint64_t ComputeClusterId(std::vector<uint64_t> member_ids);

// etcd's rules for a member URL (types.NewURLs): scheme http, https, unix or unixs, a
// "host:port" address and no path. The message is etcd's.
absl::Status CheckMemberUrl(const std::string& url);
// CheckMemberUrl on each, and at least one.
absl::Status CheckMemberUrls(const std::vector<std::string>& urls);

// "http://127.0.0.1:2379" -> "127.0.0.1:2379": the address gRPC listens on or dials. Plain
// http (and unix) only: https is refused with a message saying so.
absl::StatusOr<std::string> UrlHostPort(const std::string& url);

struct MemberInfo {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> peer_urls;
  std::vector<std::string> client_urls;  // empty until the member published them
  bool is_learner = false;

  bool operator==(const MemberInfo&) const = default;
};

// etcd's --initial-cluster: "name=url,name=url,..."; a name may repeat to give a member
// several URLs. Each URL must pass CheckMemberUrl.
absl::StatusOr<std::map<std::string, std::vector<std::string>>> ParseInitialCluster(
    const std::string& initial_cluster);

// What a new member's flags say about the cluster it starts.
struct BootstrapFlags {
  std::string name;
  // --initial-cluster; empty: this member alone, name=advertise_peer_urls (etcd fills its
  // default in the same way when only --name is given).
  std::string initial_cluster;
  std::vector<std::string> advertise_peer_urls;
  std::string cluster_token = "etcd-cluster";
};

struct InitialCluster {
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  std::vector<MemberInfo> members;  // by id; no client URLs yet
};

// Parses and checks the flags as etcd's VerifyBootstrap does, with etcd's messages: every
// URL well-formed, no URL twice, no two members with one id, --name present in
// --initial-cluster, and its URLs there equal to --initial-advertise-peer-urls.
absl::StatusOr<InitialCluster> ResolveInitialCluster(const BootstrapFlags& flags);

class Membership {
 public:
  // Reads <member_dir>/cluster. NotFoundError if there is none yet; DataLossError if it is
  // damaged.
  static absl::StatusOr<std::unique_ptr<Membership>> Load(const std::string& member_dir);
  // Writes <member_dir>/cluster for a new member (synced) and returns it.
  static absl::StatusOr<std::unique_ptr<Membership>> Create(const std::string& member_dir,
                                                            const InitialCluster& cluster);

  uint64_t member_id() const { return member_id_; }
  uint64_t cluster_id() const { return cluster_id_; }
  // Every member, by id.
  std::vector<MemberInfo> Members() const ABSL_LOCKS_EXCLUDED(mu_);
  std::optional<MemberInfo> Find(uint64_t id) const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<uint64_t> Ids() const ABSL_LOCKS_EXCLUDED(mu_);
  bool Contains(uint64_t id) const ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `id` is a learner of the list as applied so far (false for an id that is not
  // a member). Cheap: the client services ask it on every call.
  bool IsLearner(uint64_t id) const ABSL_LOCKS_EXCLUDED(mu_);

  // Records a member's published name and client URLs; returns once the file is synced.
  // NotFoundError (nothing changes) for an id that is not a member. Any other error means
  // the file may not have been replaced: the record in memory is left as it was.
  absl::Status SetAttributes(uint64_t id, const std::string& name,
                             const std::vector<std::string>& client_urls)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  // Membership changes, applied from committed Raft entries; each returns once the file is
  // synced, and applying one again (after a crash) changes nothing. Errors as SetAttributes.
  // Adds a member without a name or client URLs yet (an existing id keeps its attributes).
  absl::Status Add(const MemberInfo& member) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  // Removing an id that is not a member is OK.
  absl::Status Remove(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  absl::Status UpdatePeerUrls(uint64_t id, const std::vector<std::string>& peer_urls)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  absl::Status Promote(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  // Replaces the whole list with a Raft snapshot's (see EncodeMembers); synced.
  absl::Status Replace(std::vector<MemberInfo> members) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  // The member list as bytes, for a Raft snapshot: a ClusterRecord with only its members.
  std::string EncodeMembers() const ABSL_LOCKS_EXCLUDED(mu_);
  // Reads EncodeMembers' bytes; DataLossError if they are damaged.
  static absl::StatusOr<std::vector<MemberInfo>> DecodeMembers(const std::string& bytes);

 private:
  // Applies `change` to a copy of the list and, if it changed anything, writes the copy
  // and makes it the list. `change` returns false to leave the list as it is.
  template <typename F>
  absl::Status Mutate(F change) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  Membership(std::string path, uint64_t member_id, uint64_t cluster_id,
             std::vector<MemberInfo> members);
  // Replaces the file with `members` (and this member's and the cluster's ids).
  absl::Status Write(const std::vector<MemberInfo>& members) const;

  const std::string path_;
  const uint64_t member_id_;
  const uint64_t cluster_id_;
  // Held while the file is replaced, so that two writers cannot lose each other's change.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::vector<MemberInfo> members_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_MEMBERSHIP_H_

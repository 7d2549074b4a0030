#include "kvstore/server/restore.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "kvstore/server/cluster_service.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/snapshot_format.h"
#include "kvstore/storage/mvcc_store.h"
#include "kvstore/storage/raft_log_store.h"

namespace kvstore::server {
namespace fs = std::filesystem;

absl::StatusOr<std::map<std::string, std::vector<std::string>>> ParseInitialCluster(
    const std::string& initial_cluster) {
  std::map<std::string, std::vector<std::string>> members;
  for (absl::string_view item : absl::StrSplit(initial_cluster, ',', absl::SkipWhitespace())) {
    const std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("failed to parse \"", initial_cluster,
                                                     "\": \"", item, "\" is not name=url"));
    }
    if (absl::Status s = CheckMemberUrl(kv[1]); !s.ok()) return s;
    members[kv[0]].push_back(kv[1]);
  }
  if (members.empty()) {
    return absl::InvalidArgumentError("initial cluster unset and no discovery URL found");
  }
  return members;
}

namespace {

// etcd's ServerConfig.VerifyBootstrap, for a restore.
absl::Status VerifyCluster(const RestoreOptions& o,
                           const std::map<std::string, std::vector<std::string>>& members) {
  auto self = members.find(o.name);
  if (self == members.end()) {
    return absl::InvalidArgumentError(absl::StrCat("couldn't find local name \"", o.name,
                                                   "\" in the initial cluster configuration"));
  }
  std::set<std::string> seen;
  for (const auto& [name, urls] : members) {
    for (const std::string& u : urls) {
      if (!seen.insert(u).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("initial cluster ", o.initial_cluster, " has duplicate url"));
      }
    }
  }
  if (absl::Status s = CheckMemberUrls(o.advertise_peer_urls); !s.ok()) return s;
  std::vector<std::string> want = self->second;
  std::vector<std::string> have = o.advertise_peer_urls;
  std::sort(want.begin(), want.end());
  std::sort(have.begin(), have.end());
  if (want != have) {
    return absl::InvalidArgumentError(
        absl::StrCat("--initial-cluster has ", o.name, "=", absl::StrJoin(self->second, ","),
                     " but missing from --initial-advertise-peer-urls=", absl::StrJoin(have, ","),
                     " (resolved urls: \"", absl::StrJoin(have, ","), "\" != \"",
                     absl::StrJoin(want, ","), "\")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RestoreResult> RestoreMember(const RestoreOptions& o) {
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> members =
      ParseInitialCluster(o.initial_cluster);
  if (!members.ok()) return members.status();
  if (absl::Status s = VerifyCluster(o, *members); !s.ok()) return s;
  if (o.bump_revision < 1) {
    return absl::InvalidArgumentError("--bump-revision must be at least 1");
  }
  RestoreResult result;
  result.data_dir = o.data_dir.empty() ? o.name + ".etcd" : o.data_dir;
  std::error_code ec;
  if (fs::exists(result.data_dir, ec) || ec) {
    return absl::FailedPreconditionError(absl::StrCat("data-dir \"", result.data_dir, "\" exists"));
  }
  absl::StatusOr<uint64_t> payload = VerifySnapshotFile(o.snapshot_path, o.skip_hash_check);
  if (!payload.ok()) return payload.status();

  // From here on, a failure removes what was built.
  const fs::path member = fs::path(result.data_dir) / "member";
  if (!fs::create_directories(member, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", member.string(), ": ", ec.message()));
  }
  absl::Cleanup remove_data_dir = [&result] {
    std::error_code ignored;
    fs::remove_all(result.data_dir, ignored);
  };

  absl::StatusOr<SnapshotInfo> info =
      ExtractSnapshot(o.snapshot_path, *payload, (member / "mvcc").string());
  if (!info.ok()) return info.status();
  {
    absl::StatusOr<std::unique_ptr<mvcc::MvccStore>> opened = mvcc::MvccStore::Open(
        (member / "mvcc").string(), mvcc::MvccStoreOptions{.sync_writes = true});
    if (!opened.ok()) return opened.status();
    mvcc::MvccStore& store = **opened;
    result.snapshot_revision = store.CurrentRevision();
    if (result.snapshot_revision != info->revision) {
      return absl::DataLossError(absl::StrCat("snapshot says revision ", info->revision,
                                              " but its store holds revision ",
                                              result.snapshot_revision));
    }
    // Read everything once: RocksDB checks each block's checksum as it reads, so a file
    // damaged past what the trailer caught (or with --skip-hash-check) fails here.
    if (absl::StatusOr<mvcc::KvHash> h = store.HashKV(0); !h.ok()) return h.status();
    absl::StatusOr<mvcc::RangeResult> all =
        store.Range("", std::string_view("\0", 1), mvcc::RangeOptions{.count_only = true});
    if (!all.ok()) return all.status();
    if (absl::StatusOr<std::vector<mvcc::LeaseKey>> lk = store.AllLeaseKeys(); !lk.ok()) {
      return lk.status();
    }
    // A compaction the source was still running when the checkpoint was taken.
    if (absl::Status s = store.RunCompaction(); !s.ok()) return s;
    if (absl::Status s = store.BumpRevision(o.bump_revision); !s.ok()) return s;
    result.revision = store.CurrentRevision();
    // Marks everything below the new revision compacted and drops the history, committing
    // applied index 1: the bootstrapped Raft log below starts after it.
    if (absl::Status s = store.Compact(result.revision, /*applied_index=*/1); !s.ok()) return s;
    absl::StatusOr<std::vector<mvcc::LeaseRecord>> leases = store.Leases();
    if (!leases.ok()) return leases.status();
    result.leases = leases->size();
  }

  std::vector<uint64_t> voters;
  for (const auto& [name, urls] : *members) {
    const uint64_t id = ComputeMemberId(urls, o.cluster_token);
    voters.push_back(id);
    if (name == o.name) result.member_id = id;
  }
  result.cluster_id = ComputeClusterId(voters);
  absl::StatusOr<std::unique_ptr<storage::RaftLogStore>> log =
      storage::RaftLogStore::Open((member / "raft").string());
  if (!log.ok()) return log.status();
  if (absl::Status s = (*log)->Bootstrap(voters); !s.ok()) return s;

  std::move(remove_data_dir).Cancel();
  return result;
}

}  // namespace kvstore::server

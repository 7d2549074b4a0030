#include "kvstore/server/restore.h"

#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/snapshot_format.h"
#include "kvstore/storage/mvcc_store.h"
#include "kvstore/storage/raft_log_store.h"

namespace kvstore::server {
namespace fs = std::filesystem;

absl::StatusOr<RestoreResult> RestoreMember(const RestoreOptions& o) {
  absl::StatusOr<InitialCluster> cluster = ResolveInitialCluster(BootstrapFlags{
      .name = o.name,
      .initial_cluster = o.initial_cluster,
      .advertise_peer_urls = o.advertise_peer_urls,
      .cluster_token = o.cluster_token,
  });
  if (!cluster.ok()) return cluster.status();
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

  result.member_id = cluster->member_id;
  result.cluster_id = cluster->cluster_id;
  std::vector<uint64_t> voters;
  for (const MemberInfo& m : cluster->members) voters.push_back(m.id);
  if (absl::StatusOr<std::unique_ptr<Membership>> written =
          Membership::Create(member.string(), *cluster);
      !written.ok()) {
    return written.status();
  }
  absl::StatusOr<std::unique_ptr<storage::RaftLogStore>> log =
      storage::RaftLogStore::Open((member / "raft").string());
  if (!log.ok()) return log.status();
  if (absl::Status s = (*log)->Bootstrap(voters); !s.ok()) return s;

  std::move(remove_data_dir).Cancel();
  return result;
}

}  // namespace kvstore::server

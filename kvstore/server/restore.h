// `kvstore restore`: builds a new member's data directory from a snapshot file (see
// snapshot_format.h), as `etcdctl snapshot restore` (etcd 3.4) and `etcdutl snapshot
// restore` (3.5+) do.
//
//   1. The flags are checked as etcd checks them: --name must be in --initial-cluster, the
//      member's URLs there must equal --initial-advertise-peer-urls, no URL twice, and the
//      data directory must not exist.
//   2. The file's trailer is checked (unless --skip-hash-check), then the archive unpacked
//      into <data-dir>/member/mvcc and opened as an MvccStore.
//   3. The store's revision is moved forward by `bump_revision` and everything below the
//      new revision is marked compacted (etcdutl's --bump-revision with --mark-compacted).
//      Why: the cluster the snapshot came from may have gone on writing after it was taken.
//      Without the bump, the restored cluster would hand out those revisions again for
//      other changes, and a client that saw them (a watch cache at resourceVersion R) would
//      take new data for old or miss it. With the bump every new revision is above anything
//      the old cluster can have issued, and a watch or read from an older revision fails
//      with "required revision has been compacted", so clients re-list instead of silently
//      missing events. etcdctl 3.4 keeps the revision and the history as they are; we always
//      bump (a billion by default: more writes than any cluster makes between a snapshot and
//      a restore), as the design asks.
//   4. Leases are kept with their granted TTLs, as etcd 3.4 and etcdutl do: a lease's clock
//      starts again in full when the restored member becomes leader (Lessor::Promote), so
//      its owner has a whole TTL to resume keep-alives before its keys go.
//   5. The store's applied index is reset to 1 and a fresh Raft log is bootstrapped for the
//      new cluster (every member of --initial-cluster a voter, ids computed as etcd does from
//      the peer URLs and --initial-cluster-token), so the member starts at Raft index 1; the
//      member list is written beside it (membership.h), as for any new member.
//
// Nothing is left behind on failure: the data directory is removed again.
//
// Threads: RestoreMember is a plain function for a command-line tool.
#ifndef KVSTORE_SERVER_RESTORE_H_
#define KVSTORE_SERVER_RESTORE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kvstore/server/membership.h"

namespace kvstore::server {

inline constexpr int64_t kDefaultRestoreRevisionBump = 1'000'000'000;

struct RestoreOptions {
  std::string snapshot_path;
  // Default (empty): "<name>.etcd", as etcd's.
  std::string data_dir;
  std::string name = "default";
  std::string initial_cluster = "default=http://localhost:2380";
  std::string cluster_token = "etcd-cluster";
  std::vector<std::string> advertise_peer_urls = {"http://localhost:2380"};
  bool skip_hash_check = false;
  // At least 1.
  int64_t bump_revision = kDefaultRestoreRevisionBump;
};

struct RestoreResult {
  std::string data_dir;
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  int64_t snapshot_revision = 0;  // the revision the snapshot held
  int64_t revision = 0;           // the restored store's revision (= its compacted revision)
  size_t leases = 0;
};

absl::StatusOr<RestoreResult> RestoreMember(const RestoreOptions& options);

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_RESTORE_H_

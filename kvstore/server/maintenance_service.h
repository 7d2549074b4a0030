// The etcd Maintenance service over a KvServer: Status, Snapshot, Defragment, Alarm, Hash,
// HashKV and MoveLeader, answering as etcd 3.4 does (including which responses carry a
// header: Defragment, Alarm and MoveLeader carry none in 3.4).
//
// Snapshot streams the format of snapshot_format.h: the service takes an MvccStore
// checkpoint (hard links, so it costs little space) under <data-dir>/member/snapshot.tmp.*,
// streams it as an archive followed by its SHA-256, and removes it when the stream ends,
// however it ends; leftovers of a crash are removed when the service is built. Chunks are
// 64 KiB; remaining_bytes counts the payload still to come, as etcd's does, and the first
// chunk's header carries the revision the snapshot holds.
//
// Status reports the MVCC store's RocksDB size as both dbSize and dbSizeInUse (RocksDB has
// no free pages to tell apart), the Raft commit index as raftIndex, and in `errors` "no
// leader" and every active alarm as etcd formats them.
// A learner answers Status only and refuses the rest (RefuseIfLearner), as etcd 3.4's.
//
// Threads: gRPC calls the handlers on its own threads; the only state is a counter.
#ifndef KVSTORE_SERVER_MAINTENANCE_SERVICE_H_
#define KVSTORE_SERVER_MAINTENANCE_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "kvstore/server/kv_server.h"

namespace kvstore::server {

// The server version Status reports: the etcd API level we implement, which etcdctl and
// clients read as an etcd 3.4 server.
inline constexpr char kServerVersion[] = "3.4.0";
// Bytes of snapshot payload per SnapshotResponse.
inline constexpr size_t kSnapshotChunkBytes = 64 * 1024;

class MaintenanceService final : public etcdserverpb::Maintenance::Service {
 public:
  // `server` must outlive the service.
  MaintenanceService(KvServer* server, absl::Duration request_timeout);

  grpc::Status Alarm(grpc::ServerContext* ctx, const etcdserverpb::AlarmRequest* req,
                     etcdserverpb::AlarmResponse* resp) override;
  grpc::Status Status(grpc::ServerContext* ctx, const etcdserverpb::StatusRequest* req,
                      etcdserverpb::StatusResponse* resp) override;
  grpc::Status Defragment(grpc::ServerContext* ctx, const etcdserverpb::DefragmentRequest* req,
                          etcdserverpb::DefragmentResponse* resp) override;
  grpc::Status Hash(grpc::ServerContext* ctx, const etcdserverpb::HashRequest* req,
                    etcdserverpb::HashResponse* resp) override;
  grpc::Status HashKV(grpc::ServerContext* ctx, const etcdserverpb::HashKVRequest* req,
                      etcdserverpb::HashKVResponse* resp) override;
  grpc::Status Snapshot(grpc::ServerContext* ctx, const etcdserverpb::SnapshotRequest* req,
                        grpc::ServerWriter<etcdserverpb::SnapshotResponse>* writer) override;
  grpc::Status MoveLeader(grpc::ServerContext* ctx, const etcdserverpb::MoveLeaderRequest* req,
                          etcdserverpb::MoveLeaderResponse* resp) override;

 private:
  std::string MemberDir() const;

  KvServer* const server_;
  const absl::Duration request_timeout_;
  std::atomic<uint64_t> next_snapshot_{1};
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_MAINTENANCE_SERVICE_H_

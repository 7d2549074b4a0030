// The etcd KV service (Range, Put, DeleteRange, Txn, Compact) over a KvServer.
//
// Reads are linearizable unless the request asks for serializable: a linearizable Range
// first waits for a ReadIndex round (shared by all reads that arrive together), then
// reads the local store. Writes are validated, proposed through Raft and answered once
// applied. Every call is bounded by the client's deadline and the server's request
// timeout.
//
// Threads: gRPC calls the handlers on its own threads; the service keeps no state.
#ifndef KVSTORE_SERVER_KV_SERVICE_H_
#define KVSTORE_SERVER_KV_SERVICE_H_

#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/service_util.h"

namespace kvstore::server {

class KvService final : public etcdserverpb::KV::Service {
 public:
  // `server` must outlive the service.
  KvService(KvServer* server, absl::Duration request_timeout)
      : server_(server), request_timeout_(request_timeout) {}

  grpc::Status Range(grpc::ServerContext* ctx, const etcdserverpb::RangeRequest* req,
                     etcdserverpb::RangeResponse* resp) override;
  grpc::Status Put(grpc::ServerContext* ctx, const etcdserverpb::PutRequest* req,
                   etcdserverpb::PutResponse* resp) override;
  grpc::Status DeleteRange(grpc::ServerContext* ctx, const etcdserverpb::DeleteRangeRequest* req,
                           etcdserverpb::DeleteRangeResponse* resp) override;
  grpc::Status Txn(grpc::ServerContext* ctx, const etcdserverpb::TxnRequest* req,
                   etcdserverpb::TxnResponse* resp) override;
  grpc::Status Compact(grpc::ServerContext* ctx, const etcdserverpb::CompactionRequest* req,
                       etcdserverpb::CompactionResponse* resp) override;

 private:
  // Proposes `r`, waits, and moves the response of type T into `resp`.
  template <typename T>
  grpc::Status Write(const grpc::ServerContext* ctx, kvstore::internal::InternalRaftRequest r,
                     T* resp);

  KvServer* const server_;
  const absl::Duration request_timeout_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_KV_SERVICE_H_

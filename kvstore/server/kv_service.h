// The etcd KV service (Range, Put, DeleteRange, Txn, Compact) over a KvServer.
//
// Reads are linearizable unless the request asks for serializable: a linearizable Range
// first waits for a ReadIndex round (shared by all reads that arrive together), then
// reads the local store. Writes are validated, proposed through Raft and answered once
// applied. Every call is bounded by the client's deadline and the server's request
// timeout. A learner serves only serializable Ranges (RefuseIfLearner), as etcd 3.4's.
//
// Threads: the service uses gRPC's callback API, so that no thread waits for a write to
// commit or for a read barrier. Handlers run on gRPC's threads; writes are finished on the
// thread that applied them, linearizable reads on the server's read threads. The service
// keeps no state.
#ifndef KVSTORE_SERVER_KV_SERVICE_H_
#define KVSTORE_SERVER_KV_SERVICE_H_

#include "absl/functional/any_invocable.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/service_util.h"

namespace kvstore::server {

class KvService final : public etcdserverpb::KV::CallbackService {
 public:
  // `server` must outlive the service.
  KvService(KvServer* server, absl::Duration request_timeout)
      : server_(server), request_timeout_(request_timeout) {}

  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::RangeRequest* req,
                                  etcdserverpb::RangeResponse* resp) override;
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::PutRequest* req,
                                etcdserverpb::PutResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteRange(grpc::CallbackServerContext* ctx,
                                        const etcdserverpb::DeleteRangeRequest* req,
                                        etcdserverpb::DeleteRangeResponse* resp) override;
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* ctx,
                                const etcdserverpb::TxnRequest* req,
                                etcdserverpb::TxnResponse* resp) override;
  grpc::ServerUnaryReactor* Compact(grpc::CallbackServerContext* ctx,
                                    const etcdserverpb::CompactionRequest* req,
                                    etcdserverpb::CompactionResponse* resp) override;

 private:
  // Checks the size of `r`, proposes it and finishes the call once it is applied.
  template <typename T>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* ctx,
                                  kvstore::internal::InternalRaftRequest r, T* resp);
  // Runs `read` now if `serializable`, else once a read barrier has passed; finishes the
  // call with its status.
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* ctx, bool serializable,
                                 absl::AnyInvocable<grpc::Status()> read);
  grpc::Status DoRange(const etcdserverpb::RangeRequest& req,
                       etcdserverpb::RangeResponse* resp) const;
  grpc::Status DoReadOnlyTxn(const etcdserverpb::TxnRequest& req,
                             etcdserverpb::TxnResponse* resp) const;

  KvServer* const server_;
  const absl::Duration request_timeout_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_KV_SERVICE_H_

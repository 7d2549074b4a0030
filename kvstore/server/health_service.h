// gRPC's health service (grpc.health.v1.Health) on the client port, as etcd 3.4 serves it
// (grpc-go's health server with the whole server, "", SERVING): Check answers SERVING for
// "" and NOT_FOUND "unknown service" for any other name; Watch sends the status (or
// SERVICE_UNKNOWN) once and then waits, since it never changes, until the call ends. Ours
// rather than gRPC's default one so that, as etcd's interceptors do, a learner refuses it
// (RefuseIfLearner).
//
// Threads: gRPC calls the handlers on its own threads; the service keeps no state. A Watch
// holds its thread until the client goes or the server shuts down.
#ifndef KVSTORE_SERVER_HEALTH_SERVICE_H_
#define KVSTORE_SERVER_HEALTH_SERVICE_H_

#include "grpc/health/v1/health.grpc.pb.h"
#include "kvstore/server/kv_server.h"

namespace kvstore::server {

class HealthService final : public grpc::health::v1::Health::Service {
 public:
  // `server` must outlive the service.
  explicit HealthService(const KvServer* server) : server_(server) {}

  grpc::Status Check(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::health::v1::HealthCheckResponse* resp) override;
  grpc::Status Watch(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  const KvServer* const server_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_HEALTH_SERVICE_H_

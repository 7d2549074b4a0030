#include "kvstore/server/health_service.h"

#include "absl/time/clock.h"
#include "kvstore/server/service_util.h"

namespace kvstore::server {

using grpc::health::v1::HealthCheckResponse;

namespace {

// How often a Watch looks whether its call has ended.
constexpr absl::Duration kWatchPoll = absl::Milliseconds(100);

}  // namespace

grpc::Status HealthService::Check(grpc::ServerContext*,
                                  const grpc::health::v1::HealthCheckRequest* req,
                                  HealthCheckResponse* resp) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  if (!req->service().empty()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
  resp->set_status(HealthCheckResponse::SERVING);
  return grpc::Status::OK;
}

grpc::Status HealthService::Watch(grpc::ServerContext* ctx,
                                  const grpc::health::v1::HealthCheckRequest* req,
                                  grpc::ServerWriter<HealthCheckResponse>* writer) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  HealthCheckResponse resp;
  resp.set_status(req->service().empty() ? HealthCheckResponse::SERVING
                                         : HealthCheckResponse::SERVICE_UNKNOWN);
  if (!writer->Write(resp)) return grpc::Status::OK;
  while (!ctx->IsCancelled()) absl::SleepFor(kWatchPoll);
  return grpc::Status(grpc::StatusCode::CANCELLED, "Stream has ended.");
}

}  // namespace kvstore::server

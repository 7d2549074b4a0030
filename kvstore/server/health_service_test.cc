// gRPC's health service as etcd 3.4 answers it on a member that is not a learner (the
// learner's refusal is in cluster_service_test.cc).
#include "kvstore/server/health_service.h"

#include <gtest/gtest.h>

#include "kvstore/server/service_test_env.h"

namespace kvstore::server {
namespace {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using testing::Ctx;
using testing::ServiceEnv;

TEST(HealthServiceTest, ServingForTheServerUnknownForAnyOtherName) {
  ServiceEnv env;
  ASSERT_TRUE(env.status().ok()) << env.status();
  auto health = grpc::health::v1::Health::NewStub(env.channel());
  HealthCheckRequest req;
  HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.status(), HealthCheckResponse::SERVING);
  req.set_service("etcdserverpb.KV");
  const grpc::Status s = health->Check(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "unknown service");

  // Watch: the status once, then nothing until the client goes.
  for (const char* service : {"", "x"}) {
    req.set_service(service);
    std::unique_ptr<grpc::ClientContext> ctx = Ctx();
    auto stream = health->Watch(ctx.get(), req);
    ASSERT_TRUE(stream->Read(&resp)) << service;
    EXPECT_EQ(resp.status(), *service == '\0' ? HealthCheckResponse::SERVING
                                              : HealthCheckResponse::SERVICE_UNKNOWN);
    ctx->TryCancel();
    EXPECT_FALSE(stream->Read(&resp));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
}

}  // namespace
}  // namespace kvstore::server

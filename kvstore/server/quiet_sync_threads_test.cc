// common::QuietSyncThreads on a server with both kinds of methods, as the member's client
// port has: synchronous ones (here Cluster.MemberList) and callback ones (KV.Range). Run by
// ctest twice: with gRPC's default poller, where the server becomes a hybrid one whose
// synchronous threads do not poll, and with GRPC_POLL_STRATEGY=poll, where it must not (a
// queue nobody reads would strand the connections given to it) and only the thread limit
// applies. Either way every call must be served, also many at once, and the server must
// shut down.
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/grpc_server.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "gtest/gtest.h"

namespace {

class SyncCluster final : public etcdserverpb::Cluster::Service {
  grpc::Status MemberList(grpc::ServerContext*, const etcdserverpb::MemberListRequest*,
                          etcdserverpb::MemberListResponse* resp) override {
    resp->add_members()->set_name("sync");
    return grpc::Status::OK;
  }
};

class CallbackKv final : public etcdserverpb::KV::CallbackService {
  grpc::ServerUnaryReactor* Range(grpc::CallbackServerContext* ctx,
                                  const etcdserverpb::RangeRequest*,
                                  etcdserverpb::RangeResponse* resp) override {
    resp->set_count(7);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

std::chrono::system_clock::time_point Soon() {
  return std::chrono::system_clock::now() + std::chrono::seconds(5);
}

TEST(QuietSyncThreadsTest, ServesSynchronousAndCallbackMethods) {
  SyncCluster cluster;
  CallbackKv kv;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&cluster);
  builder.RegisterService(&kv);
  common::QuietSyncThreads quiet(&builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_NE(port, 0);

  const std::string address = "127.0.0.1:" + std::to_string(port);
  std::atomic<int> served{0};
  auto client = [&](int calls) {
    // A channel (a connection) of its own per thread: connections are spread over the
    // server's completion queues.
    grpc::ChannelArguments args;
    args.SetInt(
        "kvstore.test.channel",
        static_cast<int>(std::hash<std::thread::id>()(std::this_thread::get_id()) & 0x7fffffff));
    std::shared_ptr<grpc::Channel> ch =
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
    auto cluster_stub = etcdserverpb::Cluster::NewStub(ch);
    auto kv_stub = etcdserverpb::KV::NewStub(ch);
    for (int i = 0; i < calls; ++i) {
      grpc::ClientContext c1;
      c1.set_deadline(Soon());
      etcdserverpb::MemberListResponse members;
      grpc::Status s = cluster_stub->MemberList(&c1, {}, &members);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (s.ok() && members.members_size() == 1 && members.members(0).name() == "sync") ++served;
      grpc::ClientContext c2;
      c2.set_deadline(Soon());
      etcdserverpb::RangeResponse range;
      s = kv_stub->Range(&c2, {}, &range);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (s.ok() && range.count() == 7) ++served;
    }
  };
  client(20);
  EXPECT_EQ(served.load(), 40);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) threads.emplace_back(client, 10);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(served.load(), 40 + 8 * 20);
  server->Shutdown(Soon());
}

TEST(QuietSyncThreadsTest, HybridOnlyWithEpoll1) {
  const char* was = getenv("GRPC_POLL_STRATEGY");
  const std::string saved = was != nullptr ? was : "";
  auto with = [](const char* value) {
    if (value == nullptr) {
      unsetenv("GRPC_POLL_STRATEGY");
    } else {
      setenv("GRPC_POLL_STRATEGY", value, 1);
    }
    return common::QuietSyncThreads::PollsOneEpollSet();
  };
  EXPECT_TRUE(with(nullptr));
  EXPECT_TRUE(with(""));
  EXPECT_TRUE(with("epoll1"));
  EXPECT_TRUE(with("epoll1,poll"));
  EXPECT_TRUE(with("all"));
  EXPECT_FALSE(with("poll"));
  EXPECT_FALSE(with("poll,epoll1"));
  EXPECT_FALSE(with("none"));
  if (was != nullptr) {
    setenv("GRPC_POLL_STRATEGY", saved.c_str(), 1);
  } else {
    unsetenv("GRPC_POLL_STRATEGY");
  }
}

}  // namespace

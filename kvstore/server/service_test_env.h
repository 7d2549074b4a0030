// For the service tests: a started KvServer (one member alone, or one that joins another
// in process) with the KV, Lease, Maintenance, Cluster and Health services on 127.0.0.1 (a
// port the OS picks), and the changes it commits.
//
// Ownership: the environment owns the server, the services and the gRPC server; the data
// directory is a fresh temporary one (removed at the end) unless the test passes its own.
// Threads: the test thread uses it; the event sink runs on the driver thread.
#ifndef KVSTORE_SERVER_SERVICE_TEST_ENV_H_
#define KVSTORE_SERVER_SERVICE_TEST_ENV_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "kvstore/server/cluster_service.h"
#include "kvstore/server/health_service.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/kv_service.h"
#include "kvstore/server/lease_service.h"
#include "kvstore/server/maintenance_service.h"

namespace kvstore::server::testing {

// A fresh directory under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "kvstore_service_test.XXXXXX";
    const char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Fast timers: a 10 ms heartbeat, a 100 ms election timeout (so a minimum lease TTL of 1 s).
inline KvServerOptions FastOptions(const std::string& data_dir) {
  KvServerOptions o;
  o.name = "svc";
  o.data_dir = data_dir;
  o.peer_urls = {"http://127.0.0.1:12380"};
  o.client_urls = {"http://127.0.0.1:12379"};
  o.heartbeat = absl::Milliseconds(10);
  o.election = absl::Milliseconds(100);
  return o;
}

// How ServiceEnv serves its member (one of several, in some tests).
struct Serving {
  // Wait until the member leads (false: a member that joins a running cluster).
  bool lead = true;
  // Listen on options.client_urls' first host:port (which other members forward to),
  // rather than on a port the OS picks.
  bool on_client_url = false;
};

class ServiceEnv {
 public:
  struct Change {
    mvcc::Event event;
    int64_t revision = 0;
  };

  // Opens the member (options.data_dir, or a fresh temp dir if empty) and serves it once
  // it leads (unless !serving.lead) and is ready. Check ok() before use.
  explicit ServiceEnv(const common::Clock* clock = common::RealClock::Get(),
                      KvServerOptions options = FastOptions(""), Serving serving = Serving()) {
    if (options.data_dir.empty()) options.data_dir = temp_.path() + "/member";
    absl::StatusOr<std::unique_ptr<KvServer>> s = KvServer::Open(options, clock);
    if (!s.ok()) {
      status_ = s.status();
      return;
    }
    server_ = std::move(*s);
    server_->set_event_sink([this](const std::vector<mvcc::Event>& events, int64_t rev, bool) {
      absl::MutexLock l(&mu_);
      for (const mvcc::Event& e : events) changes_.push_back(Change{e, rev});
    });
    server_->Start();
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    // Leading, and the lessor promoted (it follows leadership a timer period later): leases
    // granted from now on expire on the clock the test moves.
    while (serving.lead &&
           (server_->driver().Status().role != raft::Role::kLeader ||
            !server_->lessor().is_primary()) &&
           absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    // As main does: clients are served once the member published its attributes.
    server_->WaitReady(give_up);
    kv_ = std::make_unique<KvService>(server_.get(), absl::Seconds(5));
    lease_ = std::make_unique<LeaseService>(server_.get(), absl::Seconds(5));
    maintenance_ = std::make_unique<MaintenanceService>(server_.get(), absl::Seconds(5));
    cluster_ = std::make_unique<ClusterService>(server_.get());
    health_ = std::make_unique<HealthService>(server_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    absl::StatusOr<std::string> address = UrlHostPort(options.client_urls.front());
    const std::string listen = serving.on_client_url && address.ok() ? *address : "127.0.0.1:0";
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(kv_.get());
    builder.RegisterService(lease_.get());
    builder.RegisterService(maintenance_.get());
    builder.RegisterService(cluster_.get());
    builder.RegisterService(health_.get());
    grpc_ = builder.BuildAndStart();
    if (grpc_ == nullptr || port == 0) {
      status_ = absl::InternalError("cannot start the gRPC server");
      return;
    }
    channel_ =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  }

  ~ServiceEnv() {
    if (grpc_ != nullptr) grpc_->Shutdown(std::chrono::system_clock::now());
    if (server_ != nullptr) server_->Stop();
  }

  const absl::Status& status() const { return status_; }
  KvServer& server() { return *server_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  std::string data_dir() const { return server_->options().data_dir; }

  std::vector<Change> changes() const {
    absl::MutexLock l(&mu_);
    return changes_;
  }

 private:
  TempDir temp_;
  absl::Status status_;
  std::unique_ptr<KvServer> server_;
  std::unique_ptr<KvService> kv_;
  std::unique_ptr<LeaseService> lease_;
  std::unique_ptr<MaintenanceService> maintenance_;
  std::unique_ptr<ClusterService> cluster_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> grpc_;
  std::shared_ptr<grpc::Channel> channel_;
  mutable absl::Mutex mu_;
  std::vector<Change> changes_ ABSL_GUARDED_BY(mu_);
};

// A port nobody listens on right now, on 127.0.0.1 (0 if none could be found).
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  close(fd);
  return ok ? ntohs(a.sin_port) : 0;
}

// A client context with a deadline, for calls that must not hang a test.
inline std::unique_ptr<grpc::ClientContext> Ctx(absl::Duration timeout = absl::Seconds(10)) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

}  // namespace kvstore::server::testing

#endif  // KVSTORE_SERVER_SERVICE_TEST_ENV_H_

// kvstore: one member of the replicated, etcd-compatible key-value store.
//
//   kvstore --name n1 --data-dir /var/lib/kv
//           --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls
//           http://127.0.0.1:2379
//           --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls
//           http://127.0.0.1:2380
//           --initial-cluster n1=http://127.0.0.1:2380,n2=http://127.0.0.2:2380,n3=...
//   (one command line)
//
// Flags follow etcd's names. As etcd, the member serves clients once it has published its
// name and client URLs through Raft (at once on a restart that changes neither), so a
// member of a cluster without a quorum does not answer yet. SIGTERM or SIGINT stops the
// member cleanly.
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/flags.h"
#include "common/http_endpoint.h"
#include "common/scheduling.h"
#include "kvstore/server/cluster_service.h"
#include "kvstore/server/health_service.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/kv_service.h"
#include "kvstore/server/lease_service.h"
#include "kvstore/server/maintenance_service.h"
#include "kvstore/server/restore.h"
#include "kvstore/server/watch_hub.h"
#include "kvstore/server/watch_service.h"
#include "spdlog/spdlog.h"

namespace {

absl::Notification* g_stop = nullptr;

void OnSignal(int) {
  // Notify is async-signal-safe enough here: it only sets state and wakes waiters.
  if (g_stop != nullptr && !g_stop->HasBeenNotified()) g_stop->Notify();
}

std::vector<std::string> SplitList(const std::string& s) {
  return absl::StrSplit(s, ',', absl::SkipEmpty());
}

int Fail(const std::string& what) {
  std::cerr << "kvstore: " << what << "\n";
  return 1;
}

// `kvstore restore --snapshot FILE --data-dir DIR --name N --initial-cluster ...`: builds a
// member's data dir from a snapshot (see kvstore/server/restore.h). argv[0] is "restore".
int RestoreCommand(int argc, char** argv) {
  kvstore::server::RestoreOptions o;
  std::string advertise_peer = "http://localhost:2380";
  int64_t bump = o.bump_revision;
  common::FlagSet flags("kvstore restore");
  flags.String("snapshot", &o.snapshot_path, "snapshot file (from etcdctl snapshot save)");
  flags.String("data-dir", &o.data_dir, "data directory to create; empty: <name>.etcd");
  flags.String("name", &o.name, "name of the member to restore");
  flags.String("initial-cluster", &o.initial_cluster, "initial cluster: name=peer-url,...");
  flags.String("initial-cluster-token", &o.cluster_token, "initial cluster token");
  flags.String("initial-advertise-peer-urls", &advertise_peer, "this member's peer URLs");
  flags.Bool("skip-hash-check", &o.skip_hash_check, "do not check the snapshot's SHA-256");
  flags.Int("bump-revision", &bump, "how far to move the revision forward (at least 1)");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) {
      std::cout << flags.Usage();
      return 0;
    }
    std::cerr << "kvstore restore: " << s.message() << "\n" << flags.Usage();
    return 2;
  }
  // etcdctl takes the file as an argument: `snapshot restore FILE`; so do we.
  if (o.snapshot_path.empty() && flags.positional().size() == 1) {
    o.snapshot_path = flags.positional()[0];
  } else if (!flags.positional().empty()) {
    std::cerr << "kvstore restore: unexpected arguments\n" << flags.Usage();
    return 2;
  }
  if (o.snapshot_path.empty()) {
    std::cerr << "kvstore restore: --snapshot is required\n" << flags.Usage();
    return 2;
  }
  o.advertise_peer_urls = SplitList(advertise_peer);
  o.bump_revision = bump;
  absl::StatusOr<kvstore::server::RestoreResult> r = kvstore::server::RestoreMember(o);
  if (!r.ok()) {
    std::cerr << "kvstore restore: " << r.status().message() << "\n";
    return 1;
  }
  std::cout << "restored snapshot " << o.snapshot_path << " (revision " << r->snapshot_revision
            << ") into " << r->data_dir << ": member " << absl::StrCat(absl::Hex(r->member_id))
            << " of cluster " << absl::StrCat(absl::Hex(r->cluster_id)) << ", revision "
            << r->revision << " (everything below it compacted), " << r->leases << " leases\n"
            << "start it with --name " << o.name << " --data-dir " << r->data_dir
            << " --initial-advertise-peer-urls " << advertise_peer << " --initial-cluster "
            << o.initial_cluster << " --initial-cluster-token " << o.cluster_token << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds abseil with Mutex deadlock detection on, which keeps a process-wide lock
  // graph behind every lock and unlock: tests keep it, the server does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (argc >= 2 && std::string(argv[1]) == "restore") return RestoreCommand(argc - 1, argv + 1);
  std::string name = "default", data_dir, listen_client = "http://localhost:2379";
  std::string advertise_client = "http://localhost:2379", listen_peer = "http://localhost:2380";
  std::string advertise_peer = "http://localhost:2380", initial_cluster, cluster_state = "new";
  std::string cluster_token = "etcd-cluster", listen_metrics, metrics_addr, test_peer_faults;
  std::string cpu_scheduling = "batch";
  int64_t heartbeat_ms = 100, election_ms = 1000, snapshot_count = 100000;
  int64_t catchup_entries = 5000;
  int64_t max_request_bytes = 1536 * 1024, max_txn_ops = 128;
  common::FlagSet flags("kvstore");
  flags.String("name", &name, "human-readable name for this member");
  flags.String("data-dir", &data_dir, "path to the data directory (default: <name>.etcd)");
  flags.String("listen-client-urls", &listen_client, "URLs to listen on for client traffic");
  flags.String("advertise-client-urls", &advertise_client, "client URLs to advertise");
  flags.String("listen-peer-urls", &listen_peer, "URLs to listen on for peer traffic");
  flags.String("initial-advertise-peer-urls", &advertise_peer, "peer URLs to advertise");
  flags.String("initial-cluster", &initial_cluster, "initial cluster: name=peer-url,...");
  flags.String("initial-cluster-state", &cluster_state, "new or existing");
  flags.String("initial-cluster-token", &cluster_token, "initial cluster token");
  flags.Int("heartbeat-interval", &heartbeat_ms, "time (in milliseconds) of a heartbeat interval");
  flags.Int("election-timeout", &election_ms, "time (in milliseconds) for an election to time out");
  flags.Int("snapshot-count", &snapshot_count, "applied entries between snapshots");
  flags.Int("experimental-snapshot-catchup-entries", &catchup_entries,
            "entries kept behind a snapshot for slow followers");
  flags.Int("max-request-bytes", &max_request_bytes, "maximum client request size in bytes");
  flags.Int("max-txn-ops", &max_txn_ops, "maximum operations in one txn request");
  flags.String("listen-metrics-urls", &listen_metrics,
               "URLs to serve /metrics and /health on over HTTP (none by default)");
  flags.String("metrics-addr", &metrics_addr,
               "host:port to serve /metrics and /health on, as well (shorthand for one URL)");
  flags.String("cpu-scheduling", &cpu_scheduling,
               "Linux scheduling class of the member's threads: batch (a woken thread does "
               "not preempt a running one: fewer context switches under load) or normal");
  flags.String("test-peer-faults", &test_peer_faults,
               "TEST ONLY, never in production: a file of member ids (hex) this member drops "
               "Raft messages to and from, re-read every 50 ms (partition tests)");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) {
      std::cout << flags.Usage();
      return 0;
    }
    std::cerr << "kvstore: " << s.message() << "\n" << flags.Usage();
    return 2;
  }
  if (heartbeat_ms <= 0 || election_ms < 5 * heartbeat_ms) {
    return Fail("--election-timeout must be at least 5 times --heartbeat-interval");
  }
  if (cluster_state != "new" && cluster_state != "existing") {
    return Fail("--initial-cluster-state must be \"new\" or \"existing\"");
  }
  if (data_dir.empty()) data_dir = name + ".etcd";
  // Before any thread starts, so that every thread inherits it (see common/scheduling.h).
  absl::StatusOr<common::CpuScheduling> policy = common::ParseCpuScheduling(cpu_scheduling);
  if (!policy.ok()) return Fail(absl::StrCat("--cpu-scheduling: ", policy.status().message()));
  if (absl::Status s = common::SetCpuScheduling(*policy); !s.ok()) {
    return Fail(std::string(s.message()));
  }

  kvstore::server::KvServerOptions o;
  o.name = name;
  o.data_dir = data_dir;
  o.peer_urls = SplitList(advertise_peer);
  o.cluster_token = cluster_token;
  o.client_urls = SplitList(advertise_client);
  o.initial_cluster = initial_cluster;
  o.initial_cluster_state = cluster_state;
  o.listen_peer_urls = SplitList(listen_peer);
  o.heartbeat = absl::Milliseconds(heartbeat_ms);
  o.election = absl::Milliseconds(election_ms);
  o.max_request_bytes = max_request_bytes;
  o.max_txn_ops = static_cast<int>(max_txn_ops);
  o.test_peer_faults_file = test_peer_faults;
  if (snapshot_count < 0 || catchup_entries < 0) {
    return Fail("--snapshot-count and --experimental-snapshot-catchup-entries must be >= 0");
  }
  o.snapshot_count = static_cast<uint64_t>(snapshot_count);
  o.catchup_entries = static_cast<uint64_t>(catchup_entries);

  std::vector<std::string> listen;
  for (const std::string& url : SplitList(listen_client)) {
    absl::StatusOr<std::string> hp = kvstore::server::UrlHostPort(url);
    if (!hp.ok()) return Fail(std::string(hp.status().message()));
    listen.push_back(*hp);
  }
  if (listen.empty()) return Fail("--listen-client-urls is empty");

  absl::StatusOr<std::unique_ptr<kvstore::server::KvServer>> server =
      kvstore::server::KvServer::Open(o, common::RealClock::Get());
  if (!server.ok()) return Fail(std::string(server.status().message()));
  // Committed changes feed the watch hub. The hub must not outlive its feed: whichever way
  // main returns, the server stops (Stop is idempotent) before the hub is destroyed.
  kvstore::server::WatchHub watch_hub(&(*server)->store());
  (*server)->set_event_sink(
      [&watch_hub](const std::vector<mvcc::Event>& events, int64_t rev, bool prev_values) {
        watch_hub.Notify(events, rev, prev_values);
      },
      [&watch_hub] { return watch_hub.WantsPrevValues(); });
  struct StopServerBeforeHub {
    kvstore::server::KvServer* server;
    ~StopServerBeforeHub() { server->Stop(); }
  } stop_server_before_hub{server->get()};
  absl::Notification stop;
  g_stop = &stop;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  (*server)->Start();
  // Metrics and health are served from the start, before the member is ready: that is
  // when /health saying why not is most useful. Stopped before the server (declared after).
  std::vector<std::unique_ptr<common::HttpEndpoint>> metrics_endpoints;
  std::vector<std::string> metrics_urls = SplitList(listen_metrics);
  if (!metrics_addr.empty()) metrics_urls.push_back(absl::StrCat("http://", metrics_addr));
  for (const std::string& url : metrics_urls) {
    absl::StatusOr<std::string> hp = kvstore::server::UrlHostPort(url);
    if (!hp.ok()) return Fail(std::string(hp.status().message()));
    kvstore::server::KvServer* s = server->get();
    auto endpoint =
        std::make_unique<common::HttpEndpoint>(&s->registry(), [s] { return s->Health(); });
    if (absl::Status st = endpoint->Start(*hp); !st.ok()) {
      return Fail(absl::StrCat("metrics on ", url, ": ", st.message()));
    }
    metrics_endpoints.push_back(std::move(endpoint));
  }
  spdlog::info("kvstore {} (member {:x}, cluster {:x}) listening for peers on {}", name,
               (*server)->member_id(), (*server)->cluster_id(), listen_peer);
  // etcd's ReadyNotify: clients are served once this member's attributes are committed.
  while (!(*server)->WaitReady(absl::Now() + absl::Milliseconds(100))) {
    if (stop.HasBeenNotified()) {
      spdlog::info("kvstore {} stopping before it was ready", name);
      (*server)->Stop();
      return 0;
    }
  }

  const absl::Duration request_timeout = absl::Seconds(5) + 2 * o.election;
  kvstore::server::KvService kv(server->get(), request_timeout);
  grpc::ServerBuilder builder;
  // A port in use is an error, as for etcd: gRPC would otherwise share it (SO_REUSEPORT)
  // with another process of the same user.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  for (const std::string& hp : listen) {
    builder.AddListeningPort(hp, grpc::InsecureServerCredentials());
  }
  // etcd accepts messages a little larger than --max-request-bytes, so that an oversized
  // request gets its own error rather than a transport one.
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_request_bytes + 512 * 1024));
  builder.SetMaxSendMessageSize(INT32_MAX);
  builder.RegisterService(&kv);
  // Services register here, one block each.
  kvstore::server::LeaseService lease(server->get(), request_timeout);
  kvstore::server::MaintenanceService maintenance(server->get(), request_timeout);
  kvstore::server::ClusterService cluster(server->get());
  builder.RegisterService(&lease);
  builder.RegisterService(&maintenance);
  builder.RegisterService(&cluster);
  kvstore::server::WatchService watch(server->get(), &watch_hub);
  builder.RegisterService(&watch);
  // gRPC's health protocol, ours rather than gRPC's default so that a learner refuses it.
  kvstore::server::HealthService health(server->get());
  builder.RegisterService(&health);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr) return Fail("cannot listen on " + listen_client);
  spdlog::info("kvstore {} (member {:x}, cluster {:x}) serving clients on {}", name,
               (*server)->member_id(), (*server)->cluster_id(), listen_client);

  // Until a signal, or until this member applied its own removal (etcd's removed member
  // stops with an error).
  while (!stop.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
    if ((*server)->Removed()) {
      spdlog::error("kvstore {}: the member has been permanently removed from the cluster", name);
      grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
      (*server)->Stop();
      return 1;
    }
  }
  spdlog::info("kvstore {} stopping", name);
  (*server)->HandOverLeadership();
  grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  (*server)->Stop();
  return 0;
}

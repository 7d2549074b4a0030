#include "kvstore/server/kv_server.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "kvstore/server/cluster_service.h"
#include "kvstore/server/errors.h"
#include "kvstore/server/snapshot_stream.h"
#include "spdlog/spdlog.h"

namespace kvstore::server {
namespace {

// etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds, rounded up.
int64_t MinLeaseTtl(const KvServerOptions& o) {
  const double seconds = absl::ToDoubleSeconds(o.election) * 1.5;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(seconds)));
}

const MemberInfo* FindMember(const std::vector<MemberInfo>& list, uint64_t id) {
  for (const MemberInfo& m : list) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

}  // namespace

class KvServer::PeerInbox final : public MessageSink {
 public:
  explicit PeerInbox(KvServer* server) : server_(server) {}
  // Called only once the peer server runs, which starts after the driver exists.
  void Step(raft::Message m) override {
    // A removed member (restarted from an old data dir, or not yet stopped) must not
    // disturb the cluster with its elections: as etcd, its messages are refused.
    if (!server_->membership_->Contains(m.from)) return;
    server_->driver_->Step(std::move(m));
  }
  void ReportUnreachable(uint64_t id) override { server_->driver_->ReportUnreachable(id); }
  void ReportSnapshot(uint64_t id, bool ok) override { server_->driver_->ReportSnapshot(id, ok); }
  void ReportPeerDown(uint64_t id) override { server_->driver_->ReportPeerDown(id); }

 private:
  KvServer* const server_;
};

class KvServer::Snapshots final : public Snapshotter {
 public:
  explicit Snapshots(KvServer* server) : server_(server) {}

  absl::StatusOr<uint64_t> Flush() override { return server_->mvcc_->Flush(); }

  absl::StatusOr<std::string> Checkpoint() override {
    const std::string dir = (std::filesystem::path(server_->snap_dir_) /
                             absl::StrCat("send-", server_->mvcc_->AppliedIndex(), "-", next_++))
                                .string();
    if (absl::Status s = server_->mvcc_->CreateCheckpoint(dir); !s.ok()) return s;
    return dir;
  }

  // The member list at the snapshot's index, which lives beside the store, not in it.
  std::string SnapshotData() override { return server_->membership_->EncodeMembers(); }

  absl::Status Install(const raft::Snapshot& snap) override {
    mvcc::MvccStore& store = *server_->mvcc_;
    const std::string path = ReceivedSnapshotPath(server_->snap_dir_, snap.meta);
    std::error_code ec;
    if (!std::filesystem::is_directory(path, ec)) {
      return absl::NotFoundError(absl::StrCat("no state received for the snapshot at ", path));
    }
    absl::StatusOr<std::vector<MemberInfo>> members = Membership::DecodeMembers(snap.data);
    if (!members.ok()) return members.status();
    const int64_t revision = store.CurrentRevision();
    if (absl::Status s = store.ReplaceWith(path); !s.ok()) return s;
    if (absl::Status s = server_->AdoptMembers(*std::move(members)); !s.ok()) return s;
    if (store.AppliedIndex() != snap.meta.index) {
      return absl::DataLossError(absl::StrCat("the state received for the snapshot at index ",
                                              snap.meta.index, " is at index ",
                                              store.AppliedIndex()));
    }
    // The lessor's applied state is the store's.
    Lessor& lessor = server_->lessor_;
    for (int64_t id : lessor.Ids()) lessor.Revoke(id);
    absl::StatusOr<std::vector<mvcc::LeaseRecord>> leases = store.Leases();
    if (!leases.ok()) return leases.status();
    for (const mvcc::LeaseRecord& l : *leases) lessor.Grant(l.id, l.ttl);
    absl::StatusOr<std::vector<mvcc::LeaseKey>> attached = store.AllLeaseKeys();
    if (!attached.ok()) return attached.status();
    for (const mvcc::LeaseKey& lk : *attached) lessor.Attach(lk.lease, lk.key);
    absl::StatusOr<std::vector<mvcc::AlarmRecord>> alarms = store.Alarms();
    if (!alarms.ok()) return alarms.status();
    server_->OnAlarms(*alarms);
    // Older snapshots that arrived too late are of no use any more.
    for (const auto& entry : std::filesystem::directory_iterator(server_->snap_dir_, ec)) {
      if (entry.path().filename().string().rfind("recv-", 0) == 0) {
        std::error_code ignored;
        std::filesystem::remove_all(entry.path(), ignored);
      }
    }
    // Watchers catch up over the revisions that never came through the applier.
    if (store.CurrentRevision() > revision) server_->OnEvents({}, store.CurrentRevision(), true);
    if (store.CompactionPending()) server_->OnCompactionScheduled();
    return absl::OkStatus();
  }

 private:
  KvServer* const server_;
  uint64_t next_ = 1;  // driver thread only
};

class KvServer::PeerMemberList final : public etcdserverpb::Cluster::Service {
 public:
  explicit PeerMemberList(KvServer* server) : server_(server) {}
  grpc::Status MemberList(grpc::ServerContext*, const etcdserverpb::MemberListRequest*,
                          etcdserverpb::MemberListResponse* resp) override {
    resp->mutable_header()->set_cluster_id(server_->cluster_id_);
    resp->mutable_header()->set_member_id(server_->member_id_);
    for (const MemberInfo& info : server_->membership_->Members()) {
      MemberToProto(info, resp->add_members());
    }
    return grpc::Status::OK;
  }

 private:
  KvServer* const server_;
};

KvServer::KvServer(const KvServerOptions& options, const common::Clock* clock)
    : options_(options), clock_(clock), lessor_(clock, MinLeaseTtl(options)) {}

KvServer::~KvServer() { Stop(); }

absl::StatusOr<std::unique_ptr<KvServer>> KvServer::Open(const KvServerOptions& options,
                                                         const common::Clock* clock) {
  std::unique_ptr<KvServer> s(new KvServer(options, clock));
  if (absl::Status st = s->Init(); !st.ok()) return st;
  return s;
}

absl::Status KvServer::Init() {
  if (options_.data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  const std::filesystem::path member = std::filesystem::path(options_.data_dir) / "member";
  std::error_code ec;
  std::filesystem::create_directories(member, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use data dir ", options_.data_dir, ": ", ec.message()));
  }
  absl::StatusOr<std::unique_ptr<storage::RaftLogStore>> log =
      storage::RaftLogStore::Open((member / "raft").string());
  if (!log.ok()) return log.status();
  raft_log_ = std::move(*log);
  if (absl::Status s = InitMembership(member.string()); !s.ok()) return s;
  // What a crash left of snapshots being sent or received is of no use.
  snap_dir_ = (member / "snap").string();
  std::filesystem::remove_all(snap_dir_, ec);
  std::filesystem::create_directories(snap_dir_, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use data dir ", options_.data_dir, ": ", ec.message()));
  }
  absl::StatusOr<std::unique_ptr<mvcc::MvccStore>> kv =
      mvcc::MvccStore::Open((member / "mvcc").string(), mvcc::MvccStoreOptions{.use_wal = false});
  if (!kv.ok()) return kv.status();
  mvcc_ = std::move(*kv);

  // The lessor's applied state is rebuilt from the store.
  absl::StatusOr<std::vector<mvcc::LeaseRecord>> leases = mvcc_->Leases();
  if (!leases.ok()) return leases.status();
  for (const mvcc::LeaseRecord& l : *leases) lessor_.Grant(l.id, l.ttl);
  absl::StatusOr<std::vector<mvcc::LeaseKey>> attached = mvcc_->AllLeaseKeys();
  if (!attached.ok()) return attached.status();
  for (const mvcc::LeaseKey& lk : *attached) lessor_.Attach(lk.lease, lk.key);

  absl::StatusOr<std::vector<mvcc::AlarmRecord>> alarms = mvcc_->Alarms();
  if (!alarms.ok()) return alarms.status();
  OnAlarms(*alarms);

  applier_ = std::make_unique<Applier>(mvcc_.get(), &lessor_, this);
  RaftDriver::Options d;
  d.id = member_id_;
  d.tick = options_.heartbeat;
  d.election_ticks = std::max<int>(2, static_cast<int>(options_.election / options_.heartbeat));
  d.metrics = &metrics_;
  d.seed = member_id_ ^ static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  snapshots_ = std::make_unique<Snapshots>(this);
  d.snapshotter = snapshots_.get();
  d.snapshot_count = options_.snapshot_count;
  d.catchup_entries = options_.catchup_entries;
  d.after_ready = [this] {
    UpdateTransport();
    SendAppliedReplies();
  };
  absl::StatusOr<std::vector<std::string>> peer_listen = InitTransport();
  if (!peer_listen.ok()) return peer_listen.status();
  absl::StatusOr<std::unique_ptr<RaftDriver>> driver =
      RaftDriver::Create(d, raft_log_.get(), applier_.get(), transport_.get(), clock_);
  if (!driver.ok()) return driver.status();
  driver_ = std::move(*driver);
  if (peer_listen->empty()) return absl::OkStatus();
  // Last: from here on peers' messages reach the driver (queued until Start()).
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // as the client port (main.cc)
  for (const std::string& hp : *peer_listen) {
    builder.AddListeningPort(hp, grpc::InsecureServerCredentials());
  }
  builder.SetMaxReceiveMessageSize(INT32_MAX);
  builder.RegisterService(transport_->service());
  peer_member_list_ = std::make_unique<PeerMemberList>(this);
  builder.RegisterService(peer_member_list_.get());
  peer_server_ = builder.BuildAndStart();
  if (peer_server_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen for peers on ", absl::StrJoin(options_.listen_peer_urls, ",")));
  }
  return absl::OkStatus();
}

absl::Status KvServer::InitMembership(const std::string& member_dir) {
  if (options_.initial_cluster_state != "new" && options_.initial_cluster_state != "existing") {
    return absl::InvalidArgumentError("--initial-cluster-state must be \"new\" or \"existing\"");
  }
  const bool new_log = raft_log_->LastIndex() == 0 && raft_log_->hard_state().IsEmpty();
  absl::StatusOr<std::unique_ptr<Membership>> loaded = Membership::Load(member_dir);
  if (loaded.ok()) {
    // A restart: the flags that describe a new cluster are ignored, as etcd ignores them.
    membership_ = std::move(*loaded);
  } else if (!absl::IsNotFound(loaded.status())) {
    return loaded.status();
  } else {
    if (new_log && options_.initial_cluster_state == "existing") {
      // Joining: the log stays empty (the leader sends it all), no bootstrap.
      absl::StatusOr<InitialCluster> cluster = FetchClusterFromPeers();
      if (!cluster.ok()) return cluster.status();
      absl::StatusOr<std::unique_ptr<Membership>> created =
          Membership::Create(member_dir, *cluster);
      if (!created.ok()) return created.status();
      membership_ = std::move(*created);
      member_id_ = membership_->member_id();
      cluster_id_ = membership_->cluster_id();
      spdlog::info("joining cluster {:x} as member {:x}", cluster_id_, member_id_);
      return absl::OkStatus();
    }
    absl::StatusOr<InitialCluster> cluster = ResolveInitialCluster(BootstrapFlags{
        .name = options_.name,
        .initial_cluster = options_.initial_cluster,
        .advertise_peer_urls = options_.peer_urls,
        .cluster_token = options_.cluster_token,
    });
    if (!cluster.ok()) return cluster.status();
    if (!new_log) {
      spdlog::warn("data dir {} holds a Raft log but no member list; taking it from the flags",
                   options_.data_dir);
    }
    absl::StatusOr<std::unique_ptr<Membership>> created = Membership::Create(member_dir, *cluster);
    if (!created.ok()) return created.status();
    membership_ = std::move(*created);
  }
  member_id_ = membership_->member_id();
  cluster_id_ = membership_->cluster_id();
  // After the member list, so that a crash in between bootstraps on the next start. A
  // member that joined a running cluster never bootstraps: its leader fills its log.
  if (new_log && options_.initial_cluster_state != "existing") {
    if (absl::Status s = raft_log_->Bootstrap(membership_->Ids()); !s.ok()) return s;
  }
  const std::optional<MemberInfo> self = membership_->Find(member_id_);
  if (self && !new_log && (self->name != options_.name || self->peer_urls != options_.peer_urls)) {
    spdlog::warn(
        "data dir {} belongs to member {} ({:x}) at {}; --name and "
        "--initial-advertise-peer-urls are ignored",
        options_.data_dir, self->name, member_id_, absl::StrJoin(self->peer_urls, ","));
  }
  return absl::OkStatus();
}

absl::StatusOr<InitialCluster> KvServer::FetchClusterFromPeers() const {
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> named =
      ParseInitialCluster(options_.initial_cluster);
  if (!named.ok()) return named.status();
  if (!named->contains(options_.name)) {
    return absl::InvalidArgumentError(absl::StrCat("couldn't find local name \"", options_.name,
                                                   "\" in the initial cluster configuration"));
  }
  std::vector<std::string> self_urls = options_.peer_urls;
  std::sort(self_urls.begin(), self_urls.end());
  // etcd's GetClusterFromRemotePeers: ask each other member until one answers.
  const absl::Time give_up = absl::Now() + absl::Seconds(10) + 2 * options_.election;
  absl::Status last = absl::UnavailableError("no other member in --initial-cluster");
  do {
    for (const auto& [name, urls] : *named) {
      if (name == options_.name) continue;
      for (const std::string& url : urls) {
        absl::StatusOr<std::string> hp = UrlHostPort(url);
        if (!hp.ok()) continue;
        std::unique_ptr<etcdserverpb::Cluster::Stub> stub = etcdserverpb::Cluster::NewStub(
            grpc::CreateChannel(*hp, grpc::InsecureChannelCredentials()));
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
        etcdserverpb::MemberListRequest req;
        etcdserverpb::MemberListResponse resp;
        const grpc::Status gs = stub->MemberList(&ctx, req, &resp);
        if (!gs.ok()) {
          last = absl::UnavailableError(absl::StrCat(url, ": ", gs.error_message()));
          continue;
        }
        InitialCluster cluster;
        cluster.cluster_id = resp.header().cluster_id();
        for (const etcdserverpb::Member& m : resp.members()) {
          MemberInfo info = MemberFromProto(m);
          std::vector<std::string> sorted = info.peer_urls;
          std::sort(sorted.begin(), sorted.end());
          if (sorted == self_urls) cluster.member_id = info.id;
          cluster.members.push_back(std::move(info));
        }
        if (cluster.member_id == 0) {
          return absl::FailedPreconditionError(absl::StrCat(
              "error validating peerURLs: no member of cluster ", absl::Hex(cluster.cluster_id),
              " has the peer URLs ", absl::StrJoin(self_urls, ","),
              " (add this member first: etcdctl member add)"));
        }
        return cluster;
      }
    }
    absl::SleepFor(absl::Milliseconds(200));
  } while (absl::Now() < give_up);
  return absl::UnavailableError(absl::StrCat(
      "cannot fetch cluster info from peer urls: could not retrieve cluster information from "
      "the given URLs (",
      last.message(), ")"));
}

absl::StatusOr<std::vector<std::string>> KvServer::InitTransport() {
  std::vector<std::string> listen;
  for (const std::string& url : options_.listen_peer_urls) {
    absl::StatusOr<std::string> hp = UrlHostPort(url);
    if (!hp.ok()) return hp.status();
    listen.push_back(*hp);
  }
  const std::vector<MemberInfo> members = membership_->Members();
  if (listen.empty()) {
    if (members.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--listen-peer-urls is required: the cluster has ", members.size(), " members"));
    }
    return listen;
  }
  inbox_ = std::make_unique<PeerInbox>(this);
  transport_ = std::make_unique<PeerTransport>(
      PeerTransport::Options{.cluster_id = cluster_id_,
                             .test_faults_file = options_.test_peer_faults_file,
                             .snapshot_dir = snap_dir_},
      inbox_.get());
  for (const MemberInfo& m : members) {
    if (m.id == member_id_) continue;
    if (m.peer_urls.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("member ", m.name, " has no peer URL"));
    }
    absl::StatusOr<std::string> address = UrlHostPort(m.peer_urls.front());
    if (!address.ok()) return address.status();
    transport_->AddPeer(m.id, *address);
  }
  return listen;
}

void KvServer::Start() {
  driver_->Start();
  lease_thread_ = std::thread([this] { LeaseLoop(); });
  deadline_thread_ = std::thread([this] { DeadlineLoop(); });
  if (mvcc_->CompactionPending()) OnCompactionScheduled();  // left unfinished by a crash
  compaction_thread_ = std::thread([this] { CompactionLoop(); });
  for (int i = 0; i < std::max(1, options_.reply_threads); ++i) {
    reply_threads_.emplace_back([this] { ReplyLoop(); });
  }
  const std::optional<MemberInfo> self = membership_->Find(member_id_);
  if (self && self->name == options_.name && self->client_urls == options_.client_urls) {
    ready_.Notify();  // published before, and committed: nothing to say again
  } else {
    publish_thread_ = std::thread([this] { PublishLoop(); });
  }
}

void KvServer::PublishLoop() {
  // etcd's publish: retried until it is applied, each attempt bounded like a request.
  const absl::Duration attempt = absl::Seconds(1) + 2 * options_.election;
  bool logged = false;
  for (;;) {
    kvstore::internal::InternalRaftRequest r;
    kvstore::internal::MemberAttrSetRequest* attrs = r.mutable_member_attr_set();
    attrs->set_member_id(member_id_);
    attrs->set_name(options_.name);
    for (const std::string& u : options_.client_urls) attrs->add_client_urls(u);
    absl::StatusOr<ApplyResult> result = Write(std::move(r), absl::Now() + attempt);
    const absl::Status s = result.ok() ? result->status : result.status();
    if (s.ok()) {
      spdlog::info("published {} {} to cluster {:x}", options_.name,
                   absl::StrJoin(options_.client_urls, ","), cluster_id_);
      ready_.Notify();
      return;
    }
    if (!logged) {
      spdlog::info("waiting for a quorum to publish this member's attributes ({})", s.ToString());
      logged = true;
    }
    absl::MutexLock l(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.heartbeat)) return;
  }
}

void KvServer::HandOverLeadership() {
  const DriverStatus st = driver_->Status();
  if (transport_ == nullptr || st.role != raft::Role::kLeader) return;
  const std::vector<uint64_t>& voters = st.conf_state.voters;
  uint64_t target = raft::kNone;
  for (uint64_t id : transport_->ReachablePeers(options_.election)) {
    if (std::find(voters.begin(), voters.end(), id) != voters.end()) {
      target = id;
      break;
    }
  }
  if (target == raft::kNone) return;
  // The core catches the target up, then tells it to campaign at once (TimeoutNow).
  driver_->TransferLeadership(target);
  const absl::Time give_up = absl::Now() + options_.election;
  while (absl::Now() < give_up) {
    const uint64_t leader = driver_->Status().leader;
    if (leader != member_id_ && leader != raft::kNone) {
      spdlog::info("handed leadership to {:x} before stopping", leader);
      return;
    }
    absl::SleepFor(std::min(options_.heartbeat, absl::Milliseconds(10)));
  }
  spdlog::warn("leadership transfer to {:x} did not finish; stopping anyway", target);
}

void KvServer::Stop() {
  {
    absl::ReaderMutexLock l(&mu_);
    if (stopping_) return;
  }
  if (driver_) HandOverLeadership();
  std::map<uint64_t, Waiter> waiters;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
    waiters.swap(waiters_);
    deadlines_.clear();
  }
  if (lease_thread_.joinable()) lease_thread_.join();
  if (deadline_thread_.joinable()) deadline_thread_.join();
  // Peers' streams are cancelled at once: they would otherwise keep Shutdown waiting.
  if (peer_server_) peer_server_->Shutdown(std::chrono::system_clock::now());
  if (driver_) driver_->Stop();
  if (transport_) transport_->Stop();
  for (auto& [id, w] : waiters) w.done(StoppedError());
  if (publish_thread_.joinable()) publish_thread_.join();
  {
    absl::MutexLock l(&reply_mu_);
    reply_stopping_ = true;
  }
  for (std::thread& t : reply_threads_) t.join();
  std::vector<absl::AnyInvocable<void(absl::Status)>> compaction_waiters;
  {
    absl::MutexLock l(&compaction_mu_);
    compaction_stopping_ = true;
  }
  if (compaction_thread_.joinable()) compaction_thread_.join();
  {
    absl::MutexLock l(&compaction_mu_);
    compaction_waiters.swap(compaction_waiters_);
  }
  for (auto& w : compaction_waiters) w(StoppedError());
}

void KvServer::AfterCompaction(absl::AnyInvocable<void(absl::Status)> done) {
  {
    absl::MutexLock l(&compaction_mu_);
    if (!compaction_stopping_) {
      compaction_waiters_.push_back(std::move(done));
      return;
    }
  }
  done(StoppedError());
}

void KvServer::OnCompactionScheduled() {
  absl::MutexLock l(&compaction_mu_);
  compaction_wanted_ = true;
}

void KvServer::CompactionLoop() {
  for (;;) {
    std::vector<absl::AnyInvocable<void(absl::Status)>> waiters;
    {
      absl::MutexLock l(&compaction_mu_);
      compaction_mu_.Await(absl::Condition(
          +[](KvServer* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->compaction_mu_) {
            return s->compaction_stopping_ || s->compaction_wanted_ ||
                   !s->compaction_waiters_.empty();
          },
          this));
      if (compaction_stopping_) return;
      compaction_wanted_ = false;
      waiters.swap(compaction_waiters_);
    }
    // Resumable: what a failure leaves is deleted by the next run (or after a restart).
    const absl::Status s = mvcc_->RunCompaction();
    if (!s.ok()) spdlog::error("deleting compacted history failed: {}", s.ToString());
    for (auto& w : waiters) w(s);
  }
}

bool KvServer::AddWaiter(uint64_t id, absl::Time deadline, WriteDone& done) {
  absl::MutexLock l(&mu_);
  if (stopping_) return false;
  waiters_.emplace(id, Waiter{std::move(done), deadline});
  deadlines_.emplace(deadline, id);
  metrics_.proposals_pending->Set(static_cast<double>(waiters_.size()));
  return true;
}

void KvServer::WriteAsync(kvstore::internal::InternalRaftRequest request, absl::Time deadline,
                          WriteDone done) {
  if (absl::Status s = CheckAlarms(request); !s.ok()) return done(s);
  const uint64_t id = next_request_.fetch_add(1);
  request.set_id(id);
  request.set_proposer(member_id_);
  if (!AddWaiter(id, deadline, done)) return done(StoppedError());
  driver_->Propose(request.SerializeAsString(), [this, id](absl::Status s) { Complete(id, s); });
}

absl::StatusOr<ApplyResult> KvServer::Write(kvstore::internal::InternalRaftRequest request,
                                            absl::Time deadline) {
  absl::Notification notified;
  absl::StatusOr<ApplyResult> out;
  WriteAsync(std::move(request), deadline, [&](absl::StatusOr<ApplyResult> r) {
    out = std::move(r);
    notified.Notify();
  });
  notified.WaitForNotification();
  return out;
}

void KvServer::ReadBarrierAsync(absl::Time deadline, ReadDone done) {
  const uint64_t id = next_request_.fetch_add(1);
  WriteDone unwrap = [done = std::move(done)](absl::StatusOr<ApplyResult> r) mutable {
    done(r.ok() ? r->status : r.status());
  };
  if (!AddWaiter(id, deadline, unwrap)) return unwrap(StoppedError());
  driver_->ReadBarrier([this, id](absl::Status s) {
    ApplyResult r;
    r.status = s;
    Complete(id, std::move(r));
  });
}

absl::Status KvServer::WaitLinearizable(absl::Time deadline) {
  absl::Notification notified;
  absl::Status out;
  ReadBarrierAsync(deadline, [&](absl::Status s) {
    out = s;
    notified.Notify();
  });
  notified.WaitForNotification();
  return out;
}

void KvServer::DeadlineLoop() {
  const absl::Duration period = std::min(options_.heartbeat, absl::Milliseconds(100));
  for (;;) {
    std::vector<WriteDone> expired;
    {
      absl::MutexLock l(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
      const absl::Time now = clock_->Now();
      while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        expired.push_back(*TakeWaiter(deadlines_.begin()->second));
      }
    }
    metrics_.proposals_failed->Add(expired.size());
    for (WriteDone& d : expired) d(TimeoutError());
  }
}

void KvServer::ReplyLoop() {
  for (;;) {
    Reply next;
    {
      absl::MutexLock l(&reply_mu_);
      reply_mu_.Await(absl::Condition(
          +[](KvServer* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->reply_mu_) {
            return s->reply_stopping_ || !s->reply_queue_.empty();
          },
          this));
      if (reply_queue_.empty()) return;
      next = std::move(reply_queue_.front());
      reply_queue_.pop_front();
    }
    next();
  }
}

absl::Status KvServer::CheckRequestSize(const google::protobuf::Message& m) const {
  if (static_cast<int64_t>(m.ByteSizeLong()) > options_.max_request_bytes) {
    return RequestTooLargeError();
  }
  return absl::OkStatus();
}

void KvServer::FillHeader(etcdserverpb::ResponseHeader* h) const {
  h->set_cluster_id(cluster_id_);
  h->set_member_id(member_id_);
  h->set_raft_term(driver_->term());
  if (h->revision() == 0) h->set_revision(mvcc_->CurrentRevision());
}

namespace {

// Whether a txn may put: etcd's capped applier refuses a txn whose cost is not zero, and
// only puts (in any branch, nested txns included) cost something.
bool TxnMayPut(const etcdserverpb::TxnRequest& t) {
  for (const auto* ops : {&t.success(), &t.failure()}) {
    for (const etcdserverpb::RequestOp& op : *ops) {
      if (op.has_request_put()) return true;
      if (op.has_request_txn() && TxnMayPut(op.request_txn())) return true;
    }
  }
  return false;
}

}  // namespace

absl::Status KvServer::CheckAlarms(const kvstore::internal::InternalRaftRequest& r) const {
  bool nospace = false;
  bool corrupt = false;
  {
    absl::MutexLock l(&alarm_mu_);
    for (const auto& [type, member] : alarms_) {
      nospace |= type == etcdserverpb::NOSPACE;
      corrupt |= type == etcdserverpb::CORRUPT;
    }
  }
  if (r.has_alarm()) return absl::OkStatus();  // how alarms are cleared
  if (corrupt) return CorruptError();
  if (nospace && (r.has_put() || r.has_lease_grant() || (r.has_txn() && TxnMayPut(r.txn())))) {
    return NoSpaceError();
  }
  return absl::OkStatus();
}

absl::StatusOr<etcdserverpb::AlarmResponse> KvServer::Alarm(const etcdserverpb::AlarmRequest& r,
                                                            absl::Time deadline) {
  switch (r.action()) {
    case etcdserverpb::AlarmRequest::GET: {
      etcdserverpb::AlarmResponse resp;
      for (etcdserverpb::AlarmMember& m : ActiveAlarms()) {
        if (r.alarm() == etcdserverpb::NONE || r.alarm() == m.alarm()) {
          *resp.add_alarms() = std::move(m);
        }
      }
      return resp;  // without a header, as etcd 3.4's
    }
    case etcdserverpb::AlarmRequest::ACTIVATE:
      if (r.alarm() != etcdserverpb::NOSPACE && r.alarm() != etcdserverpb::CORRUPT) {
        return BadAlarmRequestError();
      }
      break;
    case etcdserverpb::AlarmRequest::DEACTIVATE:
      break;
    default:
      return BadAlarmRequestError();
  }
  kvstore::internal::InternalRaftRequest request;
  *request.mutable_alarm() = r;
  absl::StatusOr<ApplyResult> applied = Write(std::move(request), deadline);
  if (!applied.ok()) return applied.status();
  if (!applied->status.ok()) return applied->status;
  auto* resp = std::get_if<etcdserverpb::AlarmResponse>(&applied->response);
  if (resp == nullptr) return absl::InternalError("unexpected apply result");
  return std::move(*resp);
}

void KvServer::OnAlarms(const std::vector<mvcc::AlarmRecord>& alarms) {
  absl::MutexLock l(&alarm_mu_);
  alarms_.clear();
  for (const mvcc::AlarmRecord& a : alarms) alarms_.emplace(a.type, a.member);
}

std::vector<etcdserverpb::AlarmMember> KvServer::ActiveAlarms() const {
  std::vector<etcdserverpb::AlarmMember> out;
  absl::MutexLock l(&alarm_mu_);
  for (const auto& [type, member] : alarms_) {
    out.emplace_back();
    out.back().set_memberid(member);
    out.back().set_alarm(static_cast<etcdserverpb::AlarmType>(type));
  }
  return out;
}

void KvServer::OnApplied(uint64_t proposer, uint64_t request_id, ApplyResult result) {
  if (proposer != member_id_) return;
  std::optional<Reply> reply = ReplyFor(request_id, std::move(result));
  if (reply) applied_replies_.push_back(std::move(*reply));
}

void KvServer::SendAppliedReplies() {
  std::vector<Reply> replies = std::exchange(applied_replies_, {});
  // One reply (one client waiting, as a lone writer's) costs less to send right here than
  // to hand to a reply thread; many would hold up the next Ready.
  if (replies.size() == 1) {
    replies.front()();
  } else if (!replies.empty()) {
    HandOff(std::move(replies));
  }
}

void KvServer::HandOff(std::vector<Reply> replies) {
  {
    absl::MutexLock l(&reply_mu_);
    if (!reply_stopping_) {
      for (Reply& r : replies) reply_queue_.push_back(std::move(r));
      return;
    }
  }
  for (Reply& r : replies) r();  // the reply threads are gone
}

void KvServer::OnEvents(const std::vector<mvcc::Event>& events, int64_t revision,
                        bool prev_values) {
  if (event_sink_) event_sink_(events, revision, prev_values);
}

bool KvServer::WantsPrevValues() const {
  return event_sink_ && (!prev_values_wanted_ || prev_values_wanted_());
}

void KvServer::OnMemberAttrSet(const kvstore::internal::MemberAttrSetRequest& r) {
  const std::vector<std::string> client_urls(r.client_urls().begin(), r.client_urls().end());
  absl::Status s = membership_->SetAttributes(r.member_id(), r.name(), client_urls);
  if (absl::IsNotFound(s)) {
    spdlog::warn("attributes published for member {:x}, which is not in the cluster; ignored",
                 r.member_id());
  } else if (!s.ok()) {
    // The entry would count as applied without its effect: members would diverge.
    spdlog::critical("cannot record member attributes, stopping: {}", s.ToString());
    std::abort();
  }
}

void KvServer::OnMemberChange(const kvstore::internal::MemberChange& c) {
  using kvstore::internal::MemberChange;
  const std::vector<std::string> urls(c.peer_urls().begin(), c.peer_urls().end());
  const uint64_t id = c.member_id();
  const std::vector<MemberInfo> before = membership_->Members();
  absl::Status s;
  switch (c.kind()) {
    case MemberChange::ADD:
      s = membership_->Add(MemberInfo{.id = id, .peer_urls = urls, .is_learner = c.is_learner()});
      break;
    case MemberChange::REMOVE:
      s = membership_->Remove(id);
      break;
    case MemberChange::UPDATE:
      s = membership_->UpdatePeerUrls(id, urls);
      break;
    case MemberChange::PROMOTE:
      s = membership_->Promote(id);
      break;
    default:
      spdlog::error("unknown membership change kind {}; ignored", static_cast<int>(c.kind()));
      return;
  }
  if (absl::IsNotFound(s)) {
    spdlog::warn("membership change for member {:x}, which is not in the cluster; ignored", id);
    return;
  }
  if (!s.ok()) {
    spdlog::critical("cannot record a membership change, stopping: {}", s.ToString());
    std::abort();
  }
  spdlog::info("applied membership change {} of member {:x} ({})",
               MemberChange::Kind_Name(c.kind()), id, absl::StrJoin(urls, ","));
  FollowMembers(before);
}

absl::Status KvServer::AdoptMembers(std::vector<MemberInfo> members) {
  const std::vector<MemberInfo> before = membership_->Members();
  if (absl::Status s = membership_->Replace(std::move(members)); !s.ok()) return s;
  FollowMembers(before);
  return absl::OkStatus();
}

void KvServer::FollowMembers(const std::vector<MemberInfo>& before) {
  const std::vector<MemberInfo> now = membership_->Members();
  if (FindMember(now, member_id_) == nullptr && FindMember(before, member_id_) != nullptr) {
    absl::MutexLock l(&removed_mu_);
    removed_at_ = absl::Now();
  }
  if (!transport_members_) transport_members_ = before;
  // On the leader, followers hear that the change committed in the next Ready (it need not
  // wait for commit_announce_delay), and the transport follows only after that Ready.
  if (driver_ != nullptr && driver_->AnnounceCommitNow()) hold_transport_update_ = true;
}

void KvServer::UpdateTransport() {
  if (std::exchange(hold_transport_update_, false) || !transport_members_) return;
  const std::vector<MemberInfo> before = *std::move(transport_members_);
  transport_members_.reset();
  if (transport_ == nullptr) return;
  const std::vector<MemberInfo> now = membership_->Members();
  for (const MemberInfo& old : before) {
    const MemberInfo* m = FindMember(now, old.id);
    if (m == nullptr || m->peer_urls != old.peer_urls) transport_->RemovePeer(old.id);
  }
  for (const MemberInfo& m : now) {
    const MemberInfo* old = FindMember(before, m.id);
    if (m.id == member_id_ || m.peer_urls.empty() || (old && old->peer_urls == m.peer_urls)) {
      continue;
    }
    absl::StatusOr<std::string> address = UrlHostPort(m.peer_urls.front());
    if (address.ok()) {
      transport_->AddPeer(m.id, *address);
    } else {
      spdlog::error("member {:x} has an unusable peer URL: {}", m.id, address.status().ToString());
    }
  }
}

absl::Status KvServer::ChangeMembers(kvstore::internal::MemberChange change, absl::Time deadline) {
  using kvstore::internal::MemberChange;
  // The core takes one configuration change at a time: let a joint one be left first.
  while (!driver_->Status().conf_state.voters_outgoing.empty()) {
    if (absl::Now() >= deadline) return TimeoutError();
    absl::SleepFor(absl::Milliseconds(10));
  }
  if (change.kind() == MemberChange::UPDATE) {
    kvstore::internal::InternalRaftRequest r;
    *r.mutable_member_change() = std::move(change);
    absl::StatusOr<ApplyResult> result = Write(std::move(r), deadline);
    return result.ok() ? result->status : result.status();
  }
  raft::ConfChange cc;
  raft::ConfChangeSingle single{.node_id = change.member_id()};
  switch (change.kind()) {
    case MemberChange::ADD:
      single.type =
          change.is_learner() ? raft::ConfChangeType::kAddLearner : raft::ConfChangeType::kAddVoter;
      break;
    case MemberChange::REMOVE:
      single.type = raft::ConfChangeType::kRemoveNode;
      break;
    default:  // PROMOTE
      single.type = raft::ConfChangeType::kAddVoter;
      break;
  }
  cc.changes.push_back(single);
  const uint64_t id = next_request_.fetch_add(1);
  change.set_request_id(id);
  change.set_proposer(member_id_);
  cc.context = change.SerializeAsString();
  absl::Notification notified;
  absl::Status out;
  WriteDone done = [&](absl::StatusOr<ApplyResult> r) {
    out = r.ok() ? r->status : r.status();
    notified.Notify();
  };
  if (!AddWaiter(id, deadline, done)) return StoppedError();
  driver_->ProposeConfChange(std::move(cc), [this, id](absl::Status s) { Complete(id, s); });
  notified.WaitForNotification();
  return out;
}

std::vector<uint64_t> KvServer::ReachablePeers(absl::Duration within) {
  if (transport_ == nullptr) return {};
  return transport_->ReachablePeers(within);
}

bool KvServer::Removed() const {
  absl::Time at;
  {
    absl::MutexLock l(&removed_mu_);
    at = removed_at_;
  }
  if (at == absl::InfinitePast()) return false;
  // A removed leader leads on until a remaining voter has its whole log (the core hands
  // over then); give the last messages a moment to leave.
  const absl::Duration since = absl::Now() - at;
  const absl::Duration grace = std::max(5 * options_.heartbeat, absl::Milliseconds(500));
  if (since < grace) return false;
  // It may never learn that it was replaced: the others drop it from their transports once
  // they applied its removal, and a new leader elected by them does not tell it. The
  // core retries the hand-over every election timeout; past three it has had every chance
  // (etcd's removed member stops after ten ticks whatever happened).
  return driver_->Status().role != raft::Role::kLeader || since >= 3 * options_.election;
}

std::optional<KvServer::WriteDone> KvServer::TakeWaiter(uint64_t id) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return std::nullopt;
  WriteDone done = std::move(it->second.done);
  deadlines_.erase({it->second.deadline, id});
  waiters_.erase(it);
  metrics_.proposals_pending->Set(static_cast<double>(waiters_.size()));
  return done;
}

std::optional<KvServer::Reply> KvServer::ReplyFor(uint64_t id, absl::StatusOr<ApplyResult> result) {
  WriteDone done;
  {
    absl::MutexLock l(&mu_);
    std::optional<WriteDone> waiting = TakeWaiter(id);
    if (!waiting) return std::nullopt;  // another member's request, or given up on
    done = std::move(*waiting);
  }
  if (!result.ok()) metrics_.proposals_failed->Add();
  return Reply([done = std::move(done), r = std::move(result)]() mutable { done(std::move(r)); });
}

void KvServer::Complete(uint64_t id, absl::StatusOr<ApplyResult> result) {
  std::optional<Reply> reply = ReplyFor(id, std::move(result));
  if (!reply) return;
  // Answering a client (serializing, writing to its stream) is not the calling thread's
  // work (the driver's, mostly): a reply thread does it.
  std::vector<Reply> one;
  one.push_back(std::move(*reply));
  HandOff(std::move(one));
}

absl::Status KvServer::Health() const {
  if (driver_->Status().leader == raft::kNone) return NoLeaderError();
  const std::vector<etcdserverpb::AlarmMember> alarms = ActiveAlarms();
  if (!alarms.empty()) {
    return absl::UnavailableError(
        absl::StrCat("alarm ", etcdserverpb::AlarmType_Name(alarms.front().alarm()), " is active"));
  }
  return absl::OkStatus();
}

void KvServer::LeaseLoop() {
  const absl::Duration period = std::min(options_.heartbeat * 5, absl::Milliseconds(500));
  for (;;) {
    {
      absl::MutexLock l(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
    }
    db_size_->Set(static_cast<double>(mvcc_->ApproximateSizeBytes()));
    const bool leader = driver_->Status().role == raft::Role::kLeader;
    if (leader && !lessor_.is_primary()) {
      lessor_.Promote();
    } else if (!leader && lessor_.is_primary()) {
      lessor_.Demote();
    }
    for (int64_t id : lessor_.TakeExpired(/*retry=*/options_.election * 2)) {
      kvstore::internal::InternalRaftRequest r;
      r.mutable_lease_revoke()->set_id(id);
      r.set_id(0);  // nobody waits for it
      driver_->Propose(r.SerializeAsString(), [id](absl::Status s) {
        spdlog::warn("revoking expired lease {:x} failed: {}", id, s.ToString());
      });
    }
  }
}

}  // namespace kvstore::server

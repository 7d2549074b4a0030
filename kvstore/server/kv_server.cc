#include "kvstore/server/kv_server.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "kvstore/server/errors.h"
#include "spdlog/spdlog.h"

namespace kvstore::server {
namespace {

uint64_t Sha1Prefix(const std::string& bytes) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = (id << 8) | digest[i];
  return id;
}

// etcd's minimum lease TTL: 1.5 election timeouts, in whole seconds, rounded up.
int64_t MinLeaseTtl(const KvServerOptions& o) {
  const double seconds = absl::ToDoubleSeconds(o.election) * 1.5;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(seconds)));
}

}  // namespace

uint64_t ComputeMemberId(std::vector<std::string> peer_urls, const std::string& cluster_token) {
  std::sort(peer_urls.begin(), peer_urls.end());
  return Sha1Prefix(absl::StrJoin(peer_urls, "") + cluster_token);
}

uint64_t ComputeClusterId(std::vector<uint64_t> member_ids) {
  std::sort(member_ids.begin(), member_ids.end());
  std::string bytes;
  for (uint64_t id : member_ids) {
    for (int shift = 56; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(id >> shift));
  }
  return Sha1Prefix(bytes);
}

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
  member_id_ = ComputeMemberId(options_.peer_urls, options_.cluster_token);
  cluster_id_ = ComputeClusterId({member_id_});

  absl::StatusOr<std::unique_ptr<storage::RaftLogStore>> log =
      storage::RaftLogStore::Open((member / "raft").string());
  if (!log.ok()) return log.status();
  raft_log_ = std::move(*log);
  if (raft_log_->LastIndex() == 0 && raft_log_->hard_state().IsEmpty()) {
    if (absl::Status s = raft_log_->Bootstrap({member_id_}); !s.ok()) return s;
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

  applier_ = std::make_unique<Applier>(mvcc_.get(), &lessor_, this);
  RaftDriver::Options d;
  d.id = member_id_;
  d.tick = options_.heartbeat;
  d.election_ticks = std::max<int>(2, static_cast<int>(options_.election / options_.heartbeat));
  d.seed = member_id_ ^ static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  absl::StatusOr<std::unique_ptr<RaftDriver>> driver =
      RaftDriver::Create(d, raft_log_.get(), applier_.get(), /*transport=*/nullptr, clock_);
  if (!driver.ok()) return driver.status();
  driver_ = std::move(*driver);
  return absl::OkStatus();
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
}

void KvServer::Stop() {
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
  if (driver_) driver_->Stop();
  for (auto& [id, w] : waiters) w.done(StoppedError());
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
  return true;
}

void KvServer::WriteAsync(kvstore::internal::InternalRaftRequest request, absl::Time deadline,
                          WriteDone done) {
  if (absl::Status s = CheckAlarms(request); !s.ok()) return done(s);
  // The member id's low bits keep ids of different proposers apart.
  const uint64_t id = (member_id_ << 40) ^ next_request_.fetch_add(1);
  request.set_id(id);
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
  const uint64_t id = (member_id_ << 40) ^ next_request_.fetch_add(1);
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
        auto it = waiters_.find(deadlines_.begin()->second);
        expired.push_back(std::move(it->second.done));
        waiters_.erase(it);
        deadlines_.erase(deadlines_.begin());
      }
    }
    for (WriteDone& d : expired) d(TimeoutError());
  }
}

void KvServer::ReplyLoop() {
  for (;;) {
    absl::AnyInvocable<void()> next;
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
  if (corrupt) return CorruptError();
  if (nospace && (r.has_put() || r.has_lease_grant() || (r.has_txn() && TxnMayPut(r.txn())))) {
    return NoSpaceError();
  }
  return absl::OkStatus();
}

absl::StatusOr<etcdserverpb::AlarmResponse> KvServer::Alarm(const etcdserverpb::AlarmRequest& r) {
  etcdserverpb::AlarmResponse resp;
  auto add = [&resp](int type, uint64_t member) {
    etcdserverpb::AlarmMember* m = resp.add_alarms();
    m->set_memberid(member);
    m->set_alarm(static_cast<etcdserverpb::AlarmType>(type));
  };
  absl::MutexLock l(&alarm_mu_);
  switch (r.action()) {
    case etcdserverpb::AlarmRequest::GET:
      for (const auto& [type, member] : alarms_) {
        if (r.alarm() == etcdserverpb::NONE || r.alarm() == type) add(type, member);
      }
      return resp;
    case etcdserverpb::AlarmRequest::ACTIVATE:
      if (r.alarm() != etcdserverpb::NOSPACE && r.alarm() != etcdserverpb::CORRUPT) {
        return BadAlarmRequestError();
      }
      alarms_.emplace(r.alarm(), r.memberid());
      add(r.alarm(), r.memberid());
      if (r.alarm() == etcdserverpb::NOSPACE) {
        spdlog::warn("alarm NOSPACE raised by member {:x}", r.memberid());
      } else {
        spdlog::error("alarm CORRUPT raised by member {:x}", r.memberid());
      }
      return resp;
    case etcdserverpb::AlarmRequest::DEACTIVATE:
      if (alarms_.erase({r.alarm(), r.memberid()}) > 0) add(r.alarm(), r.memberid());
      return resp;
    default:
      return BadAlarmRequestError();
  }
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

void KvServer::OnApplied(uint64_t request_id, ApplyResult result) {
  Complete(request_id, std::move(result));
}

void KvServer::OnEvents(const std::vector<mvcc::Event>& events, int64_t revision) {
  if (event_sink_) event_sink_(events, revision);
}

void KvServer::Complete(uint64_t id, absl::StatusOr<ApplyResult> result) {
  WriteDone done;
  {
    absl::MutexLock l(&mu_);
    auto it = waiters_.find(id);
    if (it == waiters_.end()) return;  // another member's request, or given up on
    done = std::move(it->second.done);
    deadlines_.erase({it->second.deadline, id});
    waiters_.erase(it);
  }
  // Answering a client (serializing, writing to its stream) is not the applying thread's
  // work: a reply thread does it.
  absl::AnyInvocable<void()> reply = [done = std::move(done), r = std::move(result)]() mutable {
    done(std::move(r));
  };
  {
    absl::MutexLock l(&reply_mu_);
    if (!reply_stopping_) {
      reply_queue_.push_back(std::move(reply));
      return;
    }
  }
  reply();  // the reply threads are gone
}

void KvServer::LeaseLoop() {
  const absl::Duration period = std::min(options_.heartbeat * 5, absl::Milliseconds(500));
  for (;;) {
    {
      absl::MutexLock l(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), period)) return;
    }
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

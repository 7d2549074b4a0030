// KvServer: one kvstore member. It owns the member's stores (the Raft log and the MVCC key
// space, each a RocksDB database under the data directory), its member list, the lessor,
// the applier, the Raft driver and the peer transport with the gRPC server peers send to,
// and offers the etcd API services what they need: writes that go through Raft and return
// once applied, linearizable read barriers, the store for reads, and response headers.
//
// Data directory layout: <data-dir>/member/raft (RaftLogStore), <data-dir>/member/mvcc
// (MvccStore), <data-dir>/member/cluster (Membership), <data-dir>/member/snap (snapshots
// being sent or received; emptied at start). A new directory is bootstrapped from
// --initial-cluster with every member a voter; a restart uses what the directory holds. A
// member that joins a running cluster (--initial-cluster-state existing, after MemberAdd)
// asks the members named in --initial-cluster for the member list over their peer port,
// and starts with an empty Raft log: the leader sends it a snapshot of its state. Membership
// changes are applied on every member into the member list and the transport
// (OnMemberChange); a member that applied its own removal reports Removed().
//
// Once started, the member publishes its name and client URLs through Raft (etcd's
// publish), unless the committed member list already has them; it is ready (WaitReady)
// when they are applied. As etcd, main serves clients only once the member is ready.
//
// Durability: the Raft log is the only write-ahead log. The MVCC store writes without one
// (MvccStoreOptions::use_wal = false): a crash takes it back to its last memtable flush, with
// the matching applied index, and the driver re-applies the log from there. Whatever compacts
// the Raft log must therefore stay at or below the index MvccStore::Flush() returned.
//
// Threads: every public method may be called from any thread once Start() returned.
#ifndef KVSTORE_SERVER_KV_SERVER_H_
#define KVSTORE_SERVER_KV_SERVER_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "etcd/etcdserverpb/raft_internal.pb.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "kvstore/server/applier.h"
#include "kvstore/server/lessor.h"
#include "kvstore/server/membership.h"
#include "kvstore/server/peer_transport.h"
#include "kvstore/server/raft_driver.h"
#include "kvstore/server/server_metrics.h"
#include "kvstore/storage/mvcc_store.h"
#include "kvstore/storage/raft_log_store.h"

namespace kvstore::server {

struct KvServerOptions {
  std::string name = "default";
  std::string data_dir;
  // etcd's --initial-advertise-peer-urls and --initial-cluster-token: they decide the member
  // and cluster ids, computed as etcd computes them.
  std::vector<std::string> peer_urls = {"http://localhost:2380"};
  std::string cluster_token = "etcd-cluster";
  // etcd's --advertise-client-urls: what MemberList shows as this member's client URLs.
  std::vector<std::string> client_urls = {"http://localhost:2379"};
  // etcd's --initial-cluster (empty: this member alone, `name` at `peer_urls`) and
  // --initial-cluster-state ("new", or "existing" to join a running cluster after MemberAdd:
  // the member list comes from the members named in --initial-cluster). Read only when the
  // data directory is new.
  std::string initial_cluster;
  std::string initial_cluster_state = "new";
  // etcd's --listen-peer-urls: where the RaftPeer service listens. Empty: nowhere, which
  // only a one-member cluster can afford.
  std::vector<std::string> listen_peer_urls;
  absl::Duration heartbeat = absl::Milliseconds(100);
  absl::Duration election = absl::Milliseconds(1000);
  // etcd's --max-request-bytes and --max-txn-ops.
  int64_t max_request_bytes = 1536 * 1024;
  int max_txn_ops = 128;
  // Threads that answer writes once applied and run linearizable reads once their barrier
  // is passed, so that the Raft driver's thread only applies.
  int reply_threads = 2;
  // TEST ONLY (--test-peer-faults): a file naming the peers this member cuts itself off
  // from, for partition tests (see peer_faults.h). Empty: none.
  std::string test_peer_faults_file;
  // etcd's --snapshot-count and --experimental-snapshot-catchup-entries: see
  // RaftDriver::Options. 0 snapshots never.
  uint64_t snapshot_count = 100000;
  uint64_t catchup_entries = 5000;
};

class KvServer : public ApplyListener {
 public:
  // OnEvents' arguments; and whether the sink needs the values the changes replaced.
  using EventSink =
      std::function<void(const std::vector<mvcc::Event>& events, int64_t rev, bool prev_values)>;
  using PrevValuesWanted = std::function<bool()>;

  // Opens (or creates) the member's data and, in a cluster of more than one, listens for
  // peers. Fails with FailedPrecondition naming the directory if it cannot be used, and
  // with InvalidArgument (etcd's message) if a new member's flags do not describe a cluster
  // it belongs to.
  static absl::StatusOr<std::unique_ptr<KvServer>> Open(const KvServerOptions& options,
                                                        const common::Clock* clock);
  ~KvServer() override;

  void Start();
  // Hands leadership to a reachable voter first if this member leads (as etcd does on
  // shutdown, so that the cluster need not wait out an election timeout), then fails every
  // request still waiting and stops the peer server, the Raft driver, the transport, the
  // lease timer and the publisher.
  void Stop();
  // If this member leads, asks a reachable voter to take over and waits (at most an
  // election timeout) until it did. Stop() does it first; main calls it before it stops
  // serving clients, so that requests in flight meet the new leader rather than no leader.
  void HandOverLeadership();
  // Whether this member's attributes are in the member list it applied (see above),
  // waiting until `deadline` for it.
  bool WaitReady(absl::Time deadline) { return ready_.WaitForNotificationWithDeadline(deadline); }

  using WriteDone = absl::AnyInvocable<void(absl::StatusOr<ApplyResult>)>;
  using ReadDone = absl::AnyInvocable<void(absl::Status)>;

  // Proposes `request` (its id is set here); `done` gets the applied result, or an error:
  // TimeoutError() once `deadline` passes (the write may still be applied later, as with
  // etcd), the alarm error while an alarm forbids the write (see Alarm()), no leader,
  // stopped. `done` runs exactly once, on a reply thread, the deadline thread or the
  // caller's, and must not block for long.
  void WriteAsync(kvstore::internal::InternalRaftRequest request, absl::Time deadline,
                  WriteDone done);
  // WriteAsync, waiting for the outcome.
  absl::StatusOr<ApplyResult> Write(kvstore::internal::InternalRaftRequest request,
                                    absl::Time deadline);
  // Calls `done(OK)` once this member has applied everything committed before the call, so
  // that a read of the store from `done` is linearizable; or an error (TimeoutError() at
  // `deadline`). `done` runs as WriteAsync's does; it may read the store.
  void ReadBarrierAsync(absl::Time deadline, ReadDone done);
  // ReadBarrierAsync, waiting for the outcome.
  absl::Status WaitLinearizable(absl::Time deadline);

  // Checks a client request's size against --max-request-bytes.
  absl::Status CheckRequestSize(const google::protobuf::Message& m) const;
  int max_txn_ops() const { return options_.max_txn_ops; }

  // Cluster, member and term; the revision unless already set.
  void FillHeader(etcdserverpb::ResponseHeader* h) const;

  mvcc::MvccStore& store() { return *mvcc_; }
  // The member's metrics, for /metrics.
  const common::Registry& registry() const { return registry_; }
  // etcd's /health: OK while a leader is known and no alarm is active.
  absl::Status Health() const;
  Lessor& lessor() { return lessor_; }
  RaftDriver& driver() { return *driver_; }
  uint64_t member_id() const { return member_id_; }
  uint64_t cluster_id() const { return cluster_id_; }
  const Membership& membership() const { return *membership_; }
  // Whether this member is a learner in the member list it applied: true from the applied
  // MemberAdd(learner) until the applied promotion.
  bool IsLearner() const { return membership_->IsLearner(member_id_); }
  const KvServerOptions& options() const { return options_; }

  // etcd's alarms (Maintenance.Alarm): GET lists the active ones (of one type, or all for
  // NONE) as this member applied them; ACTIVATE and DEACTIVATE go through Raft, so every
  // member holds the same alarms (persisted with the key space), and answer with the alarm
  // raised or cleared, if any. While NOSPACE is active Write() refuses puts, txns that may
  // put and lease grants (etcd's capped applier); while CORRUPT is active it refuses every
  // write but alarm changes.
  absl::StatusOr<etcdserverpb::AlarmResponse> Alarm(const etcdserverpb::AlarmRequest& r,
                                                    absl::Time deadline);
  std::vector<etcdserverpb::AlarmMember> ActiveAlarms() const;
  // Where committed changes go (the watch hub), and whether it needs the replaced values
  // (always, if not given). Set before Start().
  void set_event_sink(EventSink sink, PrevValuesWanted wanted = nullptr) {
    event_sink_ = std::move(sink);
    prev_values_wanted_ = std::move(wanted);
  }

  // Runs `done` on the compaction thread once every compaction scheduled before the call
  // has deleted its history (etcd's physical compaction), with how that went; at Stop(),
  // with StoppedError() if it had not run yet.
  void AfterCompaction(absl::AnyInvocable<void(absl::Status)> done);

  // ApplyListener, on the driver thread.
  void OnApplied(uint64_t proposer, uint64_t request_id, ApplyResult result) override;
  void OnEvents(const std::vector<mvcc::Event>& events, int64_t revision,
                bool prev_values) override;
  bool WantsPrevValues() const override;
  void OnCompactionScheduled() override;
  void OnAlarms(const std::vector<mvcc::AlarmRecord>& alarms) override;
  void OnMemberAttrSet(const kvstore::internal::MemberAttrSetRequest& r) override;
  void OnMemberChange(const kvstore::internal::MemberChange& change) override;
  // Makes `members` (a received snapshot's) the member list, and after the Ready the
  // transport's peers.
  absl::Status AdoptMembers(std::vector<MemberInfo> members);
  // After the member list changed from `before` (driver thread): a member that is no
  // longer listed notes its removal (Removed()), and the transport follows the list once
  // the Ready is worked off (UpdateTransport), so that the Ready's messages still reach a
  // member removed or moved by it (its only news of the change). A leader announces the
  // commit at once (RaftDriver::AnnounceCommitNow), and its transport waits for that Ready.
  void FollowMembers(const std::vector<MemberInfo>& before);
  // After each Ready (driver thread): the transport drops members gone or moved since
  // the first FollowMembers of the Ready and dials new addresses.
  void UpdateTransport();

  // Proposes a membership change (its request id is set here) and returns once this
  // member applied it: ADD, REMOVE and PROMOTE as a Raft configuration change, UPDATE as
  // a normal entry. Waits first while the core is in a joint configuration (it takes one
  // change at a time). TimeoutError() at `deadline`; the change may still apply later.
  absl::Status ChangeMembers(kvstore::internal::MemberChange change, absl::Time deadline);
  // The peers this member heard from within `within` (all of them, for a member alone).
  std::vector<uint64_t> ReachablePeers(absl::Duration within);
  // Whether this member applied its own removal and is done with its part in it (no longer
  // leads, or has led on for three election timeouts): then it must stop, as etcd's
  // removed member does.
  bool Removed() const;

 private:
  // A write or read barrier in flight, by request id.
  struct Waiter {
    WriteDone done;
    absl::Time deadline;
  };

  // Hands what peers send to the driver, which is created after the transport.
  class PeerInbox;
  // The driver's Snapshotter: flushes, checkpoints and replaces the MVCC store.
  class Snapshots;
  // Answers MemberList on the peer port, for members that join (etcd's /members).
  class PeerMemberList;

  KvServer(const KvServerOptions& options, const common::Clock* clock);
  absl::Status Init();
  // Registers `done` under a new request id; false (and `done` not taken) once stopping.
  bool AddWaiter(uint64_t id, absl::Time deadline, WriteDone& done);
  // Removes the waiter `id` (and its deadline) and returns its callback, if it waits.
  std::optional<WriteDone> TakeWaiter(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Reads the member list, or makes it (and bootstraps the Raft log) for a new member.
  absl::Status InitMembership(const std::string& member_dir);
  // A member joining a running cluster (--initial-cluster-state existing, new data dir):
  // the member list and cluster id as the members named in --initial-cluster know them.
  absl::StatusOr<InitialCluster> FetchClusterFromPeers() const;
  // Builds the transport with every other member as a peer (none for a one-member cluster
  // that listens for no peers) and returns the addresses to listen on for them.
  absl::StatusOr<std::vector<std::string>> InitTransport();
  // Proposes this member's attributes until they are applied (then ready_), or Stop().
  void PublishLoop();
  using Reply = absl::AnyInvocable<void()>;
  // Takes the waiter for `id`, if any, and returns its completion with `result`.
  std::optional<Reply> ReplyFor(uint64_t id, absl::StatusOr<ApplyResult> result);
  // Completes the waiter for `id`, if any, with `result`, on a reply thread.
  void Complete(uint64_t id, absl::StatusOr<ApplyResult> result);
  // After each Ready (driver thread): sends the replies to what it applied.
  void SendAppliedReplies();
  // Gives `replies` to the reply threads (runs them here once those are gone).
  void HandOff(std::vector<Reply> replies);
  // Fails waiters whose deadline passed, until Stop().
  void DeadlineLoop();
  // Runs completions, until Stop() and the queue is empty.
  void ReplyLoop();
  // Deletes compacted history when a compaction is scheduled, until Stop().
  void CompactionLoop();
  // The alarm error for `request`, if an active alarm refuses it.
  absl::Status CheckAlarms(const kvstore::internal::InternalRaftRequest& request) const;
  // Follows leadership (lessor promotion) and revokes expired leases.
  void LeaseLoop();

  const KvServerOptions options_;
  common::Registry registry_;
  ServerMetrics metrics_{&registry_};
  common::Gauge* const db_size_ = registry_.AddGauge(
      "etcd_mvcc_db_total_size_in_bytes", "Approximate bytes the key space takes on disk.");
  const common::Clock* const clock_;
  uint64_t member_id_ = 0;
  uint64_t cluster_id_ = 0;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<storage::RaftLogStore> raft_log_;
  std::unique_ptr<mvcc::MvccStore> mvcc_;
  Lessor lessor_;
  std::unique_ptr<Applier> applier_;
  // Null for a one-member cluster that listens for no peers. The transport outlives the
  // driver (which sends through it); the peer server stops before the driver does.
  std::unique_ptr<PeerInbox> inbox_;
  std::unique_ptr<Snapshots> snapshots_;
  std::string snap_dir_;
  std::unique_ptr<PeerTransport> transport_;
  std::unique_ptr<RaftDriver> driver_;
  // Driver thread: UpdateTransport waits one Ready (see FollowMembers).
  bool hold_transport_update_ = false;
  std::unique_ptr<PeerMemberList> peer_member_list_;
  std::unique_ptr<grpc::Server> peer_server_;
  // When this member applied its own removal (driver thread), or InfinitePast.
  mutable absl::Mutex removed_mu_;
  absl::Time removed_at_ ABSL_GUARDED_BY(removed_mu_) = absl::InfinitePast();
  EventSink event_sink_;
  PrevValuesWanted prev_values_wanted_;
  absl::Notification ready_;
  std::thread publish_thread_;

  // Request ids start at the start time in milliseconds, shifted: entries a previous run
  // proposed, applied again after a restart, never match a new request's id.
  std::atomic<uint64_t> next_request_{static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())) << 16};
  absl::Mutex mu_;
  std::map<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  // (deadline, id) of every waiter.
  std::set<std::pair<absl::Time, uint64_t>> deadlines_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread lease_thread_;
  std::thread deadline_thread_;

  // Completions of writes and read barriers, run off the driver's thread.
  absl::Mutex reply_mu_;
  std::deque<Reply> reply_queue_ ABSL_GUARDED_BY(reply_mu_);
  bool reply_stopping_ ABSL_GUARDED_BY(reply_mu_) = false;
  std::vector<std::thread> reply_threads_;

  // Driver thread only: replies to the requests this member proposed, applied in the Ready
  // being worked off; the member list as the transport knows it, while a Ready changes it.
  std::vector<Reply> applied_replies_;
  std::optional<std::vector<MemberInfo>> transport_members_;

  absl::Mutex compaction_mu_;
  bool compaction_wanted_ ABSL_GUARDED_BY(compaction_mu_) = false;
  bool compaction_stopping_ ABSL_GUARDED_BY(compaction_mu_) = false;
  std::vector<absl::AnyInvocable<void(absl::Status)>> compaction_waiters_
      ABSL_GUARDED_BY(compaction_mu_);
  std::thread compaction_thread_;

  mutable absl::Mutex alarm_mu_;
  // (alarm type, member id) of every active alarm.
  std::set<std::pair<int, uint64_t>> alarms_ ABSL_GUARDED_BY(alarm_mu_);
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_KV_SERVER_H_

// Applier: the state machine of a kvstore member. It turns each committed Raft entry (an
// encoded InternalRaftRequest) into one MVCC write transaction, with etcd's semantics for
// Put, DeleteRange, Txn, Compaction and lease grant/revoke, and reports the outcome.
//
// The entries of one Apply() call that only touch keys and leases (and no-ops) commit as one
// MVCC write group: one RocksDB write for all of them. Compactions, alarms and membership
// changes end the group and commit alone. Outcomes (OnEvents, OnApplied) are reported once
// the entry's group is committed, so that whoever hears of a write can read it. Grouping
// changes no result: each entry sees exactly the entries before it, grouped or not.
//
// Every member applies the same entries in the same order and so reaches the same store;
// a request that fails (say, a Put on an unknown lease) fails identically everywhere and
// changes nothing. The proposer learns the outcome through ApplyListener::OnApplied with
// the request id it chose; other members' listeners ignore ids they do not wait for.
//
// Threads: Apply() and AppliedIndex() run on the Raft driver thread only. The store and
// lessor are shared with readers, which they synchronize themselves.
#ifndef KVSTORE_SERVER_APPLIER_H_
#define KVSTORE_SERVER_APPLIER_H_

#include <cstdint>
#include <memory>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "etcd/etcdserverpb/raft_internal.pb.h"
#include "etcd/etcdserverpb/rpc.pb.h"
#include "kvstore/server/lessor.h"
#include "kvstore/server/raft_driver.h"
#include "kvstore/storage/mvcc_store.h"

namespace kvstore::server {

// What applying one request produced: an error (nothing changed), or the response whose
// header carries the store revision after the request (cluster, member and term are filled
// in by whoever answers the client).
struct ApplyResult {
  absl::Status status;
  std::variant<std::monostate, etcdserverpb::PutResponse, etcdserverpb::DeleteRangeResponse,
               etcdserverpb::TxnResponse, etcdserverpb::CompactionResponse,
               etcdserverpb::LeaseGrantResponse, etcdserverpb::LeaseRevokeResponse,
               etcdserverpb::RangeResponse, etcdserverpb::AlarmResponse>
      response;
};

class ApplyListener {
 public:
  virtual ~ApplyListener() = default;
  // A request was applied (request_id as chosen by its proposer).
  virtual void OnApplied(uint64_t proposer, uint64_t request_id, ApplyResult result) = 0;
  // A write transaction committed these changes at `revision`, in order. Their prev_kvs
  // carry values only if `prev_values` (WantsPrevValues() said so when they were applied).
  virtual void OnEvents(const std::vector<mvcc::Event>& events, int64_t revision,
                        bool prev_values) = 0;
  // Whether the changes reported through OnEvents need the values they replaced: reading
  // them costs a read of the store per put. Asked once per write group.
  virtual bool WantsPrevValues() const = 0;
  // A compaction was marked: the history below it is to be deleted (MvccStore::RunCompaction),
  // off the applying thread.
  virtual void OnCompactionScheduled() = 0;
  // The set of active alarms changed to `alarms` (sorted).
  virtual void OnAlarms(const std::vector<mvcc::AlarmRecord>& alarms) = 0;
  // A member published its name and client URLs. Called before the entry's index is
  // recorded as applied, so the record must be durable when this returns.
  virtual void OnMemberAttrSet(const kvstore::internal::MemberAttrSetRequest& r) = 0;
  // A membership change was applied (from a configuration change entry's context, or an
  // UPDATE in a normal entry). As OnMemberAttrSet, durable when this returns. The proposer
  // then also hears OnApplied(change.request_id(), an OK result).
  virtual void OnMemberChange(const kvstore::internal::MemberChange& change) = 0;
};

class Applier : public StateMachine {
 public:
  // None owned; all must outlive the applier.
  Applier(mvcc::MvccStore* store, Lessor* lessor, ApplyListener* listener);

  void Apply(absl::Span<const raft::Entry> entries) override;
  uint64_t AppliedIndex() const override { return store_->AppliedIndex(); }

 private:
  // An entry applied in the open group, to report once the group commits.
  struct Outcome {
    uint64_t proposer = 0;
    uint64_t request_id = 0;
    ApplyResult result;
    std::vector<mvcc::Event> events;
    int64_t revision = 0;
  };

  // The open write group, begun if none is.
  mvcc::WriteGroup& Group();
  // Commits the open group, if any, and reports its outcomes.
  void EndGroup();
  // A request on keys or leases, in the open group.
  void ApplyInGroup(const kvstore::internal::InternalRaftRequest& r, uint64_t index);
  // Any other request (compaction, alarm, membership), committed alone.
  void ApplyAlone(const kvstore::internal::InternalRaftRequest& r, uint64_t index);

  // Applies `r` inside `txn`; on error the caller discards the transaction.
  ApplyResult ApplyRequest(const kvstore::internal::InternalRaftRequest& r, mvcc::WriteTxn& txn);
  absl::StatusOr<etcdserverpb::PutResponse> Put(const etcdserverpb::PutRequest& r,
                                                mvcc::WriteTxn& txn);
  absl::StatusOr<etcdserverpb::DeleteRangeResponse> DeleteRange(
      const etcdserverpb::DeleteRangeRequest& r, mvcc::WriteTxn& txn);
  absl::StatusOr<etcdserverpb::TxnResponse> Txn(const etcdserverpb::TxnRequest& r,
                                                mvcc::WriteTxn& txn);
  // Every lease a Put in the txn (or its nested txns, on the branch that will run) names
  // must exist before anything is written.
  absl::Status CheckTxnLeases(const etcdserverpb::TxnRequest& r, mvcc::WriteTxn& txn);
  absl::StatusOr<etcdserverpb::LeaseRevokeResponse> RevokeLease(int64_t id, mvcc::WriteTxn& txn);
  ApplyResult Compact(const etcdserverpb::CompactionRequest& r, uint64_t index);
  // etcd's alarm store: ACTIVATE answers with the alarm, DEACTIVATE with the one cleared
  // (if it was active); the new set is persisted in `txn` and given to the listener.
  absl::StatusOr<etcdserverpb::AlarmResponse> ApplyAlarm(const etcdserverpb::AlarmRequest& r,
                                                         mvcc::WriteTxn& txn);
  // Commits a lone `txn` recording `index`.
  void Commit(mvcc::WriteTxn& txn, uint64_t index);
  void CommitIndexOnly(uint64_t index);
  // A configuration change entry: its context (a MemberChange) goes to the listener.
  void ApplyConfChange(const raft::Entry& e);

  mvcc::MvccStore* const store_;
  Lessor* const lessor_;
  ApplyListener* const listener_;
  // Within one Apply() call only.
  std::unique_ptr<mvcc::WriteGroup> group_;
  // Whether group_ (or the group EndGroup is reporting) reads the values its puts replace
  // (GroupOptions::prev_values).
  bool group_prev_values_ = true;
  std::vector<Outcome> outcomes_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_APPLIER_H_

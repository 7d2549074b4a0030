#include "kvstore/server/applier.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kvstore/server/errors.h"
#include "kvstore/server/range.h"
#include "kvstore/server/txn.h"
#include "spdlog/spdlog.h"

namespace kvstore::server {

using etcdserverpb::RequestOp;
using etcdserverpb::TxnRequest;

Applier::Applier(mvcc::MvccStore* store, Lessor* lessor, ApplyListener* listener)
    : store_(store), lessor_(lessor), listener_(listener) {}

namespace {

// Requests that change only keys and leases: these share a write group.
bool InKeySpace(const kvstore::internal::InternalRaftRequest& r) {
  return !r.has_member_change() && !r.has_member_attr_set() && !r.has_compaction() &&
         !r.has_alarm();
}

// The store could not write: carrying on would let members diverge.
[[noreturn]] void StopApplying(std::string_view what, const absl::Status& s) {
  spdlog::critical("applying {} failed, stopping: {}", what, s.ToString());
  std::abort();
}

// The store revision after the request goes into its response's header.
void SetHeaderRevision(ApplyResult& result, int64_t rev) {
  std::visit(
      [rev](auto& resp) {
        using T = std::decay_t<decltype(resp)>;
        // etcd 3.4 answers alarm changes without a header.
        if constexpr (!std::is_same_v<T, std::monostate> &&
                      !std::is_same_v<T, etcdserverpb::AlarmResponse>) {
          resp.mutable_header()->set_revision(rev);
        }
      },
      result.response);
}

}  // namespace

void Applier::Apply(absl::Span<const raft::Entry> entries) {
  for (const raft::Entry& e : entries) {
    if (e.type == raft::EntryType::kConfChange) {
      EndGroup();
      ApplyConfChange(e);
      continue;
    }
    // The leader's no-ops change no key; they still move the applied index.
    const bool has_request = e.type == raft::EntryType::kNormal && !e.data.empty();
    kvstore::internal::InternalRaftRequest r;
    if (has_request && !r.ParseFromString(e.data)) {
      // Every member fails the same way on the same bytes: skip the entry everywhere.
      spdlog::error("raft entry {} is not an InternalRaftRequest; skipped", e.index);
      Group().SetAppliedIndex(e.index);
    } else if (!has_request) {
      Group().SetAppliedIndex(e.index);
    } else if (InKeySpace(r)) {
      ApplyInGroup(r, e.index);
    } else {
      EndGroup();
      ApplyAlone(r, e.index);
    }
  }
  EndGroup();
}

mvcc::WriteGroup& Applier::Group() {
  if (group_ == nullptr) {
    group_prev_values_ = listener_->WantsPrevValues();
    group_ = store_->BeginGroup(mvcc::GroupOptions{.prev_values = group_prev_values_});
  }
  return *group_;
}

void Applier::EndGroup() {
  if (group_ == nullptr) return;
  if (absl::Status s = group_->End(); !s.ok()) StopApplying("a group of raft entries", s);
  group_.reset();
  for (Outcome& o : std::exchange(outcomes_, {})) {
    if (!o.events.empty()) listener_->OnEvents(o.events, o.revision, group_prev_values_);
    listener_->OnApplied(o.proposer, o.request_id, std::move(o.result));
  }
}

void Applier::ApplyInGroup(const kvstore::internal::InternalRaftRequest& r, uint64_t index) {
  mvcc::WriteTxn txn = Group().BeginWrite();
  Outcome o{.proposer = r.proposer(), .request_id = r.id(), .result = ApplyRequest(r, txn)};
  // A failed request's transaction is dropped, with whatever it had written; its entry
  // still counts as applied.
  group_->SetAppliedIndex(index);
  if (o.result.status.ok()) {
    o.events = txn.Changes();
    if (absl::Status s = txn.End(); !s.ok()) StopApplying(absl::StrCat("raft entry ", index), s);
    o.revision = txn.Revision();
    SetHeaderRevision(o.result, o.revision);
    // At once, not when the group commits: a later entry of the group (a revoke) must see
    // the keys attached before it.
    for (const mvcc::Event& ev : o.events) {
      if (ev.prev_kv && ev.prev_kv->lease != mvcc::kNoLease) {
        lessor_->Detach(ev.prev_kv->lease, ev.kv.key);
      }
      if (ev.type == mvcc::Event::Type::kPut && ev.kv.lease != mvcc::kNoLease) {
        lessor_->Attach(ev.kv.lease, ev.kv.key);
      }
    }
  }
  outcomes_.push_back(std::move(o));
}

void Applier::ApplyAlone(const kvstore::internal::InternalRaftRequest& r, uint64_t index) {
  ApplyResult result;
  if (r.has_member_change()) {
    listener_->OnMemberChange(r.member_change());
    CommitIndexOnly(index);
  } else if (r.has_member_attr_set()) {
    // Membership, not the key space: no revision, only the applied index moves.
    listener_->OnMemberAttrSet(r.member_attr_set());
    CommitIndexOnly(index);
  } else if (r.has_compaction()) {
    result = Compact(r.compaction(), index);
    if (!result.status.ok()) CommitIndexOnly(index);
  } else {
    {
      mvcc::WriteTxn txn = store_->BeginWrite();
      result = ApplyRequest(r, txn);
      if (result.status.ok()) Commit(txn, index);
    }  // a failed request's transaction is dropped here, with whatever it had written
    if (!result.status.ok()) CommitIndexOnly(index);
  }
  if (result.status.ok()) SetHeaderRevision(result, store_->CurrentRevision());
  listener_->OnApplied(r.proposer(), r.id(), std::move(result));
}

void Applier::CommitIndexOnly(uint64_t index) {
  mvcc::WriteTxn txn = store_->BeginWrite();
  Commit(txn, index);
}

void Applier::ApplyConfChange(const raft::Entry& e) {
  // The core has taken the change already; the member list follows it. Changes without a
  // context (the leader leaving a joint configuration) concern only the core.
  absl::StatusOr<raft::ConfChange> cc = raft::DecodeConfChange(e.data);
  kvstore::internal::MemberChange change;
  if (cc.ok() && !cc->context.empty() && change.ParseFromString(cc->context)) {
    listener_->OnMemberChange(change);
    CommitIndexOnly(e.index);
    listener_->OnApplied(change.proposer(), change.request_id(), ApplyResult{});
    return;
  }
  if (!cc.ok() || !cc->context.empty()) {
    spdlog::error("configuration change {} cannot be read; the member list ignores it", e.index);
  }
  CommitIndexOnly(e.index);
}

ApplyResult Applier::Compact(const etcdserverpb::CompactionRequest& r, uint64_t index) {
  ApplyResult out;
  // The mark commits with the applied index; the history goes later, on another thread.
  out.status = FromStoreError(store_->ScheduleCompaction(r.revision(), index));
  if (!out.status.ok()) return out;
  out.response = etcdserverpb::CompactionResponse();
  listener_->OnCompactionScheduled();
  return out;
}

void Applier::Commit(mvcc::WriteTxn& txn, uint64_t index) {
  txn.SetAppliedIndex(index);
  if (absl::Status s = txn.End(); !s.ok()) StopApplying(absl::StrCat("raft entry ", index), s);
}

ApplyResult Applier::ApplyRequest(const kvstore::internal::InternalRaftRequest& r,
                                  mvcc::WriteTxn& txn) {
  ApplyResult out;
  auto take = [&out](auto resp) {
    if (resp.ok()) {
      out.response = std::move(*resp);
    } else {
      out.status = resp.status();
    }
  };
  switch (r.request_case()) {
    case kvstore::internal::InternalRaftRequest::kPut:
      take(Put(r.put(), txn));
      break;
    case kvstore::internal::InternalRaftRequest::kDeleteRange:
      take(DeleteRange(r.delete_range(), txn));
      break;
    case kvstore::internal::InternalRaftRequest::kTxn:
      take(Txn(r.txn(), txn));
      break;
    case kvstore::internal::InternalRaftRequest::kRange:
      take(ExecuteRange(
          r.range(), [&txn](std::string_view k, std::string_view e, const mvcc::RangeOptions& o) {
            return txn.Range(k, e, o);
          }));
      break;
    case kvstore::internal::InternalRaftRequest::kLeaseGrant: {
      const etcdserverpb::LeaseGrantRequest& g = r.lease_grant();
      if (lessor_->Exists(g.id())) {
        out.status = LeaseExistsError();
        break;
      }
      const int64_t ttl = lessor_->EffectiveTtl(g.ttl());
      if (absl::Status s = txn.PutLease(g.id(), ttl); !s.ok()) {
        out.status = s;
        break;
      }
      lessor_->Grant(g.id(), ttl);
      etcdserverpb::LeaseGrantResponse resp;
      resp.set_id(g.id());
      resp.set_ttl(ttl);
      out.response = std::move(resp);
      break;
    }
    case kvstore::internal::InternalRaftRequest::kLeaseRevoke:
      take(RevokeLease(r.lease_revoke().id(), txn));
      break;
    case kvstore::internal::InternalRaftRequest::kAlarm:
      take(ApplyAlarm(r.alarm(), txn));
      break;
    default:
      out.status = absl::InvalidArgumentError("etcdserver: unknown request in raft entry");
  }
  return out;
}

absl::StatusOr<etcdserverpb::AlarmResponse> Applier::ApplyAlarm(const etcdserverpb::AlarmRequest& r,
                                                                mvcc::WriteTxn& txn) {
  absl::StatusOr<std::vector<mvcc::AlarmRecord>> current = store_->Alarms();
  if (!current.ok()) return current.status();
  std::vector<mvcc::AlarmRecord> alarms = *std::move(current);
  const mvcc::AlarmRecord alarm{r.memberid(), static_cast<int32_t>(r.alarm())};
  const auto it = std::find(alarms.begin(), alarms.end(), alarm);
  etcdserverpb::AlarmResponse resp;
  auto answer = [&resp, &r] {
    etcdserverpb::AlarmMember* m = resp.add_alarms();
    m->set_memberid(r.memberid());
    m->set_alarm(r.alarm());
  };
  switch (r.action()) {
    case etcdserverpb::AlarmRequest::ACTIVATE:
      if (it == alarms.end()) {
        alarms.push_back(alarm);
        std::sort(alarms.begin(), alarms.end());
        spdlog::warn("alarm {} raised by member {:x}", etcdserverpb::AlarmType_Name(r.alarm()),
                     r.memberid());
      }
      answer();
      break;
    case etcdserverpb::AlarmRequest::DEACTIVATE:
      if (it == alarms.end()) return resp;
      alarms.erase(it);
      answer();
      break;
    default:
      return BadAlarmRequestError();
  }
  if (absl::Status s = txn.SetAlarms(alarms); !s.ok()) return s;
  listener_->OnAlarms(alarms);
  return resp;
}

absl::StatusOr<etcdserverpb::PutResponse> Applier::Put(const etcdserverpb::PutRequest& r,
                                                       mvcc::WriteTxn& txn) {
  // As etcd, the request's lease is checked before the key it may need.
  if (r.lease() != mvcc::kNoLease && !lessor_->Exists(r.lease())) return LeaseNotFoundError();
  std::string_view value = r.value();
  int64_t lease = r.lease();
  std::optional<mvcc::KeyValue> prev;
  if (r.ignore_value() || r.ignore_lease() || r.prev_kv()) {
    absl::StatusOr<mvcc::RangeResult> cur = txn.Range(r.key(), "");
    if (!cur.ok()) return FromStoreError(cur.status());
    if (!cur->kvs.empty()) prev = cur->kvs.front();
  }
  if (r.ignore_value() || r.ignore_lease()) {
    if (!prev) return KeyNotFoundError();
    if (r.ignore_value()) value = prev->value;
    if (r.ignore_lease()) lease = prev->lease;
  }
  if (lease != mvcc::kNoLease && !lessor_->Exists(lease)) return LeaseNotFoundError();
  if (absl::StatusOr<std::optional<mvcc::KeyValue>> replaced = txn.Put(r.key(), value, lease);
      !replaced.ok()) {
    return FromStoreError(replaced.status());
  }
  etcdserverpb::PutResponse resp;
  resp.mutable_header()->set_revision(txn.Revision());
  // `prev`, read whole above: what the store returns lacks the value in groups that skip it.
  if (r.prev_kv() && prev) ToProto(*prev, resp.mutable_prev_kv());
  return resp;
}

absl::StatusOr<etcdserverpb::DeleteRangeResponse> Applier::DeleteRange(
    const etcdserverpb::DeleteRangeRequest& r, mvcc::WriteTxn& txn) {
  absl::StatusOr<std::vector<mvcc::KeyValue>> deleted = txn.DeleteRange(r.key(), r.range_end());
  if (!deleted.ok()) return FromStoreError(deleted.status());
  etcdserverpb::DeleteRangeResponse resp;
  resp.mutable_header()->set_revision(txn.Revision());
  resp.set_deleted(static_cast<int64_t>(deleted->size()));
  if (r.prev_kv()) {
    for (const mvcc::KeyValue& kv : *deleted) ToProto(kv, resp.add_prev_kvs());
  }
  return resp;
}

absl::StatusOr<etcdserverpb::TxnResponse> Applier::Txn(const TxnRequest& r, mvcc::WriteTxn& txn) {
  auto read = [&txn](std::string_view k, std::string_view e, const mvcc::RangeOptions& o) {
    return txn.Range(k, e, o);
  };
  absl::StatusOr<TxnPath> path = DecidePath(r, read);
  if (!path.ok()) return path.status();

  // Check every op on the chosen path before writing anything, so that a txn either
  // applies whole or fails with nothing written.
  std::function<absl::Status(const TxnRequest&, const TxnPath&)> check =
      [&](const TxnRequest& t, const TxnPath& p) -> absl::Status {
    size_t nested = 0;
    for (const RequestOp& op : p.succeeded ? t.success() : t.failure()) {
      switch (op.request_case()) {
        case RequestOp::kRequestPut: {
          const etcdserverpb::PutRequest& put = op.request_put();
          if (put.ignore_value() || put.ignore_lease()) {
            absl::StatusOr<mvcc::RangeResult> cur = txn.Range(put.key(), "");
            if (!cur.ok()) return FromStoreError(cur.status());
            if (cur->kvs.empty()) return KeyNotFoundError();
          }
          if (!put.ignore_lease() && put.lease() != mvcc::kNoLease &&
              !lessor_->Exists(put.lease())) {
            return LeaseNotFoundError();
          }
          break;
        }
        case RequestOp::kRequestTxn:
          if (absl::Status s = check(op.request_txn(), p.nested[nested++]); !s.ok()) return s;
          break;
        default:
          break;
      }
    }
    return absl::OkStatus();
  };
  if (absl::Status s = check(r, *path); !s.ok()) return s;
  // Then the revisions of its ranges, as etcd orders the checks.
  if (absl::Status s = CheckTxnRanges(r, *path, txn.Revision(), store_->CompactMainRevision());
      !s.ok()) {
    return s;
  }

  std::function<absl::StatusOr<etcdserverpb::TxnResponse>(const TxnRequest&, const TxnPath&)> run =
      [&](const TxnRequest& t, const TxnPath& p) -> absl::StatusOr<etcdserverpb::TxnResponse> {
    etcdserverpb::TxnResponse resp;
    resp.mutable_header();
    resp.set_succeeded(p.succeeded);
    size_t nested = 0;
    for (const RequestOp& op : p.succeeded ? t.success() : t.failure()) {
      etcdserverpb::ResponseOp* out = resp.add_responses();
      switch (op.request_case()) {
        case RequestOp::kRequestRange: {
          absl::StatusOr<etcdserverpb::RangeResponse> rr = ExecuteRange(op.request_range(), read);
          if (!rr.ok()) return rr.status();
          *out->mutable_response_range() = std::move(*rr);
          break;
        }
        case RequestOp::kRequestPut: {
          absl::StatusOr<etcdserverpb::PutResponse> pr = Put(op.request_put(), txn);
          if (!pr.ok()) return pr.status();
          *out->mutable_response_put() = std::move(*pr);
          break;
        }
        case RequestOp::kRequestDeleteRange: {
          absl::StatusOr<etcdserverpb::DeleteRangeResponse> dr =
              DeleteRange(op.request_delete_range(), txn);
          if (!dr.ok()) return dr.status();
          *out->mutable_response_delete_range() = std::move(*dr);
          break;
        }
        case RequestOp::kRequestTxn: {
          absl::StatusOr<etcdserverpb::TxnResponse> tr = run(op.request_txn(), p.nested[nested++]);
          if (!tr.ok()) return tr.status();
          *out->mutable_response_txn() = std::move(*tr);
          break;
        }
        default:
          break;
      }
    }
    return resp;
  };
  return run(r, *path);
}

absl::StatusOr<etcdserverpb::LeaseRevokeResponse> Applier::RevokeLease(int64_t id,
                                                                       mvcc::WriteTxn& txn) {
  if (!lessor_->Exists(id)) return LeaseNotFoundError();
  // Every attached key goes in this one revision, and watchers see a DELETE for each.
  for (const std::string& key : lessor_->Keys(id)) {
    absl::StatusOr<std::vector<mvcc::KeyValue>> d = txn.DeleteRange(key, "");
    if (!d.ok()) return FromStoreError(d.status());
  }
  if (absl::Status s = txn.DeleteLease(id); !s.ok()) return s;
  lessor_->Revoke(id);
  return etcdserverpb::LeaseRevokeResponse();
}

}  // namespace kvstore::server

#include "kvstore/server/range.h"

#include <algorithm>
#include <vector>

#include "kvstore/server/errors.h"

namespace kvstore::server {

void ToProto(const mvcc::KeyValue& kv, mvccpb::KeyValue* out) {
  out->set_key(kv.key);
  out->set_create_revision(kv.create_revision);
  out->set_mod_revision(kv.mod_revision);
  out->set_version(kv.version);
  out->set_value(kv.value);
  out->set_lease(kv.lease);
}

namespace {

using etcdserverpb::RangeRequest;

// Orders by the request's sort target; ties keep key order (etcd sorts small results with
// a stable insertion sort).
bool Less(RangeRequest::SortTarget t, const mvcc::KeyValue& a, const mvcc::KeyValue& b) {
  switch (t) {
    case RangeRequest::VERSION:
      return a.version < b.version;
    case RangeRequest::CREATE:
      return a.create_revision < b.create_revision;
    case RangeRequest::MOD:
      return a.mod_revision < b.mod_revision;
    case RangeRequest::VALUE:
      return a.value < b.value;
    default:
      return a.key < b.key;
  }
}

}  // namespace

absl::StatusOr<etcdserverpb::RangeResponse> ExecuteRange(const RangeRequest& r, RangeReader read) {
  const bool filtered = r.min_mod_revision() != 0 || r.max_mod_revision() != 0 ||
                        r.min_create_revision() != 0 || r.max_create_revision() != 0;
  mvcc::RangeOptions o;
  o.revision = std::max<int64_t>(r.revision(), 0);
  o.count_only = r.count_only();
  // Values are dropped after sorting: sorting by value needs them.
  o.keys_only = r.keys_only() && r.sort_target() != RangeRequest::VALUE;
  // Sorting and filtering need every kv; otherwise one more than the limit tells `more`.
  if (r.sort_order() == RangeRequest::NONE && !filtered && r.limit() > 0) o.limit = r.limit() + 1;
  absl::StatusOr<mvcc::RangeResult> rr = read(r.key(), r.range_end(), o);
  if (!rr.ok()) return FromStoreError(rr.status());

  std::vector<mvcc::KeyValue>& kvs = rr->kvs;
  std::erase_if(kvs, [&r](const mvcc::KeyValue& kv) {
    return (r.max_mod_revision() != 0 && kv.mod_revision > r.max_mod_revision()) ||
           (r.min_mod_revision() != 0 && kv.mod_revision < r.min_mod_revision()) ||
           (r.max_create_revision() != 0 && kv.create_revision > r.max_create_revision()) ||
           (r.min_create_revision() != 0 && kv.create_revision < r.min_create_revision());
  });
  RangeRequest::SortOrder order = r.sort_order();
  // The store returns keys in ascending order: another target sorts ascending by default.
  if (r.sort_target() != RangeRequest::KEY && order == RangeRequest::NONE) {
    order = RangeRequest::ASCEND;
  }
  const RangeRequest::SortTarget target = r.sort_target();
  if (order == RangeRequest::ASCEND) {
    std::stable_sort(kvs.begin(), kvs.end(),
                     [target](const auto& a, const auto& b) { return Less(target, a, b); });
  } else if (order == RangeRequest::DESCEND) {
    std::stable_sort(kvs.begin(), kvs.end(),
                     [target](const auto& a, const auto& b) { return Less(target, b, a); });
  }

  etcdserverpb::RangeResponse resp;
  if (r.limit() > 0 && static_cast<int64_t>(kvs.size()) > r.limit()) {
    kvs.resize(r.limit());
    resp.set_more(true);
  }
  resp.mutable_header()->set_revision(rr->revision);
  resp.set_count(rr->count);
  resp.mutable_kvs()->Reserve(static_cast<int>(kvs.size()));
  for (const mvcc::KeyValue& kv : kvs) {
    mvccpb::KeyValue* out = resp.add_kvs();
    ToProto(kv, out);
    if (r.keys_only()) out->clear_value();
  }
  return resp;
}

}  // namespace kvstore::server

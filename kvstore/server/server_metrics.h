// The member's metrics, under etcd's names where etcd has one, so that dashboards and
// alerts written for etcd read ours too.
//
// Ownership: the metrics live in the registry passed in; this struct only points at them.
#ifndef KVSTORE_SERVER_SERVER_METRICS_H_
#define KVSTORE_SERVER_SERVER_METRICS_H_

#include <cstdint>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"

namespace kvstore::server {

struct ServerMetrics {
  explicit ServerMetrics(common::Registry* r)
      : registry(r),
        has_leader(r->AddGauge("etcd_server_has_leader", "Whether a leader is known (1) or not.")),
        is_leader(r->AddGauge("etcd_server_is_leader", "Whether this member leads (1) or not.")),
        leader_changes(r->AddCounter("etcd_server_leader_changes_seen_total",
                                     "Leader changes seen by this member.")),
        proposals_committed(r->AddCounter("etcd_server_proposals_committed_total",
                                          "Raft entries committed and applied here.")),
        proposals_pending(r->AddGauge("etcd_server_proposals_pending",
                                      "Client proposals waiting to be applied.")),
        proposals_failed(r->AddCounter("etcd_server_proposals_failed_total",
                                       "Client proposals dropped or timed out.")),
        wal_fsync_seconds(r->AddHistogram("etcd_disk_wal_fsync_duration_seconds",
                                          "Time to persist one Ready (synced) to the Raft log.",
                                          common::ExponentialBuckets(0.001, 2, 14))),
        apply_seconds(r->AddHistogram("etcd_server_apply_duration_seconds",
                                      "Time to apply one Ready's committed entries.",
                                      common::ExponentialBuckets(0.0001, 2, 16))),
        snapshots_sent(r->AddCounter("etcd_network_snapshot_send_success_total",
                                     "Snapshots sent to followers.")) {}

  // etcd_network_peer_round_trip_time_seconds{To="<id>"}, made on first use. Driver
  // thread only.
  common::Histogram* PeerRoundTrip(uint64_t to) {
    common::Histogram*& h = peer_round_trip[to];
    if (h == nullptr) {
      h = registry->AddHistogram("etcd_network_peer_round_trip_time_seconds",
                                 "Round trip to a peer: a heartbeat to its answer.",
                                 common::ExponentialBuckets(0.0001, 2, 16),
                                 absl::StrCat("To=\"", absl::Hex(to), "\""));
    }
    return h;
  }

  common::Registry* const registry;

  common::Gauge* has_leader;
  common::Gauge* is_leader;
  common::Counter* leader_changes;
  common::Counter* proposals_committed;
  common::Gauge* proposals_pending;
  common::Counter* proposals_failed;
  common::Histogram* wal_fsync_seconds;
  common::Histogram* apply_seconds;
  common::Counter* snapshots_sent;
  std::map<uint64_t, common::Histogram*> peer_round_trip;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_SERVER_METRICS_H_

// kvbench's workloads against any etcd v3 endpoint list, closed loop: each of `clients`
// clients keeps exactly one operation in flight and starts the next as soon as the last one
// finishes, until the budget (a count or a duration) is spent.
//
//   put               Put of a random key of the key space.
//   get               linearizable Range of one random key (the key space is written first).
//   get-serializable  the same with serializable=true.
//   txn-cas           compare-and-swap: Range a random key for its mod_revision, then
//                     Txn(compare mod_revision == it, then put); one operation is both calls.
//                     A failed compare is a conflict, not an error.
//   watch-latency     one watcher on the key prefix; writers Put the send time into the value;
//                     the latency is event receipt - send time.
//
// Every failed call is counted by status code and message; nothing is dropped silently.
#ifndef TEST_BENCH_KV_LOAD_H_
#define TEST_BENCH_KV_LOAD_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "test/bench/latency_histogram.h"

namespace bench {

enum class Workload { kPut, kGet, kGetSerializable, kTxnCas, kWatchLatency };

absl::StatusOr<Workload> ParseWorkload(const std::string& name);
const char* WorkloadName(Workload w);

struct LoadOptions {
  std::vector<std::string> endpoints;
  Workload workload = Workload::kPut;
  int conns = 1;
  int clients = 1;
  int pollers = 2;
  // The run ends after `total` operations, or after `duration` when that is positive.
  int64_t total = 10000;
  absl::Duration duration = absl::ZeroDuration();
  int key_size = 8;
  int val_size = 256;
  int64_t key_space = 10000;
  // Every key starts with it; the watch-latency watcher watches it.
  std::string prefix = "b";
  // get, get-serializable, txn-cas: write every key of the key space once before measuring.
  bool fill = true;
  // Only that: no measured phase (so that a caller can measure the server around the
  // measured phase alone, in a second run with fill = false).
  bool fill_only = false;
  // Per call.
  absl::Duration timeout = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(5);
  // watch-latency: how long to wait for events still missing after the writers stop.
  absl::Duration watch_drain = absl::Seconds(5);
  uint64_t seed = 1;
};

// Checks ranges and combinations (key size large enough for the key space, and so on).
absl::Status ValidateLoadOptions(const LoadOptions& o);

struct LoadResult {
  // The measured phase.
  int64_t ops = 0;  // operations that succeeded (a CAS conflict succeeded)
  absl::Duration elapsed;
  LatencyHistogram latency;
  int64_t errors = 0;
  std::map<std::string, int64_t> error_kinds;

  // The fill phase, when there was one (its errors are among the above, "fill: ...").
  int64_t fill_ops = 0;
  absl::Duration fill_elapsed;

  // get, get-serializable: reads that found no key (an error when this run filled the key
  // space; otherwise counted here only).
  int64_t get_misses = 0;

  // txn-cas.
  int64_t cas_succeeded = 0;
  int64_t cas_conflicts = 0;
  LatencyHistogram cas_txn_latency;  // the Txn call alone

  // watch-latency: `latency` above is the writers' Put latency.
  int64_t watch_events = 0;
  LatencyHistogram watch_latency;  // Put sent -> event received
  // Put acknowledged -> event received; 0 when the event came first.
  LatencyHistogram ack_to_event;
  int64_t events_before_ack = 0;
  // Acknowledged puts whose event never came (counted among the errors too).
  int64_t events_missing = 0;
  // Events of puts the writers saw fail (a write may apply after its client gave up).
  int64_t events_unacked = 0;

  double Throughput() const {
    const double s = absl::ToDoubleSeconds(elapsed);
    return s > 0 ? ops / s : 0;
  }
};

// Runs one workload. Fails only if the run could not happen (cannot connect, the watch was
// refused); errors of individual calls are in the result.
absl::StatusOr<LoadResult> RunLoad(const LoadOptions& options);

}  // namespace bench

#endif  // TEST_BENCH_KV_LOAD_H_

// Process metrics in the Prometheus text format: counters, gauges and histograms, each a
// name plus fixed labels, registered once in a Registry and updated from any thread with
// atomic operations (no lock on the hot path).
//
//   common::Counter* proposals = registry.AddCounter("raft_proposals_committed_total", "...");
//   proposals->Add();
//   std::string page = registry.Render();   // what GET /metrics returns
//
// Ownership: the registry owns every metric; pointers stay valid for its lifetime.
// Thread-safety: Add*/Render may be called from any thread.
#ifndef COMMON_METRICS_H_
#define COMMON_METRICS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace common {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative buckets with fixed upper bounds (seconds for latencies).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  void ObserveDuration(absl::Duration d) { Observe(absl::ToDoubleSeconds(d)); }

 private:
  friend class Registry;
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // one per bound, then +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Exponential bounds from `start`, each `factor` times the last: etcd's latency buckets
// are ExponentialBuckets(0.001, 2, 14).
std::vector<double> ExponentialBuckets(double start, double factor, int count);

class Registry {
 public:
  // `labels` is the label set in Prometheus syntax without braces, e.g. `member="a"`.
  Counter* AddCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  Gauge* AddGauge(const std::string& name, const std::string& help, const std::string& labels = "");
  Histogram* AddHistogram(const std::string& name, const std::string& help,
                          std::vector<double> bounds, const std::string& labels = "");
  std::string Render() const;

 private:
  struct Entry {
    std::string name, help, labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  static void RenderEntry(const Entry& e, std::string* out);
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace common

#endif  // COMMON_METRICS_H_

// LatencyHistogram: a log-linear histogram of durations in nanoseconds, in the spirit of
// HdrHistogram. Values below 2^kSubBits are counted exactly; above, each power of two is split
// into 2^kSubBits equal buckets, so that a reported percentile is at most 1/128 (0.8%) above the
// true sample. Memory grows only with the largest value seen (about 3,200 buckets for one
// second). Count, sum, min and max are exact.
//
// Thread-safety: none. Each load-generating client owns its histograms and the results are
// merged (Merge) once every client has stopped.
#ifndef TEST_BENCH_LATENCY_HISTOGRAM_H_
#define TEST_BENCH_LATENCY_HISTOGRAM_H_

#include <cstdint>
#include <vector>

namespace bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;

  // Negative values are recorded as 0.
  void Record(int64_t nanos);
  void Merge(const LatencyHistogram& other);

  int64_t count() const { return count_; }
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / count_; }
  // The smallest recorded value v such that at least a fraction q (in [0, 1]) of the samples
  // are <= v, up to bucket resolution: the upper edge of v's bucket, but never above max().
  // 0 for an empty histogram.
  int64_t Percentile(double q) const;

  // Exposed for tests: the bucket of a value and the largest value a bucket holds.
  static int BucketOf(uint64_t nanos);
  static uint64_t BucketUpperEdge(int bucket);

 private:
  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  int64_t sum_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
};

}  // namespace bench

#endif  // TEST_BENCH_LATENCY_HISTOGRAM_H_

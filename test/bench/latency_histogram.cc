#include "test/bench/latency_histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace bench {
namespace {

constexpr uint64_t kSubBuckets = uint64_t{1} << LatencyHistogram::kSubBits;

}  // namespace

int LatencyHistogram::BucketOf(uint64_t nanos) {
  if (nanos < kSubBuckets) return static_cast<int>(nanos);
  const int exponent = 63 - std::countl_zero(nanos);  // >= kSubBits
  const int shift = exponent - kSubBits;
  const uint64_t sub = (nanos >> shift) - kSubBuckets;  // the kSubBits bits below the top one
  return static_cast<int>(static_cast<uint64_t>(shift + 1) * kSubBuckets + sub);
}

uint64_t LatencyHistogram::BucketUpperEdge(int bucket) {
  const uint64_t b = static_cast<uint64_t>(bucket);
  if (b < kSubBuckets) return b;
  const int shift = static_cast<int>(b / kSubBuckets) - 1;
  const uint64_t lower = (kSubBuckets + b % kSubBuckets) << shift;
  return lower + (uint64_t{1} << shift) - 1;
}

void LatencyHistogram::Record(int64_t nanos) {
  if (nanos < 0) nanos = 0;
  const int b = BucketOf(static_cast<uint64_t>(nanos));
  if (static_cast<size_t>(b) >= counts_.size()) counts_.resize(b + 1, 0);
  ++counts_[b];
  min_ = count_ == 0 ? nanos : std::min(min_, nanos);
  max_ = std::max(max_, nanos);
  sum_ += nanos;
  ++count_;
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  if (other.counts_.size() > counts_.size()) counts_.resize(other.counts_.size(), 0);
  for (size_t i = 0; i < other.counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
  count_ += other.count_;
}

int64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const int64_t rank = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(q * count_)));
  int64_t seen = 0;
  for (size_t b = 0; b < counts_.size(); ++b) {
    seen += counts_[b];
    if (seen >= rank) {
      return std::min<int64_t>(static_cast<int64_t>(BucketUpperEdge(static_cast<int>(b))), max_);
    }
  }
  return max_;
}

}  // namespace bench

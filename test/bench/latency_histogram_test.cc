#include "test/bench/latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace bench {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.Percentile(0.5), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.mean(), 0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(0.5), 50);
  EXPECT_EQ(h.Percentile(0.99), 99);
  EXPECT_EQ(h.Percentile(1.0), 100);
  EXPECT_EQ(h.min(), 1);
  EXPECT_EQ(h.max(), 100);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogramTest, BucketsTileTheRange) {
  // Every value falls in the bucket whose range holds it, and buckets are contiguous.
  uint64_t expected_lower = 0;
  for (int b = 0; b < 40 * 128; ++b) {
    const uint64_t upper = LatencyHistogram::BucketUpperEdge(b);
    ASSERT_GE(upper, expected_lower) << "bucket " << b;
    EXPECT_EQ(LatencyHistogram::BucketOf(expected_lower), b);
    EXPECT_EQ(LatencyHistogram::BucketOf(upper), b);
    EXPECT_EQ(LatencyHistogram::BucketOf(upper + 1), b + 1);
    // The relative width of a bucket stays below 1/128.
    if (expected_lower > 0) {
      EXPECT_LT(static_cast<double>(upper - expected_lower) / expected_lower, 1.0 / 128);
    }
    expected_lower = upper + 1;
  }
}

TEST(LatencyHistogramTest, PercentilesMatchSortedSamplesWithinResolution) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(13.0, 1.5);  // around 0.5 ms, long tail
  std::vector<int64_t> samples;
  LatencyHistogram a, b;
  for (int i = 0; i < 100000; ++i) {
    const int64_t v = static_cast<int64_t>(dist(rng));
    samples.push_back(v);
    (i % 2 == 0 ? a : b).Record(v);
  }
  a.Merge(b);
  std::sort(samples.begin(), samples.end());
  ASSERT_EQ(a.count(), static_cast<int64_t>(samples.size()));
  EXPECT_EQ(a.min(), samples.front());
  EXPECT_EQ(a.max(), samples.back());
  for (double q : {0.5, 0.9, 0.99, 0.999, 1.0}) {
    const size_t rank = static_cast<size_t>(std::ceil(q * samples.size()));
    const int64_t exact = samples[rank - 1];
    const int64_t got = a.Percentile(q);
    EXPECT_GE(got, exact) << q;
    EXPECT_LE(got, exact + exact / 128 + 1) << q;
  }
}

TEST(LatencyHistogramTest, NegativeIsZero) {
  LatencyHistogram h;
  h.Record(-5);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.Percentile(0.5), 0);
}

}  // namespace
}  // namespace bench

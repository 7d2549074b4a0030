#include "common/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace common {
namespace {

TEST(MetricsTest, RendersCountersGaugesAndCumulativeHistogramBuckets) {
  Registry r;
  Counter* c = r.AddCounter("requests_total", "Requests served.", "member=\"a\"");
  Gauge* g = r.AddGauge("is_leader", "Whether this member leads.");
  Histogram* h = r.AddHistogram("latency_seconds", "Latency.", {0.1, 1});
  c->Add(3);
  g->Set(1);
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(7);
  EXPECT_EQ(r.Render(),
            "# HELP requests_total Requests served.\n# TYPE requests_total counter\n"
            "requests_total{member=\"a\"} 3\n"
            "# HELP is_leader Whether this member leads.\n# TYPE is_leader gauge\n"
            "is_leader 1\n"
            "# HELP latency_seconds Latency.\n# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{le=\"0.1\"} 1\n"
            "latency_seconds_bucket{le=\"1\"} 2\n"
            "latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "latency_seconds_sum 7.55\n"
            "latency_seconds_count 3\n");
}

TEST(MetricsTest, LabelSetsAddedLaterRenderWithTheirFamily) {
  Registry r;
  r.AddCounter("sent_total", "Sent.", "To=\"a\"")->Add(1);
  r.AddGauge("up", "Up.")->Set(1);
  r.AddCounter("sent_total", "Sent.", "To=\"b\"")->Add(2);
  EXPECT_EQ(r.Render(),
            "# HELP sent_total Sent.\n# TYPE sent_total counter\n"
            "sent_total{To=\"a\"} 1\nsent_total{To=\"b\"} 2\n"
            "# HELP up Up.\n# TYPE up gauge\nup 1\n");
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  Registry r;
  Counter* c = r.AddCounter("n", "");
  Histogram* h = r.AddHistogram("h", "", ExponentialBuckets(0.001, 2, 14));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Add();
        h->Observe(0.002);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(c->value(), 40000u);
  EXPECT_NE(r.Render().find("h_count 40000\n"), std::string::npos);
}

}  // namespace
}  // namespace common

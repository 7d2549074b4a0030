#include "common/metrics.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"

namespace common {
namespace {

void AtomicAdd(std::atomic<double>& a, double v) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

std::string Labels(const std::string& labels, const std::string& extra = "") {
  if (labels.empty() && extra.empty()) return "";
  if (labels.empty()) return "{" + extra + "}";
  if (extra.empty()) return "{" + labels + "}";
  return "{" + labels + "," + extra + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> b;
  for (int i = 0; i < count; ++i, start *= factor) b.push_back(start);
  return b;
}

Counter* Registry::AddCounter(const std::string& name, const std::string& help,
                              const std::string& labels) {
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->help = help;
  e->labels = labels;
  e->counter = std::make_unique<Counter>();
  Counter* c = e->counter.get();
  absl::MutexLock l(&mu_);
  entries_.push_back(std::move(e));
  return c;
}

Gauge* Registry::AddGauge(const std::string& name, const std::string& help,
                          const std::string& labels) {
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->help = help;
  e->labels = labels;
  e->gauge = std::make_unique<Gauge>();
  Gauge* g = e->gauge.get();
  absl::MutexLock l(&mu_);
  entries_.push_back(std::move(e));
  return g;
}

Histogram* Registry::AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds, const std::string& labels) {
  auto e = std::make_unique<Entry>();
  e->name = name;
  e->help = help;
  e->labels = labels;
  e->histogram = std::make_unique<Histogram>(std::move(bounds));
  Histogram* h = e->histogram.get();
  absl::MutexLock l(&mu_);
  entries_.push_back(std::move(e));
  return h;
}

std::string Registry::Render() const {
  absl::MutexLock l(&mu_);
  // A family's lines must be together, also when one of its label sets came late.
  std::vector<std::string> names;
  std::map<std::string, std::vector<const Entry*>> families;
  for (const auto& e : entries_) {
    std::vector<const Entry*>& family = families[e->name];
    if (family.empty()) names.push_back(e->name);
    family.push_back(e.get());
  }
  std::string out;
  for (const std::string& name : names) {
    for (const Entry* e : families[name]) {
      if (e == families[name].front()) {
        const char* type = e->counter ? "counter" : e->gauge ? "gauge" : "histogram";
        absl::StrAppend(&out, "# HELP ", name, " ", e->help, "\n# TYPE ", name, " ", type, "\n");
      }
      RenderEntry(*e, &out);
    }
  }
  return out;
}

void Registry::RenderEntry(const Entry& e, std::string* out) {
  if (e.counter) {
    absl::StrAppend(out, e.name, Labels(e.labels), " ", e.counter->value(), "\n");
  } else if (e.gauge) {
    absl::StrAppend(out, e.name, Labels(e.labels), " ", e.gauge->value(), "\n");
  } else {
    const Histogram& h = *e.histogram;
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= h.bounds_.size(); ++i) {
      cumulative += h.counts_[i].load(std::memory_order_relaxed);
      const std::string le =
          i < h.bounds_.size() ? absl::StrCat("le=\"", h.bounds_[i], "\"") : "le=\"+Inf\"";
      absl::StrAppend(out, e.name, "_bucket", Labels(e.labels, le), " ", cumulative, "\n");
    }
    absl::StrAppend(out, e.name, "_sum", Labels(e.labels), " ",
                    h.sum_.load(std::memory_order_relaxed), "\n", e.name, "_count",
                    Labels(e.labels), " ", h.count_.load(std::memory_order_relaxed), "\n");
  }
}

}  // namespace common

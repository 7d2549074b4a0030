// Randomized tests of the checker. Linearizable histories come from a simulated atomic store:
// each operation takes effect at a random instant of its interval, so the history is
// linearizable by construction; corrupting one read then makes it not. Small random
// histories, linearizable or not, are compared with a brute-force search over all orders.
// Every seed is printed by the failure messages; the seeds are fixed, so runs repeat.
#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "test/linearizability/checker.h"
#include "test/linearizability/history_file.h"

namespace lincheck {
namespace {

using ::testing::Contains;

struct Workload {
  int clients = 10;
  int ops_per_client = 2000;
  int keys = 5;
  int64_t max_gap = 50;        // between an answer and the client's next call
  int64_t max_duration = 400;  // of one operation
  // Of the writes, how many lose their answer; half of those take effect anyway.
  double unknown_fraction = 0;
};

// Each client issues one operation at a time. Values written are unique ("v<n>").
History SimulateAtomicStore(const Workload& w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  auto chance = [&rng](double p) { return std::bernoulli_distribution(p)(rng); };

  struct Effect {
    int64_t instant;
    size_t index;
    bool takes_effect;
  };
  History history;
  std::vector<Effect> effects;
  for (int c = 0; c < w.clients; ++c) {
    int64_t t = uniform(0, w.max_gap);
    for (int i = 0; i < w.ops_per_client; ++i) {
      Operation op;
      op.client = c;
      op.key = absl::StrCat("k", uniform(0, w.keys - 1));
      const int64_t r = uniform(0, 99);
      op.kind = r < 40   ? OpKind::kGet
                : r < 75 ? OpKind::kPut
                : r < 95 ? OpKind::kCas
                         : OpKind::kDelete;
      op.call = t + uniform(0, w.max_gap);
      op.ret = op.call + uniform(1, w.max_duration);
      bool takes_effect = true;
      if (op.kind != OpKind::kGet && chance(w.unknown_fraction)) {
        op.outcome = Outcome::kUnknown;
        takes_effect = chance(0.5);
      }
      effects.push_back({uniform(op.call, op.ret), history.size(), takes_effect});
      history.push_back(op);
      t = op.ret;
    }
  }
  std::sort(effects.begin(), effects.end(), [](const Effect& a, const Effect& b) {
    return std::tie(a.instant, a.index) < std::tie(b.instant, b.index);
  });

  std::map<std::string, std::optional<std::string>> store;
  int64_t next_value = 0;
  for (const Effect& e : effects) {
    Operation& op = history[e.index];
    std::optional<std::string>& current = store[op.key];
    switch (op.kind) {
      case OpKind::kGet:
        op.read = current;
        break;
      case OpKind::kPut:
        op.value = absl::StrCat("v", next_value++);
        if (e.takes_effect) current = op.value;
        break;
      case OpKind::kDelete:
        if (e.takes_effect) current.reset();
        break;
      case OpKind::kCas:
        op.value = absl::StrCat("v", next_value++);
        if (chance(0.6)) {
          op.expect = current;
        } else if (chance(0.3)) {
          op.expect.reset();
        } else {
          op.expect = absl::StrCat("v", uniform(0, next_value));
        }
        op.succeeded = op.expect == current;
        if (op.succeeded && e.takes_effect) current = op.value;
        break;
    }
    if (op.outcome == Outcome::kUnknown) op = MarkUnknown(op);
  }
  return history;
}

// Makes one read near the middle of the history return a value that was overwritten before
// the read was called (a put, then a write that started after it returned and returned
// before the read). Values are unique, so no order can explain it. Returns the read's index.
size_t CorruptOneRead(History* history) {
  std::vector<size_t> by_call(history->size());
  for (size_t i = 0; i < by_call.size(); ++i) by_call[i] = i;
  std::sort(by_call.begin(), by_call.end(),
            [&](size_t a, size_t b) { return (*history)[a].call < (*history)[b].call; });
  auto is_known_write = [](const Operation& op) {
    return op.outcome == Outcome::kOk && (op.kind == OpKind::kPut || op.kind == OpKind::kDelete ||
                                          (op.kind == OpKind::kCas && op.succeeded));
  };
  for (size_t r = by_call.size() / 2; r < by_call.size(); ++r) {
    Operation& read = (*history)[by_call[r]];
    if (read.kind != OpKind::kGet) continue;
    for (const Operation& w : *history) {
      if (w.key != read.key || !is_known_write(w) || w.ret >= read.call) continue;
      for (const Operation& p : *history) {
        if (p.key == read.key && p.kind == OpKind::kPut && p.outcome == Outcome::kOk &&
            p.ret < w.call && read.read != p.value) {
          read.read = p.value;
          return by_call[r];
        }
      }
    }
  }
  ADD_FAILURE() << "no read to corrupt";
  return 0;
}

CheckResult MustCheck(const History& history, const CheckOptions& options = {}) {
  absl::StatusOr<CheckResult> result = CheckHistory(history, options);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CheckResult{};
}

TEST(CheckerRandomTest, TenClientsTwoThousandOpsFiveKeys) {
  const uint64_t seed = 20261126;
  History history = SimulateAtomicStore({}, seed);
  ASSERT_EQ(history.size(), 20000u);

  absl::Time start = absl::Now();
  CheckResult accepted = MustCheck(history, {.timeout = absl::Seconds(60)});
  const absl::Duration accept_time = absl::Now() - start;
  EXPECT_EQ(accepted.verdict, Verdict::kLinearizable) << "seed " << seed << "\n"
                                                      << accepted.explanation;

  const size_t corrupted = CorruptOneRead(&history);
  start = absl::Now();
  CheckResult rejected = MustCheck(history, {.timeout = absl::Seconds(60)});
  const absl::Duration reject_time = absl::Now() - start;
  EXPECT_EQ(rejected.verdict, Verdict::kNotLinearizable) << "seed " << seed;
  EXPECT_EQ(rejected.key, history[corrupted].key);
  EXPECT_THAT(rejected.stuck, Contains(corrupted)) << rejected.explanation;

  std::cout << "20,000 operations: accepted in " << accept_time << " (" << accepted.steps
            << " steps); with one read corrupted, rejected in " << reject_time << " ("
            << rejected.steps << " steps)\n";
  RecordProperty("accept_ms", absl::StrCat(absl::ToInt64Milliseconds(accept_time)));
  RecordProperty("reject_ms", absl::StrCat(absl::ToInt64Milliseconds(reject_time)));
  // "A few seconds" with room for a slow, shared machine; sanitizer builds are slower still.
  EXPECT_LT(accept_time, absl::Seconds(20));
  EXPECT_LT(reject_time, absl::Seconds(20));
}

TEST(CheckerRandomTest, UnknownOutcomesAcrossSeeds) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    History history = SimulateAtomicStore(
        {.clients = 6, .ops_per_client = 300, .keys = 3, .unknown_fraction = 0.05}, seed);
    CheckResult accepted = MustCheck(history, {.timeout = absl::Seconds(30)});
    ASSERT_EQ(accepted.verdict, Verdict::kLinearizable) << accepted.explanation;

    CorruptOneRead(&history);
    CheckResult rejected = MustCheck(history, {.timeout = absl::Seconds(30)});
    ASSERT_EQ(rejected.verdict, Verdict::kNotLinearizable);
  }
}

TEST(CheckerRandomTest, HistoryFileRoundTripKeepsTheVerdict) {
  History history = SimulateAtomicStore(
      {.clients = 4, .ops_per_client = 100, .keys = 2, .unknown_fraction = 0.05}, 7);
  std::string text;
  for (const Operation& op : history) absl::StrAppend(&text, FormatOperation(op), "\n");
  absl::StatusOr<History> parsed = ParseHistory(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(MustCheck(*parsed).verdict, Verdict::kLinearizable);
}

// --- Brute force -------------------------------------------------------------------------

// Tries every order of the operations that respects real time, leaving out any unknown ones.
// Exponential; for a handful of operations on one key.
class BruteForce {
 public:
  explicit BruteForce(const History& history) : ops_(history) {}

  bool Linearizable() { return Search((1u << ops_.size()) - 1, std::nullopt); }

 private:
  bool Search(uint32_t remaining, const std::optional<std::string>& value) {
    bool only_unknown = true;
    for (size_t i = 0; i < ops_.size(); ++i) {
      if ((remaining >> i & 1) && ops_[i].outcome == Outcome::kOk) only_unknown = false;
    }
    if (only_unknown) return true;
    for (size_t i = 0; i < ops_.size(); ++i) {
      if (!(remaining >> i & 1) || !MayGoNext(remaining, i)) continue;
      const Operation& op = ops_[i];
      const uint32_t rest = remaining & ~(1u << i);
      if (op.outcome == Outcome::kUnknown && Search(rest, value)) return true;  // never
      std::optional<std::string> next = value;
      if (Step(op, &next) && Search(rest, next)) return true;
    }
    return false;
  }

  // No other remaining operation returned before op i was called.
  bool MayGoNext(uint32_t remaining, size_t i) const {
    for (size_t j = 0; j < ops_.size(); ++j) {
      if (j != i && (remaining >> j & 1) && ops_[j].outcome == Outcome::kOk &&
          ops_[j].ret < ops_[i].call) {
        return false;
      }
    }
    return true;
  }

  static bool Step(const Operation& op, std::optional<std::string>* value) {
    switch (op.kind) {
      case OpKind::kPut:
        *value = op.value;
        return true;
      case OpKind::kDelete:
        value->reset();
        return true;
      case OpKind::kGet:
        return op.read == *value;
      case OpKind::kCas:
        if (op.outcome == Outcome::kUnknown || op.succeeded) {
          if (*value == op.expect) {
            *value = op.value;
            return true;
          }
          return op.outcome == Outcome::kUnknown;
        }
        return *value != op.expect;
    }
    return false;
  }

  const History& ops_;
};

struct SmallHistories {
  int histories;
  int max_ops;
  int values;           // written and read: "a", "b", ...
  int unknown_percent;  // of the writes
  uint64_t seed;
};

void CompareWithBruteForce(const SmallHistories& p) {
  std::mt19937_64 rng(p.seed);
  auto uniform = [&rng](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  auto some_value = [&] {
    return std::string(1, static_cast<char>('a' + uniform(0, p.values - 1)));
  };
  auto some_value_or_absent = [&]() -> std::optional<std::string> {
    if (uniform(0, p.values) == 0) return std::nullopt;
    return some_value();
  };
  int linearizable = 0;
  for (int n = 0; n < p.histories; ++n) {
    History history;
    const int64_t size = uniform(1, p.max_ops);
    for (int64_t i = 0; i < size; ++i) {
      const int64_t call = uniform(0, 20);
      const int64_t ret = call + uniform(0, 10);
      switch (uniform(0, 3)) {
        case 0:
          history.push_back(Get(i, "k", some_value_or_absent(), call, ret));
          break;
        case 1:
          history.push_back(Put(i, "k", some_value(), call, ret));
          break;
        case 2:
          history.push_back(
              Cas(i, "k", some_value_or_absent(), some_value(), uniform(0, 1) == 1, call, ret));
          break;
        default:
          history.push_back(Delete(i, "k", call, ret));
          break;
      }
      if (history.back().kind != OpKind::kGet && uniform(1, 100) <= p.unknown_percent) {
        history.back() = MarkUnknown(history.back());
      }
    }
    const bool expected = BruteForce(history).Linearizable();
    linearizable += expected;
    const CheckResult result = MustCheck(history);
    ASSERT_EQ(result.verdict, expected ? Verdict::kLinearizable : Verdict::kNotLinearizable)
        << "seed " << p.seed << ", history " << n << ":\n"
        <<
        [&] {
          std::string text;
          for (const Operation& op : history) absl::StrAppend(&text, FormatOperation(op), "\n");
          return text;
        }()
        << result.explanation;
  }
  // Both verdicts are well represented.
  EXPECT_GT(linearizable, p.histories / 10);
  EXPECT_LT(linearizable, p.histories * 9 / 10);
}

TEST(CheckerRandomTest, AgreesWithBruteForceOnSmallHistories) {
  CompareWithBruteForce(
      {.histories = 20000, .max_ops = 7, .values = 2, .unknown_percent = 20, .seed = 42});
}

TEST(CheckerRandomTest, AgreesWithBruteForceWhenManyOutcomesAreUnknown) {
  CompareWithBruteForce(
      {.histories = 10000, .max_ops = 8, .values = 3, .unknown_percent = 60, .seed = 43});
}

}  // namespace
}  // namespace lincheck

// A linearizability checker for key-value histories (operation.h), in the style of
// Porcupine: Wing & Gong's search as refined by Lowe, memoizing every (linearized set,
// register value) configuration it reaches and backtracking on dead ends. Linearizability is
// compositional (Herlihy & Wing), so each key is checked on its own: a history is
// linearizable exactly when every key's sub-history is.
//
//   absl::StatusOr<History> history = ReadHistoryFile(path);
//   absl::StatusOr<CheckResult> result = CheckHistory(*history, {.timeout = absl::Seconds(30)});
//   if (result->verdict == Verdict::kNotLinearizable) std::cerr << result->explanation;
//
// The verdict is never a guess: when the budget runs out before a key is decided (and no
// other key is found not linearizable), it is kUnknown. Operations whose intervals touch
// (one returns at the time the other is called) count as concurrent.
//
// Thread-safety: CheckHistory keeps no state between calls; concurrent calls are fine.
#ifndef TEST_LINEARIZABILITY_CHECKER_H_
#define TEST_LINEARIZABILITY_CHECKER_H_

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "test/linearizability/operation.h"

namespace lincheck {

enum class Verdict { kLinearizable, kNotLinearizable, kUnknown };
const char* VerdictName(Verdict verdict);
inline std::ostream& operator<<(std::ostream& os, Verdict verdict) {
  return os << VerdictName(verdict);
}

struct CheckOptions {
  // Wall-clock budget for the whole history, read from `clock`.
  absl::Duration timeout = absl::Seconds(60);
  // Search steps allowed per key; 0 means no limit. Unlike the timeout, this budget gives the
  // same verdict on every machine. Memory grows with the steps taken (a few dozen bytes each).
  int64_t max_steps_per_key = 0;
  const common::Clock* clock = common::RealClock::Get();
};

struct CheckResult {
  Verdict verdict = Verdict::kLinearizable;
  // kNotLinearizable: the key found not linearizable. kUnknown: the first key left undecided.
  std::string key;
  // Why, for a person: the operations involved, the longest linearizable prefix found and
  // why nothing can follow it; or what ran out. Empty when linearizable.
  std::string explanation;
  // kNotLinearizable: indices into the checked history. The longest linearizable prefix of
  // `key`'s operations the search found, in linearization order, and the operations with a
  // known outcome that were available next, none of which can follow it.
  std::vector<size_t> longest_prefix;
  std::vector<size_t> stuck;
  // Statistics over the keys checked.
  size_t keys_checked = 0;
  int64_t steps = 0;
};

// InvalidArgument when an operation with a known outcome returns before it is called.
absl::StatusOr<CheckResult> CheckHistory(const History& history, const CheckOptions& options = {});

}  // namespace lincheck

#endif  // TEST_LINEARIZABILITY_CHECKER_H_

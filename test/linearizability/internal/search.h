// The search for a linearization of one key's operations (Wing & Gong, with Lowe's
// memoization; the loop of Porcupine's checkSingle).
//
// The known operations (outcome kOk) become call and return entries in one list sorted by
// time (calls first at equal times). An operation whose call comes before the first
// remaining return is available: it may be linearized next if the register allows it with its
// recorded result; it is then lifted out of the list and the walk restarts. Once every
// available operation has been tried, the operation returning first cannot be put off:
// backtrack. When the list is empty, every known operation is linearized: success.
// Configurations (the set linearized, the register's value) are memoized with exact,
// hash-consed sets (set_interner.h), so each is explored once.
//
// Operations with an unknown outcome never return: they stay out of the list, are available
// from their call on, and may be left out. Pruning rules keep the search small; each is sound
// because any linearization can be rearranged to obey it:
//  - read-only first: an available read-only operation (a get, a cas that failed) that may
//    come next is linearized at once, and the alternatives are not tried (moving a read-only
//    operation earlier, to a point where it is legal, breaks nothing);
//  - an unknown operation is never linearized where it would change nothing (leaving it out
//    is as good), and after one, the next operation must be one that it enables: one not
//    allowed before it. So an unknown write is tried only right before an available
//    operation that needs the value it writes, found through an index by value, instead of
//    in every subset of the unknown operations pending (2^k configurations for k of them);
//  - unknown operations with the same effect are used in the order of their calls.
//
// Not thread-safe; one call explores one key.
#ifndef TEST_LINEARIZABILITY_INTERNAL_SEARCH_H_
#define TEST_LINEARIZABILITY_INTERNAL_SEARCH_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "test/linearizability/checker.h"
#include "test/linearizability/internal/register_model.h"

namespace lincheck::internal {

struct SearchLimits {
  int64_t max_steps = 0;                 // 0: none
  const common::Clock* clock = nullptr;  // read only when `deadline` is finite
  absl::Time deadline = absl::InfiniteFuture();
};

struct SearchResult {
  Verdict verdict = Verdict::kLinearizable;
  int64_t steps = 0;
  size_t configurations = 0;
  // kNotLinearizable and kUnknown: the longest linearizable prefix found (indices into the
  // searched ops, in linearization order) and the register's value after it.
  std::vector<int32_t> longest_prefix;
  ValueId value_after_prefix = kAbsent;
};

SearchResult FindLinearization(const std::vector<RegisterOp>& ops, const SearchLimits& limits);

}  // namespace lincheck::internal

#endif  // TEST_LINEARIZABILITY_INTERNAL_SEARCH_H_

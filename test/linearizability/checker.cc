#include "test/linearizability/checker.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "test/linearizability/internal/register_model.h"
#include "test/linearizability/internal/search.h"

namespace lincheck {
namespace {

using internal::RegisterOp;
using internal::ValueId;

// How much of a violation the explanation shows.
constexpr size_t kPrefixOpsShown = 10;
constexpr size_t kStuckOpsShown = 20;

// One key's operations, ready to search.
struct KeyHistory {
  std::string key;
  std::vector<size_t> source;  // index in the checked history of ops[i]
  std::vector<RegisterOp> ops;
  internal::ValueTable values;
};

std::vector<KeyHistory> SplitByKey(const History& history) {
  absl::flat_hash_map<std::string, size_t> key_index;
  std::vector<KeyHistory> keys;
  for (size_t i = 0; i < history.size(); ++i) {
    const Operation& op = history[i];
    // A read with an unknown outcome says nothing.
    if (op.kind == OpKind::kGet && op.outcome == Outcome::kUnknown) continue;
    auto [it, inserted] = key_index.try_emplace(op.key, keys.size());
    if (inserted) keys.push_back(KeyHistory{.key = op.key});
    KeyHistory& k = keys[it->second];
    const bool unknown = op.outcome == Outcome::kUnknown;
    RegisterOp r{.kind = op.kind,
                 .unknown = unknown,
                 .call = op.call,
                 .ret = unknown ? internal::kNever : op.ret};
    if (op.kind == OpKind::kPut || op.kind == OpKind::kCas) r.value = k.values.Intern(op.value);
    if (op.kind == OpKind::kCas) {
      r.expect = k.values.Intern(op.expect);
      r.succeeded = !unknown && op.succeeded;
    }
    if (op.kind == OpKind::kGet) r.read = k.values.Intern(op.read);
    k.source.push_back(i);
    k.ops.push_back(r);
  }
  // Small keys first: a violation there is found soonest. Ties in a fixed order.
  std::sort(keys.begin(), keys.end(), [](const KeyHistory& a, const KeyHistory& b) {
    return std::make_pair(a.ops.size(), a.key) < std::make_pair(b.ops.size(), b.key);
  });
  return keys;
}

std::string QuotedKey(const std::string& key) {
  return absl::StrCat("\"", absl::CHexEscape(key), "\"");
}

// Why `op` cannot be linearized when the key holds `state`; empty when it can.
std::string WhyNotNext(const RegisterOp& op, ValueId state, const internal::ValueTable& values) {
  if (internal::Apply(op, state).legal) return "";
  if (op.kind == OpKind::kGet) {
    return absl::StrCat("it read ", values.Describe(op.read), " but the key holds ",
                        values.Describe(state));
  }
  if (op.succeeded) {
    return absl::StrCat("it succeeded, so the key must hold ", values.Describe(op.expect),
                        ", but it holds ", values.Describe(state));
  }
  return absl::StrCat("it failed, so the key must not hold ", values.Describe(op.expect),
                      ", but it does");
}

// Fills result->explanation, longest_prefix and stuck for a key found not linearizable.
void ExplainViolation(const History& history, const KeyHistory& k,
                      const internal::SearchResult& search, CheckResult* result) {
  const size_t n = k.ops.size();
  std::string& out = result->explanation;
  absl::StrAppend(&out, "key ", QuotedKey(k.key), " is not linearizable (", n,
                  " operations on it).\n");

  // The prefix, replayed for the value after each operation.
  std::vector<bool> in_prefix(n, false);
  std::vector<ValueId> value_after;
  ValueId state = internal::kAbsent;
  for (int32_t op : search.longest_prefix) {
    in_prefix[op] = true;
    state = internal::Apply(k.ops[op], state).next;
    value_after.push_back(state);
    result->longest_prefix.push_back(k.source[op]);
  }
  const size_t prefix_size = search.longest_prefix.size();
  if (prefix_size == 0) {
    absl::StrAppend(&out, "No operation can be linearized first; the key starts absent.\n");
  } else {
    absl::StrAppend(&out, "The longest linearizable prefix found has ", prefix_size, " of them");
    const size_t shown_from = prefix_size > kPrefixOpsShown ? prefix_size - kPrefixOpsShown : 0;
    if (shown_from > 0) absl::StrAppend(&out, "; its last ", kPrefixOpsShown);
    absl::StrAppend(&out, ", in linearization order:\n");
    for (size_t i = shown_from; i < prefix_size; ++i) {
      const int32_t op = search.longest_prefix[i];
      absl::StrAppend(&out, "  ", DescribeOperation(history[k.source[op]]), "  -> ",
                      k.values.Describe(value_after[i]), "\n");
    }
  }

  // The operation that returns first among those pending bounds what can come next: only
  // operations called by then.
  size_t first_return = n;
  for (size_t i = 0; i < n; ++i) {
    if (in_prefix[i] || k.ops[i].unknown) continue;
    if (first_return == n || k.ops[i].ret < k.ops[first_return].ret) first_return = i;
  }
  const int64_t horizon =
      first_return == n ? std::numeric_limits<int64_t>::max() : k.ops[first_return].ret;
  absl::StrAppend(&out, "After it the key holds ", k.values.Describe(state),
                  ", and none of the operations that may come next can:\n");
  size_t shown = 0;
  size_t unknown_pending = 0;
  for (size_t i = 0; i < n; ++i) {
    if (in_prefix[i] || k.ops[i].call > horizon) continue;
    if (k.ops[i].unknown) {
      ++unknown_pending;
      continue;
    }
    result->stuck.push_back(k.source[i]);
    if (++shown > kStuckOpsShown) continue;
    std::string why = WhyNotNext(k.ops[i], state, k.values);
    // The search tries every allowed op, so this is for completeness.
    if (why.empty()) why = "it is allowed here, but nothing works after it";
    absl::StrAppend(&out, "  ", DescribeOperation(history[k.source[i]]), ": ", why, "\n");
  }
  if (shown > kStuckOpsShown) {
    absl::StrAppend(&out, "  ... and ", shown - kStuckOpsShown, " more\n");
  }
  if (unknown_pending > 0) {
    absl::StrAppend(&out, "  (and ", unknown_pending,
                    " operations of unknown outcome, none of which helps)\n");
  }
  if (first_return < n) {
    absl::StrAppend(&out, "(The first of the pending operations to return, at ", horizon, ", is ",
                    DescribeOperation(history[k.source[first_return]]),
                    "; nothing called after that can come before it.)\n");
  }
}

}  // namespace

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kLinearizable:
      return "linearizable";
    case Verdict::kNotLinearizable:
      return "not linearizable";
    case Verdict::kUnknown:
      return "unknown";
  }
  return "?";
}

absl::StatusOr<CheckResult> CheckHistory(const History& history, const CheckOptions& options) {
  for (const Operation& op : history) {
    if (op.outcome == Outcome::kOk && op.ret < op.call) {
      return absl::InvalidArgumentError(
          absl::StrCat("operation returns before its call: ", DescribeOperation(op)));
    }
  }
  const absl::Time deadline = options.timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : options.clock->Now() + options.timeout;
  const internal::SearchLimits limits{
      .max_steps = options.max_steps_per_key, .clock = options.clock, .deadline = deadline};

  std::vector<KeyHistory> keys = SplitByKey(history);
  CheckResult result;
  size_t undecided = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    const KeyHistory& k = keys[i];
    if (deadline != absl::InfiniteFuture() && options.clock->Now() >= deadline) {
      undecided += keys.size() - i;
      if (result.verdict == Verdict::kLinearizable) {
        result.verdict = Verdict::kUnknown;
        result.key = k.key;
      }
      break;
    }
    const internal::SearchResult search = internal::FindLinearization(k.ops, limits);
    ++result.keys_checked;
    result.steps += search.steps;
    if (search.verdict == Verdict::kNotLinearizable) {
      result.verdict = Verdict::kNotLinearizable;
      result.key = k.key;
      result.explanation.clear();
      ExplainViolation(history, k, search, &result);
      return result;
    }
    if (search.verdict == Verdict::kUnknown) {
      ++undecided;
      if (result.verdict == Verdict::kLinearizable) {
        result.verdict = Verdict::kUnknown;
        result.key = k.key;
        absl::StrAppend(&result.explanation, "key ", QuotedKey(k.key), " is undecided after ",
                        search.steps, " search steps (", search.configurations,
                        " configurations); the longest linearizable prefix found has ",
                        search.longest_prefix.size(), " of its ", k.ops.size(), " operations.\n");
      }
    }
  }
  if (result.verdict == Verdict::kUnknown) {
    absl::StrAppend(&result.explanation, "The budget (",
                    options.max_steps_per_key > 0
                        ? absl::StrCat(options.max_steps_per_key, " steps per key, ")
                        : "",
                    "timeout ", absl::FormatDuration(options.timeout), ") ran out: ", undecided,
                    " of ", keys.size(), " keys are undecided; no violation was found in the ",
                    keys.size() - undecided, " others.\n");
  }
  return result;
}

}  // namespace lincheck

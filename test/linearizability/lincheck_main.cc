// lincheck: checks a history file (history_file.h) for linearizability.
//
//   lincheck HISTORY.jsonl [--timeout-seconds 60] [--max-steps-per-key 0]
//
// Exit status: 0 linearizable; 1 not linearizable (the explanation goes to stdout); 2 when
// undecided within the budget, or for bad flags or a bad history (the message names the line).
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "test/linearizability/checker.h"
#include "test/linearizability/history_file.h"

namespace {

constexpr int kLinearizable = 0;
constexpr int kViolation = 1;
constexpr int kUndecidedOrBadInput = 2;

int Run(int argc, char** argv) {
  common::FlagSet flags("lincheck HISTORY.jsonl");
  int64_t timeout_seconds = 60;
  int64_t max_steps_per_key = 0;
  flags.Int("timeout-seconds", &timeout_seconds,
            "give up (exit 2) after this long; 0 means no limit");
  flags.Int("max-steps-per-key", &max_steps_per_key,
            "give up (exit 2) after this many search steps on one key; 0 means no limit");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok() || flags.positional().size() != 1) {
    if (!s.ok() && !absl::IsCancelled(s)) absl::FPrintF(stderr, "lincheck: %s\n", s.message());
    if (s.ok()) absl::FPrintF(stderr, "lincheck: expected exactly one history file\n");
    absl::FPrintF(stderr, "%s", flags.Usage());
    return kUndecidedOrBadInput;
  }
  if (timeout_seconds < 0 || max_steps_per_key < 0) {
    absl::FPrintF(stderr, "lincheck: budgets must not be negative\n");
    return kUndecidedOrBadInput;
  }

  const std::string& path = flags.positional()[0];
  absl::StatusOr<lincheck::History> history = lincheck::ReadHistoryFile(path);
  if (!history.ok()) {
    absl::FPrintF(stderr, "lincheck: %s\n", history.status().message());
    return kUndecidedOrBadInput;
  }

  const absl::Time start = absl::Now();
  absl::StatusOr<lincheck::CheckResult> result = lincheck::CheckHistory(
      *history,
      {.timeout = timeout_seconds == 0 ? absl::InfiniteDuration() : absl::Seconds(timeout_seconds),
       .max_steps_per_key = max_steps_per_key});
  if (!result.ok()) {
    absl::FPrintF(stderr, "lincheck: %s: %s\n", path, result.status().message());
    return kUndecidedOrBadInput;
  }
  const std::string stats = absl::StrFormat(
      "%d operations, %d keys checked, %d search steps, %s", history->size(), result->keys_checked,
      result->steps, absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))));
  switch (result->verdict) {
    case lincheck::Verdict::kLinearizable:
      absl::PrintF("linearizable (%s)\n", stats);
      return kLinearizable;
    case lincheck::Verdict::kNotLinearizable:
      absl::PrintF("NOT LINEARIZABLE (%s)\n%s", stats, result->explanation);
      return kViolation;
    case lincheck::Verdict::kUnknown:
      absl::PrintF("unknown: the budget ran out (%s)\n%s", stats, result->explanation);
      return kUndecidedOrBadInput;
  }
  return kUndecidedOrBadInput;
}

}  // namespace

int main(int argc, char** argv) { return Run(argc, argv); }

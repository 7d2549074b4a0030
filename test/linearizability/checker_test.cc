#include "test/linearizability/checker.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lincheck {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

CheckResult MustCheck(const History& history, const CheckOptions& options = {}) {
  absl::StatusOr<CheckResult> result = CheckHistory(history, options);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CheckResult{};
}

// Histories are written with one operation per line, and the times in the builders are
// [call, return]. Every key starts absent.

void ExpectLinearizable(const History& history) {
  CheckResult result = MustCheck(history);
  EXPECT_EQ(result.verdict, Verdict::kLinearizable) << result.explanation;
  EXPECT_EQ(result.explanation, "");
}

void ExpectViolation(const History& history) {
  CheckResult result = MustCheck(history);
  EXPECT_EQ(result.verdict, Verdict::kNotLinearizable);
  EXPECT_THAT(result.explanation, HasSubstr("is not linearizable"));
}

// --- Histories that must be accepted -----------------------------------------------------

TEST(CheckerAcceptsTest, EmptyHistory) { ExpectLinearizable({}); }

TEST(CheckerAcceptsTest, SequentialPutsAndGets) {
  ExpectLinearizable({
      Get(1, "k", std::nullopt, 0, 1),
      Put(1, "k", "a", 2, 3),
      Get(2, "k", "a", 4, 5),
      Put(2, "k", "b", 6, 7),
      Get(1, "k", "b", 8, 9),
  });
}

TEST(CheckerAcceptsTest, OverlappingWritesTakeEffectInTheOtherOrder) {
  // a is called first but b may take effect first; then the read after both sees a.
  ExpectLinearizable({
      Put(1, "k", "a", 0, 10),
      Put(2, "k", "b", 5, 15),
      Get(3, "k", "a", 20, 30),
  });
}

TEST(CheckerAcceptsTest, LongReadSeesNewValueWhileShortReadInsideItSeesOld) {
  ExpectLinearizable({
      Get(1, "k", "a", 0, 100),
      Get(2, "k", std::nullopt, 10, 20),
      Put(3, "k", "a", 5, 50),
  });
}

TEST(CheckerAcceptsTest, ReadSeesWriteCalledAfterTheReadWasCalled) {
  ExpectLinearizable({
      Put(1, "k", "a", 0, 1),
      Get(2, "k", "b", 10, 40),
      Put(3, "k", "b", 20, 30),
      Get(2, "k", "b", 50, 60),
  });
}

TEST(CheckerAcceptsTest, ConcurrentReadsMaySeeOldAndNewInEitherOrderOfCall) {
  // Both reads overlap the write: the one called later may see the old value.
  ExpectLinearizable({
      Put(1, "k", "a", 0, 1),
      Put(2, "k", "b", 10, 100),
      Get(3, "k", "b", 20, 30),
      Get(4, "k", "a", 25, 35),
  });
}

TEST(CheckerAcceptsTest, TouchingIntervalsAreConcurrent) {
  ExpectLinearizable({
      Put(1, "k", "a", 0, 10),
      Get(2, "k", std::nullopt, 10, 20),
  });
}

TEST(CheckerAcceptsTest, UnknownWriteThatHappened) {
  ExpectLinearizable({
      Put(1, "k", "a", 0, 10),
      MarkUnknown(Put(2, "k", "b", 20, 0)),
      Get(3, "k", "b", 100, 110),
  });
}

TEST(CheckerAcceptsTest, UnknownWriteThatNeverHappened) {
  ExpectLinearizable({
      Put(1, "k", "a", 0, 10),
      MarkUnknown(Put(2, "k", "b", 20, 0)),
      Get(3, "k", "a", 100, 110),
      Get(3, "k", "a", 1000, 1010),
  });
}

TEST(CheckerAcceptsTest, UnknownWriteThatHappenedLongAfterItsClientGaveUp) {
  // The client gave up at once, but the write sat in a leader's log and was applied later.
  ExpectLinearizable({
      MarkUnknown(Put(1, "k", "late", 0, 0)),
      Get(2, "k", std::nullopt, 100, 110),
      Put(2, "k", "b", 200, 210),
      Get(2, "k", "b", 300, 310),
      Get(3, "k", "late", 400, 410),
  });
}

TEST(CheckerAcceptsTest, UnknownCasThatDidOrDidNotTakeEffect) {
  ExpectLinearizable({
      Put(1, "k", "a", 0, 10),
      MarkUnknown(Cas(2, "k", "a", "b", false, 20, 0)),
      Get(3, "k", "b", 100, 110),
  });
  ExpectLinearizable({
      Put(1, "k", "a", 0, 10),
      MarkUnknown(Cas(2, "k", "a", "b", false, 20, 0)),
      Get(3, "k", "a", 100, 110),
  });
}

TEST(CheckerAcceptsTest, ManyUnknownWritesOnlySomeOfWhichHappened) {
  History h = {Put(0, "k", "start", 0, 1)};
  for (int i = 0; i < 30; ++i) {
    h.push_back(MarkUnknown(Put(i % 5, "k", "u" + std::to_string(i), 10 + 10 * i, 0)));
  }
  h.push_back(Get(9, "k", "u7", 400, 410));
  h.push_back(Get(9, "k", "u3", 420, 430));
  h.push_back(Get(9, "k", "u29", 440, 450));
  ExpectLinearizable(h);
}

TEST(CheckerAcceptsTest, CasChain) {
  ExpectLinearizable({
      Cas(1, "k", std::nullopt, "v0", true, 0, 10),
      Cas(2, "k", "v0", "v1", true, 20, 30),
      Cas(3, "k", "v1", "v2", true, 40, 50),
      Cas(1, "k", "v0", "v3", false, 60, 70),
      Get(2, "k", "v2", 80, 90),
  });
}

TEST(CheckerAcceptsTest, ConcurrentCasRaceHasOneWinnerAndTheLosersSeeIt) {
  ExpectLinearizable({
      Put(0, "k", "v0", 0, 1),
      Cas(1, "k", "v0", "a", false, 10, 50),
      Cas(2, "k", "v0", "b", true, 12, 40),
      Cas(3, "k", "v0", "c", false, 14, 60),
      Cas(4, "k", "b", "d", true, 20, 70),
      Get(5, "k", "d", 80, 90),
  });
}

TEST(CheckerAcceptsTest, CasChainWithOverlappingLinks) {
  // Each link overlaps the next; they must apply in chain order, not in call order.
  ExpectLinearizable({
      Put(0, "k", "0", 0, 1),
      Cas(3, "k", "2", "3", true, 5, 100),
      Cas(2, "k", "1", "2", true, 6, 90),
      Cas(1, "k", "0", "1", true, 7, 80),
      Get(4, "k", "3", 110, 120),
  });
}

TEST(CheckerAcceptsTest, DeleteMakesTheKeyAbsentForCas) {
  ExpectLinearizable({
      Put(1, "k", "a", 0, 10),
      Delete(2, "k", 20, 30),
      Get(3, "k", std::nullopt, 40, 50),
      Cas(1, "k", "a", "x", false, 60, 70),
      Cas(1, "k", std::nullopt, "b", true, 80, 90),
      Get(3, "k", "b", 100, 110),
  });
}

TEST(CheckerAcceptsTest, RewrittenValue) {
  ExpectLinearizable({
      Put(1, "k", "a", 0, 10),
      Put(1, "k", "b", 20, 30),
      Put(1, "k", "a", 40, 50),
      Get(2, "k", "a", 60, 70),
  });
}

TEST(CheckerAcceptsTest, KeysAreIndependent) {
  // Across keys there is no order to respect beyond each key's own.
  ExpectLinearizable({
      Put(1, "x", "1", 0, 10),
      Put(1, "y", "1", 20, 30),
      Get(2, "y", "1", 40, 50),
      Get(2, "x", "1", 60, 70),
  });
}

// --- Histories that must be rejected -----------------------------------------------------

TEST(CheckerRejectsTest, StaleReadAfterCompletedWrite) {
  ExpectViolation({
      Put(1, "k", "a", 0, 10),
      Put(1, "k", "b", 20, 30),
      Get(2, "k", "a", 40, 50),
  });
}

TEST(CheckerRejectsTest, ReadOfValueNeverWritten) {
  ExpectViolation({
      Put(1, "k", "a", 0, 10),
      Get(2, "k", "ghost", 20, 30),
  });
}

TEST(CheckerRejectsTest, LostAcknowledgedWrite) {
  ExpectViolation({
      Put(1, "k", "a", 0, 10),
      Get(2, "k", std::nullopt, 20, 30),
  });
}

TEST(CheckerRejectsTest, TwoSuccessfulCasFromTheSameExpectedValue) {
  ExpectViolation({
      Put(0, "k", "v0", 0, 1),
      Cas(1, "k", "v0", "a", true, 10, 50),
      Cas(2, "k", "v0", "b", true, 12, 40),
  });
}

TEST(CheckerRejectsTest, ReadGoesBackInTime) {
  // The write of b is still running, so either read alone is fine; but once a read sees b,
  // a later read must not see a.
  ExpectViolation({
      Put(1, "k", "a", 0, 10),
      Put(2, "k", "b", 20, 1000),
      Get(3, "k", "b", 30, 40),
      Get(3, "k", "a", 50, 60),
  });
}

TEST(CheckerRejectsTest, CasSuccessWhoseEffectIsNotSeen) {
  ExpectViolation({
      Put(1, "k", "v0", 0, 10),
      Cas(2, "k", "v0", "v1", true, 20, 30),
      Get(3, "k", "v0", 40, 50),
  });
}

TEST(CheckerRejectsTest, CasFailureWhenTheCompareHeld) {
  ExpectViolation({
      Put(1, "k", "v0", 0, 10),
      Cas(2, "k", "v0", "v1", false, 20, 30),
  });
}

TEST(CheckerRejectsTest, UnknownWriteCannotUnhappen) {
  ExpectViolation({
      Put(1, "k", "a", 0, 1),
      MarkUnknown(Put(2, "k", "b", 10, 0)),
      Get(3, "k", "b", 100, 110),
      Get(3, "k", "a", 200, 210),
  });
}

TEST(CheckerRejectsTest, UnknownWriteCannotTakeEffectBeforeItsCall) {
  ExpectViolation({
      Get(3, "k", "b", 0, 10),
      MarkUnknown(Put(2, "k", "b", 20, 0)),
  });
}

TEST(CheckerRejectsTest, DeleteNotSeen) {
  ExpectViolation({
      Put(1, "k", "a", 0, 10),
      Delete(2, "k", 20, 30),
      Get(3, "k", "a", 40, 50),
  });
}

// --- Explanations, budgets, errors -------------------------------------------------------

TEST(CheckerResultTest, ViolationNamesTheKeyThePrefixAndTheStuckOperations) {
  History h = {
      Put(1, "fine", "x", 0, 10),   // 0
      Get(2, "fine", "x", 20, 30),  // 1
      Put(1, "bad", "a", 0, 10),    // 2
      Put(1, "bad", "b", 20, 30),   // 3
      Get(2, "bad", "a", 40, 50),   // 4: stale
      Get(2, "bad", "b", 60, 70),   // 5
  };
  h[4].line = 42;
  CheckResult result = MustCheck(h);
  ASSERT_EQ(result.verdict, Verdict::kNotLinearizable);
  EXPECT_EQ(result.key, "bad");
  EXPECT_THAT(result.longest_prefix, ElementsAre(2, 3));
  EXPECT_THAT(result.stuck, ElementsAre(4));
  EXPECT_THAT(result.explanation, HasSubstr("key \"bad\" is not linearizable"));
  EXPECT_THAT(result.explanation, HasSubstr("The longest linearizable prefix found has 2"));
  EXPECT_THAT(result.explanation,
              HasSubstr("line 42, client 2: get(\"bad\") = \"a\"  [40, 50]: it read \"a\" but "
                        "the key holds \"b\""));
  EXPECT_THAT(result.explanation, HasSubstr("After it the key holds \"b\""));
}

TEST(CheckerResultTest, ExplainsCasResults) {
  CheckResult failed = MustCheck({
      Put(1, "k", "v0", 0, 10),
      Cas(2, "k", "v0", "v1", false, 20, 30),
  });
  ASSERT_EQ(failed.verdict, Verdict::kNotLinearizable);
  EXPECT_THAT(failed.explanation,
              HasSubstr("it failed, so the key must not hold \"v0\", but it does"));

  CheckResult succeeded = MustCheck({
      Put(1, "k", "v0", 0, 10),
      Cas(2, "k", "v1", "v2", true, 20, 30),
  });
  ASSERT_EQ(succeeded.verdict, Verdict::kNotLinearizable);
  EXPECT_THAT(succeeded.explanation,
              HasSubstr("it succeeded, so the key must hold \"v1\", but it holds \"v0\""));
}

TEST(CheckerResultTest, EmptyPrefix) {
  CheckResult result = MustCheck({Get(1, "k", "ghost", 0, 10)});
  ASSERT_EQ(result.verdict, Verdict::kNotLinearizable);
  EXPECT_TRUE(result.longest_prefix.empty());
  EXPECT_THAT(result.stuck, ElementsAre(0));
  EXPECT_THAT(result.explanation, HasSubstr("No operation can be linearized first"));
}

TEST(CheckerResultTest, StepBudgetGivesUnknownNeverAFalseVerdict) {
  History h;
  for (int i = 0; i < 50; ++i) {
    h.push_back(Put(i % 7, "k", "v" + std::to_string(i), i * 10, i * 10 + 35));
    h.push_back(Get(7 + i % 3, "k", "v" + std::to_string(i), i * 10 + 5, i * 10 + 40));
  }
  ASSERT_EQ(MustCheck(h).verdict, Verdict::kLinearizable);
  CheckResult limited = MustCheck(h, {.max_steps_per_key = 10});
  EXPECT_EQ(limited.verdict, Verdict::kUnknown);
  EXPECT_EQ(limited.key, "k");
  EXPECT_THAT(limited.explanation, HasSubstr("key \"k\" is undecided after 10 search steps"));
  EXPECT_THAT(limited.explanation, HasSubstr("1 of 1 keys are undecided"));
}

TEST(CheckerResultTest, ViolationOnOneKeyWinsOverAnotherKeyLeftUndecided) {
  History h;
  // "big" is checked first (fewer operations) and needs more than 10 steps.
  for (int i = 0; i < 20; ++i) {
    h.push_back(Put(1, "big", "v" + std::to_string(i), i * 10, i * 10 + 35));
  }
  // "bad" fails at once.
  h.push_back(Get(2, "bad", "ghost", 0, 1));
  for (int i = 0; i < 30; ++i) {
    h.push_back(Put(1, "bad", "v" + std::to_string(i), 10 + i * 10, 15 + i * 10));
  }
  CheckResult result = MustCheck(h, {.max_steps_per_key = 10});
  EXPECT_EQ(result.verdict, Verdict::kNotLinearizable);
  EXPECT_EQ(result.key, "bad");
  EXPECT_EQ(result.keys_checked, 2u);
}

// A clock that moves a second every time it is read.
class RacingClock : public common::Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock l(&mu_);
    now_ += absl::Seconds(1);
    return now_;
  }

 private:
  mutable absl::Mutex mu_;
  mutable absl::Time now_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch();
};

TEST(CheckerResultTest, TimeoutGivesUnknown) {
  History h;
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 5000; ++i) {
      h.push_back(Put(i % 4, "k" + std::to_string(k), "v" + std::to_string(i), i, i + 10));
    }
  }
  RacingClock clock;
  CheckResult result = MustCheck(h, {.timeout = absl::Seconds(2), .clock = &clock});
  EXPECT_EQ(result.verdict, Verdict::kUnknown);
  EXPECT_THAT(result.explanation, HasSubstr("ran out"));
}

TEST(CheckerResultTest, OperationReturningBeforeItsCallIsAnError) {
  absl::StatusOr<CheckResult> result = CheckHistory({Put(1, "k", "a", 10, 5)});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  // With an unknown outcome the return time is ignored.
  EXPECT_TRUE(CheckHistory({MarkUnknown(Put(1, "k", "a", 10, 5))}).ok());
}

}  // namespace
}  // namespace lincheck

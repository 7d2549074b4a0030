// Time behind a small interface, so that code with timeouts (Raft ticks, lease expiry,
// health checks) can be tested with a clock the test moves by hand.
//
// Thread-safety: both implementations may be called from any thread.
#ifndef COMMON_CLOCK_H_
#define COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace common {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic within a process run; not comparable across machines.
  virtual absl::Time Now() const = 0;
};

class RealClock : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // A process-wide instance; never destroyed.
  static RealClock* Get();
};

// Moves only when a test says so.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::UnixEpoch()) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock l(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock l(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

inline RealClock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace common

#endif  // COMMON_CLOCK_H_

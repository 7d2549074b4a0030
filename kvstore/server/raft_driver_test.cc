// The driver on a real RocksDB log: a one-member group elects itself, commits proposals
// from many threads in shared Readies, confirms reads, and after a restart applies
// nothing twice and loses nothing it applied.
#include "kvstore/server/raft_driver.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"

namespace kvstore::server {
namespace {

// Records what is applied; its "durable" applied index is whatever a test says.
class RecordingStateMachine : public StateMachine {
 public:
  void Apply(absl::Span<const raft::Entry> entries) override {
    absl::MutexLock l(&mu_);
    for (const raft::Entry& e : entries) {
      if (!e.data.empty()) applied_.push_back(e.data);
      last_ = e.index;
    }
  }
  uint64_t AppliedIndex() const override {
    absl::MutexLock l(&mu_);
    return durable_;
  }
  std::vector<std::string> applied() const {
    absl::MutexLock l(&mu_);
    return applied_;
  }
  uint64_t last() const {
    absl::MutexLock l(&mu_);
    return last_;
  }
  void set_durable(uint64_t i) {
    absl::MutexLock l(&mu_);
    durable_ = i;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> applied_ ABSL_GUARDED_BY(mu_);
  uint64_t last_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_ ABSL_GUARDED_BY(mu_) = 0;
};

class RaftDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("raft_driver_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<storage::RaftLogStore> OpenLog(bool bootstrap) {
    auto log = storage::RaftLogStore::Open(dir_.string());
    EXPECT_TRUE(log.ok()) << log.status();
    if (bootstrap) {
      EXPECT_TRUE((*log)->Bootstrap({1}).ok());
    }
    return std::move(*log);
  }

  static RaftDriver::Options FastOptions() {
    RaftDriver::Options o;
    o.id = 1;
    o.tick = absl::Milliseconds(5);
    return o;
  }

  static bool WaitFor(const std::function<bool()>& cond) {
    for (int i = 0; i < 2000 && !cond(); ++i) absl::SleepFor(absl::Milliseconds(5));
    return cond();
  }

  std::filesystem::path dir_;
};

TEST_F(RaftDriverTest, SingleMemberElectsItselfAndAppliesConcurrentProposalsInOrder) {
  auto log = OpenLog(/*bootstrap=*/true);
  RecordingStateMachine sm;
  auto driver =
      RaftDriver::Create(FastOptions(), log.get(), &sm, nullptr, common::RealClock::Get());
  ASSERT_TRUE(driver.ok()) << driver.status();
  (*driver)->Start();
  ASSERT_TRUE(WaitFor([&] { return (*driver)->Status().role == raft::Role::kLeader; }));

  constexpr int kThreads = 8, kEach = 200;
  std::vector<std::thread> threads;
  std::atomic<int> dropped{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        (*driver)->Propose(std::to_string(t) + "/" + std::to_string(i),
                           [&](absl::Status) { dropped.fetch_add(1); });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(WaitFor([&] { return sm.applied().size() == kThreads * kEach; }));
  EXPECT_EQ(dropped.load(), 0);
  // Each thread's proposals are applied in the order it made them.
  std::vector<int> next(kThreads, 0);
  for (const std::string& s : sm.applied()) {
    const int t = std::stoi(s.substr(0, s.find('/')));
    EXPECT_EQ(std::stoi(s.substr(s.find('/') + 1)), next[t]++) << s;
  }
  // Every proposal holds exactly one index after the bootstrap entry and the no-op.
  EXPECT_EQ((*driver)->Status().last_index, 2u + kThreads * kEach);
}

TEST_F(RaftDriverTest, ReadBarrierWaitsForEverythingCommittedBeforeIt) {
  auto log = OpenLog(/*bootstrap=*/true);
  RecordingStateMachine sm;
  auto driver =
      RaftDriver::Create(FastOptions(), log.get(), &sm, nullptr, common::RealClock::Get());
  ASSERT_TRUE(driver.ok());
  (*driver)->Start();
  ASSERT_TRUE(WaitFor([&] { return (*driver)->Status().role == raft::Role::kLeader; }));
  for (int i = 0; i < 100; ++i) (*driver)->Propose("w" + std::to_string(i), [](absl::Status) {});
  ASSERT_TRUE(WaitFor([&] { return sm.applied().size() == 100; }));
  const uint64_t before = sm.last();
  absl::Notification done;
  absl::Status result = absl::UnknownError("not called");
  (*driver)->ReadBarrier([&](absl::Status s) {
    result = s;
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_GE((*driver)->applied_index(), before);
}

TEST_F(RaftDriverTest, RestartReplaysOnlyWhatTheStateMachineLacks) {
  uint64_t last_applied = 0;
  {
    auto log = OpenLog(/*bootstrap=*/true);
    RecordingStateMachine sm;
    auto driver =
        RaftDriver::Create(FastOptions(), log.get(), &sm, nullptr, common::RealClock::Get());
    ASSERT_TRUE(driver.ok());
    (*driver)->Start();
    ASSERT_TRUE(WaitFor([&] { return (*driver)->Status().role == raft::Role::kLeader; }));
    for (int i = 0; i < 10; ++i) (*driver)->Propose("a" + std::to_string(i), [](absl::Status) {});
    ASSERT_TRUE(WaitFor([&] { return sm.applied().size() == 10; }));
    last_applied = sm.last();
    (*driver)->Stop();
  }
  // The state machine kept its effects up to entry 5 (say, its last flush): the driver
  // replays from 6 on, and nothing before.
  auto log = OpenLog(/*bootstrap=*/false);
  RecordingStateMachine sm;
  sm.set_durable(5);
  auto driver =
      RaftDriver::Create(FastOptions(), log.get(), &sm, nullptr, common::RealClock::Get());
  ASSERT_TRUE(driver.ok()) << driver.status();
  (*driver)->Start();
  ASSERT_TRUE(WaitFor([&] { return sm.last() >= last_applied; }));
  const std::vector<std::string> replayed = sm.applied();
  ASSERT_FALSE(replayed.empty());
  EXPECT_EQ(replayed.front(), "a3");  // index 6: the no-op is 2, "a0" is 3
  EXPECT_EQ(replayed.back(), "a9");
}

// Applies in memory like the MVCC store without a WAL: AppliedIndex() is what it holds
// now, Flush() makes it durable; a "crash" keeps only what was flushed.
class FlushingStateMachine : public StateMachine, public Snapshotter {
 public:
  explicit FlushingStateMachine(uint64_t durable = 0) : last_(durable), durable_(durable) {}
  void Apply(absl::Span<const raft::Entry> entries) override {
    absl::MutexLock l(&mu_);
    for (const raft::Entry& e : entries) {
      EXPECT_EQ(e.index, last_ + 1);
      if (!e.data.empty()) applied_.push_back(e.data);
      last_ = e.index;
    }
  }
  uint64_t AppliedIndex() const override {
    absl::MutexLock l(&mu_);
    return last_;
  }
  absl::StatusOr<uint64_t> Flush() override {
    absl::MutexLock l(&mu_);
    const uint64_t applied = last_;  // what the flush takes: everything applied so far
    mu_.Await(absl::Condition(this, &FlushingStateMachine::FlushMayEnd));
    durable_ = applied;
    ++flushes_;
    return durable_;
  }
  // Flushes beyond the first `n` wait (a slow memtable flush) until allowed; applying goes
  // on meanwhile.
  void AllowFlushes(int n) {
    absl::MutexLock l(&mu_);
    flushes_allowed_ = n;
  }
  int flushes() const {
    absl::MutexLock l(&mu_);
    return flushes_;
  }
  absl::StatusOr<std::string> Checkpoint() override {
    return absl::UnimplementedError("one member");
  }
  std::string SnapshotData() override { return ""; }
  absl::Status Install(const raft::Snapshot&) override {
    return absl::UnimplementedError("one member");
  }
  std::vector<std::string> applied() const {
    absl::MutexLock l(&mu_);
    return applied_;
  }
  uint64_t durable() const {
    absl::MutexLock l(&mu_);
    return durable_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> applied_ ABSL_GUARDED_BY(mu_);
  uint64_t last_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t durable_ ABSL_GUARDED_BY(mu_) = 0;
  bool FlushMayEnd() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return flushes_ < flushes_allowed_;
  }

  int flushes_ ABSL_GUARDED_BY(mu_) = 0;
  int flushes_allowed_ ABSL_GUARDED_BY(mu_) = std::numeric_limits<int>::max();
};

TEST_F(RaftDriverTest, SnapshotsAtTheDurableIndexAndCompactsBehindIt) {
  RaftDriver::Options o = FastOptions();
  o.snapshot_count = 20;
  o.catchup_entries = 5;
  uint64_t snapshot_index = 0;
  uint64_t last_index = 0;
  {
    auto log = OpenLog(/*bootstrap=*/true);
    FlushingStateMachine sm(/*durable=*/1);
    o.snapshotter = &sm;
    auto driver = RaftDriver::Create(o, log.get(), &sm, nullptr, common::RealClock::Get());
    ASSERT_TRUE(driver.ok()) << driver.status();
    (*driver)->Start();
    ASSERT_TRUE(WaitFor([&] { return (*driver)->Status().role == raft::Role::kLeader; }));
    for (int i = 0; i < 100; ++i) (*driver)->Propose("p" + std::to_string(i), [](absl::Status) {});
    ASSERT_TRUE(WaitFor([&] { return sm.applied().size() == 100; }));
    // Fewer than snapshot_count: these stay after the last snapshot.
    for (int i = 0; i < 5; ++i) (*driver)->Propose("q" + std::to_string(i), [](absl::Status) {});
    ASSERT_TRUE(WaitFor([&] { return sm.applied().size() == 105; }));
    ASSERT_TRUE(WaitFor([&] { return (*driver)->Status().snapshot_index >= 80; }));
    (*driver)->Stop();
    snapshot_index = log->snapshot_meta().index;
    last_index = log->LastIndex();
    EXPECT_GE(snapshot_index, 80u);
    // Stop() recorded any flush still running; it made durable at least that much.
    EXPECT_LE(snapshot_index, sm.durable());
    EXPECT_EQ(log->snapshot_meta().conf_state.voters, std::vector<uint64_t>{1});
    EXPECT_EQ(log->FirstIndex(), snapshot_index - 5 + 1);
  }
  // A crash took the state machine back to the snapshot: the log, compacted behind it,
  // still holds everything after it, and the driver replays exactly that.
  auto log = OpenLog(/*bootstrap=*/false);
  FlushingStateMachine sm(snapshot_index);
  o.snapshotter = &sm;
  auto driver = RaftDriver::Create(o, log.get(), &sm, nullptr, common::RealClock::Get());
  ASSERT_TRUE(driver.ok()) << driver.status();
  (*driver)->Start();
  ASSERT_TRUE(WaitFor([&] { return sm.AppliedIndex() >= last_index; }));
  (*driver)->Stop();
  const std::vector<std::string> replayed = sm.applied();
  EXPECT_EQ(replayed.size(), last_index - snapshot_index);
  ASSERT_GE(replayed.size(), 5u);
  EXPECT_EQ(replayed.back(), "q4");
}

// The state machine's flush runs beside the driver: entries go on being applied while it
// takes its time, and the snapshot is taken at the index applied when it started.
TEST_F(RaftDriverTest, AppliesOnWhileTheSnapshotFlushRuns) {
  RaftDriver::Options o = FastOptions();
  o.snapshot_count = 20;
  o.catchup_entries = 5;
  auto log = OpenLog(/*bootstrap=*/true);
  FlushingStateMachine sm(/*durable=*/1);
  o.snapshotter = &sm;
  auto driver = RaftDriver::Create(o, log.get(), &sm, nullptr, common::RealClock::Get());
  ASSERT_TRUE(driver.ok()) << driver.status();
  // Whatever fails below, the driver's Stop() must not wait for a held flush.
  absl::Cleanup release = [&sm] { sm.AllowFlushes(std::numeric_limits<int>::max()); };
  sm.AllowFlushes(0);
  (*driver)->Start();
  ASSERT_TRUE(WaitFor([&] { return (*driver)->Status().role == raft::Role::kLeader; }));
  const uint64_t bootstrapped = (*driver)->Status().snapshot_index;
  for (int i = 0; i < 30; ++i) (*driver)->Propose("p" + std::to_string(i), [](absl::Status) {});
  ASSERT_TRUE(WaitFor([&] { return sm.applied().size() == 30; }));
  const uint64_t started_at = sm.AppliedIndex();
  // The flush is held: proposals are still applied.
  for (int i = 0; i < 30; ++i) (*driver)->Propose("q" + std::to_string(i), [](absl::Status) {});
  ASSERT_TRUE(WaitFor([&] { return sm.applied().size() == 60; }));
  EXPECT_EQ((*driver)->Status().snapshot_index, bootstrapped);
  EXPECT_EQ(sm.flushes(), 0);

  sm.AllowFlushes(1);  // the next one, due by now, is held until the end
  uint64_t snapshot_index = bootstrapped;
  ASSERT_TRUE(WaitFor([&] {
    snapshot_index = (*driver)->Status().snapshot_index;
    return snapshot_index != bootstrapped;
  }));
  // Taken at what was applied when the flush began (with all 30 "p"s), not at what was
  // applied when it ended.
  EXPECT_GE(snapshot_index, bootstrapped + 20);
  EXPECT_LE(snapshot_index, started_at);
  EXPECT_LE(snapshot_index, sm.durable());
  sm.AllowFlushes(std::numeric_limits<int>::max());
  (*driver)->Stop();
  EXPECT_EQ(log->FirstIndex(), log->snapshot_meta().index - 5 + 1);
}

TEST_F(RaftDriverTest, ProposalsAfterStopFailWithStopped) {
  auto log = OpenLog(/*bootstrap=*/true);
  RecordingStateMachine sm;
  auto driver =
      RaftDriver::Create(FastOptions(), log.get(), &sm, nullptr, common::RealClock::Get());
  ASSERT_TRUE(driver.ok());
  (*driver)->Start();
  (*driver)->Stop();
  absl::Status got;
  (*driver)->Propose("x", [&](absl::Status s) { got = s; });
  EXPECT_TRUE(absl::IsUnavailable(got)) << got;
  absl::Status read;
  (*driver)->ReadBarrier([&](absl::Status s) { read = s; });
  EXPECT_EQ(read.message(), "etcdserver: server stopped");
}

// Delivers every message straight to the addressee's driver, in this process.
class LoopbackTransport : public Transport {
 public:
  void Add(uint64_t id, RaftDriver* d) { drivers_[id] = d; }
  void Send(std::vector<raft::Message> messages) override {
    for (raft::Message& m : messages) drivers_.at(m.to)->Step(std::move(m));
  }

 private:
  std::map<uint64_t, RaftDriver*> drivers_;  // set before any driver starts
};

// A commit no append carries is announced to the followers commit_announce_delay later,
// and not before: the clock is a fake one, so no tick (and no heartbeat) intervenes.
TEST_F(RaftDriverTest, LeaderAnnouncesACommitNoAppendCarriedAfterTheDelay) {
  common::FakeClock clock;
  LoopbackTransport transport;
  std::vector<std::unique_ptr<storage::RaftLogStore>> logs;
  std::vector<std::unique_ptr<RecordingStateMachine>> sms;
  std::vector<std::unique_ptr<RaftDriver>> drivers;
  for (uint64_t id = 1; id <= 3; ++id) {
    auto log = storage::RaftLogStore::Open((dir_ / std::to_string(id)).string());
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE((*log)->Bootstrap({1, 2, 3}).ok());
    logs.push_back(std::move(*log));
    sms.push_back(std::make_unique<RecordingStateMachine>());
    RaftDriver::Options o;
    o.id = id;
    o.seed = id;
    o.tick = absl::Milliseconds(100);
    o.commit_announce_delay = absl::Milliseconds(20);
    auto driver = RaftDriver::Create(o, logs.back().get(), sms.back().get(), &transport, &clock);
    ASSERT_TRUE(driver.ok()) << driver.status();
    drivers.push_back(std::move(*driver));
    transport.Add(id, drivers.back().get());
  }
  for (auto& d : drivers) d->Start();
  // Whole ticks until someone leads and every member applied its no-op.
  auto leader = [&]() -> RaftDriver* {
    for (auto& d : drivers) {
      if (d->Status().role == raft::Role::kLeader) return d.get();
    }
    return nullptr;
  };
  for (int i = 0; i < 200 && (leader() == nullptr || drivers[0]->applied_index() < 2 ||
                              drivers[1]->applied_index() < 2 || drivers[2]->applied_index() < 2);
       ++i) {
    clock.Advance(absl::Milliseconds(100));
    absl::SleepFor(absl::Milliseconds(20));
  }
  RaftDriver* l = leader();
  ASSERT_NE(l, nullptr);
  const size_t li = static_cast<size_t>(l->Status().id - 1);

  l->Propose("x", [](absl::Status) {});
  ASSERT_TRUE(WaitFor([&] { return sms[li]->applied() == std::vector<std::string>{"x"}; }));
  absl::SleepFor(absl::Milliseconds(100));  // real time; the fake clock stands still
  for (size_t i = 0; i < 3; ++i) {
    if (i != li) {
      EXPECT_TRUE(sms[i]->applied().empty()) << "member " << i + 1;
    }
  }
  clock.Advance(absl::Milliseconds(20));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(WaitFor([&] { return sms[i]->applied() == std::vector<std::string>{"x"}; }))
        << "member " << i + 1;
  }
  for (auto& d : drivers) d->Stop();
}

}  // namespace
}  // namespace kvstore::server

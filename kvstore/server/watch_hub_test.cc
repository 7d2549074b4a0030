#include "kvstore/server/watch_hub.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace kvstore::server {
namespace {

const std::string kAll("\0", 1);

class TempDir {
 public:
  TempDir() {
    std::string pattern = testing::TempDir() + "watch_hub_test.XXXXXX";
    const char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One line per update, so that whole exchanges compare with EXPECT_EQ.
std::string Describe(const WatchUpdate& u) {
  std::string s = absl::StrCat("id=", u.watch_id, " rev=", u.revision);
  if (u.created) s += " created";
  if (u.canceled) s += " canceled";
  if (u.compact_revision != 0) absl::StrAppend(&s, " compact=", u.compact_revision);
  if (!u.cancel_reason.empty()) absl::StrAppend(&s, " reason=", u.cancel_reason);
  for (const auto& e : u.events) {
    absl::StrAppend(&s, " [", e->type == mvcc::Event::Type::kPut ? "PUT " : "DEL ", e->kv.key);
    if (e->type == mvcc::Event::Type::kPut) absl::StrAppend(&s, "=", e->kv.value);
    absl::StrAppend(&s, " m", e->kv.mod_revision);
    if (u.prev_kv && e->prev_kv) {
      absl::StrAppend(&s, " prev=", e->prev_kv->value, "@", e->prev_kv->mod_revision);
    }
    s += "]";
  }
  return s;
}

class WatchHubTest : public testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<mvcc::MvccStore>> s = mvcc::MvccStore::Open(dir_.path());
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }

  void MakeHub(WatchHubOptions options = {}) {
    hub_ = std::make_unique<WatchHub>(store_.get(), options);
  }

  // Commits one write transaction and tells the hub, as the applier does.
  int64_t Commit(const std::function<void(mvcc::WriteTxn&)>& body, bool notify = true) {
    mvcc::WriteTxn txn = store_->BeginWrite();
    body(txn);
    std::vector<mvcc::Event> changes = txn.Changes();
    const int64_t rev = txn.Revision();
    EXPECT_TRUE(txn.End().ok());
    if (notify && !changes.empty()) hub_->Notify(changes, rev);
    return rev;
  }
  int64_t Put(const std::string& k, const std::string& v, bool notify = true) {
    return Commit([&](mvcc::WriteTxn& t) { EXPECT_TRUE(t.Put(k, v).ok()); }, notify);
  }
  int64_t Delete(const std::string& k, const std::string& end = "") {
    return Commit([&](mvcc::WriteTxn& t) { EXPECT_TRUE(t.DeleteRange(k, end).ok()); });
  }

  // The next update, as a line; "timeout" if none comes.
  static std::string Next(WatchStream* s, absl::Duration wait = absl::Seconds(10)) {
    std::optional<WatchUpdate> u = s->Next(absl::Now() + wait);
    return u ? Describe(*u) : "timeout";
  }
  static std::vector<std::string> NextN(WatchStream* s, int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(Next(s));
    return out;
  }
  // The lines of watch `id`, in stream order: the hub orders each watcher's updates, not the
  // updates of different watchers.
  static std::vector<std::string> OfWatch(const std::vector<std::string>& lines, int64_t id) {
    std::vector<std::string> out;
    const std::string prefix = absl::StrCat("id=", id, " ");
    for (const std::string& l : lines) {
      if (l.starts_with(prefix)) out.push_back(l);
    }
    return out;
  }
  static void ExpectQuiet(WatchStream* s) {
    EXPECT_EQ(Next(s, absl::Milliseconds(150)), "timeout");
  }
  // Waits until no watcher is behind.
  void WaitSynced() {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (hub_->unsynced_count() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    ASSERT_EQ(hub_->unsynced_count(), 0u);
  }

  TempDir dir_;
  std::unique_ptr<mvcc::MvccStore> store_;
  std::unique_ptr<WatchHub> hub_;
};

TEST_F(WatchHubTest, LiveEventsReachASyncedWatcher) {
  MakeHub();
  auto s = hub_->OpenStream();
  EXPECT_EQ(hub_->Watch(s.get(), {.key = "a"}), 0);
  EXPECT_EQ(Next(s.get()), "id=0 rev=1 created");
  Put("a", "1");
  Put("b", "2");
  Put("a", "3");
  Delete("a");
  EXPECT_EQ(NextN(s.get(), 3),
            (std::vector<std::string>{"id=0 rev=2 [PUT a=1 m2]", "id=0 rev=4 [PUT a=3 m4]",
                                      "id=0 rev=5 [DEL a m5]"}));
  ExpectQuiet(s.get());
  EXPECT_EQ(hub_->revision(), 5);
}

TEST_F(WatchHubTest, HistoryReplayWithPrevKvThenLive) {
  Put("/p/a", "1", false);  // 2
  Put("/p/b", "2", false);  // 3
  Put("/p/a", "3", false);  // 4
  Put("/q", "x", false);    // 5
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.key = "/p/", .range_end = "/p0", .start_revision = 2, .prev_kv = true});
  EXPECT_EQ(Next(s.get()), "id=0 rev=5 created");
  EXPECT_EQ(Next(s.get()), "id=0 rev=5 [PUT /p/a=1 m2] [PUT /p/b=2 m3] [PUT /p/a=3 m4 prev=1@2]");
  WaitSynced();
  Delete("/p/b");
  EXPECT_EQ(Next(s.get()), "id=0 rev=6 [DEL /p/b m6 prev=2@3]");
  ExpectQuiet(s.get());
}

// The applier skips reading replaced values while no watcher wants prev_kv. A prev_kv
// watcher that comes meanwhile still gets them: the hub sends it through the history.
TEST_F(WatchHubTest, EventsWithoutPrevValuesStillGiveAPrevKvWatcherItsPrevKv) {
  MakeHub();
  EXPECT_FALSE(hub_->WantsPrevValues());
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.key = "k"});
  EXPECT_FALSE(hub_->WantsPrevValues());
  const int64_t with_prev = hub_->Watch(s.get(), {.key = "k", .prev_kv = true});
  EXPECT_TRUE(hub_->WantsPrevValues());
  EXPECT_EQ(NextN(s.get(), 2),
            (std::vector<std::string>{"id=0 rev=1 created", "id=1 rev=1 created"}));
  Put("k", "1");  // 2
  std::vector<std::string> got = NextN(s.get(), 2);
  EXPECT_EQ(OfWatch(got, 0), std::vector<std::string>{"id=0 rev=2 [PUT k=1 m2]"});
  EXPECT_EQ(OfWatch(got, 1), std::vector<std::string>{"id=1 rev=2 [PUT k=1 m2]"});
  // Revision 3 as a group without prev values commits it.
  std::unique_ptr<mvcc::WriteGroup> group =
      store_->BeginGroup(mvcc::GroupOptions{.prev_values = false});
  mvcc::WriteTxn txn = group->BeginWrite();
  ASSERT_TRUE(txn.Put("k", "2").ok());
  const std::vector<mvcc::Event> changes = txn.Changes();
  ASSERT_TRUE(changes[0].prev_kv.has_value());
  EXPECT_EQ(changes[0].prev_kv->value, "");
  ASSERT_TRUE(txn.End().ok());
  ASSERT_TRUE(group->End().ok());
  hub_->Notify(changes, 3, /*prev_values=*/false);
  got = NextN(s.get(), 2);
  EXPECT_EQ(OfWatch(got, 0), std::vector<std::string>{"id=0 rev=3 [PUT k=2 m3]"});
  EXPECT_EQ(OfWatch(got, 1), std::vector<std::string>{"id=1 rev=3 [PUT k=2 m3 prev=1@2]"});
  WaitSynced();
  Put("k", "3");  // 4: the watcher is live again
  got = NextN(s.get(), 2);
  EXPECT_EQ(OfWatch(got, 0), std::vector<std::string>{"id=0 rev=4 [PUT k=3 m4]"});
  EXPECT_EQ(OfWatch(got, 1), std::vector<std::string>{"id=1 rev=4 [PUT k=3 m4 prev=2@3]"});
  ASSERT_TRUE(hub_->Cancel(s.get(), with_prev));
  EXPECT_FALSE(hub_->WantsPrevValues());
}

// etcd 3.4 lets one txn delete a key from-key and put it too, so a key can change twice in
// one revision. etcd's watch then sends as prev_kv the key before the revision (it reads it
// at mod_revision - 1), and none with an event that creates the key: live or replayed alike.
TEST_F(WatchHubTest, KeyChangedTwiceInOneRevisionHasPrevKvFromBeforeTheRevision) {
  MakeHub();
  auto live = hub_->OpenStream();
  hub_->Watch(live.get(), {.key = "k", .prev_kv = true});
  EXPECT_EQ(Next(live.get()), "id=0 rev=1 created");
  Put("k", "1");                  // 2
  Commit([](mvcc::WriteTxn& t) {  // 3
    EXPECT_TRUE(t.Put("k", "2").ok());
    EXPECT_TRUE(t.DeleteRange("k", "").ok());
  });
  Put("k", "3");                  // 4
  Commit([](mvcc::WriteTxn& t) {  // 5
    EXPECT_TRUE(t.DeleteRange("k", "").ok());
    EXPECT_TRUE(t.Put("k", "4").ok());
  });
  const std::string at2 = "[PUT k=1 m2]";
  const std::string at3 = "[PUT k=2 m3 prev=1@2] [DEL k m3 prev=1@2]";
  const std::string at4 = "[PUT k=3 m4]";
  const std::string at5 = "[DEL k m5 prev=3@4] [PUT k=4 m5]";
  EXPECT_EQ(NextN(live.get(), 4),
            (std::vector<std::string>{"id=0 rev=2 " + at2, "id=0 rev=3 " + at3, "id=0 rev=4 " + at4,
                                      "id=0 rev=5 " + at5}));

  auto replay = hub_->OpenStream();
  hub_->Watch(replay.get(), {.key = "k", .start_revision = 2, .prev_kv = true});
  EXPECT_EQ(Next(replay.get()), "id=0 rev=5 created");
  EXPECT_EQ(Next(replay.get()), absl::StrCat("id=0 rev=5 ", at2, " ", at3, " ", at4, " ", at5));
}

TEST_F(WatchHubTest, RangesPrefixesAndFromKey) {
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.watch_id = 1, .key = "b", .range_end = "d"});
  hub_->Watch(s.get(), {.watch_id = 2, .key = "c", .range_end = kAll});
  hub_->Watch(s.get(), {.watch_id = 3, .key = "", .range_end = kAll});  // every key
  hub_->Watch(s.get(), {.watch_id = 4, .key = ""});                     // only "\0"
  EXPECT_EQ(NextN(s.get(), 4),
            (std::vector<std::string>{"id=1 rev=1 created", "id=2 rev=1 created",
                                      "id=3 rev=1 created", "id=4 rev=1 created"}));
  Put("a", "1");                   // 2: 3
  Put("b", "1");                   // 3: 1 3
  Put("d", "1");                   // 4: 2 3
  Put(std::string(1, '\0'), "z");  // 5: 3 4
  std::multiset<std::string> got;
  for (int i = 0; i < 7; ++i) got.insert(Next(s.get()));
  EXPECT_EQ(got,
            (std::multiset<std::string>{
                "id=3 rev=2 [PUT a=1 m2]", "id=1 rev=3 [PUT b=1 m3]", "id=3 rev=3 [PUT b=1 m3]",
                "id=2 rev=4 [PUT d=1 m4]", "id=3 rev=4 [PUT d=1 m4]",
                absl::StrCat("id=3 rev=5 [PUT ", std::string(1, '\0'), "=z m5]"),
                absl::StrCat("id=4 rev=5 [PUT ", std::string(1, '\0'), "=z m5]")}));
  ExpectQuiet(s.get());
}

TEST_F(WatchHubTest, Filters) {
  MakeHub();
  Put("k", "0");  // 2
  Delete("k");    // 3
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.watch_id = 1, .key = "k", .start_revision = 2, .no_put = true});
  hub_->Watch(s.get(), {.watch_id = 2, .key = "k", .start_revision = 2, .no_delete = true});
  // Watcher 1 may catch up before watcher 2 is created.
  const std::vector<std::string> replayed = NextN(s.get(), 4);
  EXPECT_EQ(OfWatch(replayed, 1),
            (std::vector<std::string>{"id=1 rev=3 created", "id=1 rev=3 [DEL k m3]"}));
  EXPECT_EQ(OfWatch(replayed, 2),
            (std::vector<std::string>{"id=2 rev=3 created", "id=2 rev=3 [PUT k=0 m2]"}));
  WaitSynced();
  Put("k", "1");  // 4: only watcher 2
  Delete("k");    // 5: only watcher 1
  std::multiset<std::string> got{Next(s.get()), Next(s.get())};
  EXPECT_EQ(got, (std::multiset<std::string>{"id=2 rev=4 [PUT k=1 m4]", "id=1 rev=5 [DEL k m5]"}));
  ExpectQuiet(s.get());
}

TEST_F(WatchHubTest, OneTransactionIsOneUpdate) {
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.key = "t", .range_end = "u"});
  EXPECT_EQ(Next(s.get()), "id=0 rev=1 created");
  Commit([](mvcc::WriteTxn& t) {
    EXPECT_TRUE(t.Put("t1", "a").ok());
    EXPECT_TRUE(t.Put("x", "b").ok());
    EXPECT_TRUE(t.Put("t2", "c").ok());
  });
  EXPECT_EQ(Next(s.get()), "id=0 rev=2 [PUT t1=a m2] [PUT t2=c m2]");
}

TEST_F(WatchHubTest, FutureStartWaits) {
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.key = "f", .start_revision = 4});
  EXPECT_EQ(Next(s.get()), "id=0 rev=1 created");
  Put("f", "1");  // 2
  Put("f", "2");  // 3
  ExpectQuiet(s.get());
  Put("f", "3");  // 4
  EXPECT_EQ(Next(s.get()), "id=0 rev=4 [PUT f=3 m4]");
}

TEST_F(WatchHubTest, IdsDuplicatesAndEmptyRanges) {
  MakeHub();
  auto s = hub_->OpenStream();
  EXPECT_EQ(hub_->Watch(s.get(), {.watch_id = 1, .key = "a"}), 1);
  EXPECT_EQ(hub_->Watch(s.get(), {.key = "a"}), 0);
  EXPECT_EQ(hub_->Watch(s.get(), {.key = "a"}), 2);  // 1 is taken
  EXPECT_EQ(hub_->Watch(s.get(), {.watch_id = 2, .key = "a"}), kNoWatchId);
  EXPECT_EQ(hub_->Watch(s.get(), {.watch_id = -7, .key = "a"}), -7);
  EXPECT_EQ(hub_->Watch(s.get(), {.key = "z", .range_end = "a"}), kNoWatchId);
  EXPECT_EQ(hub_->Watch(s.get(), {.key = "a", .range_end = "a"}), kNoWatchId);
  EXPECT_EQ(NextN(s.get(), 7),
            (std::vector<std::string>{
                "id=1 rev=1 created", "id=0 rev=1 created", "id=2 rev=1 created",
                absl::StrCat("id=-1 rev=1 created canceled reason=", kWatcherDuplicateId),
                "id=-7 rev=1 created",
                absl::StrCat("id=-1 rev=1 created canceled reason=", kWatcherRangeEmpty),
                absl::StrCat("id=-1 rev=1 created canceled reason=", kWatcherRangeEmpty)}));
  // Another stream has ids of its own.
  auto other = hub_->OpenStream();
  EXPECT_EQ(hub_->Watch(other.get(), {.key = "a"}), 0);
  EXPECT_EQ(hub_->watcher_count(), 5u);
}

TEST_F(WatchHubTest, CancelStopsEventsEvenQueuedOnes) {
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.watch_id = 5, .key = "c"});
  hub_->Watch(s.get(), {.watch_id = 6, .key = "c"});
  Put("c", "1");  // 2: queued for both
  EXPECT_TRUE(hub_->Cancel(s.get(), 5));
  EXPECT_FALSE(hub_->Cancel(s.get(), 99));
  Put("c", "2");  // 3: only 6
  std::vector<std::string> got = NextN(s.get(), 5);
  EXPECT_EQ(got, (std::vector<std::string>{"id=5 rev=1 created", "id=6 rev=1 created",
                                           "id=6 rev=2 [PUT c=1 m2]", "id=5 rev=2 canceled",
                                           "id=6 rev=3 [PUT c=2 m3]"}));
  ExpectQuiet(s.get());
  // The id is free again.
  EXPECT_EQ(hub_->Watch(s.get(), {.watch_id = 5, .key = "c"}), 5);
  EXPECT_EQ(hub_->watcher_count(), 2u);
}

TEST_F(WatchHubTest, CompactedStartIsCanceledWithCompactRevision) {
  for (int i = 0; i < 5; ++i) Put("k", absl::StrCat(i), false);  // 2..6
  ASSERT_TRUE(store_->Compact(4).ok());
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.watch_id = 1, .key = "k", .start_revision = 3});
  EXPECT_EQ(NextN(s.get(), 2),
            (std::vector<std::string>{"id=1 rev=6 created", "id=1 rev=0 canceled compact=4"}));
  // As etcd, the id stays taken until the client cancels it.
  EXPECT_EQ(hub_->Watch(s.get(), {.watch_id = 1, .key = "k"}), kNoWatchId);
  EXPECT_EQ(Next(s.get()),
            absl::StrCat("id=-1 rev=6 created canceled reason=", kWatcherDuplicateId));
  EXPECT_TRUE(hub_->Cancel(s.get(), 1));
  EXPECT_EQ(Next(s.get()), "id=1 rev=6 canceled");
  // Negative starts are below any compaction.
  hub_->Watch(s.get(), {.watch_id = 2, .key = "k", .start_revision = -1});
  EXPECT_EQ(NextN(s.get(), 2),
            (std::vector<std::string>{"id=2 rev=6 created", "id=2 rev=0 canceled compact=4"}));
  // The compacted revision itself is still there.
  hub_->Watch(s.get(), {.watch_id = 3, .key = "k", .start_revision = 4});
  EXPECT_EQ(NextN(s.get(), 2),
            (std::vector<std::string>{"id=3 rev=6 created",
                                      "id=3 rev=6 [PUT k=2 m4] [PUT k=3 m5] [PUT k=4 m6]"}));
}

TEST_F(WatchHubTest, SlowStreamFallsBehindAndCatchesUpWithoutLossOrRepeats) {
  MakeHub({.max_pending_per_watcher = 2, .catch_up_events = 7});
  auto slow = hub_->OpenStream();
  auto fast = hub_->OpenStream();
  hub_->Watch(slow.get(), {.key = "s", .range_end = "t", .prev_kv = true});
  hub_->Watch(fast.get(), {.key = "s", .range_end = "t"});
  EXPECT_EQ(Next(slow.get()), "id=0 rev=1 created");
  EXPECT_EQ(Next(fast.get()), "id=0 rev=1 created");
  std::vector<std::string> fast_got;
  const int kWrites = 300;
  for (int i = 0; i < kWrites; ++i) {
    const absl::Time before = absl::Now();
    if (i % 10 == 9) {
      Commit([i](mvcc::WriteTxn& t) {
        EXPECT_TRUE(t.Put(absl::StrCat("s", i % 7), absl::StrCat(i)).ok());
        EXPECT_TRUE(t.Put(absl::StrCat("s", (i + 1) % 7), absl::StrCat(i)).ok());
      });
    } else {
      Put(absl::StrCat("s", i % 7), absl::StrCat(i));
    }
    // Notify never waits for the slow stream.
    EXPECT_LT(absl::Now() - before, absl::Seconds(1));
    fast_got.push_back(Next(fast.get()));
  }
  EXPECT_GT(hub_->unsynced_count(), 0u);
  // Expected: every revision's events, as the store's history has them.
  absl::StatusOr<mvcc::EventsResult> all = store_->Events(2, 0, "s", "t", {.prev_kv = true});
  ASSERT_TRUE(all.ok());
  std::vector<std::string> want;
  for (const mvcc::Event& e : all->events) {
    want.push_back(absl::StrCat("m", e.kv.mod_revision, " ", e.kv.key, "=", e.kv.value,
                                " prev=", e.prev_kv ? e.prev_kv->value : "-"));
  }
  std::vector<std::string> got;
  int64_t last_rev = 0;
  while (got.size() < want.size()) {
    std::optional<WatchUpdate> u = slow->Next(absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(u.has_value()) << "after " << got.size() << " events";
    ASSERT_FALSE(u->events.empty());
    // Revisions whole: an update never ends inside a revision.
    const int64_t first = u->events.front()->kv.mod_revision;
    EXPECT_GT(first, last_rev);
    for (const auto& e : u->events) {
      got.push_back(absl::StrCat("m", e->kv.mod_revision, " ", e->kv.key, "=", e->kv.value,
                                 " prev=", e->prev_kv ? e->prev_kv->value : "-"));
      last_rev = e->kv.mod_revision;
    }
    EXPECT_LE(static_cast<int64_t>(u->events.size()), 8);
    absl::SleepFor(absl::Microseconds(200));
  }
  EXPECT_EQ(got, want);
  ExpectQuiet(slow.get());
  WaitSynced();
  // Back in sync: live events flow again.
  absl::StatusOr<mvcc::RangeResult> before = store_->Range("s0", "");
  ASSERT_TRUE(before.ok() && before->kvs.size() == 1);
  const int64_t rev = Put("s0", "live");
  EXPECT_EQ(Next(slow.get()),
            absl::StrCat("id=0 rev=", rev, " [PUT s0=live m", rev, " prev=", before->kvs[0].value,
                         "@", before->kvs[0].mod_revision, "]"));
  EXPECT_EQ(fast_got.size(), static_cast<size_t>(kWrites));
  EXPECT_EQ(Next(fast.get()), absl::StrCat("id=0 rev=", rev, " [PUT s0=live m", rev, "]"));
}

TEST_F(WatchHubTest, WatcherThatFallsBehindCompactionIsCanceled) {
  MakeHub({.max_pending_per_watcher = 1});
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.watch_id = 9, .key = "k"});
  EXPECT_EQ(Next(s.get()), "id=9 rev=1 created");
  Put("k", "a");  // 2: queued
  Put("k", "b");  // 3: refused; the watcher falls behind at 3
  Put("k", "c");  // 4
  ASSERT_TRUE(store_->Compact(4).ok());
  EXPECT_EQ(NextN(s.get(), 2),
            (std::vector<std::string>{"id=9 rev=2 [PUT k=a m2]", "id=9 rev=0 canceled compact=4"}));
  Put("k", "d");
  ExpectQuiet(s.get());
  EXPECT_EQ(hub_->unsynced_count(), 0u);
}

TEST_F(WatchHubTest, ProgressRequestWaitsForWatchersBehind) {
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->RequestProgress(s.get());  // no watchers: answered at once
  EXPECT_EQ(Next(s.get()), "id=-1 rev=1");
  Put("a", "1", false);
  Put("a", "2", false);
  // A hub that missed revisions catches its watchers up from the history.
  hub_->Watch(s.get(), {.watch_id = 1, .key = "a"});
  EXPECT_EQ(Next(s.get()), "id=1 rev=1 created");
  const int64_t rev = Put("b", "1");  // 4: a gap for the hub
  EXPECT_EQ(rev, 4);
  hub_->RequestProgress(s.get());
  // Shares the pending answer, unless the catch-up (on the hub's own thread) already
  // finished and the first was answered: then it gets its own.
  hub_->RequestProgress(s.get());
  EXPECT_EQ(NextN(s.get(), 2),
            (std::vector<std::string>{"id=1 rev=4 [PUT a=1 m2] [PUT a=2 m3]", "id=-1 rev=4"}));
  const std::string after = Next(s.get(), absl::Milliseconds(150));
  EXPECT_TRUE(after == "timeout" || after == "id=-1 rev=4") << after;
  ExpectQuiet(s.get());
  hub_->RequestProgress(s.get());
  EXPECT_EQ(Next(s.get()), "id=-1 rev=4");
}

TEST_F(WatchHubTest, ProgressRequestDuringCatchUpFollowsItsEvents) {
  for (int i = 0; i < 50; ++i) Put("h", absl::StrCat(i), false);  // 2..51
  MakeHub({.catch_up_events = 5});
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.key = "h", .start_revision = 2});
  hub_->RequestProgress(s.get());
  EXPECT_EQ(Next(s.get()), "id=0 rev=51 created");
  int events = 0;
  for (;;) {
    std::optional<WatchUpdate> u = s->Next(absl::Now() + absl::Seconds(10));
    ASSERT_TRUE(u.has_value());
    if (u->watch_id == kNoWatchId) {
      EXPECT_EQ(u->revision, 51);
      break;
    }
    EXPECT_EQ(u->events.size(), 5u);
    events += static_cast<int>(u->events.size());
  }
  EXPECT_EQ(events, 50);
}

TEST_F(WatchHubTest, PeriodicProgressOnlyForIdleSyncedWatchers) {
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.watch_id = 1, .key = "p", .progress_notify = true});
  hub_->Watch(s.get(), {.watch_id = 2, .key = "p"});
  EXPECT_EQ(NextN(s.get(), 2),
            (std::vector<std::string>{"id=1 rev=1 created", "id=2 rev=1 created"}));
  hub_->NotifyProgress(s.get());
  EXPECT_EQ(Next(s.get()), "id=1 rev=1");
  ExpectQuiet(s.get());
  Put("p", "x");  // 2
  std::multiset<std::string> got{Next(s.get()), Next(s.get())};
  EXPECT_EQ(got,
            (std::multiset<std::string>{"id=1 rev=2 [PUT p=x m2]", "id=2 rev=2 [PUT p=x m2]"}));
  hub_->NotifyProgress(s.get());  // events went out since the last tick: nothing
  ExpectQuiet(s.get());
  Put("q", "y");  // 3
  hub_->NotifyProgress(s.get());
  EXPECT_EQ(Next(s.get()), "id=1 rev=3");
}

TEST_F(WatchHubTest, CloseStreamDropsItsWatchers) {
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.key = "a"});
  hub_->Watch(s.get(), {.key = "", .range_end = kAll});
  Put("a", "1", false);
  hub_->Watch(s.get(), {.key = "a", .start_revision = 1});
  EXPECT_EQ(hub_->watcher_count(), 3u);
  hub_->CloseStream(s.get());
  EXPECT_EQ(hub_->watcher_count(), 0u);
  EXPECT_EQ(hub_->unsynced_count(), 0u);
  EXPECT_TRUE(s->closed());
  EXPECT_FALSE(s->Next(absl::Now() + absl::Milliseconds(10)).has_value());
  Put("a", "2");
  EXPECT_EQ(hub_->Watch(s.get(), {.key = "a"}), kNoWatchId);
}

TEST_F(WatchHubTest, StopClosesStreams) {
  MakeHub();
  auto s = hub_->OpenStream();
  hub_->Watch(s.get(), {.key = "a", .start_revision = 1});
  hub_->Stop();
  EXPECT_TRUE(s->closed());
  EXPECT_FALSE(s->WaitForControlRoom());
  Put("a", "1");  // ignored
  hub_->Stop();
}

// Writers, watchers created at random past revisions, consumers at random speeds: every
// watcher sees exactly its part of the history, in order, once.
TEST_F(WatchHubTest, ConcurrentWritersAndReadersSeeExactlyTheHistory) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(absl::StrCat("seed ", seed));
  std::mt19937 rng(seed);
  MakeHub({.max_pending_per_watcher = 3, .catch_up_events = 4});
  const int kWrites = 400;
  const int kStreams = 4;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    std::mt19937 wrng(seed + 1);
    for (int i = 0; i < kWrites; ++i) {
      const std::string key = absl::StrCat("k", wrng() % 10);
      if (wrng() % 5 == 0) {
        Commit([&](mvcc::WriteTxn& t) { EXPECT_TRUE(t.DeleteRange(key, "").ok()); });
      } else {
        Put(key, absl::StrCat(i));
      }
    }
    done = true;
  });
  struct Watch {
    std::string key, end;
    int64_t start = 0;
    std::vector<std::string> got;
  };
  std::vector<std::vector<Watch>> watches(kStreams);
  std::vector<std::thread> readers;
  for (int i = 0; i < kStreams; ++i) {
    const uint32_t rseed = rng();
    readers.emplace_back([&, i, rseed] {
      std::mt19937 r(rseed);
      auto s = hub_->OpenStream();
      std::map<int64_t, Watch*> by_id;
      watches[i].resize(3);
      for (int w = 0; w < 3; ++w) {
        absl::SleepFor(absl::Milliseconds(r() % 20));
        Watch& watch = watches[i][w];
        watch.key = absl::StrCat("k", r() % 10);
        if (w > 0) watch.end = "l";  // every key from watch.key on
        const int64_t now = store_->CurrentRevision();
        watch.start = 1 + static_cast<int64_t>(r() % now);
        const int64_t id = hub_->Watch(
            s.get(), {.key = watch.key, .range_end = watch.end, .start_revision = watch.start});
        ASSERT_GE(id, 0);
        by_id[id] = &watch;
      }
      int quiet = 0;
      while (quiet < 30) {
        std::optional<WatchUpdate> u = s->Next(absl::Now() + absl::Milliseconds(20));
        if (!u) {
          if (done) ++quiet;
          continue;
        }
        quiet = 0;
        for (const auto& e : u->events) {
          by_id.at(u->watch_id)
              ->got.push_back(absl::StrCat(e->kv.mod_revision, ":", e->kv.key, "=", e->kv.value));
        }
        if (r() % 4 == 0) absl::SleepFor(absl::Microseconds(r() % 3000));
      }
      hub_->CloseStream(s.get());
    });
  }
  writer.join();
  for (std::thread& t : readers) t.join();
  for (const auto& stream : watches) {
    for (const Watch& w : stream) {
      absl::StatusOr<mvcc::EventsResult> all = store_->Events(w.start, 0, w.key, w.end);
      ASSERT_TRUE(all.ok());
      std::vector<std::string> want;
      for (const mvcc::Event& e : all->events) {
        want.push_back(absl::StrCat(e.kv.mod_revision, ":", e.kv.key, "=", e.kv.value));
      }
      EXPECT_EQ(w.got, want) << w.key << " " << w.end << " from " << w.start;
    }
  }
  EXPECT_EQ(hub_->watcher_count(), 0u);
}

}  // namespace
}  // namespace kvstore::server

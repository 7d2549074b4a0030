#include "kvstore/storage/mvcc_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kvstore/storage/key_codec.h"
#include "rocksdb/db.h"

namespace mvcc {

void PrintTo(const KeyValue& kv, std::ostream* os) {
  *os << "{key=\"" << absl::CHexEscape(kv.key) << "\" create=" << kv.create_revision
      << " mod=" << kv.mod_revision << " ver=" << kv.version << " value=\""
      << absl::CHexEscape(kv.value) << "\" lease=" << kv.lease << "}";
}

void PrintTo(const Event& ev, std::ostream* os) {
  *os << (ev.type == Event::Type::kPut ? "PUT " : "DELETE ");
  PrintTo(ev.kv, os);
  if (ev.prev_kv) {
    *os << " prev=";
    PrintTo(*ev.prev_kv, os);
  }
}

namespace {

#define ASSERT_OK(expr)                   \
  do {                                    \
    const absl::Status status_ = (expr);  \
    ASSERT_TRUE(status_.ok()) << status_; \
  } while (0)

const std::string kAll("\0", 1);

// etcd's reading of (key, range_end), independently of the store's own.
bool InRange(std::string_view key, std::string_view range_end, std::string_view k) {
  if (range_end.empty()) return k == key;
  if (range_end == kAll) return k >= key;
  return k >= key && k < range_end;
}

// A fresh directory under the test temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = testing::TempDir() + "mvcc_store_test.XXXXXX";
    const char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One entry of the history key space, as read from RocksDB directly.
struct RawHistoryEntry {
  std::string key;
  Revision rev;
  ChangeKind kind;

  friend bool operator==(const RawHistoryEntry&, const RawHistoryEntry&) = default;
};

std::ostream& operator<<(std::ostream& os, const RawHistoryEntry& e) {
  return os << "\"" << absl::CHexEscape(e.key) << "\"@" << e.rev.main << "." << e.rev.sub
            << (e.kind == ChangeKind::kPut ? "p" : "d");
}

struct RawLayout {
  std::vector<RawHistoryEntry> history;
  std::vector<Revision> revision_index;
};

// Reads the history and revision-index key spaces of a closed store.
RawLayout ReadRawLayout(const std::string& dir) {
  RawLayout out;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), dir, &raw);
  EXPECT_TRUE(s.ok()) << s.ToString();
  if (!s.ok()) return out;
  std::unique_ptr<rocksdb::DB> db(raw);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string k = it->key().ToString();
    if (k[0] == kHistoryPrefix) {
      RawHistoryEntry e;
      EXPECT_TRUE(ParseHistoryKey(k, &e.key, &e.rev));
      e.kind = static_cast<ChangeKind>(it->value()[0]);
      out.history.push_back(e);
    } else if (k[0] == kRevisionPrefix) {
      Revision r;
      EXPECT_TRUE(ParseRevisionKey(k, &r));
      out.revision_index.push_back(r);
    }
  }
  return out;
}

class MvccStoreTest : public testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  std::string DbDir() const { return dir_.path() + "/db"; }

  void Reopen(const MvccStoreOptions& options = {}) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<MvccStore>> opened = MvccStore::Open(DbDir(), options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
  }

  void Close() { store_.reset(); }

  // One write transaction with one put; returns the new revision.
  int64_t Put(std::string_view key, std::string_view value, int64_t lease = kNoLease) {
    WriteTxn txn = store_->BeginWrite();
    EXPECT_TRUE(txn.Put(key, value, lease).ok());
    EXPECT_TRUE(txn.End().ok());
    return store_->CurrentRevision();
  }

  std::vector<KeyValue> Delete(std::string_view key, std::string_view range_end = "") {
    WriteTxn txn = store_->BeginWrite();
    absl::StatusOr<std::vector<KeyValue>> deleted = txn.DeleteRange(key, range_end);
    EXPECT_TRUE(deleted.ok()) << deleted.status();
    EXPECT_TRUE(txn.End().ok());
    return deleted.ok() ? *deleted : std::vector<KeyValue>{};
  }

  RangeResult Get(std::string_view key, std::string_view range_end = "", int64_t rev = 0) {
    absl::StatusOr<RangeResult> r = store_->Range(key, range_end, RangeOptions{.revision = rev});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : RangeResult{};
  }

  // A thread that writes b=1 in a lone transaction, setting *began once it has the writer.
  std::thread PutBFromAnotherThread(std::atomic<bool>* began) {
    return std::thread([this, began] {
      WriteTxn txn = store_->BeginWrite();
      *began = true;
      EXPECT_TRUE(txn.Put("b", "1").ok());
      EXPECT_TRUE(txn.End().ok());
    });
  }

  std::vector<std::string> Keys(const RangeResult& r) {
    std::vector<std::string> keys;
    for (const KeyValue& kv : r.kvs) keys.push_back(kv.key);
    return keys;
  }

  std::vector<Event> EventsFrom(int64_t start, std::string_view key = "",
                                std::string_view range_end = kAll, bool prev_kv = false) {
    absl::StatusOr<EventsResult> r =
        store_->Events(start, 0, key, range_end, EventsOptions{.prev_kv = prev_kv});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->events : std::vector<Event>{};
  }

  TempDir dir_;
  std::unique_ptr<MvccStore> store_;
};

KeyValue Kv(std::string key, std::string value, int64_t create, int64_t mod, int64_t version,
            int64_t lease = kNoLease) {
  return KeyValue{.key = std::move(key),
                  .create_revision = create,
                  .mod_revision = mod,
                  .version = version,
                  .value = std::move(value),
                  .lease = lease};
}

// --- Revisions and versions --------------------------------------------------------------

TEST_F(MvccStoreTest, NewStoreIsAtRevisionOne) {
  EXPECT_EQ(store_->CurrentRevision(), 1);
  EXPECT_EQ(store_->CompactedRevision(), 0);
  EXPECT_EQ(store_->AppliedIndex(), 0u);
  RangeResult r = Get("", kAll);
  EXPECT_TRUE(r.kvs.empty());
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.revision, 1);
}

TEST_F(MvccStoreTest, PutsAdvanceRevisionAndVersion) {
  EXPECT_EQ(Put("a", "1"), 2);
  EXPECT_EQ(Get("a").kvs, std::vector<KeyValue>{Kv("a", "1", 2, 2, 1)});
  EXPECT_EQ(Put("a", "2"), 3);
  EXPECT_EQ(Get("a").kvs, std::vector<KeyValue>{Kv("a", "2", 2, 3, 2)});
  EXPECT_EQ(Put("b", "x"), 4);
  EXPECT_EQ(Get("b").kvs, std::vector<KeyValue>{Kv("b", "x", 4, 4, 1)});
  EXPECT_EQ(Get("a").revision, 4);
}

TEST_F(MvccStoreTest, PutReturnsThePreviousKeyValue) {
  WriteTxn first = store_->BeginWrite();
  absl::StatusOr<std::optional<KeyValue>> prev = first.Put("a", "1", 7);
  ASSERT_TRUE(prev.ok());
  EXPECT_FALSE(prev->has_value());
  ASSERT_OK(first.End());

  WriteTxn second = store_->BeginWrite();
  prev = second.Put("a", "2");
  ASSERT_TRUE(prev.ok());
  EXPECT_EQ(*prev, Kv("a", "1", 2, 2, 1, 7));
  ASSERT_OK(second.End());
}

// --- Transactions ------------------------------------------------------------------------

TEST_F(MvccStoreTest, TxnIsOneRevisionForAllItsChanges) {
  Put("c", "old");  // rev 2
  WriteTxn txn = store_->BeginWrite();
  ASSERT_TRUE(txn.Put("a", "1").ok());
  ASSERT_TRUE(txn.Put("b", "2").ok());
  absl::StatusOr<std::vector<KeyValue>> deleted = txn.DeleteRange("c", "");
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->size(), 1u);
  EXPECT_EQ(txn.Revision(), 3);
  ASSERT_EQ(txn.Changes().size(), 3u);
  EXPECT_EQ(txn.Changes()[2].type, Event::Type::kDelete);
  EXPECT_EQ(txn.Changes()[2].prev_kv, Kv("c", "old", 2, 2, 1));
  ASSERT_OK(txn.End());

  EXPECT_EQ(store_->CurrentRevision(), 3);
  RangeResult all = Get("", kAll);
  EXPECT_EQ(all.kvs, (std::vector<KeyValue>{Kv("a", "1", 3, 3, 1), Kv("b", "2", 3, 3, 1)}));
  // The events of one revision keep the transaction's order (sub revisions).
  std::vector<Event> events = EventsFrom(3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv.key, "a");
  EXPECT_EQ(events[1].kv.key, "b");
  EXPECT_EQ(events[2].kv.key, "c");
  EXPECT_EQ(events[2].type, Event::Type::kDelete);
}

TEST_F(MvccStoreTest, TxnReadsItsOwnWrites) {
  Put("a", "1");  // rev 2
  Put("b", "1");  // rev 3
  WriteTxn txn = store_->BeginWrite();
  // Before changing anything the txn reads at the store's revision.
  absl::StatusOr<RangeResult> r = txn.Range("", kAll);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 3);
  EXPECT_EQ(r->count, 2);

  ASSERT_TRUE(txn.Put("a", "2").ok());
  ASSERT_TRUE(txn.Put("c", "1").ok());
  r = txn.Range("", kAll);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revision, 4);
  EXPECT_EQ(r->kvs, (std::vector<KeyValue>{Kv("a", "2", 2, 4, 2), Kv("b", "1", 3, 3, 1),
                                           Kv("c", "1", 4, 4, 1)}));
  // A second put in the same txn sees the first (etcd's API forbids it, the MVCC layer not).
  absl::StatusOr<std::optional<KeyValue>> prev = txn.Put("c", "2");
  ASSERT_TRUE(prev.ok());
  EXPECT_EQ(*prev, Kv("c", "1", 4, 4, 1));
  // The revision the txn started at is still readable without its writes.
  r = txn.Range("", kAll, RangeOptions{.revision = 3});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Keys(*r), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r->kvs[0].value, "1");
  r = txn.Range("", kAll, RangeOptions{.revision = 2});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Keys(*r), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(IsFutureRevisionError(txn.Range("a", "", RangeOptions{.revision = 5}).status()));

  // Deletes see the txn's puts, and later reads see the deletes.
  absl::StatusOr<std::vector<KeyValue>> deleted = txn.DeleteRange("b", kAll);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(Keys(RangeResult{.kvs = *deleted}), (std::vector<std::string>{"b", "c"}));
  r = txn.Range("", kAll);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(Keys(*r), (std::vector<std::string>{"a"}));
  r = txn.Range("c", "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->count, 0);

  // Readers outside do not see an uncommitted txn.
  EXPECT_EQ(Get("", kAll).count, 2);
  ASSERT_OK(txn.End());
  EXPECT_EQ(Keys(Get("", kAll)), (std::vector<std::string>{"a"}));
  EXPECT_EQ(store_->CurrentRevision(), 4);
}

TEST_F(MvccStoreTest, EmptyDeleteMakesNoRevision) {
  Put("a", "1");  // rev 2
  EXPECT_TRUE(Delete("zzz").empty());
  EXPECT_TRUE(Delete("b", "c").empty());
  EXPECT_EQ(store_->CurrentRevision(), 2);
  EXPECT_TRUE(EventsFrom(3).empty());

  // In a txn, an empty delete after a put takes no sub revision either.
  WriteTxn txn = store_->BeginWrite();
  ASSERT_TRUE(txn.DeleteRange("nothing", "").ok());
  EXPECT_EQ(txn.Revision(), 2);
  ASSERT_TRUE(txn.Put("b", "1").ok());
  ASSERT_TRUE(txn.DeleteRange("nothing", "").ok());
  EXPECT_EQ(txn.Changes().size(), 1u);
  ASSERT_OK(txn.End());
  EXPECT_EQ(store_->CurrentRevision(), 3);
  // And nothing survives a reopen that was never there.
  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), 3);
}

TEST_F(MvccStoreTest, AbandonedTxnChangesNothing) {
  Put("a", "1");
  {
    WriteTxn txn = store_->BeginWrite();
    ASSERT_TRUE(txn.Put("a", "2").ok());
    ASSERT_TRUE(txn.DeleteRange("a", "").ok());
  }
  EXPECT_EQ(store_->CurrentRevision(), 2);
  EXPECT_EQ(Get("a").kvs, std::vector<KeyValue>{Kv("a", "1", 2, 2, 1)});
  // The writer slot is free again.
  EXPECT_EQ(Put("a", "3"), 3);
}

TEST_F(MvccStoreTest, OnlyOneWriteTxnAtATime) {
  WriteTxn txn = store_->BeginWrite();
  std::atomic<bool> second_began{false};
  std::thread other = PutBFromAnotherThread(&second_began);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(second_began);
  ASSERT_TRUE(txn.Put("a", "1").ok());
  ASSERT_OK(txn.End());
  other.join();
  EXPECT_TRUE(second_began);
  EXPECT_EQ(store_->CurrentRevision(), 3);
  EXPECT_EQ(Get("b").kvs[0].mod_revision, 3);
}

// --- Write groups ------------------------------------------------------------------------

TEST_F(MvccStoreTest, GroupCommitsItsTransactionsTogether) {
  Put("a", "0");  // revision 2
  std::unique_ptr<WriteGroup> group = store_->BeginGroup();
  {
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.Put("a", "1").ok());
    t.SetAppliedIndex(7);
    ASSERT_OK(t.End());
    EXPECT_EQ(t.Revision(), 3);
  }
  {
    // The next transaction reads the first and builds on it.
    WriteTxn t = group->BeginWrite();
    absl::StatusOr<std::optional<KeyValue>> prev = t.Put("a", "2");
    ASSERT_TRUE(prev.ok());
    EXPECT_EQ(*prev, Kv("a", "1", 2, 3, 2));
    ASSERT_TRUE(t.Put("b", "1").ok());
    ASSERT_OK(t.End());
    EXPECT_EQ(t.Revision(), 4);
  }
  EXPECT_EQ(group->Revision(), 4);
  // Readers see nothing of the group yet.
  EXPECT_EQ(store_->CurrentRevision(), 2);
  EXPECT_EQ(Get("a").kvs, std::vector<KeyValue>{Kv("a", "0", 2, 2, 1)});
  EXPECT_TRUE(Get("b").kvs.empty());
  EXPECT_EQ(store_->AppliedIndex(), 0u);
  group->SetAppliedIndex(8);
  ASSERT_OK(group->End());

  EXPECT_EQ(store_->CurrentRevision(), 4);
  EXPECT_EQ(store_->AppliedIndex(), 8u);
  EXPECT_EQ(Get("a", "", 3).kvs, std::vector<KeyValue>{Kv("a", "1", 2, 3, 2)});
  EXPECT_EQ(Get("a").kvs, std::vector<KeyValue>{Kv("a", "2", 2, 4, 3)});
  std::vector<Event> events = EventsFrom(3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].kv, Kv("a", "1", 2, 3, 2));
  EXPECT_EQ(events[2].kv, Kv("b", "1", 4, 4, 1));
  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), 4);
  EXPECT_EQ(store_->AppliedIndex(), 8u);
}

TEST_F(MvccStoreTest, GroupTransactionsReadEarlierRevisionsOfTheGroup) {
  Put("a", "0");  // revision 2
  std::unique_ptr<WriteGroup> group = store_->BeginGroup();
  for (const char* v : {"1", "2"}) {  // revisions 3 and 4
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.Put("a", v).ok());
    ASSERT_OK(t.End());
  }
  {
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.DeleteRange("a", "").ok());  // revision 5
    for (int64_t rev = 2; rev <= 5; ++rev) {
      absl::StatusOr<RangeResult> one = t.Range("a", "", RangeOptions{.revision = rev});
      ASSERT_TRUE(one.ok()) << one.status();
      absl::StatusOr<RangeResult> all = t.Range("", kAll, RangeOptions{.revision = rev});
      ASSERT_TRUE(all.ok()) << all.status();
      EXPECT_EQ(one->revision, 5);
      if (rev == 5) {
        EXPECT_EQ(one->count, 0);
        EXPECT_EQ(all->count, 0);
        continue;
      }
      const std::vector<KeyValue> want = {Kv("a", std::to_string(rev - 2), 2, rev, rev - 1)};
      EXPECT_EQ(one->kvs, want) << "at " << rev;
      EXPECT_EQ(all->kvs, want) << "at " << rev;
    }
    EXPECT_TRUE(absl::IsOutOfRange(t.Range("a", "", RangeOptions{.revision = 6}).status()));
    ASSERT_OK(t.End());
  }
  ASSERT_OK(group->End());
  EXPECT_EQ(store_->CurrentRevision(), 5);
}

TEST_F(MvccStoreTest, DroppedGroupTransactionLeavesTheGroupAsItWas) {
  std::unique_ptr<WriteGroup> group = store_->BeginGroup();
  {
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.Put("a", "1").ok());
    ASSERT_OK(t.End());
  }
  {
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.Put("a", "dropped").ok());
    ASSERT_TRUE(t.Put("b", "dropped").ok());
    ASSERT_TRUE(t.PutLease(5, 10).ok());
    t.SetAppliedIndex(99);
    // The group cannot end while one of its transactions is open.
    EXPECT_TRUE(absl::IsFailedPrecondition(group->End()));
  }
  {
    WriteTxn t = group->BeginWrite();
    EXPECT_EQ(t.Revision(), 2);
    absl::StatusOr<std::optional<KeyValue>> prev = t.Put("c", "1");
    ASSERT_TRUE(prev.ok());
    ASSERT_OK(t.End());
    EXPECT_EQ(t.Revision(), 3);
  }
  ASSERT_OK(group->End());
  EXPECT_EQ(Keys(Get("", kAll)), (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(Get("a").kvs[0].value, "1");
  EXPECT_EQ(store_->AppliedIndex(), 0u);
  absl::StatusOr<std::vector<LeaseRecord>> leases = store_->Leases();
  ASSERT_TRUE(leases.ok());
  EXPECT_TRUE(leases->empty());
  EXPECT_TRUE(absl::IsFailedPrecondition(group->End()));
}

// A group's batch is indexed for reads only when a read needs it: here in the middle of
// a transaction that is then dropped, which must still take back exactly its own changes.
TEST_F(MvccStoreTest, TransactionDroppedAfterReadingTheGroupLeavesTheGroupAsItWas) {
  Put("a", "0");  // revision 2
  Put("y", "0");  // revision 3
  std::unique_ptr<WriteGroup> group = store_->BeginGroup(GroupOptions{.prev_values = true});
  {
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.Put("a", "1").ok());  // revision 4
    ASSERT_TRUE(t.Put("z", "1").ok());
    ASSERT_OK(t.End());
  }
  {
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.Put("b", "dropped").ok());
    absl::StatusOr<RangeResult> a = t.Range("a", "", RangeOptions{});
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_EQ(a->kvs.size(), 1u);
    EXPECT_EQ(a->kvs[0].value, "1");
    absl::StatusOr<std::optional<KeyValue>> prev = t.Put("a", "dropped");
    ASSERT_TRUE(prev.ok() && prev->has_value());
    EXPECT_EQ((*prev)->value, "1");
    absl::StatusOr<RangeResult> all = t.Range("", kAll, RangeOptions{});
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_EQ(Keys(*all), (std::vector<std::string>{"a", "b", "y", "z"}));
  }
  {
    WriteTxn t = group->BeginWrite();
    absl::StatusOr<RangeResult> all = t.Range("", kAll, RangeOptions{});
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_EQ(Keys(*all), (std::vector<std::string>{"a", "y", "z"}));
    absl::StatusOr<std::optional<KeyValue>> prev = t.Put("a", "2");  // revision 5
    ASSERT_TRUE(prev.ok() && prev->has_value());
    EXPECT_EQ((*prev)->value, "1");
    EXPECT_EQ((*prev)->mod_revision, 4);
    ASSERT_OK(t.End());
  }
  {
    // A key the group never changed: its replaced value comes from the snapshot alone.
    WriteTxn t = group->BeginWrite();
    absl::StatusOr<std::optional<KeyValue>> prev = t.Put("y", "1");  // revision 6
    ASSERT_TRUE(prev.ok() && prev->has_value());
    EXPECT_EQ(**prev, Kv("y", "0", 3, 3, 1));
    ASSERT_OK(t.End());
  }
  ASSERT_OK(group->End());
  EXPECT_EQ(store_->CurrentRevision(), 6);
  EXPECT_EQ(Keys(Get("", kAll)), (std::vector<std::string>{"a", "y", "z"}));
  EXPECT_EQ(Get("a").kvs[0], Kv("a", "2", 2, 5, 3));
}

TEST_F(MvccStoreTest, DestroyedGroupDiscardsEverythingAndFreesTheWriter) {
  {
    std::unique_ptr<WriteGroup> group = store_->BeginGroup();
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.Put("a", "1").ok());
    ASSERT_OK(t.End());
    group->SetAppliedIndex(3);
  }
  EXPECT_EQ(store_->CurrentRevision(), 1);
  EXPECT_EQ(store_->AppliedIndex(), 0u);
  EXPECT_EQ(Put("b", "1"), 2);
  EXPECT_TRUE(Get("a").kvs.empty());
}

TEST_F(MvccStoreTest, GroupHoldsTheWriterSlotUntilItEnds) {
  std::unique_ptr<WriteGroup> group = store_->BeginGroup();
  std::atomic<bool> lone_began{false};
  std::thread other = PutBFromAnotherThread(&lone_began);
  {
    WriteTxn t = group->BeginWrite();
    ASSERT_TRUE(t.Put("a", "1").ok());
    ASSERT_OK(t.End());
  }
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(lone_began);
  ASSERT_OK(group->End());
  other.join();
  EXPECT_EQ(Get("b").kvs[0].mod_revision, 3);
}

// --- Tombstones --------------------------------------------------------------------------

TEST_F(MvccStoreTest, TombstonesAndRecreation) {
  Put("a", "1", 5);                             // rev 2
  Put("a", "2", 5);                             // rev 3
  std::vector<KeyValue> deleted = Delete("a");  // rev 4
  EXPECT_EQ(deleted, std::vector<KeyValue>{Kv("a", "2", 2, 3, 2, 5)});
  EXPECT_EQ(store_->CurrentRevision(), 4);
  EXPECT_EQ(Get("a").count, 0);
  // Deleting again matches nothing and makes no revision.
  EXPECT_TRUE(Delete("a").empty());
  EXPECT_EQ(store_->CurrentRevision(), 4);

  Put("a", "3");  // rev 5: a new generation
  EXPECT_EQ(Get("a").kvs, std::vector<KeyValue>{Kv("a", "3", 5, 5, 1)});
  // History keeps every generation.
  EXPECT_EQ(Get("a", "", 3).kvs, std::vector<KeyValue>{Kv("a", "2", 2, 3, 2, 5)});
  EXPECT_EQ(Get("a", "", 4).count, 0);
  EXPECT_EQ(Get("a", "", 1).count, 0);

  std::vector<Event> events = EventsFrom(2);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[2].type, Event::Type::kDelete);
  EXPECT_EQ(events[2].kv, (KeyValue{.key = "a", .mod_revision = 4}));
  EXPECT_EQ(events[3].kv, Kv("a", "3", 5, 5, 1));
}

// --- Range -------------------------------------------------------------------------------

TEST_F(MvccStoreTest, RangeEndForms) {
  for (const char* k : {"a", "ab", "b", "c"}) Put(k, "v");
  // Empty range_end: the key alone.
  EXPECT_EQ(Keys(Get("a")), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Keys(Get("aa")), (std::vector<std::string>{}));
  // [key, range_end): a prefix is [p, p with its last byte + 1).
  EXPECT_EQ(Keys(Get("a", "b")), (std::vector<std::string>{"a", "ab"}));
  EXPECT_EQ(Keys(Get("ab", "c")), (std::vector<std::string>{"ab", "b"}));
  // "\0": every key >= key.
  EXPECT_EQ(Keys(Get("b", kAll)), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Keys(Get(kAll, kAll)), (std::vector<std::string>{"a", "ab", "b", "c"}));
  EXPECT_EQ(Keys(Get("", kAll)), (std::vector<std::string>{"a", "ab", "b", "c"}));
  // range_end <= key: nothing.
  EXPECT_EQ(Get("b", "a").count, 0);
  EXPECT_EQ(Get("b", "b").count, 0);

  // The same forms at an old revision, read from the history.
  const int64_t rev = store_->CurrentRevision();
  Put("zz", "later");
  EXPECT_EQ(Keys(Get("a", "", rev)), (std::vector<std::string>{"a"}));
  EXPECT_EQ(Keys(Get("a", "b", rev)), (std::vector<std::string>{"a", "ab"}));
  EXPECT_EQ(Keys(Get("b", kAll, rev)), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Get("b", "a", rev).count, 0);
}

TEST_F(MvccStoreTest, LimitCountAndKeysOnly) {
  for (const char* k : {"k1", "k2", "k3", "k4", "k5"}) Put(k, std::string("value-") + k);
  const int64_t rev = store_->CurrentRevision();
  Put("k6", "later");
  Delete("k1");
  for (int64_t at : {int64_t{0}, rev}) {
    SCOPED_TRACE(at);
    const int64_t total = at == 0 ? 5 : 5;  // k2..k6 now, k1..k5 then
    absl::StatusOr<RangeResult> r =
        store_->Range("k", "l", RangeOptions{.revision = at, .limit = 2});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->kvs.size(), 2u);
    EXPECT_EQ(r->count, total);
    EXPECT_EQ(r->revision, store_->CurrentRevision());
    EXPECT_EQ(r->kvs[0].key, at == 0 ? "k2" : "k1");

    r = store_->Range("k", "l", RangeOptions{.revision = at, .count_only = true});
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->kvs.empty());
    EXPECT_EQ(r->count, total);

    r = store_->Range("k", "l", RangeOptions{.revision = at, .keys_only = true});
    ASSERT_TRUE(r.ok());
    ASSERT_EQ(r->kvs.size(), 5u);
    for (const KeyValue& kv : r->kvs) {
      EXPECT_EQ(kv.value, "");
      EXPECT_GT(kv.mod_revision, 0);
      EXPECT_EQ(kv.version, 1);
    }
    // A limit larger than the range is no limit.
    r = store_->Range("k", "l", RangeOptions{.revision = at, .limit = 100});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->kvs.size(), 5u);
  }
  // count_only and limit on a single key.
  absl::StatusOr<RangeResult> one = store_->Range("k2", "", RangeOptions{.count_only = true});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->count, 1);
  EXPECT_TRUE(one->kvs.empty());
}

TEST_F(MvccStoreTest, ReadsAtOldRevisions) {
  Put("a", "a1");  // 2
  Put("b", "b1");  // 3
  Put("a", "a2");  // 4
  Delete("b");     // 5
  Put("c", "c1");  // 6
  Put("a", "a3");  // 7
  Put("b", "b2");  // 8
  EXPECT_EQ(Get("", kAll, 1).count, 0);
  EXPECT_EQ(Get("", kAll, 2).kvs, (std::vector<KeyValue>{Kv("a", "a1", 2, 2, 1)}));
  EXPECT_EQ(Get("", kAll, 3).kvs,
            (std::vector<KeyValue>{Kv("a", "a1", 2, 2, 1), Kv("b", "b1", 3, 3, 1)}));
  EXPECT_EQ(Get("", kAll, 5).kvs, (std::vector<KeyValue>{Kv("a", "a2", 2, 4, 2)}));
  EXPECT_EQ(Get("", kAll, 7).kvs,
            (std::vector<KeyValue>{Kv("a", "a3", 2, 7, 3), Kv("c", "c1", 6, 6, 1)}));
  EXPECT_EQ(Get("", kAll, 8).kvs, Get("", kAll, 0).kvs);
  EXPECT_EQ(Get("a", "", 6).kvs, (std::vector<KeyValue>{Kv("a", "a2", 2, 4, 2)}));
  EXPECT_EQ(Get("b", "", 7).count, 0);
  // The response revision is the store's, not the one read.
  EXPECT_EQ(Get("a", "", 3).revision, 8);
}

TEST_F(MvccStoreTest, FutureAndCompactedErrors) {
  for (int i = 0; i < 5; ++i) Put("k", absl::StrCat(i));  // revs 2..6
  absl::StatusOr<RangeResult> r = store_->Range("k", "", RangeOptions{.revision = 7});
  EXPECT_TRUE(IsFutureRevisionError(r.status())) << r.status();
  EXPECT_FALSE(IsCompactedError(r.status()));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(r.status().message(), "mvcc: required revision is a future revision");

  ASSERT_OK(store_->Compact(4));
  EXPECT_EQ(store_->CompactedRevision(), 4);
  r = store_->Range("k", "", RangeOptions{.revision = 3});
  EXPECT_TRUE(IsCompactedError(r.status())) << r.status();
  EXPECT_FALSE(IsFutureRevisionError(r.status()));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(r.status().message(), "mvcc: required revision has been compacted");
  // The compacted revision itself is still readable, as in etcd.
  EXPECT_EQ(Get("k", "", 4).kvs[0].value, "2");

  EXPECT_TRUE(IsCompactedError(store_->Events(3, 0, "k", "").status()));
  EXPECT_TRUE(store_->Events(4, 0, "k", "").ok());
  EXPECT_TRUE(IsCompactedError(store_->HashKV(4).status()));
  EXPECT_TRUE(store_->HashKV(5).ok());
  EXPECT_TRUE(IsFutureRevisionError(store_->HashKV(7).status()));
  EXPECT_TRUE(IsCompactedError(store_->Compact(4)));
  EXPECT_TRUE(IsCompactedError(store_->Compact(2)));
  EXPECT_TRUE(IsFutureRevisionError(store_->Compact(7)));

  WriteTxn txn = store_->BeginWrite();
  EXPECT_TRUE(IsCompactedError(txn.Range("k", "", RangeOptions{.revision = 2}).status()));
  EXPECT_TRUE(IsFutureRevisionError(txn.Range("k", "", RangeOptions{.revision = 7}).status()));
  ASSERT_OK(txn.End());

  // Other errors are neither.
  EXPECT_FALSE(
      IsCompactedError(absl::OutOfRangeError("mvcc: required revision has been compacted")));
  EXPECT_FALSE(IsFutureRevisionError(absl::OkStatus()));
}

// --- Events ------------------------------------------------------------------------------

TEST_F(MvccStoreTest, EventsInRevisionOrderWithPrevKv) {
  Put("a", "a1");  // 2
  Put("b", "b1");  // 3
  Put("a", "a2");  // 4
  Delete("a");     // 5
  {
    WriteTxn txn = store_->BeginWrite();  // 6
    ASSERT_TRUE(txn.Put("c", "c1").ok());
    ASSERT_TRUE(txn.Put("b", "b2").ok());
    ASSERT_OK(txn.End());
  }
  Put("a", "a3");  // 7

  std::vector<Event> all = EventsFrom(1, "", kAll, /*prev_kv=*/true);
  ASSERT_EQ(all.size(), 7u);
  std::vector<int64_t> revs;
  for (const Event& e : all) revs.push_back(e.kv.mod_revision);
  EXPECT_EQ(revs, (std::vector<int64_t>{2, 3, 4, 5, 6, 6, 7}));

  std::vector<Event> a = EventsFrom(2, "a", "", /*prev_kv=*/true);
  ASSERT_EQ(a.size(), 4u);
  EXPECT_EQ(a[0], (Event{Event::Type::kPut, Kv("a", "a1", 2, 2, 1), std::nullopt}));
  EXPECT_EQ(a[1], (Event{Event::Type::kPut, Kv("a", "a2", 2, 4, 2), Kv("a", "a1", 2, 2, 1)}));
  // A DELETE event carries the key and the delete's revision only; prev_kv is the last value.
  EXPECT_EQ(a[2], (Event{Event::Type::kDelete, KeyValue{.key = "a", .mod_revision = 5},
                         Kv("a", "a2", 2, 4, 2)}));
  EXPECT_EQ(a[3], (Event{Event::Type::kPut, Kv("a", "a3", 7, 7, 1), std::nullopt}));

  // Without prev_kv none is filled; a range filter and an exclusive end.
  absl::StatusOr<EventsResult> r = store_->Events(3, 7, "b", "d");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->events.size(), 3u);
  EXPECT_EQ(r->events[0].kv, Kv("b", "b1", 3, 3, 1));
  EXPECT_EQ(r->events[1].kv, Kv("c", "c1", 6, 6, 1));
  EXPECT_EQ(r->events[2].kv, Kv("b", "b2", 3, 6, 2));
  EXPECT_FALSE(r->events[2].prev_kv.has_value());
  EXPECT_EQ(r->next_revision, 7);

  // The store's own record of a txn's changes equals what Events replays.
  WriteTxn txn = store_->BeginWrite();
  ASSERT_TRUE(txn.Put("b", "b3").ok());
  ASSERT_TRUE(txn.DeleteRange("c", "").ok());
  const std::vector<Event> changes = txn.Changes();
  ASSERT_OK(txn.End());
  EXPECT_EQ(EventsFrom(8, "", kAll, /*prev_kv=*/true), changes);

  // A start in the future is not an error: there is nothing yet.
  r = store_->Events(100, 0, "", kAll);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->events.empty());
  EXPECT_EQ(r->next_revision, 100);
}

TEST_F(MvccStoreTest, EventsLimitStopsAtARevisionBoundary) {
  Put("a", "1");  // 2
  {
    WriteTxn txn = store_->BeginWrite();  // 3
    ASSERT_TRUE(txn.Put("b", "1").ok());
    ASSERT_TRUE(txn.Put("c", "1").ok());
    ASSERT_TRUE(txn.Put("d", "1").ok());
    ASSERT_OK(txn.End());
  }
  Put("e", "1");  // 4
  absl::StatusOr<EventsResult> r = store_->Events(2, 0, "", kAll, EventsOptions{.limit = 2});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->events.size(), 4u);  // revision 3 is not split
  EXPECT_EQ(r->next_revision, 4);
  r = store_->Events(r->next_revision, 0, "", kAll, EventsOptions{.limit = 2});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->events.size(), 1u);
  EXPECT_EQ(r->events[0].kv.key, "e");
  EXPECT_EQ(r->next_revision, 5);
}

// --- Compaction --------------------------------------------------------------------------

TEST_F(MvccStoreTest, CompactionKeepsNewestVersionAtOrBelowRevision) {
  Put("a", "a1");  // 2
  Put("a", "a2");  // 3
  Put("b", "b1");  // 4
  Put("a", "a3");  // 5
  Put("b", "b2");  // 6
  Put("c", "c1");  // 7
  Put("a", "a4");  // 8
  std::map<int64_t, RangeResult> before;
  for (int64_t rev = 5; rev <= 8; ++rev) before[rev] = Get("", kAll, rev);

  ASSERT_OK(store_->Compact(5));
  EXPECT_FALSE(store_->CompactionPending());
  for (int64_t rev = 5; rev <= 8; ++rev) {
    EXPECT_EQ(Get("", kAll, rev).kvs, before[rev].kvs) << rev;
  }
  Close();
  RawLayout raw = ReadRawLayout(DbDir());
  // a keeps a3 (newest <= 5) and a4; b keeps b1 (newest <= 5) and b2; c keeps c1.
  EXPECT_EQ(raw.history, (std::vector<RawHistoryEntry>{
                             {"a", {5, 0}, ChangeKind::kPut},
                             {"a", {8, 0}, ChangeKind::kPut},
                             {"b", {4, 0}, ChangeKind::kPut},
                             {"b", {6, 0}, ChangeKind::kPut},
                             {"c", {7, 0}, ChangeKind::kPut},
                         }));
  EXPECT_EQ(raw.revision_index, (std::vector<Revision>{{4, 0}, {5, 0}, {6, 0}, {7, 0}, {8, 0}}));
}

TEST_F(MvccStoreTest, CompactionDropsTombstonesAtOrBelowRevision) {
  Put("a", "a1");  // 2
  Delete("a");     // 3
  Put("b", "b1");  // 4
  Delete("b");     // 5
  Put("b", "b2");  // 6
  Put("c", "c1");  // 7
  Delete("c");     // 8
  ASSERT_OK(store_->Compact(7));
  EXPECT_EQ(Keys(Get("", kAll, 7)), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(Keys(Get("", kAll)), (std::vector<std::string>{"b"}));
  // c's delete at 8 is above the compaction, so its event stays.
  std::vector<Event> events = EventsFrom(7, "", kAll, /*prev_kv=*/true);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kv, Kv("c", "c1", 7, 7, 1));
  EXPECT_FALSE(events[0].prev_kv.has_value());  // prev would be read below the compaction
  EXPECT_EQ(events[1].type, Event::Type::kDelete);
  EXPECT_EQ(events[1].prev_kv, Kv("c", "c1", 7, 7, 1));
  Close();
  RawLayout raw = ReadRawLayout(DbDir());
  EXPECT_EQ(raw.history, (std::vector<RawHistoryEntry>{
                             {"b", {6, 0}, ChangeKind::kPut},
                             {"c", {7, 0}, ChangeKind::kPut},
                             {"c", {8, 0}, ChangeKind::kDelete},
                         }));
  EXPECT_EQ(raw.revision_index, (std::vector<Revision>{{6, 0}, {7, 0}, {8, 0}}));
}

TEST_F(MvccStoreTest, EventsAtTheCompactedRevisionDoNotDependOnCompactionProgress) {
  Put("a", "a1");  // 2
  {
    WriteTxn txn = store_->BeginWrite();  // 3: a put and a delete in one revision
    ASSERT_TRUE(txn.Put("b", "b1").ok());
    ASSERT_TRUE(txn.DeleteRange("a", "").ok());
    ASSERT_OK(txn.End());
  }
  Put("c", "c1");  // 4
  ASSERT_OK(store_->ScheduleCompaction(3));
  EXPECT_TRUE(store_->CompactionPending());
  const std::vector<Event> scheduled = EventsFrom(3);
  ASSERT_OK(store_->RunCompaction());
  EXPECT_FALSE(store_->CompactionPending());
  const std::vector<Event> finished = EventsFrom(3);
  EXPECT_EQ(scheduled, finished);
  ASSERT_EQ(finished.size(), 2u);  // a's delete at 3 is gone, as in etcd after compaction
  EXPECT_EQ(finished[0].kv.key, "b");
  EXPECT_EQ(finished[1].kv.key, "c");
}

TEST_F(MvccStoreTest, CompactedRevisionSurvivesRestart) {
  for (int i = 0; i < 6; ++i) Put("k", absl::StrCat(i));  // 2..7
  ASSERT_OK(store_->Compact(5));
  Reopen();
  EXPECT_EQ(store_->CompactedRevision(), 5);
  EXPECT_EQ(store_->CurrentRevision(), 7);
  EXPECT_TRUE(IsCompactedError(store_->Range("k", "", RangeOptions{.revision = 4}).status()));
  EXPECT_EQ(Get("k", "", 5).kvs[0].value, "3");
  EXPECT_TRUE(IsCompactedError(store_->Compact(5)));
  ASSERT_OK(store_->Compact(6));
  Reopen();
  EXPECT_EQ(store_->CompactedRevision(), 6);
}

// etcd's compacted revision starts at -1: a new store takes Compact(0), once, for good.
TEST_F(MvccStoreTest, CompactAtZeroOnlyOnce) {
  Put("k", "v");  // 2
  EXPECT_EQ(store_->CompactMainRevision(), -1);
  ASSERT_OK(store_->Compact(0));
  EXPECT_EQ(store_->CompactedRevision(), 0);
  EXPECT_EQ(store_->CompactMainRevision(), 0);
  EXPECT_TRUE(IsCompactedError(store_->Compact(0)));
  Reopen();
  EXPECT_TRUE(IsCompactedError(store_->Compact(0)));
  EXPECT_TRUE(IsCompactedError(store_->Compact(-1)));
  ASSERT_OK(store_->Compact(1));
  EXPECT_EQ(Get("k", "", 1).kvs.size(), 0u);
}

TEST_F(MvccStoreTest, ScheduledCompactionResumesAfterRestart) {
  for (int i = 0; i < 10; ++i) Put(absl::StrCat("k", i % 3), absl::StrCat(i));  // 2..11
  Delete("k0");                                                                 // 12
  Put("k1", "last");                                                            // 13
  ASSERT_OK(store_->ScheduleCompaction(12));
  // A crash before the data is gone: reads below 12 fail at once and after restart.
  EXPECT_TRUE(IsCompactedError(store_->Range("k1", "", RangeOptions{.revision = 11}).status()));
  const RangeResult at12 = Get("", kAll, 12);
  Reopen();
  EXPECT_EQ(store_->CompactedRevision(), 12);
  EXPECT_TRUE(store_->CompactionPending());
  EXPECT_TRUE(IsCompactedError(store_->Range("k1", "", RangeOptions{.revision = 11}).status()));
  ASSERT_OK(store_->RunCompaction());
  EXPECT_FALSE(store_->CompactionPending());
  EXPECT_EQ(Get("", kAll, 12).kvs, at12.kvs);
  Reopen();
  EXPECT_FALSE(store_->CompactionPending());
  Close();
  RawLayout raw = ReadRawLayout(DbDir());
  EXPECT_EQ(raw.history, (std::vector<RawHistoryEntry>{
                             {"k1", {9, 0}, ChangeKind::kPut},
                             {"k1", {13, 0}, ChangeKind::kPut},
                             {"k2", {10, 0}, ChangeKind::kPut},
                         }));
}

// Builds the same random history in a store; returns the final revision.
int64_t WriteRandomHistory(MvccStore* store, uint32_t seed, int txns) {
  std::mt19937 rng(seed);
  const std::vector<std::string> keys = {"a", "b", "c", "d", std::string("a\0", 2), "ab", "\xff"};
  for (int i = 0; i < txns; ++i) {
    WriteTxn txn = store->BeginWrite();
    const int ops = 1 + static_cast<int>(rng() % 3);
    for (int op = 0; op < ops; ++op) {
      const std::string& key = keys[rng() % keys.size()];
      if (rng() % 4 == 0) {
        EXPECT_TRUE(txn.DeleteRange(key, "").ok());
      } else {
        EXPECT_TRUE(txn.Put(key, absl::StrCat("v", i, ".", op), rng() % 3).ok());
      }
    }
    EXPECT_TRUE(txn.End().ok());
  }
  return store->CurrentRevision();
}

TEST_F(MvccStoreTest, CompactionInSmallBatchesMatchesOneBigBatch) {
  TempDir other_dir;
  absl::StatusOr<std::unique_ptr<MvccStore>> small =
      MvccStore::Open(other_dir.path() + "/db", MvccStoreOptions{.compaction_batch_size = 1});
  ASSERT_TRUE(small.ok()) << small.status();
  const uint32_t seed = 20240611;
  SCOPED_TRACE(testing::Message() << "seed " << seed);
  const int64_t rev = WriteRandomHistory(store_.get(), seed, 300);
  ASSERT_EQ(WriteRandomHistory(small->get(), seed, 300), rev);

  // Readers at revisions >= the compaction point run while the small-batch compaction works
  // and must never notice it.
  const int64_t target = rev - 40;
  std::map<int64_t, std::vector<KeyValue>> expected;
  for (int64_t r = target; r <= rev; ++r) expected[r] = Get("", kAll, r).kvs;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    std::mt19937 rng(seed);
    while (!done) {
      const int64_t r = target + static_cast<int64_t>(rng() % (rev - target + 1));
      absl::StatusOr<RangeResult> got = (*small)->Range("", kAll, RangeOptions{.revision = r});
      if (!got.ok()) {
        EXPECT_TRUE(IsCompactedError(got.status()));  // only below the target
        continue;
      }
      EXPECT_EQ(got->kvs, expected.at(r)) << "at " << r;
    }
  });
  ASSERT_OK((*small)->Compact(target - 30));
  ASSERT_OK((*small)->Compact(target));
  done = true;
  reader.join();
  ASSERT_OK(store_->Compact(target));

  for (int64_t r = target; r <= rev; ++r) {
    absl::StatusOr<RangeResult> got = (*small)->Range("", kAll, RangeOptions{.revision = r});
    ASSERT_TRUE(got.ok());
    EXPECT_EQ(got->kvs, expected[r]);
  }
  absl::StatusOr<KvHash> h1 = store_->HashKV(0);
  absl::StatusOr<KvHash> h2 = (*small)->HashKV(0);
  ASSERT_TRUE(h1.ok() && h2.ok());
  EXPECT_EQ(h1->hash, h2->hash);
  small->reset();
  Close();
  RawLayout a = ReadRawLayout(DbDir());
  RawLayout b = ReadRawLayout(other_dir.path() + "/db");
  EXPECT_EQ(a.history, b.history);
  EXPECT_EQ(a.revision_index, b.revision_index);
  EXPECT_LT(a.history.size(), 300u);
}

// --- Key order ---------------------------------------------------------------------------

TEST_F(MvccStoreTest, KeysWithZeroAndFfBytesKeepByteOrder) {
  const std::vector<std::string> sorted = {std::string("\0", 1),
                                           std::string("\0\0", 2),
                                           std::string("\0\xff", 2),
                                           "a",
                                           std::string("a\0", 2),
                                           std::string("a\0\0", 2 + 1),
                                           std::string("a\0b", 3),
                                           "a\x01",
                                           "a\xff",
                                           "a\xff\xff",
                                           "b",
                                           "\xff",
                                           "\xff\xff"};
  std::vector<std::string> shuffled = sorted;
  std::mt19937 rng(7);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  for (const std::string& k : shuffled) Put(k, "v:" + k);
  const int64_t rev = store_->CurrentRevision();
  // Another version of every key, so that the old revision must be found in the history.
  for (const std::string& k : shuffled) Put(k, "w:" + k);

  for (int64_t at : {int64_t{0}, rev}) {
    SCOPED_TRACE(at);
    EXPECT_EQ(Keys(Get(kAll, kAll, at)), sorted);
    // [a, a\x01) holds "a" and exactly the keys that continue "a" with a zero byte.
    EXPECT_EQ(Keys(Get("a", "a\x01", at)),
              (std::vector<std::string>{"a", std::string("a\0", 2), std::string("a\0\0", 3),
                                        std::string("a\0b", 3)}));
    EXPECT_EQ(Keys(Get(std::string("a\0", 2), "a\xff", at)),
              (std::vector<std::string>{std::string("a\0", 2), std::string("a\0\0", 3),
                                        std::string("a\0b", 3), "a\x01"}));
    EXPECT_EQ(Keys(Get("\xff", kAll, at)), (std::vector<std::string>{"\xff", "\xff\xff"}));
    for (const std::string& k : sorted) {
      RangeResult one = Get(k, "", at);
      ASSERT_EQ(one.kvs.size(), 1u) << absl::CHexEscape(k);
      EXPECT_EQ(one.kvs[0].value, (at == 0 ? "w:" : "v:") + k);
    }
  }
  std::vector<std::string> event_keys;
  for (const Event& e : EventsFrom(2, std::string("\0", 1), "\x01")) event_keys.push_back(e.kv.key);
  EXPECT_EQ(event_keys.size(), 6u);  // three keys below \x01, two versions each
}

// --- Persistence -------------------------------------------------------------------------

TEST_F(MvccStoreTest, ReopenKeepsEverything) {
  Put("a", "1", 10);
  {
    WriteTxn txn = store_->BeginWrite();
    ASSERT_TRUE(txn.Put("b", "2", 11).ok());
    ASSERT_TRUE(txn.Put("c", "3").ok());
    txn.SetAppliedIndex(42);
    ASSERT_OK(txn.End());
  }
  Delete("c");
  const RangeResult now = Get("", kAll);
  const RangeResult old = Get("", kAll, 3);
  const std::vector<Event> events = EventsFrom(1, "", kAll, true);
  absl::StatusOr<KvHash> hash = store_->HashKV(0);
  ASSERT_TRUE(hash.ok());

  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), 4);
  EXPECT_EQ(store_->AppliedIndex(), 42u);
  EXPECT_EQ(Get("", kAll).kvs, now.kvs);
  EXPECT_EQ(Get("", kAll, 3).kvs, old.kvs);
  EXPECT_EQ(EventsFrom(1, "", kAll, true), events);
  absl::StatusOr<std::vector<std::string>> leased = store_->KeysWithLease(11);
  ASSERT_TRUE(leased.ok());
  EXPECT_EQ(*leased, std::vector<std::string>{"b"});
  absl::StatusOr<KvHash> hash_after = store_->HashKV(0);
  ASSERT_TRUE(hash_after.ok());
  EXPECT_EQ(hash_after->hash, hash->hash);
  // Revisions continue without a gap.
  EXPECT_EQ(Put("d", "4"), 5);
  EXPECT_EQ(Get("a").kvs, std::vector<KeyValue>{Kv("a", "1", 2, 2, 1, 10)});
}

TEST_F(MvccStoreTest, OpeningAMvccV1StoreDropsItsLatestKeySpace) {
  Put("a", "1", 10);
  Put("a", "2", 10);
  Put("b", "3");
  Delete("b");
  const RangeResult now = Get("", kAll);
  const RangeResult old = Get("", kAll, 4);
  Close();
  // What mvcc-v1 had on top of the same history: its format and the latest versions.
  {
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), DbDir(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(
        db->Put(rocksdb::WriteOptions(), MetaKey(kMetaFormat), std::string(kFormatVersionV1)).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), std::string(1, kV1LatestPrefix) + "a",
                        EncodeKeyValueBody(Kv("a", "2", 2, 3, 2, 10)))
                    .ok());
  }

  Reopen();
  EXPECT_EQ(Get("", kAll).kvs, now.kvs);
  EXPECT_EQ(Get("", kAll, 4).kvs, old.kvs);
  // A put knows what it replaces: the live keys were rebuilt from the history.
  WriteTxn txn = store_->BeginWrite();
  absl::StatusOr<std::optional<KeyValue>> prev = txn.Put("a", "3");
  ASSERT_TRUE(prev.ok());
  EXPECT_EQ(*prev, Kv("a", "2", 2, 3, 2, 10));
  ASSERT_OK(txn.End());
  Close();

  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::OpenForReadOnly(rocksdb::Options(), DbDir(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  std::string format;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), MetaKey(kMetaFormat), &format).ok());
  EXPECT_EQ(format, kFormatVersion);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  it->Seek(std::string(1, kV1LatestPrefix));
  EXPECT_TRUE(!it->Valid() || it->key()[0] != kV1LatestPrefix) << it->key().ToString();
}

TEST_F(MvccStoreTest, AppliedIndexIsCommittedWithTheBatch) {
  {
    // A transaction with only an applied index: no new revision, but the index is kept.
    WriteTxn txn = store_->BeginWrite();
    txn.SetAppliedIndex(5);
    ASSERT_OK(txn.End());
  }
  EXPECT_EQ(store_->CurrentRevision(), 1);
  EXPECT_EQ(store_->AppliedIndex(), 5u);
  {
    WriteTxn txn = store_->BeginWrite();
    ASSERT_TRUE(txn.Put("a", "1").ok());
    txn.SetAppliedIndex(6);
  }  // abandoned: neither the put nor the index
  EXPECT_EQ(store_->AppliedIndex(), 5u);
  Put("a", "1");
  ASSERT_OK(store_->Compact(2, 9));
  EXPECT_EQ(store_->AppliedIndex(), 9u);
  Reopen();
  EXPECT_EQ(store_->AppliedIndex(), 9u);
  EXPECT_EQ(store_->CurrentRevision(), 2);
}

TEST_F(MvccStoreTest, SyncedWritesWork) {
  Reopen(MvccStoreOptions{.sync_writes = true});
  Put("a", "1");
  ASSERT_OK(store_->Compact(2));
  Reopen();
  EXPECT_EQ(Get("a").kvs[0].value, "1");
}

TEST_F(MvccStoreTest, OpenFailsClearlyForAnUnusableDir) {
  // Already open (RocksDB's lock).
  absl::StatusOr<std::unique_ptr<MvccStore>> twice = MvccStore::Open(DbDir());
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(twice.status().message(), DbDir())) << twice.status();

  // A regular file.
  const std::string file = dir_.path() + "/file";
  std::ofstream(file) << "not a directory";
  absl::StatusOr<std::unique_ptr<MvccStore>> on_file = MvccStore::Open(file);
  EXPECT_EQ(on_file.status().code(), absl::StatusCode::kFailedPrecondition) << on_file.status();
  EXPECT_TRUE(absl::StrContains(on_file.status().message(), "cannot open data dir"));

  // A missing parent.
  absl::StatusOr<std::unique_ptr<MvccStore>> no_parent =
      MvccStore::Open(dir_.path() + "/missing/db");
  EXPECT_EQ(no_parent.status().code(), absl::StatusCode::kFailedPrecondition);

  // Some other RocksDB database.
  const std::string foreign = dir_.path() + "/foreign";
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, foreign, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "raft/log/1", "entry").ok());
  }
  absl::StatusOr<std::unique_ptr<MvccStore>> on_foreign = MvccStore::Open(foreign);
  EXPECT_EQ(on_foreign.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(on_foreign.status().message(), "not an MVCC store"))
      << on_foreign.status();

  EXPECT_EQ(MvccStore::Open(dir_.path() + "/x", MvccStoreOptions{.compaction_batch_size = 0})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(MvccStoreTest, CheckpointOpensAsTheSameStore) {
  Put("a", "1", 3);
  Put("a", "2", 3);
  {
    WriteTxn txn = store_->BeginWrite();
    txn.SetAppliedIndex(77);
    ASSERT_OK(txn.End());
  }
  const std::string copy = dir_.path() + "/checkpoint";
  ASSERT_OK(store_->CreateCheckpoint(copy));
  Put("a", "3");
  absl::StatusOr<std::unique_ptr<MvccStore>> restored = MvccStore::Open(copy);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ((*restored)->CurrentRevision(), 3);
  EXPECT_EQ((*restored)->AppliedIndex(), 77u);
  absl::StatusOr<RangeResult> r = (*restored)->Range("a", "", RangeOptions{.revision = 2});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kvs[0].value, "1");
  EXPECT_GT(store_->ApproximateSizeBytes(), 0u);
}

TEST_F(MvccStoreTest, ReplaceWithSwapsInACheckpointUnderConcurrentReaders) {
  // The checkpoint of another store at applied index 500 replaces this one in place.
  const std::string other_dir = dir_.path() + "/other";
  {
    absl::StatusOr<std::unique_ptr<MvccStore>> other = MvccStore::Open(other_dir);
    ASSERT_TRUE(other.ok()) << other.status();
    for (int i = 0; i < 50; ++i) {
      WriteTxn txn = (*other)->BeginWrite();
      ASSERT_TRUE(txn.Put(absl::StrCat("k", i), "v").ok());
      txn.SetAppliedIndex(500);
      ASSERT_OK(txn.End());
    }
    ASSERT_OK((*other)->CreateCheckpoint(dir_.path() + "/copy"));
  }
  Put("a", "1");
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      absl::StatusOr<RangeResult> r = store_->Range("", std::string(1, '\0'));
      EXPECT_TRUE(r.ok()) << r.status();
      reads.fetch_add(1);
    }
  });
  while (reads.load() < 10) std::this_thread::yield();
  ASSERT_OK(store_->ReplaceWith(dir_.path() + "/copy"));
  const int before = reads.load();
  while (reads.load() < before + 10) std::this_thread::yield();
  done = true;
  reader.join();
  EXPECT_EQ(store_->AppliedIndex(), 500u);
  EXPECT_EQ(store_->CurrentRevision(), 51);
  absl::StatusOr<RangeResult> all = store_->Range("", std::string(1, '\0'));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->count, 50);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/copy"));
  EXPECT_FALSE(std::filesystem::exists(DbDir() + ".old"));
  // Puts know the new store's keys, and no longer the old one's.
  {
    std::unique_ptr<WriteGroup> group = store_->BeginGroup(GroupOptions{.prev_values = false});
    WriteTxn txn = group->BeginWrite();
    absl::StatusOr<std::optional<KeyValue>> replaced = txn.Put("k7", "w");
    ASSERT_TRUE(replaced.ok()) << replaced.status();
    EXPECT_EQ(*replaced, Kv("k7", "", 9, 9, 1));
    replaced = txn.Put("a", "2");
    ASSERT_TRUE(replaced.ok()) << replaced.status();
    EXPECT_EQ(*replaced, std::nullopt);
    txn.SetAppliedIndex(501);
    ASSERT_OK(txn.End());
    ASSERT_OK(group->End());
  }
  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), 52);
  EXPECT_EQ(Get("k7").kvs, std::vector<KeyValue>{Kv("k7", "w", 9, 52, 2)});

  // A replacement that does not open leaves the store as it was.
  std::filesystem::create_directories(dir_.path() + "/garbage/CURRENT");
  EXPECT_FALSE(store_->ReplaceWith(dir_.path() + "/garbage").ok());
  EXPECT_EQ(store_->CurrentRevision(), 52);
  EXPECT_EQ(store_->AppliedIndex(), 501u);
}

TEST_F(MvccStoreTest, OpenFinishesOrUndoesAnInterruptedReplacement) {
  Put("a", "1");
  Close();
  // Crashed after the old store moved aside, before the new one moved in: undone.
  std::filesystem::rename(DbDir(), DbDir() + ".old");
  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), 2);
  // Crashed after the new one moved in: the old one goes.
  Close();
  std::filesystem::create_directories(DbDir() + ".old");
  Reopen();
  EXPECT_FALSE(std::filesystem::exists(DbDir() + ".old"));
  EXPECT_EQ(store_->CurrentRevision(), 2);
}

// --- Alarms ------------------------------------------------------------------------------

TEST_F(MvccStoreTest, AlarmsCommitWithTheirTransactionAndSurviveReopen) {
  EXPECT_TRUE(store_->Alarms()->empty());
  const int64_t rev = store_->CurrentRevision();
  {
    WriteTxn txn = store_->BeginWrite();
    ASSERT_OK(txn.SetAlarms({{.member = 7, .type = 1}, {.member = 3, .type = 2}}));
    txn.SetAppliedIndex(9);
    ASSERT_OK(txn.End());
  }
  {
    WriteTxn dropped = store_->BeginWrite();  // never ended: nothing of it stays
    ASSERT_OK(dropped.SetAlarms({}));
  }
  EXPECT_EQ(store_->CurrentRevision(), rev);  // no revision, no event
  const std::vector<AlarmRecord> want = {{.member = 3, .type = 2}, {.member = 7, .type = 1}};
  EXPECT_EQ(*store_->Alarms(), want);
  Reopen();
  EXPECT_EQ(*store_->Alarms(), want);
  EXPECT_EQ(store_->AppliedIndex(), 9u);
}

// --- Leases ------------------------------------------------------------------------------

TEST_F(MvccStoreTest, LeaseIndexFollowsPutsAndDeletes) {
  Put("a", "1", 100);
  Put("b", "1", 100);
  Put("c", "1", 200);
  Put("d", "1");
  auto keys_of = [&](int64_t lease) {
    absl::StatusOr<std::vector<std::string>> keys = store_->KeysWithLease(lease);
    EXPECT_TRUE(keys.ok());
    return keys.ok() ? *keys : std::vector<std::string>{};
  };
  EXPECT_EQ(keys_of(100), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(keys_of(200), (std::vector<std::string>{"c"}));
  EXPECT_TRUE(keys_of(300).empty());

  Put("a", "2", 200);  // moves a to lease 200
  Put("b", "2");       // detaches b
  Delete("c");         // detaches c
  Put("d", "2", 100);  // attaches d
  EXPECT_EQ(keys_of(100), (std::vector<std::string>{"d"}));
  EXPECT_EQ(keys_of(200), (std::vector<std::string>{"a"}));

  // Within one txn the index follows the txn's own changes.
  {
    WriteTxn txn = store_->BeginWrite();
    ASSERT_TRUE(txn.Put("e", "1", 300).ok());
    ASSERT_TRUE(txn.Put("e", "2", 300).ok());
    ASSERT_TRUE(txn.Put("f", "1", 300).ok());
    ASSERT_TRUE(txn.DeleteRange("f", "").ok());
    ASSERT_OK(txn.End());
  }
  EXPECT_EQ(keys_of(300), (std::vector<std::string>{"e"}));

  Reopen();
  absl::StatusOr<std::vector<LeaseKey>> all = store_->AllLeaseKeys();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<LeaseKey>{{100, "d"}, {200, "a"}, {300, "e"}}));
}

// --- Concurrency -------------------------------------------------------------------------

TEST_F(MvccStoreTest, ConcurrentReadsAlwaysSeeWholeTxns) {
  constexpr int kKeys = 10;
  constexpr int kTxns = 300;
  std::atomic<bool> done{false};
  std::atomic<int> checks{0};
  // Every txn rewrites all keys with its own number; every third one also deletes the last
  // key. A reader that saw part of a txn would see mixed values or mod revisions.
  auto check = [&](const RangeResult& r, int64_t at) {
    if (at == 1) {
      EXPECT_EQ(r.count, 0);
      return;
    }
    const int64_t txn_number = at - 1;  // revision 2 is txn 1
    ASSERT_EQ(r.count, txn_number % 3 == 0 ? kKeys - 1 : kKeys) << "at " << at;
    ASSERT_EQ(static_cast<int64_t>(r.kvs.size()), r.count);
    for (const KeyValue& kv : r.kvs) {
      ASSERT_EQ(kv.mod_revision, at);
      ASSERT_EQ(kv.value, absl::StrCat(txn_number));
      ASSERT_EQ(kv.version, kv.mod_revision - kv.create_revision + 1);
    }
  };
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937 rng(t);
      while (!done) {
        absl::StatusOr<RangeResult> now = store_->Range("k", "l");
        ASSERT_TRUE(now.ok());
        check(*now, now->revision);
        // And an older revision, from the history.
        const int64_t at = 1 + static_cast<int64_t>(rng() % now->revision);
        absl::StatusOr<RangeResult> old = store_->Range("k", "l", RangeOptions{.revision = at});
        ASSERT_TRUE(old.ok());
        check(*old, at);
        // Events of the newest revision come as one whole txn.
        absl::StatusOr<EventsResult> ev = store_->Events(now->revision, 0, "k", "l");
        ASSERT_TRUE(ev.ok());
        if (now->revision > 1) {
          size_t of_newest = 0;
          for (const Event& e : ev->events) of_newest += e.kv.mod_revision == now->revision;
          ASSERT_EQ(of_newest, (now->revision - 1) % 3 == 0 ? kKeys + 1 : kKeys);
        }
        ++checks;
      }
    });
  }
  for (int i = 1; i <= kTxns; ++i) {
    WriteTxn txn = store_->BeginWrite();
    for (int k = 0; k < kKeys; ++k)
      ASSERT_TRUE(txn.Put(absl::StrCat("k", k), absl::StrCat(i)).ok());
    if (i % 3 == 0) {
      ASSERT_TRUE(txn.DeleteRange(absl::StrCat("k", kKeys - 1), "").ok());
    }
    ASSERT_OK(txn.End());
  }
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_GT(checks.load(), 0);
  EXPECT_EQ(store_->CurrentRevision(), kTxns + 1);
}

// --- HashKV ------------------------------------------------------------------------------

TEST_F(MvccStoreTest, HashKVEqualForEqualHistoriesAndDifferentOtherwise) {
  TempDir dir2;
  TempDir dir3;
  absl::StatusOr<std::unique_ptr<MvccStore>> same = MvccStore::Open(dir2.path() + "/db");
  absl::StatusOr<std::unique_ptr<MvccStore>> other = MvccStore::Open(dir3.path() + "/db");
  ASSERT_TRUE(same.ok() && other.ok());
  const int64_t rev = WriteRandomHistory(store_.get(), 99, 50);
  ASSERT_EQ(WriteRandomHistory(same->get(), 99, 50), rev);
  WriteRandomHistory(other->get(), 98, 50);

  absl::StatusOr<KvHash> h1 = store_->HashKV(0);
  absl::StatusOr<KvHash> h2 = (*same)->HashKV(0);
  absl::StatusOr<KvHash> h3 = (*other)->HashKV(0);
  ASSERT_TRUE(h1.ok() && h2.ok() && h3.ok());
  EXPECT_EQ(h1->hash, h2->hash);
  EXPECT_EQ(h1->revision, rev);
  EXPECT_NE(h1->hash, h3->hash);

  // The same final state reached through a different history hashes differently.
  TempDir dir4;
  TempDir dir5;
  absl::StatusOr<std::unique_ptr<MvccStore>> x = MvccStore::Open(dir4.path() + "/db");
  absl::StatusOr<std::unique_ptr<MvccStore>> y = MvccStore::Open(dir5.path() + "/db");
  ASSERT_TRUE(x.ok() && y.ok());
  for (MvccStore* s : {x->get(), y->get()}) {
    WriteTxn txn = s->BeginWrite();
    ASSERT_TRUE(txn.Put("a", "1").ok());
    ASSERT_OK(txn.End());
  }
  {
    WriteTxn txn = (*x)->BeginWrite();
    ASSERT_TRUE(txn.Put("b", "1").ok());
    ASSERT_OK(txn.End());
  }
  {
    WriteTxn txn = (*y)->BeginWrite();
    ASSERT_TRUE(txn.Put("b", "0").ok());
    ASSERT_TRUE(txn.Put("b", "1").ok());
    ASSERT_OK(txn.End());
  }
  EXPECT_NE((*x)->HashKV(0)->hash, (*y)->HashKV(0)->hash);
  EXPECT_EQ((*x)->HashKV(2)->hash, (*y)->HashKV(2)->hash);

  // Equal compactions keep equal hashes.
  ASSERT_OK(store_->Compact(rev / 2));
  ASSERT_OK((*same)->Compact(rev / 2));
  EXPECT_EQ(store_->HashKV(0)->hash, (*same)->HashKV(0)->hash);
  EXPECT_EQ(store_->HashKV(0)->compact_revision, rev / 2);
}

TEST_F(MvccStoreTest, HashKVAtARevisionIgnoresLaterWritesAndCompactionProgress) {
  const int64_t rev = WriteRandomHistory(store_.get(), 5, 40);
  absl::StatusOr<KvHash> at = store_->HashKV(rev);
  ASSERT_TRUE(at.ok());
  WriteRandomHistory(store_.get(), 6, 10);
  EXPECT_EQ(store_->HashKV(rev)->hash, at->hash);
  EXPECT_NE(store_->HashKV(0)->hash, at->hash);

  ASSERT_OK(store_->ScheduleCompaction(rev - 10));
  absl::StatusOr<KvHash> scheduled = store_->HashKV(rev);
  ASSERT_TRUE(scheduled.ok());
  ASSERT_OK(store_->RunCompaction());
  absl::StatusOr<KvHash> finished = store_->HashKV(rev);
  ASSERT_TRUE(finished.ok());
  EXPECT_EQ(scheduled->hash, finished->hash);
  EXPECT_EQ(finished->compact_revision, rev - 10);
}

// --- A model -----------------------------------------------------------------------------

// A deliberately naive model of etcd's MVCC: the whole key space copied at every revision.
struct Model {
  std::vector<std::map<std::string, KeyValue>> states{{}, {}};  // index = revision; 0 unused
  std::vector<Event> events;

  int64_t revision() const { return static_cast<int64_t>(states.size()) - 1; }
};

TEST_F(MvccStoreTest, RandomHistoryMatchesAModelAtEveryRevision) {
  const uint32_t seed = static_cast<uint32_t>(testing::UnitTest::GetInstance()->random_seed());
  SCOPED_TRACE(testing::Message() << "seed " << seed << " (--gtest_random_seed)");
  std::mt19937 rng(seed);
  const std::vector<std::string> keys = {
      "", std::string("\0", 1), "a", std::string("a\0", 2), "ab", "b", "b\xff", "\xff"};
  auto random_key = [&] { return keys[rng() % keys.size()]; };
  Model model;

  // Transactions commit alone or in groups of up to five; some in groups are dropped. A
  // group may skip reading replaced values. The store reopens now and then, and must know
  // its live keys again.
  std::unique_ptr<WriteGroup> group;
  bool prev_values = true;
  int group_left = 0;
  int64_t published = model.revision();
  for (int i = 0; i < 200; ++i) {
    if (group == nullptr && i % 50 == 49) Reopen();
    if (group == nullptr && rng() % 2 == 0) {
      prev_values = rng() % 2 == 0;
      group = store_->BeginGroup(GroupOptions{.prev_values = prev_values});
      group_left = 1 + static_cast<int>(rng() % 5);
    }
    WriteTxn txn = group != nullptr ? group->BeginWrite() : store_->BeginWrite();
    const bool drop = group != nullptr && rng() % 6 == 0;
    std::map<std::string, KeyValue> next = model.states.back();
    std::vector<Event> changes;
    const int64_t rev = model.revision() + 1;
    const int ops = 1 + static_cast<int>(rng() % 3);
    for (int op = 0; op < ops; ++op) {
      const std::string key = random_key();
      if (rng() % 3 == 0) {
        // A delete of one key, of [key, other) or of everything from key.
        const int form = static_cast<int>(rng() % 3);
        const std::string end = form == 0 ? "" : form == 1 ? random_key() : kAll;
        std::vector<KeyValue> want;
        for (auto it = next.begin(); it != next.end();) {
          if (InRange(key, end, it->first)) {
            want.push_back(it->second);
            changes.push_back(Event{Event::Type::kDelete,
                                    KeyValue{.key = it->first, .mod_revision = rev}, it->second});
            it = next.erase(it);
          } else {
            ++it;
          }
        }
        absl::StatusOr<std::vector<KeyValue>> got = txn.DeleteRange(key, end);
        ASSERT_TRUE(got.ok());
        ASSERT_EQ(*got, want);
      } else {
        const std::string value = absl::StrCat("v", i, ".", op);
        const int64_t lease = rng() % 2;
        std::optional<KeyValue> prev;
        if (auto it = next.find(key); it != next.end()) prev = it->second;
        if (prev && group != nullptr && !prev_values) prev->value.clear();
        KeyValue kv{.key = key,
                    .create_revision = prev ? prev->create_revision : rev,
                    .mod_revision = rev,
                    .version = prev ? prev->version + 1 : 1,
                    .value = value,
                    .lease = lease};
        next[key] = kv;
        changes.push_back(Event{Event::Type::kPut, kv, prev});
        absl::StatusOr<std::optional<KeyValue>> got = txn.Put(key, value, lease);
        ASSERT_TRUE(got.ok());
        ASSERT_EQ(*got, prev);
      }
    }
    ASSERT_EQ(txn.Changes(), changes);
    // The transaction reads every revision as the model has it, its own and those of its
    // group's earlier transactions included.
    {
      const int64_t rev_read = 1 + static_cast<int64_t>(rng() % txn.Revision());
      const std::map<std::string, KeyValue>& state =
          rev_read == txn.Revision() ? next : model.states[rev_read];
      std::vector<KeyValue> want;
      for (const auto& [k, kv] : state) want.push_back(kv);
      absl::StatusOr<RangeResult> got = txn.Range("", kAll, RangeOptions{.revision = rev_read});
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->kvs, want) << "at " << rev_read << " in transaction " << i;
      const std::string k = random_key();
      auto it = state.find(k);
      got = txn.Range(k, "", RangeOptions{.revision = rev_read});
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->kvs,
                it == state.end() ? std::vector<KeyValue>{} : std::vector<KeyValue>{it->second});
    }
    if (drop) continue;
    ASSERT_OK(txn.End());
    if (!changes.empty()) {
      model.states.push_back(std::move(next));
      for (Event& e : changes) {
        // etcd's watch prev_kv: the key at rev - 1, none with an event that creates the key.
        auto it = model.states[rev - 1].find(e.kv.key);
        const bool creates = e.type == Event::Type::kPut && e.kv.create_revision == rev;
        e.prev_kv = it == model.states[rev - 1].end() || creates
                        ? std::nullopt
                        : std::optional<KeyValue>(it->second);
        model.events.push_back(e);
      }
    }
    if (group != nullptr && --group_left == 0) {
      ASSERT_OK(group->End());
      group.reset();
    }
    if (group == nullptr) published = model.revision();
    ASSERT_EQ(store_->CurrentRevision(), published);
  }
  if (group != nullptr) ASSERT_OK(group->End());

  auto expect_matches_from = [&](int64_t first) {
    for (int64_t rev = first; rev <= model.revision(); ++rev) {
      std::vector<KeyValue> want;
      for (const auto& [k, kv] : model.states[rev]) want.push_back(kv);
      ASSERT_EQ(Get("", kAll, rev).kvs, want) << "at " << rev;
      for (const std::string& k : keys) {
        auto it = model.states[rev].find(k);
        const RangeResult one = Get(k, "", rev);
        ASSERT_EQ(one.count, it == model.states[rev].end() ? 0 : 1);
        if (one.count == 1) {
          ASSERT_EQ(one.kvs[0], it->second);
        }
        const std::string end = random_key();
        int64_t count = 0;
        for (const auto& [mk, kv] : model.states[rev]) count += InRange(k, end, mk);
        ASSERT_EQ(Get(k, end, rev).count, count)
            << "[" << absl::CHexEscape(k) << ", " << absl::CHexEscape(end) << ") at " << rev;
      }
    }
    std::vector<Event> want;
    for (const Event& e : model.events) {
      if (e.kv.mod_revision > first) want.push_back(e);
    }
    ASSERT_EQ(EventsFrom(first + 1, "", kAll, /*prev_kv=*/true), want);
  };
  expect_matches_from(1);

  const int64_t compact_at = model.revision() / 2;
  ASSERT_OK(store_->Compact(compact_at));
  expect_matches_from(compact_at);
  Reopen();
  expect_matches_from(compact_at);
}

// --- Crash ---------------------------------------------------------------------------------

constexpr char kCrashChildEnv[] = "MVCC_CRASH_CHILD_DIR";
constexpr char kCrashNoWalEnv[] = "MVCC_CRASH_NO_WAL";

MvccStoreOptions CrashOptions(bool use_wal) {
  return MvccStoreOptions{.use_wal = use_wal, .compaction_batch_size = 16};
}

// Transaction i (store revision i before it) rewrites c/0..c/9 with "i", deletes c/9 when
// i % 7 == 0, and records applied index 1000 + i. Every 64 revisions it compacts, in small
// batches, so that a kill also lands inside compactions. Without the write-ahead log it
// flushes every 50 revisions, so that something survives each kill.
TEST(MvccCrashChild, WritesUntilKilled) {
  const char* dir = getenv(kCrashChildEnv);
  if (dir == nullptr) GTEST_SKIP() << "only runs as the child of SigkillMidStream...";
  const bool use_wal = getenv(kCrashNoWalEnv) == nullptr;
  absl::StatusOr<std::unique_ptr<MvccStore>> store = MvccStore::Open(dir, CrashOptions(use_wal));
  ASSERT_TRUE(store.ok()) << store.status();
  for (int n = 0;; ++n) {
    const int64_t i = (*store)->CurrentRevision();
    WriteTxn txn = (*store)->BeginWrite();
    for (int k = 0; k < 10; ++k) ASSERT_TRUE(txn.Put(absl::StrCat("c/", k), absl::StrCat(i)).ok());
    if (i % 7 == 0) {
      ASSERT_TRUE(txn.DeleteRange("c/9", "").ok());
    }
    txn.SetAppliedIndex(1000 + i);
    ASSERT_OK(txn.End());
    if (i % 64 == 0) ASSERT_OK((*store)->Compact(i - 32));
    if (!use_wal && i % 50 == 0) {
      absl::StatusOr<uint64_t> flushed = (*store)->Flush();
      ASSERT_TRUE(flushed.ok()) << flushed.status();
      ASSERT_EQ(*flushed, static_cast<uint64_t>(1000 + i));
    }
    if (n == 60) std::ofstream(absl::StrCat(dir, ".ready")) << "ready";
  }
}

// Kills the child above at random moments, four times, and checks after each kill that the
// store holds whole transactions only, with the applied index of the last one.
void SigkillMidStream(bool use_wal) {
  TempDir dir;
  const std::string db = dir.path() + "/db";
  const std::string ready = db + ".ready";
  std::vector<std::string> env_strings = {absl::StrCat(kCrashChildEnv, "=", db)};
  if (!use_wal) env_strings.push_back(absl::StrCat(kCrashNoWalEnv, "=1"));
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  std::string filter = "--gtest_filter=MvccCrashChild.WritesUntilKilled";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  std::mt19937 rng(1234);

  int64_t last_revision = 1;
  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    std::filesystem::remove(ready);
    pid_t pid = 0;
    posix_spawn_file_actions_t quiet;  // the child's gtest report would interleave with ours
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    const int spawned = posix_spawn(&pid, exe.c_str(), &quiet, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&quiet);
    ASSERT_EQ(spawned, 0);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!std::filesystem::exists(ready) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    absl::SleepFor(absl::Milliseconds(rng() % 200));
    kill(pid, SIGKILL);
    int wstatus = 0;
    ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(wstatus)) << "the child stopped by itself: " << wstatus;

    absl::StatusOr<std::unique_ptr<MvccStore>> opened = MvccStore::Open(db, CrashOptions(use_wal));
    ASSERT_TRUE(opened.ok()) << opened.status();
    MvccStore& store = **opened;
    const int64_t rev = store.CurrentRevision();
    ASSERT_GT(rev, last_revision + 20);
    last_revision = rev;
    // The applied index went with the last whole transaction.
    EXPECT_EQ(store.AppliedIndex(), static_cast<uint64_t>(1000 + rev - 1));
    ASSERT_OK(store.RunCompaction());
    const int64_t first = std::max<int64_t>(store.CompactedRevision(), 2);
    for (int64_t at = first; at <= rev; ++at) {
      absl::StatusOr<RangeResult> r = store.Range("c/", "c0", RangeOptions{.revision = at});
      ASSERT_TRUE(r.ok()) << r.status();
      const int64_t i = at - 1;
      ASSERT_EQ(r->count, i % 7 == 0 ? 9 : 10) << "at " << at;
      for (const KeyValue& kv : r->kvs) {
        ASSERT_EQ(kv.mod_revision, at);
        ASSERT_EQ(kv.value, absl::StrCat(i));
      }
    }
    absl::StatusOr<EventsResult> events = store.Events(first + 1, 0, "c/", "c0");
    ASSERT_TRUE(events.ok());
    std::map<int64_t, int> per_revision;
    for (const Event& e : events->events) ++per_revision[e.kv.mod_revision];
    ASSERT_EQ(static_cast<int64_t>(per_revision.size()), rev - first);
    for (const auto& [at, n] : per_revision) ASSERT_EQ(n, (at - 1) % 7 == 0 ? 11 : 10) << at;
    EXPECT_TRUE(store.HashKV(0).ok());
  }
}

TEST(MvccCrashTest, SigkillMidStreamLeavesWholeTransactions) { SigkillMidStream(true); }

// Without the write-ahead log a kill loses the transactions since the last flush, all of
// them: the store reopens at an older, consistent point (the server replays from there).
TEST(MvccCrashTest, SigkillWithoutWalLosesOnlyAWholeSuffix) { SigkillMidStream(false); }

TEST_F(MvccStoreTest, WithoutWalACleanCloseKeepsEverything) {
  Reopen(MvccStoreOptions{.use_wal = false});
  WriteTxn txn = store_->BeginWrite();
  ASSERT_TRUE(txn.Put("a", "1").ok());
  txn.SetAppliedIndex(7);
  ASSERT_OK(txn.End());
  Reopen(MvccStoreOptions{.use_wal = false});
  EXPECT_EQ(store_->AppliedIndex(), 7u);
  EXPECT_EQ(Get("a").kvs.size(), 1u);
}

// --- Defragment and BumpRevision (added for the Maintenance service and kvstore restore) ---

TEST_F(MvccStoreTest, DefragmentReturnsTheSpaceOfDeletedDataAndKeepsLiveData) {
  const std::string value(1024, 'v');
  for (int i = 0; i < 3000; ++i) Put(absl::StrCat("bulk/", i), value);
  Put("keep", "me");
  Delete("bulk/", "bulk0");
  ASSERT_OK(store_->Compact(store_->CurrentRevision()));
  const uint64_t before = store_->ApproximateSizeBytes();
  ASSERT_GT(before, 3000u * 1024);
  ASSERT_OK(store_->Defragment());
  const uint64_t after = store_->ApproximateSizeBytes();
  EXPECT_LT(after, before / 4) << "before " << before << " after " << after;

  absl::StatusOr<RangeResult> r = store_->Range("", kAll);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0].key, "keep");
  EXPECT_EQ(r->kvs[0].value, "me");
  Reopen();
  EXPECT_EQ(store_->Range("keep", "")->kvs.size(), 1u);
}

TEST_F(MvccStoreTest, BumpRevisionMovesTheRevisionWithoutEvents) {
  Put("a", "1");
  const int64_t rev = Put("b", "2");
  ASSERT_OK(store_->BumpRevision(100));
  EXPECT_EQ(store_->CurrentRevision(), rev + 100);
  // The keys are unchanged, and no change happened in between.
  absl::StatusOr<RangeResult> r = store_->Range("", kAll);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[1].mod_revision, rev);
  EXPECT_EQ(r->revision, rev + 100);
  absl::StatusOr<EventsResult> events = store_->Events(rev + 1, 0, "", kAll);
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_TRUE(events->events.empty());
  EXPECT_EQ(events->next_revision, rev + 101);
  // A read inside the gap sees the state before the bump.
  r = store_->Range("", kAll, RangeOptions{.revision = rev + 50});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->count, 2);

  // The next write is one more, and everything survives a reopen.
  EXPECT_EQ(Put("c", "3"), rev + 101);
  Reopen();
  EXPECT_EQ(store_->CurrentRevision(), rev + 101);
  // Compacting at the bumped revision hides everything below it.
  ASSERT_OK(store_->Compact(rev + 100));
  EXPECT_TRUE(IsCompactedError(store_->Range("a", "", RangeOptions{.revision = rev}).status()));
  EXPECT_TRUE(IsCompactedError(store_->Events(rev, 0, "", kAll).status()));
  r = store_->Range("", kAll, RangeOptions{.revision = rev + 100});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->count, 2);

  EXPECT_TRUE(absl::IsInvalidArgument(store_->BumpRevision(-1)));
  EXPECT_EQ(store_->CurrentRevision(), rev + 101);
}

}  // namespace
}  // namespace mvcc

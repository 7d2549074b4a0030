#include "kvstore/server/applier.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace kvstore::server {
namespace {

using kvstore::internal::InternalRaftRequest;

// Writes down every outcome, and checks that each is reported only once the store holds it.
class RecordingListener : public ApplyListener {
 public:
  explicit RecordingListener(const mvcc::MvccStore* store) : store_(store) {}

  void OnApplied(uint64_t proposer, uint64_t request_id, ApplyResult result) override {
    // Test entries carry their own index as the request id.
    EXPECT_GE(store_->AppliedIndex(), request_id) << "entry " << request_id;
    std::string response = std::visit(
        [](const auto& r) -> std::string {
          if constexpr (std::is_same_v<std::decay_t<decltype(r)>, std::monostate>) {
            return "-";
          } else {
            return r.ShortDebugString();
          }
        },
        result.response);
    log_.push_back(absl::StrCat("applied ", proposer, "/", request_id, " ",
                                result.status.ToString(), " ", response));
  }
  void OnEvents(const std::vector<mvcc::Event>& events, int64_t revision,
                bool prev_values) override {
    EXPECT_GE(store_->CurrentRevision(), revision);
    EXPECT_EQ(prev_values, wants_prev_values);
    std::string line = absl::StrCat("events @", revision);
    for (const mvcc::Event& e : events) {
      absl::StrAppend(&line, e.type == mvcc::Event::Type::kPut ? " put " : " delete ", e.kv.key,
                      "=", e.kv.value, "/", e.kv.version);
      if (!e.prev_kv) continue;
      // The version replaced, as the history has it; its value only if asked for.
      const mvcc::KeyValue& prev = *e.prev_kv;
      absl::StatusOr<mvcc::RangeResult> then =
          store_->Range(prev.key, "", mvcc::RangeOptions{.revision = prev.mod_revision});
      ASSERT_TRUE(then.ok()) << then.status();
      ASSERT_EQ(then->kvs.size(), 1u);
      mvcc::KeyValue want = then->kvs[0];
      if (!prev_values && e.type == mvcc::Event::Type::kPut) want.value.clear();
      EXPECT_EQ(prev, want) << line;
      absl::StrAppend(&line, " (had prev/", prev.version, ")");
    }
    log_.push_back(line);
  }
  bool WantsPrevValues() const override { return wants_prev_values; }

  bool wants_prev_values = true;
  void OnCompactionScheduled() override { log_.push_back("compaction scheduled"); }
  void OnAlarms(const std::vector<mvcc::AlarmRecord>& alarms) override {
    log_.push_back(absl::StrCat("alarms ", alarms.size()));
  }
  void OnMemberAttrSet(const kvstore::internal::MemberAttrSetRequest& r) override {
    log_.push_back(absl::StrCat("attr ", r.name()));
  }
  void OnMemberChange(const kvstore::internal::MemberChange&) override {
    log_.push_back("member change");
  }

  const std::vector<std::string>& log() const { return log_; }

 private:
  const mvcc::MvccStore* const store_;
  std::vector<std::string> log_;
};

// One member's state machine on a fresh store.
struct Member {
  explicit Member(const std::string& dir) {
    absl::StatusOr<std::unique_ptr<mvcc::MvccStore>> opened = mvcc::MvccStore::Open(dir);
    EXPECT_TRUE(opened.ok()) << opened.status();
    store = *std::move(opened);
    listener = std::make_unique<RecordingListener>(store.get());
    applier = std::make_unique<Applier>(store.get(), &lessor, listener.get());
  }

  common::FakeClock clock;
  Lessor lessor{&clock, 5};
  std::unique_ptr<mvcc::MvccStore> store;
  std::unique_ptr<RecordingListener> listener;
  std::unique_ptr<Applier> applier;
};

class ApplierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "applier_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Member> NewMember() {
    return std::make_unique<Member>(absl::StrCat(dir_, "/m", members_++));
  }

  std::string dir_;
  int members_ = 0;
};

raft::Entry Entry(uint64_t index, InternalRaftRequest r) {
  r.set_proposer(1);
  r.set_id(index);
  return raft::Entry{.term = 1, .index = index, .data = r.SerializeAsString()};
}

InternalRaftRequest Put(const std::string& key, const std::string& value, int64_t lease = 0,
                        bool prev_kv = false) {
  InternalRaftRequest r;
  r.mutable_put()->set_key(key);
  r.mutable_put()->set_value(value);
  r.mutable_put()->set_lease(lease);
  r.mutable_put()->set_prev_kv(prev_kv);
  return r;
}

// A log that exercises what one entry may see of the entries before it: leases granted,
// attached and revoked, txns comparing and reading revisions just written, failures that
// must leave no trace, and entries that commit alone (compaction, alarm, membership).
std::vector<raft::Entry> MixedLog() {
  std::vector<InternalRaftRequest> requests;
  requests.emplace_back();  // a leader's no-op: no request at all
  {
    InternalRaftRequest r;
    r.mutable_lease_grant()->set_id(100);
    r.mutable_lease_grant()->set_ttl(60);
    requests.push_back(r);
  }
  requests.push_back(Put("a", "1", 100));  // revision 2
  requests.push_back(Put("b", "1"));       // revision 3
  {
    // Compares the revision the put before wrote and reads the one before that.
    InternalRaftRequest r;
    etcdserverpb::TxnRequest* txn = r.mutable_txn();
    etcdserverpb::Compare* c = txn->add_compare();
    c->set_key("b");
    c->set_target(etcdserverpb::Compare::MOD);
    c->set_result(etcdserverpb::Compare::EQUAL);
    c->set_mod_revision(3);
    txn->add_success()->mutable_request_put()->set_key("b");
    txn->mutable_success(0)->mutable_request_put()->set_value("2");
    etcdserverpb::RangeRequest* old = txn->add_success()->mutable_request_range();
    old->set_key("a");
    old->set_revision(2);
    txn->add_failure()->mutable_request_put()->set_key("failed");
    requests.push_back(r);  // revision 4
  }
  requests.push_back(Put("c", "1", 999));  // an unknown lease: fails, writes nothing
  {
    InternalRaftRequest r;
    r.mutable_put()->set_key("nothing");
    r.mutable_put()->set_ignore_value(true);  // on a missing key: fails
    requests.push_back(r);
  }
  {
    InternalRaftRequest r;
    r.mutable_lease_revoke()->set_id(100);  // deletes "a", attached above: revision 5
    requests.push_back(r);
  }
  {
    InternalRaftRequest r;
    r.mutable_range()->set_key("a");
    r.mutable_range()->set_range_end(std::string("\0", 1));
    requests.push_back(r);
  }
  {
    InternalRaftRequest r;
    r.mutable_compaction()->set_revision(3);
    requests.push_back(r);
  }
  requests.push_back(Put("b", "3", 0, /*prev_kv=*/true));  // revision 6
  {
    InternalRaftRequest r;
    r.mutable_member_attr_set()->set_member_id(1);
    r.mutable_member_attr_set()->set_name("m1");
    requests.push_back(r);
  }
  {
    InternalRaftRequest r;
    r.mutable_alarm()->set_action(etcdserverpb::AlarmRequest::ACTIVATE);
    r.mutable_alarm()->set_memberid(1);
    r.mutable_alarm()->set_alarm(etcdserverpb::NOSPACE);
    requests.push_back(r);
  }
  {
    // An alarm request that fails (an action etcd does not know): dropped, alone.
    InternalRaftRequest r;
    r.mutable_alarm()->set_action(static_cast<etcdserverpb::AlarmRequest::AlarmAction>(7));
    r.mutable_alarm()->set_memberid(1);
    r.mutable_alarm()->set_alarm(etcdserverpb::NOSPACE);
    requests.push_back(r);
  }
  {
    InternalRaftRequest r;
    r.mutable_lease_grant()->set_id(100);  // granted again after its revoke
    r.mutable_lease_grant()->set_ttl(60);
    requests.push_back(r);
  }
  requests.push_back(Put("d", "1", 100));  // revision 7
  {
    InternalRaftRequest r;
    r.mutable_delete_range()->set_key("a");
    r.mutable_delete_range()->set_range_end(std::string("\0", 1));
    r.mutable_delete_range()->set_prev_kv(true);
    requests.push_back(r);  // revision 8
  }
  std::vector<raft::Entry> log;
  for (InternalRaftRequest& r : requests) {
    const uint64_t index = log.size() + 1;
    log.push_back(r.request_case() == InternalRaftRequest::REQUEST_NOT_SET
                      ? raft::Entry{.term = 1, .index = index}
                      : Entry(index, std::move(r)));
  }
  // Bytes that are no request: skipped, but applied.
  log.push_back(raft::Entry{.term = 1, .index = log.size() + 1, .data = "\xff\xff garbage"});
  log.push_back(Entry(log.size() + 1, Put("e", "1")));  // revision 9
  return log;
}

// Applies `log` in calls of the sizes `split` gives.
void ApplyInCalls(Member& m, const std::vector<raft::Entry>& log,
                  const std::function<size_t()>& split) {
  for (size_t at = 0; at < log.size();) {
    const size_t n = std::min(split(), log.size() - at);
    m.applier->Apply(absl::MakeConstSpan(&log[at], n));
    at += n;
  }
}

TEST_F(ApplierTest, OneCallPerEntryGivesTheExpectedOutcomes) {
  const std::vector<raft::Entry> log = MixedLog();
  std::unique_ptr<Member> m = NewMember();
  ApplyInCalls(*m, log, [] { return 1; });

  EXPECT_EQ(m->store->AppliedIndex(), log.size());
  EXPECT_EQ(m->store->CurrentRevision(), 9);
  EXPECT_EQ(m->store->CompactedRevision(), 3);
  const std::vector<std::string>& got = m->listener->log();
  auto has = [&got](const std::string& line) {
    return std::find(got.begin(), got.end(), line) != got.end();
  };
  EXPECT_TRUE(has("applied 1/3 OK header { revision: 2 }")) << testing::PrintToString(got);
  EXPECT_TRUE(has("events @5 delete a=/0 (had prev/1)")) << testing::PrintToString(got);
  EXPECT_TRUE(has("applied 1/6 NOT_FOUND: etcdserver: requested lease not found -"))
      << testing::PrintToString(got);
  EXPECT_TRUE(has("compaction scheduled"));
  EXPECT_TRUE(has("attr m1"));
  EXPECT_TRUE(has("alarms 1"));
  EXPECT_TRUE(has("applied 1/14 INVALID_ARGUMENT: etcdserver: invalid alarm request -"))
      << testing::PrintToString(got);
  // The txn took its success branch and read "a" as the revision before had it.
  bool txn_read_old_a = false;
  for (const std::string& line : got) {
    if (absl::StartsWith(line, "applied 1/5 OK") && absl::StrContains(line, "succeeded: true") &&
        absl::StrContains(line, "key: \"a\" create_revision: 2 mod_revision: 2")) {
      txn_read_old_a = true;
    }
  }
  EXPECT_TRUE(txn_read_old_a) << testing::PrintToString(got);
  absl::StatusOr<mvcc::RangeResult> all = m->store->Range("", std::string("\0", 1));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->kvs.size(), 1u);
  EXPECT_EQ(all->kvs[0].key, "e");
}

TEST_F(ApplierTest, GroupingEntriesChangesNoOutcome) {
  const std::vector<raft::Entry> log = MixedLog();
  std::unique_ptr<Member> one_by_one = NewMember();
  ApplyInCalls(*one_by_one, log, [] { return 1; });
  absl::StatusOr<mvcc::KvHash> want_hash = one_by_one->store->HashKV(0);
  ASSERT_TRUE(want_hash.ok());

  std::unique_ptr<Member> all_at_once = NewMember();
  ApplyInCalls(*all_at_once, log, [&log] { return log.size(); });
  EXPECT_EQ(all_at_once->listener->log(), one_by_one->listener->log());

  const uint32_t seed = static_cast<uint32_t>(testing::UnitTest::GetInstance()->random_seed());
  SCOPED_TRACE(testing::Message() << "seed " << seed << " (--gtest_random_seed)");
  std::mt19937 rng(seed);
  for (int round = 0; round < 5; ++round) {
    std::unique_ptr<Member> m = NewMember();
    ApplyInCalls(*m, log, [&rng] { return 1 + rng() % 6; });
    EXPECT_EQ(m->listener->log(), one_by_one->listener->log()) << "round " << round;
    absl::StatusOr<mvcc::KvHash> hash = m->store->HashKV(0);
    ASSERT_TRUE(hash.ok());
    EXPECT_EQ(hash->hash, want_hash->hash);
    EXPECT_EQ(hash->revision, want_hash->revision);
    EXPECT_EQ(m->store->AppliedIndex(), log.size());
  }
}

TEST_F(ApplierTest, SkippingPrevValuesChangesNoOutcome) {
  const std::vector<raft::Entry> log = MixedLog();
  std::unique_ptr<Member> with = NewMember();
  ApplyInCalls(*with, log, [&log] { return log.size(); });
  std::unique_ptr<Member> without = NewMember();
  without->listener->wants_prev_values = false;
  ApplyInCalls(*without, log, [&log] { return log.size(); });
  EXPECT_EQ(without->listener->log(), with->listener->log());
  absl::StatusOr<mvcc::KvHash> a = with->store->HashKV(0);
  absl::StatusOr<mvcc::KvHash> b = without->store->HashKV(0);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->hash, b->hash);
}

}  // namespace
}  // namespace kvstore::server

// The Lease service in-process: a KvServer and a gRPC server on 127.0.0.1, called through
// the generated stubs. Timing tests use a fake clock for the lessor (expiry) and the Raft
// ticks, so they move time by hand instead of sleeping out TTLs.
#include "kvstore/server/lease_service.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "absl/time/clock.h"
#include "kvstore/server/service_test_env.h"

namespace kvstore::server {
namespace {

using testing::Ctx;
using testing::ServiceEnv;

class LeaseServiceTest : public ::testing::Test {
 protected:
  explicit LeaseServiceTest(const common::Clock* clock = common::RealClock::Get()) : env_(clock) {}

  void SetUp() override {
    ASSERT_TRUE(env_.status().ok()) << env_.status();
    lease_ = etcdserverpb::Lease::NewStub(env_.channel());
    kv_ = etcdserverpb::KV::NewStub(env_.channel());
  }

  grpc::Status Grant(int64_t ttl, int64_t id, etcdserverpb::LeaseGrantResponse* resp) {
    etcdserverpb::LeaseGrantRequest req;
    req.set_ttl(ttl);
    req.set_id(id);
    return lease_->LeaseGrant(Ctx().get(), req, resp);
  }

  int64_t GrantOk(int64_t ttl, int64_t id = 0) {
    etcdserverpb::LeaseGrantResponse resp;
    const grpc::Status s = Grant(ttl, id, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.id();
  }

  void Put(const std::string& key, const std::string& value, int64_t lease = 0) {
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    req.set_lease(lease);
    etcdserverpb::PutResponse resp;
    const grpc::Status s = kv_->Put(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  // Keys present at the current revision, sorted.
  std::vector<std::string> Keys() {
    etcdserverpb::RangeRequest req;
    req.set_key(std::string(1, '\0'));
    req.set_range_end(std::string(1, '\0'));
    etcdserverpb::RangeResponse resp;
    const grpc::Status s = kv_->Range(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<std::string> keys;
    for (const auto& kv : resp.kvs()) keys.push_back(kv.key());
    return keys;
  }

  etcdserverpb::LeaseTimeToLiveResponse TimeToLive(int64_t id, bool keys = true) {
    etcdserverpb::LeaseTimeToLiveRequest req;
    req.set_id(id);
    req.set_keys(keys);
    etcdserverpb::LeaseTimeToLiveResponse resp;
    const grpc::Status s = lease_->LeaseTimeToLive(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  std::vector<int64_t> Leases() {
    etcdserverpb::LeaseLeasesResponse resp;
    const grpc::Status s =
        lease_->LeaseLeases(Ctx().get(), etcdserverpb::LeaseLeasesRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    std::vector<int64_t> ids;
    for (const auto& l : resp.leases()) ids.push_back(l.id());
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  // Sends each id on one keep-alive stream and returns the answers, in order.
  std::vector<etcdserverpb::LeaseKeepAliveResponse> KeepAlive(const std::vector<int64_t>& ids) {
    auto ctx = Ctx();
    auto stream = lease_->LeaseKeepAlive(ctx.get());
    std::vector<etcdserverpb::LeaseKeepAliveResponse> out;
    for (int64_t id : ids) {
      etcdserverpb::LeaseKeepAliveRequest req;
      req.set_id(id);
      EXPECT_TRUE(stream->Write(req));
      etcdserverpb::LeaseKeepAliveResponse resp;
      EXPECT_TRUE(stream->Read(&resp));
      out.push_back(resp);
    }
    stream->WritesDone();
    const grpc::Status s = stream->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  void ExpectHeader(const etcdserverpb::ResponseHeader& h) {
    EXPECT_EQ(h.cluster_id(), env_.server().cluster_id());
    EXPECT_EQ(h.member_id(), env_.server().member_id());
    EXPECT_GE(h.raft_term(), 1u);
    EXPECT_GE(h.revision(), 1);
  }

  ServiceEnv env_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
};

// The same, with a clock the test moves.
class LeaseServiceFakeClockTest : public LeaseServiceTest {
 protected:
  LeaseServiceFakeClockTest() : LeaseServiceTest(&clock_) {}

  // Moves the fake clock; the lease timer then needs up to one real period to notice.
  void Advance(absl::Duration d) { clock_.Advance(d); }

  static inline common::FakeClock clock_{absl::FromUnixSeconds(1'000'000)};
};

TEST(LeaseIdGeneratorTest, IdsArePositiveUniqueAndCarryTheMemberId) {
  const absl::Time now = absl::FromUnixMillis(1'700'000'000'123);
  LeaseIdGenerator gen(0xfedc'ba98'7654'abcdULL, now);
  std::set<int64_t> seen;
  int64_t prev = 0;
  for (int i = 0; i < 1000; ++i) {
    const int64_t id = gen.Next();
    ASSERT_GT(id, 0);
    ASSERT_TRUE(seen.insert(id).second);
    if (prev != 0) {
      ASSERT_EQ(id, prev + 1);
    }
    prev = id;
    // The member's low 16 bits, with the sign bit cleared.
    ASSERT_EQ(static_cast<uint64_t>(id) >> 48, 0xabcdULL & 0x7fff);
  }
  // A generator made later on the same member starts past the ids of this one.
  LeaseIdGenerator later(0xfedc'ba98'7654'abcdULL, now + absl::Milliseconds(5));
  EXPECT_GT(later.Next(), prev);
}

TEST_F(LeaseServiceTest, GrantPicksUniquePositiveIdsAndFillsTheHeader) {
  etcdserverpb::LeaseGrantResponse a, b;
  ASSERT_TRUE(Grant(60, 0, &a).ok());
  ASSERT_TRUE(Grant(60, 0, &b).ok());
  EXPECT_GT(a.id(), 0);
  EXPECT_GT(b.id(), 0);
  EXPECT_NE(a.id(), b.id());
  EXPECT_EQ(static_cast<uint64_t>(a.id()) >> 48, (env_.server().member_id() & 0xffff) & 0x7fff);
  EXPECT_EQ(a.ttl(), 60);
  EXPECT_EQ(a.error(), "");
  ExpectHeader(a.header());
  EXPECT_EQ(Leases(), (std::vector<int64_t>{std::min(a.id(), b.id()), std::max(a.id(), b.id())}));
}

TEST_F(LeaseServiceTest, ClientChosenIdsAndDuplicates) {
  EXPECT_EQ(GrantOk(30, 42), 42);
  EXPECT_EQ(GrantOk(30, -5), -5);  // etcd accepts any non-zero id
  const int64_t rev = env_.server().store().CurrentRevision();
  etcdserverpb::LeaseGrantResponse resp;
  const grpc::Status s = Grant(99, 42, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "etcdserver: lease already exists");
  EXPECT_EQ(TimeToLive(42).grantedttl(), 30);  // unchanged
  EXPECT_EQ(env_.server().store().CurrentRevision(), rev);
}

TEST_F(LeaseServiceTest, ShortTtlsGetTheMinimumAndHugeOnesAreRefused) {
  const int64_t min_ttl = env_.server().lessor().min_ttl();
  ASSERT_EQ(min_ttl, 1);  // 1.5 x a 100 ms election timeout, rounded up
  etcdserverpb::LeaseGrantResponse resp;
  ASSERT_TRUE(Grant(0, 7, &resp).ok());
  EXPECT_EQ(resp.ttl(), min_ttl);
  ASSERT_TRUE(Grant(-10, 8, &resp).ok());
  EXPECT_EQ(resp.ttl(), min_ttl);

  const grpc::Status s = Grant(kMaxLeaseTtl + 1, 9, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(s.error_message(), "etcdserver: too large lease TTL");
  EXPECT_EQ(Leases(), (std::vector<int64_t>{7, 8}));
  ASSERT_TRUE(Grant(kMaxLeaseTtl, 10, &resp).ok());
  EXPECT_EQ(resp.ttl(), kMaxLeaseTtl);
}

TEST_F(LeaseServiceTest, RevokeDeletesAttachedKeysInOneRevision) {
  const int64_t id = GrantOk(100);
  Put("a", "1", id);
  Put("b", "2", id);
  Put("c", "3");
  const int64_t before = env_.server().store().CurrentRevision();
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(id);
  etcdserverpb::LeaseRevokeResponse resp;
  ASSERT_TRUE(lease_->LeaseRevoke(Ctx().get(), req, &resp).ok());
  ExpectHeader(resp.header());
  EXPECT_EQ(resp.header().revision(), before + 1);
  EXPECT_EQ(Keys(), std::vector<std::string>{"c"});

  std::vector<std::string> deleted;
  for (const ServiceEnv::Change& c : env_.changes()) {
    if (c.event.type == mvcc::Event::Type::kDelete) {
      deleted.push_back(c.event.kv.key);
      EXPECT_EQ(c.revision, before + 1);
    }
  }
  EXPECT_EQ(deleted, (std::vector<std::string>{"a", "b"}));

  const grpc::Status again = lease_->LeaseRevoke(Ctx().get(), req, &resp);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(again.error_message(), "etcdserver: requested lease not found");
  EXPECT_EQ(env_.server().store().CurrentRevision(), before + 1);
  EXPECT_TRUE(Leases().empty());
}

TEST_F(LeaseServiceTest, TimeToLiveListsKeysAndAnswersUnknownLeasesWithMinusOne) {
  const int64_t id = GrantOk(100);
  Put("k2", "v", id);
  Put("k1", "v", id);
  etcdserverpb::LeaseTimeToLiveResponse r = TimeToLive(id);
  ExpectHeader(r.header());
  EXPECT_EQ(r.id(), id);
  EXPECT_EQ(r.grantedttl(), 100);
  // Truncated, as etcd's: a moment after the grant there are 99 whole seconds left.
  EXPECT_GE(r.ttl(), 98);
  EXPECT_LE(r.ttl(), 99);
  EXPECT_EQ(std::vector<std::string>(r.keys().begin(), r.keys().end()),
            (std::vector<std::string>{"k1", "k2"}));
  EXPECT_EQ(TimeToLive(id, /*keys=*/false).keys_size(), 0);

  r = TimeToLive(0x1234);
  ExpectHeader(r.header());
  EXPECT_EQ(r.id(), 0x1234);
  EXPECT_EQ(r.ttl(), -1);
  EXPECT_EQ(r.grantedttl(), 0);
  EXPECT_EQ(r.keys_size(), 0);
}

TEST_F(LeaseServiceTest, PutOnAnUnknownLeaseFailsAndChangesNothing) {
  const int64_t rev = env_.server().store().CurrentRevision();
  etcdserverpb::PutRequest req;
  req.set_key("x");
  req.set_lease(777);
  etcdserverpb::PutResponse resp;
  const grpc::Status s = kv_->Put(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "etcdserver: requested lease not found");
  EXPECT_EQ(env_.server().store().CurrentRevision(), rev);
}

TEST_F(LeaseServiceFakeClockTest, KeepAliveRenewsAndUnknownLeasesGetTtlZero) {
  const int64_t id = GrantOk(10);
  EXPECT_EQ(TimeToLive(id).ttl(), 10);  // the fake clock has not moved
  Advance(absl::Seconds(8));
  EXPECT_EQ(TimeToLive(id).ttl(), 2);

  const std::vector<etcdserverpb::LeaseKeepAliveResponse> answers = KeepAlive({id, 0x4242, id});
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers[0].id(), id);
  EXPECT_EQ(answers[0].ttl(), 10);
  ExpectHeader(answers[0].header());
  EXPECT_EQ(answers[1].id(), 0x4242);
  EXPECT_EQ(answers[1].ttl(), 0);  // etcd: not an error, TTL 0
  ExpectHeader(answers[1].header());
  EXPECT_EQ(answers[2].ttl(), 10);
  EXPECT_EQ(TimeToLive(id).ttl(), 10);

  // Renewed: 8 more seconds do not expire it.
  Advance(absl::Seconds(8));
  absl::SleepFor(absl::Milliseconds(300));  // several periods of the lease timer
  EXPECT_EQ(TimeToLive(id).ttl(), 2);
  EXPECT_EQ(Leases(), std::vector<int64_t>{id});
}

TEST_F(LeaseServiceFakeClockTest, ExpiryDeletesTheKeysAndWatchersSeeDeletes) {
  const int64_t id = GrantOk(5);
  const int64_t other = GrantOk(100);
  Put("expiring/a", "1", id);
  Put("expiring/b", "2", id);
  Put("kept", "3", other);
  Advance(absl::Seconds(4));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Keys(), (std::vector<std::string>{"expiring/a", "expiring/b", "kept"}));

  const int64_t before = env_.server().store().CurrentRevision();
  Advance(absl::Seconds(2));
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Keys().size() != 1 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(Keys(), std::vector<std::string>{"kept"});
  // One revision deleted both keys, and the sink (the watch hub's feed) saw both deletes.
  EXPECT_EQ(env_.server().store().CurrentRevision(), before + 1);
  std::vector<std::string> deleted;
  for (const ServiceEnv::Change& c : env_.changes()) {
    if (c.event.type != mvcc::Event::Type::kDelete) continue;
    deleted.push_back(c.event.kv.key);
    EXPECT_EQ(c.revision, before + 1);
    ASSERT_TRUE(c.event.prev_kv.has_value());
    EXPECT_EQ(c.event.prev_kv->lease, id);
  }
  EXPECT_EQ(deleted, (std::vector<std::string>{"expiring/a", "expiring/b"}));
  EXPECT_EQ(TimeToLive(id).ttl(), -1);
  EXPECT_EQ(KeepAlive({id})[0].ttl(), 0);
  EXPECT_EQ(Leases(), std::vector<int64_t>{other});
}

TEST(LeaseServiceRestartTest, LeasesAndTheirKeysSurviveARestart) {
  testing::TempDir dir;
  const KvServerOptions options = testing::FastOptions(dir.path() + "/member");
  int64_t id = 0;
  {
    ServiceEnv env(common::RealClock::Get(), options);
    ASSERT_TRUE(env.status().ok()) << env.status();
    auto lease = etcdserverpb::Lease::NewStub(env.channel());
    auto kv = etcdserverpb::KV::NewStub(env.channel());
    etcdserverpb::LeaseGrantRequest g;
    g.set_ttl(100);
    etcdserverpb::LeaseGrantResponse granted;
    ASSERT_TRUE(lease->LeaseGrant(Ctx().get(), g, &granted).ok());
    id = granted.id();
    etcdserverpb::PutRequest put;
    put.set_key("held");
    put.set_lease(id);
    etcdserverpb::PutResponse put_resp;
    ASSERT_TRUE(kv->Put(Ctx().get(), put, &put_resp).ok());
  }
  ServiceEnv env(common::RealClock::Get(), options);
  ASSERT_TRUE(env.status().ok()) << env.status();
  auto lease = etcdserverpb::Lease::NewStub(env.channel());
  etcdserverpb::LeaseTimeToLiveRequest req;
  req.set_id(id);
  req.set_keys(true);
  etcdserverpb::LeaseTimeToLiveResponse resp;
  ASSERT_TRUE(lease->LeaseTimeToLive(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.grantedttl(), 100);
  // The new leader gives the lease its whole TTL again.
  EXPECT_GE(resp.ttl(), 98);
  ASSERT_EQ(resp.keys_size(), 1);
  EXPECT_EQ(resp.keys(0), "held");
}

}  // namespace
}  // namespace kvstore::server

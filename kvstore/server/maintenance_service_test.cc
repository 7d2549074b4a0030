// The Maintenance service in-process (a KvServer and a gRPC server on 127.0.0.1, called
// through the generated stubs): Status, Alarm and what alarms refuse, Defragment, Hash and
// HashKV, MoveLeader, and Snapshot through to a restored member.
#include "kvstore/server/maintenance_service.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kvstore/server/restore.h"
#include "kvstore/server/service_test_env.h"
#include "kvstore/server/snapshot_format.h"

namespace kvstore::server {
namespace {

using testing::Ctx;
using testing::ServiceEnv;

std::string Sha256(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

// `n` bytes that do not compress, the same for the same seed.
std::string Noise(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

class MaintenanceServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.status().ok()) << env_.status();
    m_ = etcdserverpb::Maintenance::NewStub(env_.channel());
    kv_ = etcdserverpb::KV::NewStub(env_.channel());
    lease_ = etcdserverpb::Lease::NewStub(env_.channel());
  }

  grpc::Status Put(const std::string& key, const std::string& value, int64_t lease = 0) {
    etcdserverpb::PutRequest req;
    req.set_key(key);
    req.set_value(value);
    req.set_lease(lease);
    etcdserverpb::PutResponse resp;
    return kv_->Put(Ctx().get(), req, &resp);
  }

  grpc::Status Delete(const std::string& key, const std::string& range_end = "") {
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(key);
    req.set_range_end(range_end);
    etcdserverpb::DeleteRangeResponse resp;
    return kv_->DeleteRange(Ctx().get(), req, &resp);
  }

  grpc::Status Alarm(etcdserverpb::AlarmRequest::AlarmAction action, uint64_t member,
                     etcdserverpb::AlarmType type, etcdserverpb::AlarmResponse* resp) {
    etcdserverpb::AlarmRequest req;
    req.set_action(action);
    req.set_memberid(member);
    req.set_alarm(type);
    return m_->Alarm(Ctx().get(), req, resp);
  }

  // Alarms as (member, type) pairs.
  std::vector<std::pair<uint64_t, int>> Alarms(const etcdserverpb::AlarmResponse& r) {
    std::vector<std::pair<uint64_t, int>> out;
    for (const auto& a : r.alarms()) out.emplace_back(a.memberid(), a.alarm());
    return out;
  }

  etcdserverpb::StatusResponse Status() {
    etcdserverpb::StatusResponse resp;
    const grpc::Status s = m_->Status(Ctx().get(), etcdserverpb::StatusRequest(), &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  // The whole Snapshot stream.
  std::vector<etcdserverpb::SnapshotResponse> Snapshot() {
    auto ctx = Ctx(absl::Seconds(30));
    auto reader = m_->Snapshot(ctx.get(), etcdserverpb::SnapshotRequest());
    std::vector<etcdserverpb::SnapshotResponse> out;
    etcdserverpb::SnapshotResponse r;
    while (reader->Read(&r)) out.push_back(r);
    const grpc::Status s = reader->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  std::vector<std::string> SnapshotTempDirs() {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(env_.data_dir() + "/member")) {
      const std::string name = e.path().filename().string();
      if (absl::StartsWith(name, "snapshot.tmp.")) out.push_back(name);
    }
    return out;
  }

  ServiceEnv env_;
  std::unique_ptr<etcdserverpb::Maintenance::Stub> m_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;
};

TEST_F(MaintenanceServiceTest, StatusReportsTheMember) {
  ASSERT_TRUE(Put("a", "1").ok());
  const etcdserverpb::StatusResponse s = Status();
  EXPECT_EQ(s.header().cluster_id(), env_.server().cluster_id());
  EXPECT_EQ(s.header().member_id(), env_.server().member_id());
  EXPECT_EQ(s.header().revision(), 2);
  EXPECT_GE(s.header().raft_term(), 1u);
  EXPECT_EQ(s.version(), kServerVersion);
  EXPECT_TRUE(absl::StartsWith(s.version(), "3.4."));
  EXPECT_GT(s.dbsize(), 0);
  EXPECT_GT(s.dbsizeinuse(), 0);
  EXPECT_EQ(s.leader(), env_.server().member_id());
  EXPECT_EQ(s.raftterm(), s.header().raft_term());
  // The bootstrap snapshot is index 1, the leader's empty entry 2, the put 3.
  EXPECT_GE(s.raftindex(), 3u);
  EXPECT_GE(s.raftindex(), s.raftappliedindex());
  EXPECT_GE(s.raftappliedindex(), 3u);
  EXPECT_TRUE(s.errors().empty());
  EXPECT_FALSE(s.islearner());
}

TEST_F(MaintenanceServiceTest, NospaceAlarmRefusesWhatMayGrowTheStore) {
  const uint64_t me = env_.server().member_id();
  ASSERT_TRUE(Put("a", "1").ok());
  etcdserverpb::AlarmResponse r;
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::GET, 0, etcdserverpb::NONE, &r).ok());
  EXPECT_TRUE(r.alarms().empty());
  EXPECT_FALSE(r.has_header());  // etcd 3.4's AlarmResponse carries none

  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::ACTIVATE, me, etcdserverpb::NOSPACE, &r).ok());
  EXPECT_EQ(Alarms(r), (std::vector<std::pair<uint64_t, int>>{{me, etcdserverpb::NOSPACE}}));
  // Activating again answers the same and changes nothing.
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::ACTIVATE, me, etcdserverpb::NOSPACE, &r).ok());
  EXPECT_EQ(r.alarms_size(), 1);
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::GET, 0, etcdserverpb::NONE, &r).ok());
  EXPECT_EQ(Alarms(r), (std::vector<std::pair<uint64_t, int>>{{me, etcdserverpb::NOSPACE}}));
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::GET, 0, etcdserverpb::CORRUPT, &r).ok());
  EXPECT_TRUE(r.alarms().empty());
  const etcdserverpb::StatusResponse status = Status();
  ASSERT_EQ(status.errors_size(), 1);
  EXPECT_EQ(status.errors(0), absl::StrCat("memberID:", me, " alarm:NOSPACE "));

  const int64_t rev = env_.server().store().CurrentRevision();
  grpc::Status s = Put("b", "2");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "etcdserver: mvcc: database space exceeded");
  etcdserverpb::LeaseGrantRequest g;
  g.set_ttl(10);
  etcdserverpb::LeaseGrantResponse granted;
  s = lease_->LeaseGrant(Ctx().get(), g, &granted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A txn that may put is refused even if the put is in the branch that would not run.
  etcdserverpb::TxnRequest txn;
  txn.add_failure()->mutable_request_put()->set_key("c");
  etcdserverpb::TxnResponse txn_resp;
  s = kv_->Txn(Ctx().get(), txn, &txn_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(env_.server().store().CurrentRevision(), rev);
  // Reads, read-only txns and deletes go on, as in etcd.
  etcdserverpb::TxnRequest ro;
  ro.add_success()->mutable_request_range()->set_key("a");
  ASSERT_TRUE(kv_->Txn(Ctx().get(), ro, &txn_resp).ok());
  EXPECT_TRUE(txn_resp.succeeded());
  ASSERT_TRUE(Delete("a").ok());

  // Deactivating another member's alarm matches nothing.
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::DEACTIVATE, 5, etcdserverpb::NOSPACE, &r).ok());
  EXPECT_TRUE(r.alarms().empty());
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::DEACTIVATE, me, etcdserverpb::NOSPACE, &r).ok());
  EXPECT_EQ(Alarms(r), (std::vector<std::pair<uint64_t, int>>{{me, etcdserverpb::NOSPACE}}));
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::DEACTIVATE, me, etcdserverpb::NOSPACE, &r).ok());
  EXPECT_TRUE(r.alarms().empty());
  EXPECT_TRUE(Put("b", "2").ok());
  EXPECT_TRUE(Status().errors().empty());
}

TEST_F(MaintenanceServiceTest, CorruptAlarmRefusesEveryWrite) {
  ASSERT_TRUE(Put("a", "1").ok());
  etcdserverpb::AlarmResponse r;
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::ACTIVATE, 5, etcdserverpb::CORRUPT, &r).ok());
  EXPECT_EQ(Alarms(r), (std::vector<std::pair<uint64_t, int>>{{5, etcdserverpb::CORRUPT}}));
  for (const grpc::Status& s : {Put("b", "2"), Delete("a")}) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
    EXPECT_EQ(s.error_message(), "etcdserver: corrupt cluster");
  }
  etcdserverpb::RangeRequest range;
  range.set_key("a");
  etcdserverpb::RangeResponse got;
  ASSERT_TRUE(kv_->Range(Ctx().get(), range, &got).ok());
  EXPECT_EQ(got.kvs_size(), 1);
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::DEACTIVATE, 5, etcdserverpb::CORRUPT, &r).ok());
  EXPECT_TRUE(Put("b", "2").ok());
}

TEST_F(MaintenanceServiceTest, AlarmRequestsEtcdCrashesOnAreRefused) {
  etcdserverpb::AlarmResponse r;
  grpc::Status s = Alarm(etcdserverpb::AlarmRequest::ACTIVATE, 0, etcdserverpb::NONE, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  etcdserverpb::AlarmRequest bad;
  bad.set_action(static_cast<etcdserverpb::AlarmRequest::AlarmAction>(7));
  s = m_->Alarm(Ctx().get(), bad, &r);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(Alarm(etcdserverpb::AlarmRequest::GET, 0, etcdserverpb::NONE, &r).ok());
  EXPECT_TRUE(r.alarms().empty());
}

TEST_F(MaintenanceServiceTest, DefragmentKeepsTheDataAndAnswersWithoutHeader) {
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(Put(absl::StrCat("k", i), std::string(500, 'x')).ok());
  ASSERT_TRUE(Delete("k1", "k2").ok());  // k1, k10..k19, k100..k199
  etcdserverpb::DefragmentResponse resp;
  ASSERT_TRUE(m_->Defragment(Ctx().get(), etcdserverpb::DefragmentRequest(), &resp).ok());
  EXPECT_FALSE(resp.has_header());
  etcdserverpb::RangeRequest range;
  range.set_key("k");
  range.set_range_end("l");
  range.set_count_only(true);
  etcdserverpb::RangeResponse got;
  ASSERT_TRUE(kv_->Range(Ctx().get(), range, &got).ok());
  EXPECT_EQ(got.count(), 200 - 111);
}

TEST_F(MaintenanceServiceTest, HashAndHashKV) {
  ASSERT_TRUE(Put("a", "1").ok());
  ASSERT_TRUE(Put("a", "2").ok());  // revision 3
  etcdserverpb::HashKVRequest req;
  etcdserverpb::HashKVResponse at3, again, at2;
  ASSERT_TRUE(m_->HashKV(Ctx().get(), req, &at3).ok());
  EXPECT_EQ(at3.header().revision(), 3);
  EXPECT_EQ(at3.header().member_id(), env_.server().member_id());
  EXPECT_EQ(at3.compact_revision(), -1);  // etcd's "never compacted"
  ASSERT_TRUE(Put("b", "3").ok());        // revision 4
  req.set_revision(3);
  ASSERT_TRUE(m_->HashKV(Ctx().get(), req, &again).ok());
  EXPECT_EQ(again.hash(), at3.hash());  // later writes do not change the hash at 3
  EXPECT_EQ(again.header().revision(), 4);
  req.set_revision(2);
  ASSERT_TRUE(m_->HashKV(Ctx().get(), req, &at2).ok());
  EXPECT_NE(at2.hash(), at3.hash());

  req.set_revision(100);
  grpc::Status s = m_->HashKV(Ctx().get(), req, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(s.error_message(), "etcdserver: mvcc: required revision is a future revision");

  etcdserverpb::CompactionRequest c;
  c.set_revision(3);
  etcdserverpb::CompactionResponse cr;
  ASSERT_TRUE(kv_->Compact(Ctx().get(), c, &cr).ok());
  req.set_revision(0);
  ASSERT_TRUE(m_->HashKV(Ctx().get(), req, &again).ok());
  EXPECT_EQ(again.compact_revision(), 3);
  req.set_revision(2);
  s = m_->HashKV(Ctx().get(), req, &again);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(s.error_message(), "etcdserver: mvcc: required revision has been compacted");

  etcdserverpb::HashResponse h1, h2;
  ASSERT_TRUE(m_->Hash(Ctx().get(), etcdserverpb::HashRequest(), &h1).ok());
  ASSERT_TRUE(m_->Hash(Ctx().get(), etcdserverpb::HashRequest(), &h2).ok());
  EXPECT_EQ(h1.hash(), h2.hash());
  EXPECT_EQ(h1.header().revision(), 4);
  ASSERT_TRUE(Put("b", "4").ok());
  ASSERT_TRUE(m_->Hash(Ctx().get(), etcdserverpb::HashRequest(), &h2).ok());
  EXPECT_NE(h1.hash(), h2.hash());
}

TEST_F(MaintenanceServiceTest, MoveLeaderToItselfOrToNobody) {
  etcdserverpb::MoveLeaderRequest req;
  etcdserverpb::MoveLeaderResponse resp;
  req.set_targetid(env_.server().member_id());
  ASSERT_TRUE(m_->MoveLeader(Ctx().get(), req, &resp).ok());
  EXPECT_FALSE(resp.has_header());
  for (uint64_t target : {uint64_t{0}, uint64_t{0x1234}}) {
    req.set_targetid(target);
    const grpc::Status s = m_->MoveLeader(Ctx().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(s.error_message(), "etcdserver: bad leader transferee");
  }
}

TEST_F(MaintenanceServiceTest, SnapshotHasEtcdsFramingAndRestoresIntoAMember) {
  etcdserverpb::LeaseGrantRequest g;
  g.set_ttl(1000);
  etcdserverpb::LeaseGrantResponse lease;
  ASSERT_TRUE(lease_->LeaseGrant(Ctx().get(), g, &lease).ok());
  ASSERT_TRUE(Put("a", "1").ok());
  ASSERT_TRUE(Put("a", "2").ok());
  ASSERT_TRUE(Put("with-lease", "v", lease.id()).ok());
  // Enough data for several chunks (random bytes: RocksDB compresses repetitive values).
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(Put(absl::StrCat("big/", i), Noise(8000, i)).ok());
  ASSERT_TRUE(Delete("big/3").ok());
  const int64_t rev = env_.server().store().CurrentRevision();

  const std::vector<etcdserverpb::SnapshotResponse> stream = Snapshot();
  ASSERT_GE(stream.size(), 3u);
  std::string bytes;
  for (const auto& r : stream) bytes += r.blob();
  // What `etcdctl snapshot save` checks, and what etcd's restore checks.
  EXPECT_EQ(bytes.size() % 512, 32u);
  const std::string payload = bytes.substr(0, bytes.size() - 32);
  EXPECT_EQ(stream.back().blob(), Sha256(payload));
  EXPECT_EQ(stream.back().remaining_bytes(), 0u);
  uint64_t sent = 0;
  for (size_t i = 0; i + 1 < stream.size(); ++i) {
    sent += stream[i].blob().size();
    EXPECT_LE(stream[i].blob().size(), kSnapshotChunkBytes);
    EXPECT_EQ(stream[i].remaining_bytes(), payload.size() - sent) << i;
  }
  EXPECT_EQ(stream[0].header().revision(), rev);
  EXPECT_EQ(stream[0].header().cluster_id(), env_.server().cluster_id());
  EXPECT_TRUE(SnapshotTempDirs().empty());

  testing::TempDir out;
  const std::string file = out.path() + "/snap.db";
  std::ofstream(file, std::ios::binary) << bytes;
  RestoreOptions ro;
  ro.snapshot_path = file;
  ro.data_dir = out.path() + "/restored";
  ro.name = "svc";
  ro.initial_cluster = "svc=http://127.0.0.1:12380";
  ro.advertise_peer_urls = {"http://127.0.0.1:12380"};
  ro.bump_revision = 1000;
  absl::StatusOr<RestoreResult> restored = RestoreMember(ro);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->snapshot_revision, rev);
  EXPECT_EQ(restored->revision, rev + 1000);
  EXPECT_EQ(restored->member_id, env_.server().member_id());
  EXPECT_EQ(restored->leases, 1u);

  // Start the restored member and read the data back through the API.
  ServiceEnv member(common::RealClock::Get(), testing::FastOptions(ro.data_dir));
  ASSERT_TRUE(member.status().ok()) << member.status();
  auto kv = etcdserverpb::KV::NewStub(member.channel());
  etcdserverpb::RangeRequest range;
  range.set_key("a");
  etcdserverpb::RangeResponse got;
  ASSERT_TRUE(kv->Range(Ctx().get(), range, &got).ok());
  ASSERT_EQ(got.kvs_size(), 1);
  EXPECT_EQ(got.kvs(0).value(), "2");
  EXPECT_EQ(got.kvs(0).version(), 2);
  EXPECT_EQ(got.header().revision(), rev + 1000);
  range.set_key("big/");
  range.set_range_end("big0");
  range.set_count_only(true);
  ASSERT_TRUE(kv->Range(Ctx().get(), range, &got).ok());
  EXPECT_EQ(got.count(), 39);
  // Everything below the bumped revision reads as compacted, so clients re-list.
  range.set_key("a");
  range.clear_range_end();
  range.set_count_only(false);
  range.set_revision(rev);
  grpc::Status s = kv->Range(Ctx().get(), range, &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(s.error_message(), "etcdserver: mvcc: required revision has been compacted");
  // The lease and its key came along; new writes continue from the bumped revision.
  auto leases = etcdserverpb::Lease::NewStub(member.channel());
  etcdserverpb::LeaseTimeToLiveRequest ttl_req;
  ttl_req.set_id(lease.id());
  ttl_req.set_keys(true);
  etcdserverpb::LeaseTimeToLiveResponse ttl;
  ASSERT_TRUE(leases->LeaseTimeToLive(Ctx().get(), ttl_req, &ttl).ok());
  EXPECT_EQ(ttl.grantedttl(), 1000);
  ASSERT_EQ(ttl.keys_size(), 1);
  EXPECT_EQ(ttl.keys(0), "with-lease");
  etcdserverpb::PutRequest put;
  put.set_key("after");
  etcdserverpb::PutResponse put_resp;
  ASSERT_TRUE(kv->Put(Ctx().get(), put, &put_resp).ok());
  EXPECT_EQ(put_resp.header().revision(), rev + 1001);
  // The restored member starts its Raft log afresh.
  auto maintenance = etcdserverpb::Maintenance::NewStub(member.channel());
  etcdserverpb::StatusResponse st;
  ASSERT_TRUE(maintenance->Status(Ctx().get(), etcdserverpb::StatusRequest(), &st).ok());
  EXPECT_LE(st.raftindex(), 5u);
}

TEST_F(MaintenanceServiceTest, ASnapshotStreamTheClientAbandonsLeavesNothingBehind) {
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(Put(absl::StrCat("big/", i), Noise(16000, i)).ok());
  {
    grpc::ClientContext ctx;
    auto reader = m_->Snapshot(&ctx, etcdserverpb::SnapshotRequest());
    etcdserverpb::SnapshotResponse r;
    ASSERT_TRUE(reader->Read(&r));
    EXPECT_GT(r.remaining_bytes(), 0u);
    ctx.TryCancel();
    while (reader->Read(&r)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!SnapshotTempDirs().empty() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(SnapshotTempDirs().empty());
}

}  // namespace
}  // namespace kvstore::server

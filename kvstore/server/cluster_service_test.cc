// The Cluster service in-process, through the generated stubs: the member list, etcd's
// errors for membership requests etcd refuses too, and the not-yet-supported changes.
#include "kvstore/server/cluster_service.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "kvstore/server/service_test_env.h"

namespace kvstore::server {
namespace {

using testing::Ctx;
using testing::ServiceEnv;

TEST(CheckMemberUrlTest, EtcdsRules) {
  for (const char* ok : {"http://127.0.0.1:2380", "https://host:1", "unix://sock:0", "unixs://a:1",
                         "http://[::1]:2380", " http://a:1 ", "http://a:"}) {
    EXPECT_TRUE(CheckMemberUrl(ok).ok()) << ok;
  }
  EXPECT_EQ(CheckMemberUrl("foo").message(), "URL scheme must be http, https, unix, or unixs: foo");
  EXPECT_EQ(CheckMemberUrl("ftp://a:1").message(),
            "URL scheme must be http, https, unix, or unixs: ftp://a:1");
  for (const char* no_port : {"http://a", "http://::1:2", "http://", "http://[::1]"}) {
    EXPECT_EQ(CheckMemberUrl(no_port).message(),
              absl::StrCat("URL address does not have the form \"host:port\": ", no_port));
  }
  EXPECT_EQ(CheckMemberUrl("http://a:1/x").message(), "URL must not contain a path: http://a:1/x");
  EXPECT_EQ(CheckMemberUrls({}).message(), "no valid URLs given");
  EXPECT_FALSE(CheckMemberUrls({"http://a:1", "b"}).ok());
}

class ClusterServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.status().ok()) << env_.status();
    cluster_ = etcdserverpb::Cluster::NewStub(env_.channel());
  }

  void ExpectError(const grpc::Status& s, grpc::StatusCode code, const std::string& message) {
    EXPECT_EQ(s.error_code(), code) << s.error_message();
    EXPECT_EQ(s.error_message(), message);
  }

  ServiceEnv env_;
  std::unique_ptr<etcdserverpb::Cluster::Stub> cluster_;
};

TEST_F(ClusterServiceTest, MemberListIsThisMemberWithEtcdsHeader) {
  etcdserverpb::MemberListResponse resp;
  ASSERT_TRUE(cluster_->MemberList(Ctx().get(), etcdserverpb::MemberListRequest(), &resp).ok());
  EXPECT_EQ(resp.header().cluster_id(), env_.server().cluster_id());
  EXPECT_EQ(resp.header().member_id(), env_.server().member_id());
  EXPECT_GE(resp.header().raft_term(), 1u);
  EXPECT_EQ(resp.header().revision(), 0);  // etcd's ClusterServer leaves it out
  ASSERT_EQ(resp.members_size(), 1);
  const etcdserverpb::Member& m = resp.members(0);
  EXPECT_EQ(m.id(), env_.server().member_id());
  EXPECT_EQ(m.id(), ComputeMemberId({"http://127.0.0.1:12380"}, "etcd-cluster"));
  EXPECT_EQ(m.name(), "svc");
  EXPECT_EQ(std::vector<std::string>(m.peerurls().begin(), m.peerurls().end()),
            std::vector<std::string>{"http://127.0.0.1:12380"});
  EXPECT_EQ(std::vector<std::string>(m.clienturls().begin(), m.clienturls().end()),
            std::vector<std::string>{"http://127.0.0.1:12379"});
  EXPECT_FALSE(m.islearner());
}

TEST_F(ClusterServiceTest, MembershipChangesAndEtcdsErrors) {
  const uint64_t me = env_.server().member_id();
  etcdserverpb::MemberAddRequest add;
  etcdserverpb::MemberAddResponse add_resp;
  ExpectError(cluster_->MemberAdd(Ctx().get(), add, &add_resp), grpc::StatusCode::INVALID_ARGUMENT,
              "etcdserver: given member URLs are invalid");
  add.add_peerurls("foo");
  ExpectError(cluster_->MemberAdd(Ctx().get(), add, &add_resp), grpc::StatusCode::INVALID_ARGUMENT,
              "etcdserver: given member URLs are invalid");
  add.set_peerurls(0, "http://127.0.0.1:12380");
  ExpectError(cluster_->MemberAdd(Ctx().get(), add, &add_resp),
              grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: Peer URLs already exists");
  // A learner needs no quorum: it is added, with an id of etcd's and no name yet.
  add.set_peerurls(0, "http://127.0.0.1:22380");
  add.set_islearner(true);
  ASSERT_TRUE(cluster_->MemberAdd(Ctx().get(), add, &add_resp).ok());
  const uint64_t learner = add_resp.member().id();
  EXPECT_NE(learner, 0u);
  EXPECT_TRUE(add_resp.member().islearner());
  EXPECT_EQ(add_resp.member().peerurls(0), "http://127.0.0.1:22380");
  EXPECT_EQ(add_resp.members_size(), 2);
  EXPECT_EQ(add_resp.header().member_id(), me);
  add.set_peerurls(0, "http://127.0.0.1:32380");
  ExpectError(cluster_->MemberAdd(Ctx().get(), add, &add_resp),
              grpc::StatusCode::FAILED_PRECONDITION,
              "etcdserver: too many learner members in cluster");

  etcdserverpb::MemberRemoveRequest remove;
  etcdserverpb::MemberRemoveResponse remove_resp;
  remove.set_id(me + 1);
  ExpectError(cluster_->MemberRemove(Ctx().get(), remove, &remove_resp),
              grpc::StatusCode::NOT_FOUND, "etcdserver: member not found");
  remove.set_id(me);
  ExpectError(cluster_->MemberRemove(Ctx().get(), remove, &remove_resp),
              grpc::StatusCode::FAILED_PRECONDITION,
              "etcdserver: re-configuration failed due to not enough started members");

  etcdserverpb::MemberUpdateRequest update;
  etcdserverpb::MemberUpdateResponse update_resp;
  update.set_id(me + 1);
  update.add_peerurls("http://127.0.0.1:1");
  ExpectError(cluster_->MemberUpdate(Ctx().get(), update, &update_resp),
              grpc::StatusCode::NOT_FOUND, "etcdserver: member not found");
  update.set_id(me);
  update.set_peerurls(0, "http://127.0.0.1:22380");
  ExpectError(cluster_->MemberUpdate(Ctx().get(), update, &update_resp),
              grpc::StatusCode::FAILED_PRECONDITION, "etcdserver: Peer URLs already exists");

  etcdserverpb::MemberPromoteRequest promote;
  etcdserverpb::MemberPromoteResponse promote_resp;
  promote.set_id(me + 1);
  ExpectError(cluster_->MemberPromote(Ctx().get(), promote, &promote_resp),
              grpc::StatusCode::NOT_FOUND, "etcdserver: member not found");
  promote.set_id(me);
  ExpectError(cluster_->MemberPromote(Ctx().get(), promote, &promote_resp),
              grpc::StatusCode::FAILED_PRECONDITION,
              "etcdserver: can only promote a learner member");
  // Nobody runs the learner: it has none of the leader's log.
  promote.set_id(learner);
  ExpectError(cluster_->MemberPromote(Ctx().get(), promote, &promote_resp),
              grpc::StatusCode::FAILED_PRECONDITION,
              "etcdserver: can only promote a learner member which is in sync with leader");

  // The learner goes again; the member's own peer URLs change.
  remove.set_id(learner);
  ASSERT_TRUE(cluster_->MemberRemove(Ctx().get(), remove, &remove_resp).ok());
  EXPECT_EQ(remove_resp.members_size(), 1);
  update.set_peerurls(0, "http://127.0.0.1:12381");
  ASSERT_TRUE(cluster_->MemberUpdate(Ctx().get(), update, &update_resp).ok());
  etcdserverpb::MemberListResponse list;
  ASSERT_TRUE(cluster_->MemberList(Ctx().get(), etcdserverpb::MemberListRequest(), &list).ok());
  ASSERT_EQ(list.members_size(), 1);
  EXPECT_EQ(list.members(0).peerurls(0), "http://127.0.0.1:12381");
}

// A learner joins a one-member cluster, in process: as etcd 3.4's, it answers only
// Maintenance.Status and serializable Range and refuses everything else with UNAVAILABLE
// "etcdserver: rpc not supported for learner", until it applied its own promotion.
TEST(LearnerServiceTest, RefusesAllButStatusAndSerializableRangeUntilPromoted) {
  const std::string leader_url = absl::StrCat("http://127.0.0.1:", testing::FreePort());
  const std::string learner_url = absl::StrCat("http://127.0.0.1:", testing::FreePort());
  KvServerOptions lo = testing::FastOptions("");
  lo.peer_urls = {leader_url};
  lo.listen_peer_urls = {leader_url};
  ServiceEnv leader(common::RealClock::Get(), lo);
  ASSERT_TRUE(leader.status().ok()) << leader.status();
  std::unique_ptr<etcdserverpb::Cluster::Stub> leader_cluster =
      etcdserverpb::Cluster::NewStub(leader.channel());
  etcdserverpb::MemberAddRequest add;
  add.add_peerurls(learner_url);
  add.set_islearner(true);
  etcdserverpb::MemberAddResponse added;
  ASSERT_TRUE(leader_cluster->MemberAdd(Ctx().get(), add, &added).ok());

  KvServerOptions o = testing::FastOptions("");
  o.name = "learner";
  o.peer_urls = {learner_url};
  o.listen_peer_urls = {learner_url};
  o.client_urls = {"http://127.0.0.1:12381"};
  o.initial_cluster = absl::StrCat("svc=", leader_url, ",learner=", learner_url);
  o.initial_cluster_state = "existing";
  ServiceEnv learner(common::RealClock::Get(), o, {.lead = false});
  ASSERT_TRUE(learner.status().ok()) << learner.status();
  ASSERT_EQ(learner.server().member_id(), added.member().id());
  ASSERT_TRUE(learner.server().IsLearner());

  auto kv = etcdserverpb::KV::NewStub(learner.channel());
  auto lease = etcdserverpb::Lease::NewStub(learner.channel());
  auto maintenance = etcdserverpb::Maintenance::NewStub(learner.channel());
  auto cluster = etcdserverpb::Cluster::NewStub(learner.channel());
  auto expect_refused = [](const grpc::Status& s, const std::string& what) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << what;
    EXPECT_EQ(s.error_message(), "etcdserver: rpc not supported for learner") << what;
  };
  etcdserverpb::RangeRequest range;
  range.set_key("k");
  etcdserverpb::RangeResponse range_resp;
  expect_refused(kv->Range(Ctx().get(), range, &range_resp), "linearizable Range");
  // Refused before validation, as by etcd's interceptor: these requests are invalid too.
  etcdserverpb::PutResponse put_resp;
  expect_refused(kv->Put(Ctx().get(), etcdserverpb::PutRequest(), &put_resp), "Put");
  etcdserverpb::DeleteRangeResponse delete_resp;
  expect_refused(kv->DeleteRange(Ctx().get(), etcdserverpb::DeleteRangeRequest(), &delete_resp),
                 "DeleteRange");
  // A read-only, serializable Txn is still a Txn.
  etcdserverpb::TxnRequest txn;
  txn.add_success()->mutable_request_range()->set_key("k");
  txn.mutable_success(0)->mutable_request_range()->set_serializable(true);
  etcdserverpb::TxnResponse txn_resp;
  expect_refused(kv->Txn(Ctx().get(), txn, &txn_resp), "Txn");
  etcdserverpb::CompactionResponse compact_resp;
  expect_refused(kv->Compact(Ctx().get(), etcdserverpb::CompactionRequest(), &compact_resp),
                 "Compact");
  etcdserverpb::LeaseGrantRequest grant;
  grant.set_ttl(60);
  etcdserverpb::LeaseGrantResponse grant_resp;
  expect_refused(lease->LeaseGrant(Ctx().get(), grant, &grant_resp), "LeaseGrant");
  etcdserverpb::LeaseLeasesResponse leases_resp;
  expect_refused(lease->LeaseLeases(Ctx().get(), etcdserverpb::LeaseLeasesRequest(), &leases_resp),
                 "LeaseLeases");
  {
    std::unique_ptr<grpc::ClientContext> ctx = Ctx();
    auto stream = lease->LeaseKeepAlive(ctx.get());
    stream->WritesDone();
    expect_refused(stream->Finish(), "LeaseKeepAlive");
  }
  etcdserverpb::AlarmResponse alarm_resp;
  expect_refused(maintenance->Alarm(Ctx().get(), etcdserverpb::AlarmRequest(), &alarm_resp),
                 "Alarm");
  etcdserverpb::HashKVResponse hash_resp;
  expect_refused(maintenance->HashKV(Ctx().get(), etcdserverpb::HashKVRequest(), &hash_resp),
                 "HashKV");
  etcdserverpb::DefragmentResponse defrag_resp;
  expect_refused(
      maintenance->Defragment(Ctx().get(), etcdserverpb::DefragmentRequest(), &defrag_resp),
      "Defragment");
  etcdserverpb::MemberListResponse list_resp;
  expect_refused(cluster->MemberList(Ctx().get(), etcdserverpb::MemberListRequest(), &list_resp),
                 "MemberList");
  etcdserverpb::MemberPromoteRequest promote;
  promote.set_id(learner.server().member_id());
  etcdserverpb::MemberPromoteResponse promote_resp;
  expect_refused(cluster->MemberPromote(Ctx().get(), promote, &promote_resp), "MemberPromote");
  auto health = grpc::health::v1::Health::NewStub(learner.channel());
  grpc::health::v1::HealthCheckResponse health_resp;
  expect_refused(health->Check(Ctx().get(), grpc::health::v1::HealthCheckRequest(), &health_resp),
                 "Health.Check");

  // What a learner serves.
  range.set_serializable(true);
  EXPECT_TRUE(kv->Range(Ctx().get(), range, &range_resp).ok());
  etcdserverpb::StatusResponse status;
  ASSERT_TRUE(maintenance->Status(Ctx().get(), etcdserverpb::StatusRequest(), &status).ok());
  EXPECT_TRUE(status.islearner());

  // Promoted through the leader once in sync, it serves everything as soon as it applied
  // the promotion.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  grpc::Status promoted = leader_cluster->MemberPromote(Ctx().get(), promote, &promote_resp);
  while (!promoted.ok() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
    promoted = leader_cluster->MemberPromote(Ctx().get(), promote, &promote_resp);
  }
  ASSERT_TRUE(promoted.ok()) << promoted.error_message();
  while (learner.server().IsLearner() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_FALSE(learner.server().IsLearner());
  range.set_serializable(false);
  EXPECT_TRUE(kv->Range(Ctx().get(), range, &range_resp).ok());
  etcdserverpb::PutRequest put;
  put.set_key("k");
  put.set_value("v");
  EXPECT_TRUE(kv->Put(Ctx().get(), put, &put_resp).ok());
  EXPECT_TRUE(cluster->MemberList(Ctx().get(), etcdserverpb::MemberListRequest(), &list_resp).ok());
  EXPECT_TRUE(
      health->Check(Ctx().get(), grpc::health::v1::HealthCheckRequest(), &health_resp).ok());
}

// MemberPromote on a follower is forwarded to the leader, which alone knows whether the
// learner is in sync, and the leader's answer comes back: here for a learner nobody runs
// (none of the leader's log), an unknown id and a voter.
TEST(PromoteThroughFollowerTest, TheLeaderChecksAndAnswers) {
  auto url = [](int port) { return absl::StrCat("http://127.0.0.1:", port); };
  KvServerOptions lo = testing::FastOptions("");
  lo.peer_urls = {url(testing::FreePort())};
  lo.listen_peer_urls = lo.peer_urls;
  lo.client_urls = {url(testing::FreePort())};
  ServiceEnv first(common::RealClock::Get(), lo, {.on_client_url = true});
  ASSERT_TRUE(first.status().ok()) << first.status();
  auto first_cluster = etcdserverpb::Cluster::NewStub(first.channel());

  KvServerOptions fo = testing::FastOptions("");
  fo.name = "follower";
  fo.peer_urls = {url(testing::FreePort())};
  fo.listen_peer_urls = fo.peer_urls;
  fo.client_urls = {url(testing::FreePort())};
  fo.initial_cluster = absl::StrCat("svc=", lo.peer_urls[0], ",follower=", fo.peer_urls[0]);
  fo.initial_cluster_state = "existing";
  etcdserverpb::MemberAddRequest add;
  add.add_peerurls(fo.peer_urls[0]);
  etcdserverpb::MemberAddResponse added;
  ASSERT_TRUE(first_cluster->MemberAdd(Ctx().get(), add, &added).ok());
  ServiceEnv second(common::RealClock::Get(), fo, {.lead = false, .on_client_url = true});
  ASSERT_TRUE(second.status().ok()) << second.status();
  // Whichever leads now (the new member may have disturbed the first), ask the other.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (second.server().driver().Status().leader == raft::kNone && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ServiceEnv& follower =
      second.server().driver().Status().role == raft::Role::kLeader ? first : second;

  add.set_peerurls(0, url(testing::FreePort()));
  add.set_islearner(true);
  ASSERT_TRUE(first_cluster->MemberAdd(Ctx().get(), add, &added).ok());
  const uint64_t learner = added.member().id();

  auto follower_cluster = etcdserverpb::Cluster::NewStub(follower.channel());
  etcdserverpb::MemberPromoteRequest promote;
  etcdserverpb::MemberPromoteResponse resp;
  promote.set_id(learner);
  grpc::Status s = follower_cluster->MemberPromote(Ctx().get(), promote, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "etcdserver: can only promote a learner member which is in sync with leader");
  promote.set_id(learner + 1);
  s = follower_cluster->MemberPromote(Ctx().get(), promote, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "etcdserver: member not found");
  promote.set_id(follower.server().member_id());
  s = follower_cluster->MemberPromote(Ctx().get(), promote, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(), "etcdserver: can only promote a learner member");
  // The learner is still one, once both members applied everything (a follower hears of
  // a commit a moment after the leader).
  const uint64_t last =
      std::max(first.server().driver().Status().commit, second.server().driver().Status().commit);
  while ((first.server().driver().applied_index() < last ||
          second.server().driver().applied_index() < last) &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(first.server().membership().IsLearner(learner));
  EXPECT_TRUE(second.server().membership().IsLearner(learner));
}

}  // namespace
}  // namespace kvstore::server

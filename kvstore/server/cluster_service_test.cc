// The Cluster service in-process, through the generated stubs: the member list, etcd's
// errors for membership requests etcd refuses too, and the not-yet-supported changes.
#include "kvstore/server/cluster_service.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace kvstore::server

// The initial cluster as etcd checks it, and the member list a member keeps on disk.
#include "kvstore/server/membership.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "kvstore/server/service_test_env.h"

namespace kvstore::server {
namespace {

namespace fs = std::filesystem;

BootstrapFlags Flags(const std::string& name, const std::string& initial_cluster,
                     std::vector<std::string> advertise) {
  return BootstrapFlags{.name = name,
                        .initial_cluster = initial_cluster,
                        .advertise_peer_urls = std::move(advertise),
                        .cluster_token = "tok"};
}

TEST(ResolveInitialClusterTest, EveryMemberWithEtcdsIds) {
  absl::StatusOr<InitialCluster> c = ResolveInitialCluster(
      Flags("n2", "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n3=http://10.0.0.3:2380",
            {"http://10.0.0.2:2380"}));
  ASSERT_TRUE(c.ok()) << c.status();
  const uint64_t n1 = ComputeMemberId({"http://10.0.0.1:2380"}, "tok");
  const uint64_t n2 = ComputeMemberId({"http://10.0.0.2:2380"}, "tok");
  const uint64_t n3 = ComputeMemberId({"http://10.0.0.3:2380"}, "tok");
  EXPECT_EQ(c->member_id, n2);
  EXPECT_EQ(c->cluster_id, ComputeClusterId({n3, n1, n2}));
  ASSERT_EQ(c->members.size(), 3u);
  for (size_t i = 1; i < c->members.size(); ++i) {
    EXPECT_LT(c->members[i - 1].id, c->members[i].id);  // by id, as etcd lists them
  }
  for (const MemberInfo& m : c->members) {
    EXPECT_TRUE(m.client_urls.empty()) << "published later, through Raft";
    EXPECT_FALSE(m.is_learner);
    if (m.id == n1) {
      EXPECT_EQ(m.name, "n1");
    }
    if (m.id == n3) {
      EXPECT_EQ(m.peer_urls, std::vector<std::string>{"http://10.0.0.3:2380"});
    }
  }
}

TEST(ResolveInitialClusterTest, IdsAreEtcdsForTheSameFlags) {
  // What etcd 3.4.23 prints ("added member ... to cluster ...") for `--name infra1
  // --initial-advertise-peer-urls http://127.0.0.1:12380 --initial-cluster
  // infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380
  // --initial-cluster-token etcd-cluster-1` (its Procfile's cluster).
  BootstrapFlags f = Flags("infra1",
                           "infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,"
                           "infra3=http://127.0.0.1:32380",
                           {"http://127.0.0.1:12380"});
  f.cluster_token = "etcd-cluster-1";
  absl::StatusOr<InitialCluster> c = ResolveInitialCluster(f);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(absl::StrCat(absl::Hex(c->member_id)), "8211f1d0f64f3269");
  EXPECT_EQ(absl::StrCat(absl::Hex(c->cluster_id)), "ef37ad9dc622a7c4");
  std::vector<std::string> ids;
  for (const MemberInfo& m : c->members) ids.push_back(absl::StrCat(m.name, "=", absl::Hex(m.id)));
  EXPECT_EQ(ids, (std::vector<std::string>{"infra1=8211f1d0f64f3269", "infra2=91bc3c398fb3c146",
                                           "infra3=fd422379fda50e48"}));
  // And a member started with nothing but etcd's defaults.
  c = ResolveInitialCluster(BootstrapFlags{.name = "default",
                                           .initial_cluster = "default=http://localhost:2380",
                                           .advertise_peer_urls = {"http://localhost:2380"}});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(absl::StrCat(absl::Hex(c->member_id)), "8e9e05c52164694d");
  EXPECT_EQ(absl::StrCat(absl::Hex(c->cluster_id)), "cdf818194e3a8c32");
}

TEST(ResolveInitialClusterTest, ANameMayHaveSeveralUrls) {
  absl::StatusOr<InitialCluster> c = ResolveInitialCluster(
      Flags("a", "a=http://h:1,b=http://h:2,a=http://h:3", {"http://h:3", "http://h:1"}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->member_id, ComputeMemberId({"http://h:1", "http://h:3"}, "tok"));
  ASSERT_EQ(c->members.size(), 2u);
}

TEST(ResolveInitialClusterTest, EmptyMeansThisMemberAlone) {
  absl::StatusOr<InitialCluster> c = ResolveInitialCluster(Flags("solo", "", {"http://h:1"}));
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->members.size(), 1u);
  EXPECT_EQ(c->members[0].name, "solo");
  EXPECT_EQ(c->member_id, ComputeMemberId({"http://h:1"}, "tok"));
  EXPECT_EQ(c->cluster_id, ComputeClusterId({c->member_id}));
}

TEST(ResolveInitialClusterTest, ClearErrors) {
  auto message = [](const BootstrapFlags& f) {
    return std::string(ResolveInitialCluster(f).status().message());
  };
  EXPECT_EQ(message(Flags("zz", "n1=http://h:1,n2=http://h:2", {"http://h:1"})),
            "couldn't find local name \"zz\" in the initial cluster configuration");
  EXPECT_EQ(message(Flags("n1", "n1=http://h:1,n2=http://h:2", {"http://h:9"})),
            "--initial-cluster has n1=http://h:1 but missing from "
            "--initial-advertise-peer-urls=http://h:9 (resolved urls: \"http://h:9\" != "
            "\"http://h:1\")");
  EXPECT_EQ(message(Flags("n1", "n1=http://h:1,n2=h:2", {"http://h:1"})),
            "URL scheme must be http, https, unix, or unixs: h:2");
  EXPECT_EQ(message(Flags("n1", "n1=http://h:1,n2=http://h", {"http://h:1"})),
            "URL address does not have the form \"host:port\": http://h");
  EXPECT_EQ(message(Flags("n1", "n1=http://h:1,n2", {"http://h:1"})),
            "failed to parse \"n1=http://h:1,n2\": \"n2\" is not name=url");
  // The same URL under two names, or twice under one: two members could not tell apart.
  EXPECT_EQ(message(Flags("n1", "n1=http://h:1,n2=http://h:1", {"http://h:1"})),
            "initial cluster n1=http://h:1,n2=http://h:1 has duplicate url");
  EXPECT_EQ(message(Flags("n1", "n1=http://h:1,n1=http://h:1", {"http://h:1"})),
            "initial cluster n1=http://h:1,n1=http://h:1 has duplicate url");
  EXPECT_EQ(message(Flags("n1", "n1=http://h:1", {"ftp://h:1"})),
            "URL scheme must be http, https, unix, or unixs: ftp://h:1");
}

TEST(UrlHostPortTest, PlainHttpOnly) {
  EXPECT_EQ(*UrlHostPort("http://127.0.0.1:2379"), "127.0.0.1:2379");
  EXPECT_EQ(*UrlHostPort("http://127.0.0.1:2379/"), "127.0.0.1:2379");
  EXPECT_EQ(*UrlHostPort("unix://sock:1"), "sock:1");
  EXPECT_EQ(UrlHostPort("https://h:1").status().message(),
            "TLS URLs (https://h:1) are not supported");
  EXPECT_FALSE(UrlHostPort("http://h").ok());
}

class MembershipTest : public ::testing::Test {
 protected:
  InitialCluster Three() {
    absl::StatusOr<InitialCluster> c = ResolveInitialCluster(
        Flags("n1", "n1=http://h:1,n2=http://h:2,n3=http://h:3", {"http://h:1"}));
    EXPECT_TRUE(c.ok()) << c.status();
    return *c;
  }

  testing::TempDir dir_;
};

TEST_F(MembershipTest, WhatIsWrittenIsReadBack) {
  EXPECT_TRUE(absl::IsNotFound(Membership::Load(dir_.path()).status()));
  const InitialCluster three = Three();
  absl::StatusOr<std::unique_ptr<Membership>> m = Membership::Create(dir_.path(), three);
  ASSERT_TRUE(m.ok()) << m.status();
  const uint64_t n2 = ComputeMemberId({"http://h:2"}, "tok");
  ASSERT_TRUE((*m)->SetAttributes(n2, "n2", {"http://h:12", "http://h:22"}).ok());
  EXPECT_TRUE(absl::IsNotFound((*m)->SetAttributes(42, "x", {"http://h:9"})));

  absl::StatusOr<std::unique_ptr<Membership>> again = Membership::Load(dir_.path());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->member_id(), three.member_id);
  EXPECT_EQ((*again)->cluster_id(), three.cluster_id);
  EXPECT_EQ((*again)->Members(), (*m)->Members());
  ASSERT_TRUE((*again)->Find(n2).has_value());
  EXPECT_EQ((*again)->Find(n2)->client_urls,
            (std::vector<std::string>{"http://h:12", "http://h:22"}));
  EXPECT_FALSE((*again)->Find(42).has_value());
  EXPECT_EQ((*again)->Ids().size(), 3u);
  EXPECT_FALSE(fs::exists(dir_.path() + "/cluster.tmp"));
}

TEST_F(MembershipTest, ChangesAreWrittenAndApplyingThemAgainChangesNothing) {
  absl::StatusOr<std::unique_ptr<Membership>> m = Membership::Create(dir_.path(), Three());
  ASSERT_TRUE(m.ok()) << m.status();
  const uint64_t n2 = ComputeMemberId({"http://h:2"}, "tok");
  const uint64_t n3 = ComputeMemberId({"http://h:3"}, "tok");
  const MemberInfo learner{.id = 7, .peer_urls = {"http://h:4"}, .is_learner = true};
  ASSERT_TRUE((*m)->SetAttributes(n2, "n2", {"http://h:12"}).ok());
  // Every change twice, as after a crash that lost the applied index.
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE((*m)->Add(learner).ok());
    ASSERT_TRUE((*m)->Promote(7).ok());
    ASSERT_TRUE((*m)->Remove(n3).ok());
    ASSERT_TRUE((*m)->UpdatePeerUrls(n2, {"http://h:22"}).ok());
  }
  EXPECT_TRUE(absl::IsNotFound((*m)->Promote(42)));
  EXPECT_TRUE(absl::IsNotFound((*m)->UpdatePeerUrls(42, {"http://h:9"})));
  // Adding a member that is there already keeps its published attributes.
  ASSERT_TRUE((*m)->Add(MemberInfo{.id = n2, .peer_urls = {"http://h:22"}}).ok());

  absl::StatusOr<std::unique_ptr<Membership>> again = Membership::Load(dir_.path());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->Members(), (*m)->Members());
  EXPECT_EQ((*again)->Ids().size(), 3u);
  EXPECT_FALSE((*again)->Find(n3).has_value());
  ASSERT_TRUE((*again)->Find(7).has_value());
  EXPECT_FALSE((*again)->Find(7)->is_learner);
  EXPECT_TRUE((*again)->Find(7)->name.empty());
  EXPECT_EQ((*again)->Find(n2)->peer_urls, std::vector<std::string>{"http://h:22"});
  EXPECT_EQ((*again)->Find(n2)->name, "n2");
}

TEST_F(MembershipTest, IsLearnerFollowsAddPromoteAndRemove) {
  absl::StatusOr<std::unique_ptr<Membership>> m = Membership::Create(dir_.path(), Three());
  ASSERT_TRUE(m.ok()) << m.status();
  const uint64_t n2 = ComputeMemberId({"http://h:2"}, "tok");
  EXPECT_FALSE((*m)->IsLearner(n2));
  EXPECT_FALSE((*m)->IsLearner(7));  // not a member
  ASSERT_TRUE((*m)->Add(MemberInfo{.id = 7, .peer_urls = {"http://h:4"}, .is_learner = true}).ok());
  EXPECT_TRUE((*m)->IsLearner(7));
  ASSERT_TRUE((*m)->Promote(7).ok());
  EXPECT_FALSE((*m)->IsLearner(7));
  ASSERT_TRUE((*m)->Add(MemberInfo{.id = 8, .peer_urls = {"http://h:5"}, .is_learner = true}).ok());
  ASSERT_TRUE((*m)->Remove(8).ok());
  EXPECT_FALSE((*m)->IsLearner(8));
  // A snapshot's list replaces the whole list, learners included.
  ASSERT_TRUE(
      (*m)->Replace({MemberInfo{.id = 9, .peer_urls = {"http://h:6"}, .is_learner = true}}).ok());
  EXPECT_TRUE((*m)->IsLearner(9));
  EXPECT_FALSE((*m)->IsLearner(7));
}

TEST_F(MembershipTest, ADamagedFileIsDataLossNotAnotherCluster) {
  ASSERT_TRUE(Membership::Create(dir_.path(), Three()).ok());
  const std::string path = dir_.path() + "/cluster";
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  bytes[bytes.size() / 2] ^= 0x01;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_TRUE(absl::IsDataLoss(Membership::Load(dir_.path()).status()));
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "ab";
  EXPECT_TRUE(absl::IsDataLoss(Membership::Load(dir_.path()).status()));
}

// KvServer: a restart takes the member list from the data directory, not the flags.
TEST(KvServerMembershipTest, ARestartIgnoresTheInitialCluster) {
  testing::TempDir dir;
  KvServerOptions o = testing::FastOptions(dir.path() + "/data");
  uint64_t member = 0;
  uint64_t cluster = 0;
  {
    absl::StatusOr<std::unique_ptr<KvServer>> s = KvServer::Open(o, common::RealClock::Get());
    ASSERT_TRUE(s.ok()) << s.status();
    member = (*s)->member_id();
    cluster = (*s)->cluster_id();
    EXPECT_EQ(member, ComputeMemberId(o.peer_urls, o.cluster_token));
    EXPECT_EQ(cluster, ComputeClusterId({member}));
    (*s)->Start();
    EXPECT_TRUE((*s)->WaitReady(absl::Now() + absl::Seconds(10)));
    const std::optional<MemberInfo> self = (*s)->membership().Find(member);
    ASSERT_TRUE(self.has_value());
    EXPECT_EQ(self->client_urls, o.client_urls);
  }
  o.initial_cluster = "other=http://127.0.0.1:1,svc=http://127.0.0.1:12380";
  o.initial_cluster_state = "existing";
  absl::StatusOr<std::unique_ptr<KvServer>> s = KvServer::Open(o, common::RealClock::Get());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ((*s)->member_id(), member);
  EXPECT_EQ((*s)->cluster_id(), cluster);
  EXPECT_EQ((*s)->membership().Members().size(), 1u);
  (*s)->Start();
  // Its attributes are in the list already: ready without a new Raft entry.
  EXPECT_TRUE((*s)->WaitReady(absl::Now()));
}

TEST(KvServerMembershipTest, NewMembersWithFlagsThatCannotWorkAreRefused) {
  testing::TempDir dir;
  KvServerOptions o = testing::FastOptions(dir.path() + "/a");
  o.initial_cluster_state = "existing";
  absl::StatusOr<std::unique_ptr<KvServer>> s = KvServer::Open(o, common::RealClock::Get());
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  EXPECT_FALSE(fs::exists(dir.path() + "/a/member/cluster"));

  o = testing::FastOptions(dir.path() + "/b");
  o.initial_cluster = "svc=http://127.0.0.1:12380,two=http://127.0.0.1:12381";
  s = KvServer::Open(o, common::RealClock::Get());
  EXPECT_EQ(s.status().message(), "--listen-peer-urls is required: the cluster has 2 members");

  o = testing::FastOptions(dir.path() + "/c");
  o.name = "nobody";
  o.initial_cluster = "svc=http://127.0.0.1:12380";
  s = KvServer::Open(o, common::RealClock::Get());
  EXPECT_EQ(s.status().message(),
            "couldn't find local name \"nobody\" in the initial cluster configuration");
}

}  // namespace
}  // namespace kvstore::server

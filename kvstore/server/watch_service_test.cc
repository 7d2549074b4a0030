// The Watch service in-process: a started KvServer whose event sink feeds a WatchHub, the KV
// and Watch services on 127.0.0.1 (a port the OS picks), driven through the generated stubs.
#include "kvstore/server/watch_service.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "kvstore/server/kv_service.h"
#include "kvstore/server/service_test_env.h"
#include "kvstore/server/watch_hub.h"

namespace kvstore::server {
namespace {

using etcdserverpb::WatchCreateRequest;
using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;
using testing::Ctx;

const std::string kAll("\0", 1);

// A member serving KV and Watch.
class WatchEnv {
 public:
  explicit WatchEnv(WatchServiceOptions service_options = {}, WatchHubOptions hub_options = {}) {
    KvServerOptions o = testing::FastOptions(temp_.path() + "/member");
    absl::StatusOr<std::unique_ptr<KvServer>> s = KvServer::Open(o, common::RealClock::Get());
    if (!s.ok()) {
      status_ = s.status();
      return;
    }
    server_ = std::move(*s);
    hub_ = std::make_unique<WatchHub>(&server_->store(), hub_options);
    server_->set_event_sink(
        [hub = hub_.get()](const std::vector<mvcc::Event>& events, int64_t rev, bool prev_values) {
          hub->Notify(events, rev, prev_values);
        },
        [hub = hub_.get()] { return hub->WantsPrevValues(); });
    server_->Start();
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    while (server_->driver().Status().role != raft::Role::kLeader && absl::Now() < give_up) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    kv_ = std::make_unique<KvService>(server_.get(), absl::Seconds(5));
    watch_ = std::make_unique<WatchService>(server_.get(), hub_.get(), service_options);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(kv_.get());
    builder.RegisterService(watch_.get());
    grpc_ = builder.BuildAndStart();
    if (grpc_ == nullptr || port_ == 0) {
      status_ = absl::InternalError("cannot start the gRPC server");
      return;
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_),
                                         grpc::InsecureChannelCredentials(), args);
    kv_stub_ = etcdserverpb::KV::NewStub(channel_);
  }

  ~WatchEnv() {
    if (watch_ != nullptr) watch_->Stop();
    if (grpc_ != nullptr) grpc_->Shutdown(std::chrono::system_clock::now());
    if (server_ != nullptr) server_->Stop();
    if (hub_ != nullptr) hub_->Stop();
  }

  const absl::Status& status() const { return status_; }
  KvServer& server() { return *server_; }
  WatchHub& hub() { return *hub_; }
  WatchService& watch() { return *watch_; }
  void ShutdownGrpc(absl::Duration deadline) {
    grpc_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  int port() const { return port_; }

  int64_t Put(const std::string& k, const std::string& v) {
    etcdserverpb::PutRequest req;
    req.set_key(k);
    req.set_value(v);
    etcdserverpb::PutResponse resp;
    const grpc::Status s = kv_stub_->Put(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.header().revision();
  }
  int64_t Delete(const std::string& k, const std::string& end = "") {
    etcdserverpb::DeleteRangeRequest req;
    req.set_key(k);
    req.set_range_end(end);
    etcdserverpb::DeleteRangeResponse resp;
    const grpc::Status s = kv_stub_->DeleteRange(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.header().revision();
  }
  int64_t PutMany(const std::vector<std::pair<std::string, std::string>>& kvs) {
    etcdserverpb::TxnRequest req;
    for (const auto& [k, v] : kvs) {
      etcdserverpb::PutRequest* p = req.add_success()->mutable_request_put();
      p->set_key(k);
      p->set_value(v);
    }
    etcdserverpb::TxnResponse resp;
    const grpc::Status s = kv_stub_->Txn(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.header().revision();
  }
  void Compact(int64_t rev) {
    etcdserverpb::CompactionRequest req;
    req.set_revision(rev);
    etcdserverpb::CompactionResponse resp;
    const grpc::Status s = kv_stub_->Compact(Ctx().get(), req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

 private:
  testing::TempDir temp_;
  absl::Status status_;
  int port_ = 0;
  std::unique_ptr<KvServer> server_;
  std::unique_ptr<WatchHub> hub_;
  std::unique_ptr<KvService> kv_;
  std::unique_ptr<WatchService> watch_;
  std::unique_ptr<grpc::Server> grpc_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_stub_;
};

// One Watch call; a thread of its own reads responses into a queue.
class WatchClient {
 public:
  explicit WatchClient(std::shared_ptr<grpc::Channel> channel, bool start_reading = true)
      : stub_(etcdserverpb::Watch::NewStub(channel)) {
    ctx_.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(120)));
    stream_ = stub_->Watch(&ctx_);
    if (start_reading) StartReading();
  }
  ~WatchClient() {
    ctx_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  void StartReading() {
    reader_ = std::thread([this] {
      WatchResponse r;
      while (stream_->Read(&r)) {
        absl::MutexLock l(&mu_);
        got_.push_back(r);
      }
      const grpc::Status s = stream_->Finish();
      absl::MutexLock l(&mu_);
      finished_ = s;
    });
  }

  bool Create(WatchCreateRequest c) {
    WatchRequest r;
    *r.mutable_create_request() = std::move(c);
    return stream_->Write(r);
  }
  bool Cancel(int64_t id) {
    WatchRequest r;
    r.mutable_cancel_request()->set_watch_id(id);
    return stream_->Write(r);
  }
  bool RequestProgress() {
    WatchRequest r;
    r.mutable_progress_request();
    return stream_->Write(r);
  }
  void WritesDone() { stream_->WritesDone(); }
  void Cancel() { ctx_.TryCancel(); }

  std::optional<WatchResponse> Next(absl::Duration wait = absl::Seconds(10)) {
    absl::MutexLock l(&mu_);
    auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return !got_.empty() || finished_.has_value();
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
    if (got_.empty()) return std::nullopt;
    WatchResponse r = std::move(got_.front());
    got_.pop_front();
    return r;
  }
  // The next response as a line (see Describe); "none" if nothing comes.
  std::string NextLine(absl::Duration wait = absl::Seconds(10));
  std::optional<grpc::Status> WaitFinished(absl::Duration wait) {
    absl::MutexLock l(&mu_);
    auto done = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return finished_.has_value(); };
    mu_.AwaitWithTimeout(absl::Condition(&done), wait);
    return finished_;
  }

 private:
  std::unique_ptr<etcdserverpb::Watch::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<WatchRequest, WatchResponse>> stream_;
  std::thread reader_;
  absl::Mutex mu_;
  std::deque<WatchResponse> got_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> finished_ ABSL_GUARDED_BY(mu_);
};

// A response without cluster, member and term, one line.
std::string Describe(const WatchResponse& r) {
  std::string s = absl::StrCat("rev=", r.header().revision(), " id=", r.watch_id());
  if (r.created()) s += " created";
  if (r.canceled()) s += " canceled";
  if (r.fragment()) s += " fragment";
  if (r.compact_revision() != 0) absl::StrAppend(&s, " compact=", r.compact_revision());
  if (!r.cancel_reason().empty()) absl::StrAppend(&s, " reason='", r.cancel_reason(), "'");
  for (const mvccpb::Event& e : r.events()) {
    absl::StrAppend(&s, " [", e.type() == mvccpb::Event::PUT ? "PUT " : "DEL ", e.kv().key(), "=",
                    e.kv().value(), " c", e.kv().create_revision(), " m", e.kv().mod_revision(),
                    " v", e.kv().version());
    if (e.has_prev_kv())
      absl::StrAppend(&s, " prev=", e.prev_kv().value(), "@", e.prev_kv().mod_revision());
    s += "]";
  }
  return s;
}

std::string WatchClient::NextLine(absl::Duration wait) {
  std::optional<WatchResponse> r = Next(wait);
  return r ? Describe(*r) : "none";
}

WatchCreateRequest Create(const std::string& key, const std::string& end = "", int64_t start = 0) {
  WatchCreateRequest c;
  c.set_key(key);
  c.set_range_end(end);
  c.set_start_revision(start);
  return c;
}

class WatchServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(env_.status().ok()) << env_.status(); }
  WatchEnv env_;
};

// The same exchange the probe ran against etcd 3.4.23 (base revision 2 there, too).
TEST_F(WatchServiceTest, HistoryPrefixPrevKvFiltersIdsAndHeadersAsEtcd) {
  WatchClient c(env_.channel());
  const int64_t base = env_.Put("/p/a", "1");
  ASSERT_EQ(base, 2);
  env_.Put("/p/b", "2");
  env_.Put("/p/a", "3");
  env_.Delete("/p/b");
  env_.Put("/q", "x");

  WatchCreateRequest a = Create("/p/", "/p0", base);
  a.set_prev_kv(true);
  c.Create(a);
  EXPECT_EQ(c.NextLine(), "rev=6 id=0 created");
  EXPECT_EQ(c.NextLine(),
            "rev=6 id=0 [PUT /p/a=1 c2 m2 v1] [PUT /p/b=2 c3 m3 v1] [PUT /p/a=3 c2 m4 v2 prev=1@2] "
            "[DEL /p/b= c0 m5 v0 prev=2@3]");
  c.Create(Create("/p/a"));
  EXPECT_EQ(c.NextLine(), "rev=6 id=1 created");
  WatchCreateRequest dup0 = Create("/x");
  dup0.set_watch_id(0);  // 0 asks the server to choose
  c.Create(dup0);
  EXPECT_EQ(c.NextLine(), "rev=6 id=2 created");
  WatchCreateRequest d = Create("/p/", "/p0", base);
  d.add_filters(WatchCreateRequest::NOPUT);
  d.set_watch_id(7);
  c.Create(d);
  EXPECT_EQ(c.NextLine(), "rev=6 id=7 created");
  EXPECT_EQ(c.NextLine(), "rev=6 id=7 [DEL /p/b= c0 m5 v0]");
  WatchCreateRequest dup7 = Create("/x");
  dup7.set_watch_id(7);
  c.Create(dup7);
  EXPECT_EQ(c.NextLine(),
            "rev=6 id=-1 created canceled reason='mvcc: duplicate watch ID provided on the "
            "WatchStream'");
  c.Create(Create("/z", "/a"));
  EXPECT_EQ(c.NextLine(), "rev=6 id=-1 created canceled reason='mvcc: watcher range is empty'");
  WatchCreateRequest g = Create("", kAll, base);
  g.add_filters(WatchCreateRequest::NODELETE);
  c.Create(g);
  EXPECT_EQ(c.NextLine(), "rev=6 id=3 created");
  EXPECT_EQ(
      c.NextLine(),
      "rev=6 id=3 [PUT /p/a=1 c2 m2 v1] [PUT /p/b=2 c3 m3 v1] [PUT /p/a=3 c2 m4 v2] [PUT /q=x "
      "c6 m6 v1]");
  c.Create(Create("/p/a", "", base + 7));
  EXPECT_EQ(c.NextLine(), "rev=6 id=4 created");

  env_.Put("/p/a", "4");  // 7: watchers 0, 1, 3
  std::set<std::string> got;
  for (int i = 0; i < 3; ++i) got.insert(c.NextLine());
  EXPECT_EQ(got, (std::set<std::string>{"rev=7 id=0 [PUT /p/a=4 c2 m7 v3 prev=3@4]",
                                        "rev=7 id=1 [PUT /p/a=4 c2 m7 v3]",
                                        "rev=7 id=3 [PUT /p/a=4 c2 m7 v3]"}));
  env_.Put("/p/a", "5");  // 8
  for (int i = 0; i < 3; ++i) c.NextLine();
  env_.Put("/p/a", "6");  // 9: now watcher 4 too
  got.clear();
  for (int i = 0; i < 4; ++i) got.insert(c.NextLine());
  EXPECT_TRUE(got.contains("rev=9 id=4 [PUT /p/a=6 c2 m9 v5]")) << *got.begin();

  env_.PutMany({{"/p/t1", "t"}, {"/p/t2", "t"}});  // 10: one response per watcher
  got.clear();
  for (int i = 0; i < 2; ++i) got.insert(c.NextLine());
  EXPECT_EQ(got, (std::set<std::string>{
                     "rev=10 id=0 [PUT /p/t1=t c10 m10 v1] [PUT /p/t2=t c10 m10 v1]",
                     "rev=10 id=3 [PUT /p/t1=t c10 m10 v1] [PUT /p/t2=t c10 m10 v1]"}));
  c.RequestProgress();
  EXPECT_EQ(c.NextLine(), "rev=10 id=-1");
  c.Cancel(7);
  c.Cancel(99);  // unknown: no answer
  EXPECT_EQ(c.NextLine(), "rev=10 id=7 canceled");
  EXPECT_EQ(c.NextLine(absl::Milliseconds(300)), "none");
}

TEST_F(WatchServiceTest, HeadersCarryClusterMemberAndTerm) {
  WatchClient c(env_.channel());
  c.Create(Create("h"));
  std::optional<WatchResponse> r = c.Next();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header().cluster_id(), env_.server().cluster_id());
  EXPECT_EQ(r->header().member_id(), env_.server().member_id());
  EXPECT_GE(r->header().raft_term(), 1u);
  const int64_t rev = env_.Put("h", "1");
  r = c.Next();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->header().revision(), rev);
  EXPECT_EQ(r->header().member_id(), env_.server().member_id());
}

TEST_F(WatchServiceTest, CompactedStartGetsCanceledWithCompactRevision) {
  WatchClient c(env_.channel());
  for (int i = 0; i < 5; ++i) env_.Put("k", absl::StrCat(i));  // 2..6
  env_.Compact(4);
  WatchCreateRequest w = Create("k", "", 3);
  w.set_watch_id(50);
  c.Create(w);
  EXPECT_EQ(c.NextLine(), "rev=6 id=50 created");
  EXPECT_EQ(c.NextLine(), "rev=0 id=50 canceled compact=4");
  c.Create(Create("k", "", 4));
  EXPECT_EQ(c.NextLine(), "rev=6 id=0 created");
  EXPECT_EQ(c.NextLine(), "rev=6 id=0 [PUT k=2 c2 m4 v3] [PUT k=3 c2 m5 v4] [PUT k=4 c2 m6 v5]");
  c.Cancel(50);
  EXPECT_EQ(c.NextLine(), "rev=6 id=50 canceled");
}

TEST_F(WatchServiceTest, ManyWatchesOnOneStreamAnsweredInOrder) {
  WatchClient c(env_.channel());
  const int kWatches = 60;
  for (int i = 0; i < kWatches; ++i) {
    WatchCreateRequest w = Create(absl::StrCat("m/", i));
    if (i % 3 == 0) w.set_watch_id(1000 + i);
    ASSERT_TRUE(c.Create(w));
  }
  std::vector<int64_t> ids;
  for (int i = 0; i < kWatches; ++i) {
    std::optional<WatchResponse> r = c.Next();
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->created());
    ids.push_back(r->watch_id());
  }
  int64_t auto_id = 0;
  for (int i = 0; i < kWatches; ++i) {
    EXPECT_EQ(ids[i], i % 3 == 0 ? 1000 + i : auto_id++) << i;
  }
  std::vector<std::pair<std::string, std::string>> kvs;
  for (int i = 0; i < kWatches; ++i) kvs.push_back({absl::StrCat("m/", i), absl::StrCat("v", i)});
  const int64_t rev = env_.PutMany(kvs);
  std::map<int64_t, std::string> by_id;
  for (int i = 0; i < kWatches; ++i) {
    std::optional<WatchResponse> r = c.Next();
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->events_size(), 1);
    EXPECT_EQ(r->header().revision(), rev);
    by_id[r->watch_id()] = r->events(0).kv().key();
  }
  for (int i = 0; i < kWatches; ++i) EXPECT_EQ(by_id[ids[i]], absl::StrCat("m/", i));
}

TEST_F(WatchServiceTest, ProgressRequestOnAnIdleStream) {
  WatchClient c(env_.channel());
  const int64_t rev = env_.Put("x", "1");
  c.RequestProgress();
  EXPECT_EQ(c.NextLine(), absl::StrCat("rev=", rev, " id=-1"));
}

// A reader that does not read for a while: the server's queue for it fills, its watcher
// falls behind and catches up from the history; the client sees every revision once.
TEST(WatchServiceSlowReaderTest, CatchesUpWithoutLosingOrRepeatingEvents) {
  WatchEnv env({}, {.max_pending_per_watcher = 4, .catch_up_events = 16});
  ASSERT_TRUE(env.status().ok()) << env.status();
  WatchClient slow(env.channel(), /*start_reading=*/false);
  WatchCreateRequest w = Create("s/", "s0");
  w.set_prev_kv(true);
  // From the next revision on, explicitly: the server may take the create request after
  // the first puts below (nothing waits for "created"), and a watch without a start
  // revision starts after whatever is current then.
  w.set_start_revision(env.Put("t", "before") + 1);
  slow.Create(w);
  const std::string value(8 * 1024, 'v');
  const int kPuts = 400;
  int64_t first = 0;
  size_t most_behind = 0;
  for (int i = 0; i < kPuts; ++i) {
    const int64_t rev = env.Put(absl::StrCat("s/", i % 13), absl::StrCat(i, value));
    if (first == 0) first = rev;
    most_behind = std::max(most_behind, env.hub().unsynced_count());
  }
  EXPECT_GT(most_behind, 0u) << "the reader never fell behind: the test proves nothing";
  slow.StartReading();
  std::optional<WatchResponse> created = slow.Next();
  ASSERT_TRUE(created.has_value() && created->created());
  int64_t expect = first;
  while (expect < first + kPuts) {
    std::optional<WatchResponse> r = slow.Next();
    ASSERT_TRUE(r.has_value()) << "stuck at revision " << expect;
    for (const mvccpb::Event& e : r->events()) {
      ASSERT_EQ(e.kv().mod_revision(), expect);
      const int i = static_cast<int>(expect - first);
      EXPECT_EQ(e.kv().key(), absl::StrCat("s/", i % 13));
      EXPECT_EQ(e.kv().value(), absl::StrCat(i, value));
      if (i >= 13) {
        EXPECT_EQ(e.prev_kv().value(), absl::StrCat(i - 13, value));
      } else {
        EXPECT_FALSE(e.has_prev_kv());
      }
      ++expect;
    }
  }
  EXPECT_FALSE(slow.Next(absl::Milliseconds(300)).has_value());
  const int64_t rev = env.Put("s/live", "1");
  std::optional<WatchResponse> live = slow.Next();
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(Describe(*live),
            absl::StrCat("rev=", rev, " id=0 [PUT s/live=1 c", rev, " m", rev, " v1]"));
}

TEST(WatchServiceFragmentTest, SplitsLargeResponsesOnlyForWatchesThatAsk) {
  WatchEnv env({.fragment_bytes = 4096});
  ASSERT_TRUE(env.status().ok()) << env.status();
  std::vector<std::pair<std::string, std::string>> kvs;
  for (int i = 0; i < 10; ++i) kvs.push_back({absl::StrCat("f/", i), std::string(1000, 'a' + i)});
  const int64_t rev = env.PutMany(kvs);
  WatchClient c(env.channel());
  WatchCreateRequest split = Create("f/", "f0", rev);
  split.set_fragment(true);
  split.set_watch_id(1);
  c.Create(split);
  EXPECT_EQ(c.NextLine(), absl::StrCat("rev=", rev, " id=1 created"));
  int events = 0;
  int parts = 0;
  for (;;) {
    std::optional<WatchResponse> r = c.Next();
    ASSERT_TRUE(r.has_value());
    ++parts;
    EXPECT_LT(r->ByteSizeLong(), 4096u);
    for (const mvccpb::Event& e : r->events()) {
      EXPECT_EQ(e.kv().key(), absl::StrCat("f/", events));
      ++events;
    }
    if (!r->fragment()) break;
  }
  EXPECT_EQ(events, 10);
  EXPECT_EQ(parts, 4);  // 3 + 3 + 3 + 1: a fourth event of ~1 KiB would reach 4096 bytes
  WatchCreateRequest whole = Create("f/", "f0", rev);
  whole.set_watch_id(2);
  c.Create(whole);
  EXPECT_EQ(c.NextLine(), absl::StrCat("rev=", rev, " id=2 created"));
  std::optional<WatchResponse> r = c.Next();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->events_size(), 10);
  EXPECT_FALSE(r->fragment());
}

TEST(FragmentWatchResponseTest, AsEtcd) {
  WatchResponse resp;
  resp.set_watch_id(3);
  resp.mutable_header()->set_revision(9);
  for (int i = 0; i < 5; ++i) {
    mvccpb::Event* e = resp.add_events();
    e->mutable_kv()->set_key(absl::StrCat("k", i));
    e->mutable_kv()->set_value(std::string(i == 2 ? 300 : 40, 'x'));
  }
  const int64_t whole = static_cast<int64_t>(resp.ByteSizeLong());
  // Under the limit, or a single event: whole.
  EXPECT_EQ(FragmentWatchResponse(resp, whole + 1).size(), 1u);
  WatchResponse one;
  *one.add_events() = resp.events(2);
  EXPECT_EQ(FragmentWatchResponse(one, 10).size(), 1u);
  // At the limit: parts under it, except a lone event that alone is larger.
  std::vector<WatchResponse> parts = FragmentWatchResponse(resp, 200);
  ASSERT_GE(parts.size(), 3u);
  int n = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    EXPECT_EQ(parts[i].watch_id(), 3);
    EXPECT_EQ(parts[i].header().revision(), 9);
    EXPECT_EQ(parts[i].fragment(), i + 1 < parts.size());
    if (parts[i].events_size() > 1) {
      EXPECT_LT(parts[i].ByteSizeLong(), 200u);
    }
    for (const mvccpb::Event& e : parts[i].events())
      EXPECT_EQ(e.kv().key(), absl::StrCat("k", n++));
  }
  EXPECT_EQ(n, 5);
  // Greedy: a part ends only where the next event would reach the limit.
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    WatchResponse grown = parts[i];
    *grown.add_events() = parts[i + 1].events(0);
    EXPECT_GE(grown.ByteSizeLong(), 200u);
  }
}

TEST(WatchServiceProgressNotifyTest, IdleWatchesHearOfProgress) {
  WatchEnv env({.progress_interval = absl::Milliseconds(200)});
  ASSERT_TRUE(env.status().ok()) << env.status();
  WatchClient c(env.channel());
  WatchCreateRequest w = Create("pn");
  w.set_progress_notify(true);
  w.set_watch_id(4);
  c.Create(w);
  c.Create(Create("other"));
  const int64_t rev = env.Put("unrelated", "1");
  EXPECT_EQ(c.NextLine(), "rev=1 id=4 created");
  EXPECT_EQ(c.NextLine(), "rev=1 id=0 created");
  // Only the watch that asked, with the current revision and no events.
  for (int i = 0; i < 2; ++i) {
    std::optional<WatchResponse> r = c.Next(absl::Seconds(3));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(Describe(*r), absl::StrCat("rev=", rev, " id=4"));
  }
}

TEST_F(WatchServiceTest, HalfClosedStreamKeepsWatching) {
  WatchClient c(env_.channel());
  c.Create(Create("hc"));
  EXPECT_EQ(c.NextLine(), "rev=1 id=0 created");
  c.WritesDone();
  const int64_t rev = env_.Put("hc", "1");
  EXPECT_EQ(c.NextLine(), absl::StrCat("rev=", rev, " id=0 [PUT hc=1 c", rev, " m", rev, " v1]"));
}

// Waits until `f` holds; false if it does not within 10 s.
template <typename F>
bool Eventually(F f) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!f()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

TEST_F(WatchServiceTest, DisconnectDropsWatchersAndThreads) {
  {
    WatchClient a(env_.channel());
    WatchClient b(env_.channel(), /*start_reading=*/false);
    for (int i = 0; i < 5; ++i) a.Create(Create(absl::StrCat("d", i), "", 1));
    b.Create(Create("d", "e"));
    for (int i = 0; i < 5; ++i) ASSERT_NE(a.NextLine(), "none");
    ASSERT_TRUE(Eventually([&] { return env_.hub().watcher_count() == 6; }));
    EXPECT_EQ(env_.watch().active_streams(), 2);
    for (int i = 0; i < 50; ++i) env_.Put(absl::StrCat("d", i % 5), std::string(4096, 'x'));
    a.Cancel();
    ASSERT_TRUE(a.WaitFinished(absl::Seconds(10)).has_value());
    EXPECT_TRUE(Eventually([&] { return env_.hub().watcher_count() == 1; }));
    // b never read: its client goes away with responses pending.
  }
  EXPECT_TRUE(Eventually([&] { return env_.hub().watcher_count() == 0; }));
  EXPECT_TRUE(Eventually([&] { return env_.watch().active_streams() == 0; }));
}

// A client process killed with SIGKILL: the connection just drops.
TEST_F(WatchServiceTest, KilledClientProcessLeavesNothingBehind) {
  const char* etcdctl = "/usr/bin/etcdctl";
  if (access(etcdctl, X_OK) != 0) GTEST_SKIP() << "etcdctl is not installed";
  const std::string endpoints = absl::StrCat("--endpoints=127.0.0.1:", env_.port());
  std::vector<std::string> args = {etcdctl, endpoints, "watch", "--prefix", "kill/"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> env_vars = {"ETCDCTL_API=3"};
  std::vector<char*> envp = {env_vars[0].data(), nullptr};
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, etcdctl, &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  const bool watching = Eventually([&] { return env_.hub().watcher_count() == 1; });
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(watching);
  EXPECT_TRUE(Eventually([&] { return env_.hub().watcher_count() == 0; }));
  EXPECT_TRUE(Eventually([&] { return env_.watch().active_streams() == 0; }));
}

// A server shutting down ends open streams with UNAVAILABLE, which etcd clients retry (on
// another member), as they do when a real etcd stops.
TEST(WatchServiceStopTest, ServerShutdownEndsStreamsRetryably) {
  auto env = std::make_unique<WatchEnv>();
  ASSERT_TRUE(env->status().ok()) << env->status();
  WatchClient c(env->channel());
  c.Create(Create("s"));
  EXPECT_EQ(c.NextLine(), "rev=1 id=0 created");
  env->ShutdownGrpc(absl::Milliseconds(100));
  std::optional<grpc::Status> s = c.WaitFinished(absl::Seconds(5));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->error_code(), grpc::StatusCode::UNAVAILABLE) << s->error_message();
  EXPECT_EQ(env->hub().watcher_count(), 0u);
  EXPECT_EQ(env->watch().active_streams(), 0);
}

TEST(WatchServiceStopTest, StopEndsStreamsAndRefusesNewOnes) {
  auto env = std::make_unique<WatchEnv>();
  ASSERT_TRUE(env->status().ok()) << env->status();
  WatchClient c(env->channel());
  c.Create(Create("s"));
  EXPECT_EQ(c.NextLine(), "rev=1 id=0 created");
  const absl::Time before = absl::Now();
  env->watch().Stop();
  std::optional<grpc::Status> s = c.WaitFinished(absl::Seconds(5));
  ASSERT_TRUE(s.has_value());
  EXPECT_FALSE(s->ok());
  EXPECT_LT(absl::Now() - before, absl::Seconds(3));
  EXPECT_EQ(env->hub().watcher_count(), 0u);
  WatchClient late(env->channel());
  late.Create(Create("s"));
  s = late.WaitFinished(absl::Seconds(5));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace kvstore::server

// etcdctl 3.4 (Debian's etcd-client, a client we did not write) against build/bin/kvstore:
// the Lease, Maintenance and Cluster commands, snapshot save, `kvstore restore` and the
// restored member. When Debian's etcd is installed, the same commands also run against a
// real etcd 3.4 started here, and the outputs must agree once ids, numbers and ports are
// masked.
//
// Usage: etcdctl_service_test PATH/TO/kvstore. Every process started here listens on
// 127.0.0.1 ports picked at run time, is bounded in time, and is killed by pid at the end;
// its data lives in a temp dir that is removed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;

std::string g_kvstore;  // argv[1]

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A port nobody listens on right now, on 127.0.0.1.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

// Starts argv with stdout and stderr into `log`; returns the pid (0 on failure).
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int r = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return r == 0 ? pid : 0;
}

constexpr int kTimedOut = -2;

// Waits for `pid` up to `timeout`; kills it (by pid) if it is still running then.
// Returns the exit code, -1 if a signal ended it, or kTimedOut if it had to be killed.
int WaitFor(pid_t pid, absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > give_up) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return kTimedOut;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Output {
  int code = -1;
  std::string out;  // stdout and stderr, without clientv3's JSON log lines
};

class EtcdctlServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (g_kvstore.empty()) GTEST_SKIP() << "usage: etcdctl_service_test PATH/TO/kvstore";
    if (!fs::exists("/usr/bin/etcdctl")) GTEST_SKIP() << "etcdctl (etcd-client) not installed";
    char pattern[] = "/tmp/etcdctl_service_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    setenv("ETCDCTL_API", "3", 1);
  }

  void TearDown() override {
    for (pid_t pid : running_) {
      kill(pid, SIGTERM);
      // etcd ends by re-raising SIGTERM; either way it must not hang.
      if (WaitFor(pid, absl::Seconds(10)) == kTimedOut) {
        ADD_FAILURE() << "pid " << pid << " hung on exit";
      }
    }
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  // Starts a member: our kvstore, or with `real_etcd` Debian's etcd; returns its client
  // endpoint once it answers.
  std::string StartMember(const std::string& data_dir, int peer_port, bool real_etcd = false) {
    const int client_port = FreePort();
    const std::string client = absl::StrCat("http://127.0.0.1:", client_port);
    const std::string peer = absl::StrCat("http://127.0.0.1:", peer_port);
    std::vector<std::string> argv = {real_etcd ? "/usr/bin/etcd" : g_kvstore,
                                     "--name",
                                     "e2e",
                                     "--data-dir",
                                     data_dir,
                                     "--listen-client-urls",
                                     client,
                                     "--advertise-client-urls",
                                     client,
                                     "--listen-peer-urls",
                                     peer,
                                     "--initial-advertise-peer-urls",
                                     peer,
                                     "--initial-cluster",
                                     "e2e=" + peer,
                                     "--heartbeat-interval",
                                     "10",
                                     "--election-timeout",
                                     "100"};
    const std::string log = absl::StrCat(dir_, "/member-", running_.size(), ".log");
    const pid_t pid = Spawn(argv, log);
    EXPECT_NE(pid, 0);
    running_.push_back(pid);
    const std::string endpoint = absl::StrCat("127.0.0.1:", client_port);
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (absl::Now() < give_up) {
      if (Etcdctl(endpoint, {"endpoint", "status"}).code == 0) return endpoint;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "member did not come up; log:\n" << ReadFile(log);
    return endpoint;
  }

  void StopMember(size_t i) {
    kill(running_[i], SIGTERM);
    EXPECT_EQ(WaitFor(running_[i], absl::Seconds(10)), 0);
    running_.erase(running_.begin() + i);
  }

  Output Run(std::vector<std::string> argv) {
    const std::string log = absl::StrCat(dir_, "/cmd-", ++commands_, ".log");
    Output o;
    const pid_t pid = Spawn(argv, log);
    if (pid == 0) return o;
    o.code = WaitFor(pid, absl::Seconds(30));
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(ReadFile(log), '\n')) {
      // clientv3 logs retries as JSON lines with timestamps; they are not etcdctl's output.
      if (absl::StartsWith(line, "{\"level\"")) continue;
      lines.emplace_back(line);
    }
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    o.out = absl::StrJoin(lines, "\n");
    return o;
  }

  Output Etcdctl(const std::string& endpoint, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/etcdctl", "--endpoints=" + endpoint,
                                     "--command-timeout=10s"};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv);
  }

  // Output of a command that must succeed.
  std::string Ok(const std::string& endpoint, std::vector<std::string> args) {
    const Output o = Etcdctl(endpoint, args);
    EXPECT_EQ(o.code, 0) << absl::StrJoin(args, " ") << ":\n" << o.out;
    return o.out;
  }

  std::string dir_;
  std::vector<pid_t> running_;
  int commands_ = 0;
};

// (No std::regex here: GCC 12 warns inside <regex> under the sanitizers, and warnings are
// errors.)

bool IsHex(absl::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
}
bool IsDigits(absl::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == absl::string_view::npos;
}

// Masks what legitimately differs between two members: ids (hex or decimal) become <id>,
// other numbers (ports, indexes, sizes, versions) N, and how long a health check took
// (a Go duration, whose unit changes with its size) <duration>.
std::string Mask(const std::string& s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t j = i;
    while (j < s.size() && hex(s[j])) ++j;
    const absl::string_view run(s.data() + i, j - i);
    const bool has_digit = run.find_first_of("0123456789") != absl::string_view::npos;
    const bool has_letter = run.find_first_of("abcdef") != absl::string_view::npos;
    const bool word_before = i > 0 && std::isalpha(static_cast<unsigned char>(s[i - 1]));
    const bool word_after = j < s.size() && std::isalpha(static_cast<unsigned char>(s[j]));
    if (has_digit && !word_before && !word_after &&
        ((has_letter && run.size() >= 8) || run.size() >= 15)) {
      out += "<id>";
      i = j;
    } else if (digit(s[i])) {
      while (i < s.size() &&
             (digit(s[i]) || (s[i] == '.' && i + 1 < s.size() && digit(s[i + 1])))) {
        ++i;
      }
      out += "N";
    } else {
      out += s[i++];
    }
  }
  return absl::StrReplaceAll(out, {{"took = Nns", "took = <duration>"},
                                   {"took = N\u00b5s", "took = <duration>"},
                                   {"took = Nms", "took = <duration>"},
                                   {"took = Ns", "took = <duration>"}});
}

// Whether `json` has "name":<a positive number>.
bool PositiveField(const std::string& json, const std::string& name) {
  const size_t at = json.find("\"" + name + "\":");
  if (at == std::string::npos) return false;
  const char c = json[at + name.size() + 3];
  return c >= '1' && c <= '9';
}

std::string GrantedId(const std::string& out) {
  // "lease <16 hex digits> granted with TTL(<n>s)"
  std::vector<std::string> w = absl::StrSplit(out, ' ');
  if (w.size() != 5 || w[0] != "lease" || w[1].size() != 16 || !IsHex(w[1]) || w[2] != "granted" ||
      w[3] != "with" || !absl::StartsWith(w[4], "TTL(") || !absl::EndsWith(w[4], "s)") ||
      !IsDigits(w[4].substr(4, w[4].size() - 6))) {
    ADD_FAILURE() << "unexpected lease grant output: " << out;
    return "";
  }
  return w[1];
}

TEST(MaskTest, HidesIdsAndNumbersOnly) {
  EXPECT_EQ(Mask("lease 390da2144a906c0b granted with TTL(60s)"),
            "lease <id> granted with TTL(Ns)");
  EXPECT_EQ(Mask("bdae9bbc11dd390d, started, e2e, http://127.0.0.1:23801, false"),
            "<id>, started, eNe, http://N:N, false");
  EXPECT_EQ(Mask("{\"member_id\":13668033151171901709,\"raft_term\":2}"),
            "{\"member_id\":<id>,\"raft_term\":N}");
  EXPECT_EQ(Mask("Error: etcdserver: bad leader transferee"),
            "Error: etcdserver: bad leader transferee");
  EXPECT_NE(Mask("TTL(60s)"), Mask("TTL(60m)"));
  // How long a health check took: its unit changes with its size.
  EXPECT_EQ(Mask("127.0.0.1:2379 is healthy: successfully committed proposal: took = 1.2ms"),
            Mask("127.0.0.1:2379 is healthy: successfully committed proposal: took = 950\u00b5s"));
}

TEST_F(EtcdctlServiceTest, Leases) {
  const std::string ep = StartMember(dir_ + "/m", FreePort());
  const std::string id = GrantedId(Ok(ep, {"lease", "grant", "60"}));
  const std::string id2 = GrantedId(Ok(ep, {"lease", "grant", "100"}));
  EXPECT_EQ(Ok(ep, {"put", "--lease=" + id, "foo", "bar"}), "OK");
  EXPECT_EQ(Ok(ep, {"put", "--lease=" + id, "zoo", "bar"}), "OK");

  const std::string ttl = Ok(ep, {"lease", "timetolive", "--keys", id});
  auto ttl_line = [&id](int left) {
    return absl::StrCat("lease ", id, " granted with TTL(60s), remaining(", left,
                        "s), attached keys([foo zoo])");
  };
  EXPECT_TRUE(ttl == ttl_line(59) || ttl == ttl_line(58)) << ttl;
  const std::string list = Ok(ep, {"lease", "list"});
  EXPECT_TRUE(list == absl::StrCat("found 2 leases\n", id, "\n", id2) ||
              list == absl::StrCat("found 2 leases\n", id2, "\n", id))
      << list;
  EXPECT_EQ(Ok(ep, {"lease", "keep-alive", "--once", id}),
            absl::StrCat("lease ", id, " keepalived with TTL(60)"));
  EXPECT_EQ(Ok(ep, {"lease", "revoke", id}), absl::StrCat("lease ", id, " revoked"));
  EXPECT_EQ(Ok(ep, {"get", "foo"}), "");
  EXPECT_EQ(Ok(ep, {"lease", "list"}), absl::StrCat("found 1 leases\n", id2));

  Output o = Etcdctl(ep, {"lease", "revoke", id});
  EXPECT_NE(o.code, 0);
  EXPECT_EQ(o.out, "Error: failed to revoke lease (etcdserver: requested lease not found)");
  EXPECT_EQ(Ok(ep, {"lease", "timetolive", id}), absl::StrCat("lease ", id, " already expired"));
  o = Etcdctl(ep, {"lease", "keep-alive", "--once", id});
  EXPECT_NE(o.code, 0);
  EXPECT_EQ(o.out, "Error: etcdserver: requested lease not found");
  o = Etcdctl(ep, {"lease", "grant", "10000000000"});
  EXPECT_NE(o.code, 0);
  EXPECT_EQ(o.out, "Error: failed to grant lease (etcdserver: too large lease TTL)");
}

TEST_F(EtcdctlServiceTest, AnExpiredLeaseDeletesItsKeys) {
  const std::string ep = StartMember(dir_ + "/m", FreePort());
  // The minimum TTL with a 100 ms election timeout: 1 s.
  const std::string id = GrantedId(Ok(ep, {"lease", "grant", "1"}));
  // A watcher started before the key exists sees it come and go.
  const std::string watch_log = dir_ + "/watch.log";
  const pid_t watcher =
      Spawn({"/usr/bin/etcdctl", "--endpoints=" + ep, "watch", "short"}, watch_log);
  ASSERT_NE(watcher, 0);
  running_.push_back(watcher);
  absl::SleepFor(absl::Milliseconds(300));  // let the watch be created
  EXPECT_EQ(Ok(ep, {"put", "--lease=" + id, "short", "lived"}), "OK");
  EXPECT_EQ(Ok(ep, {"put", "stays", "here"}), "OK");
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (Ok(ep, {"get", "short"}) != "" && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(Ok(ep, {"get", "short"}), "");
  while (!absl::StrContains(ReadFile(watch_log), "DELETE") && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(ReadFile(watch_log), "PUT\nshort\nlived\nDELETE\nshort\n\n");
  EXPECT_EQ(Ok(ep, {"get", "stays"}), "stays\nhere");
  EXPECT_EQ(Ok(ep, {"lease", "timetolive", id}), absl::StrCat("lease ", id, " already expired"));
  EXPECT_EQ(Ok(ep, {"lease", "list"}), "found 0 leases");
}

TEST_F(EtcdctlServiceTest, StatusMembersAlarmsDefrag) {
  const int peer_port = FreePort();
  const std::string ep = StartMember(dir_ + "/m", peer_port);
  const std::string status = Ok(ep, {"endpoint", "status", "-w", "json"});
  EXPECT_TRUE(absl::StrContains(status, "\"version\":\"3.4.0\"")) << status;
  EXPECT_TRUE(PositiveField(status, "leader")) << status;
  EXPECT_TRUE(PositiveField(status, "raftAppliedIndex")) << status;
  EXPECT_TRUE(PositiveField(status, "dbSize")) << status;
  EXPECT_FALSE(absl::StrContains(status, "errors")) << status;
  const std::string table = Ok(ep, {"endpoint", "status"});
  // endpoint, id, version, db size, is leader, is learner, term, index, applied, errors
  const std::vector<std::string> f = absl::StrSplit(table, ", ");
  ASSERT_EQ(f.size(), 10u) << table;
  EXPECT_EQ(f[0], ep);
  EXPECT_TRUE(IsHex(f[1])) << table;
  EXPECT_EQ(f[2], "3.4.0");
  EXPECT_TRUE(absl::EndsWith(f[3], "B")) << table;
  EXPECT_EQ(f[4], "true");
  EXPECT_EQ(f[5], "false");
  EXPECT_TRUE(IsDigits(f[6]) && IsDigits(f[7]) && IsDigits(f[8])) << table;
  EXPECT_EQ(f[9], "");

  const std::string members = Ok(ep, {"member", "list"});
  const std::vector<std::string> m = absl::StrSplit(members, ", ");
  ASSERT_EQ(m.size(), 6u) << members;
  EXPECT_TRUE(IsHex(m[0])) << members;
  EXPECT_EQ(absl::StrJoin(m.begin() + 1, m.end(), ", "),
            absl::StrCat("started, e2e, http://127.0.0.1:", peer_port, ", http://", ep, ", false"));

  EXPECT_EQ(Ok(ep, {"alarm", "list"}), "");
  EXPECT_EQ(Ok(ep, {"defrag"}), absl::StrCat("Finished defragmenting etcd member[", ep, "]"));
  EXPECT_TRUE(absl::StartsWith(Ok(ep, {"endpoint", "health"}), ep + " is healthy"));
  const std::string hash = Ok(ep, {"endpoint", "hashkv"});
  EXPECT_TRUE(absl::StartsWith(hash, ep + ", ") && IsDigits(hash.substr(ep.size() + 2))) << hash;
}

TEST_F(EtcdctlServiceTest, SnapshotSaveRestoreAndServeTheRestoredMember) {
  const int peer_port = FreePort();
  const std::string ep = StartMember(dir_ + "/m", peer_port);
  Ok(ep, {"put", "a", "1"});
  Ok(ep, {"put", "a", "2"});
  Ok(ep, {"put", "b", "x"});
  const std::string id = GrantedId(Ok(ep, {"lease", "grant", "600"}));
  Ok(ep, {"put", "--lease=" + id, "leased", "v"});
  const std::string file = dir_ + "/snap.db";
  EXPECT_EQ(Ok(ep, {"snapshot", "save", file}), "Snapshot saved at " + file);
  EXPECT_EQ(fs::file_size(file) % 512, 32u);
  StopMember(0);

  const std::string peer = absl::StrCat("http://127.0.0.1:", peer_port);
  const std::string restored = dir_ + "/restored";
  std::vector<std::string> restore = {g_kvstore,
                                      "restore",
                                      "--snapshot",
                                      file,
                                      "--data-dir",
                                      restored,
                                      "--name",
                                      "e2e",
                                      "--initial-cluster",
                                      "e2e=" + peer,
                                      "--initial-advertise-peer-urls",
                                      peer,
                                      "--bump-revision",
                                      "1000"};
  Output o = Run(restore);
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_TRUE(absl::StrContains(o.out, "revision 1005 (everything below it compacted), 1 leases"))
      << o.out;
  // The same again: the directory exists now.
  o = Run(restore);
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.out, absl::StrCat("kvstore restore: data-dir \"", restored, "\" exists"));
  // A damaged file.
  std::string bytes = ReadFile(file);
  bytes[bytes.size() / 2] ^= 1;
  std::ofstream(dir_ + "/bad.db", std::ios::binary) << bytes;
  restore[3] = dir_ + "/bad.db";
  restore[5] = dir_ + "/other";
  o = Run(restore);
  EXPECT_EQ(o.code, 1);
  EXPECT_TRUE(absl::StartsWith(o.out, "kvstore restore: expected sha256 ")) << o.out;
  EXPECT_FALSE(fs::exists(dir_ + "/other"));

  const std::string ep2 = StartMember(restored, peer_port);
  EXPECT_EQ(Ok(ep2, {"get", "a"}), "a\n2");
  EXPECT_EQ(Ok(ep2, {"get", "", "--prefix", "--keys-only"}), "a\n\nb\n\nleased");
  const std::string json = Ok(ep2, {"get", "b", "-w", "json"});
  EXPECT_TRUE(absl::StrContains(json, "\"revision\":1005,")) << json;
  o = Etcdctl(ep2, {"get", "a", "--rev=3"});
  EXPECT_NE(o.code, 0);
  EXPECT_EQ(o.out, "Error: etcdserver: mvcc: required revision has been compacted");
  EXPECT_TRUE(
      absl::StrContains(Ok(ep2, {"lease", "timetolive", "--keys", id}), "attached keys([leased])"));
  EXPECT_EQ(Ok(ep2, {"put", "c", "new"}), "OK");
  EXPECT_TRUE(absl::StrContains(Ok(ep2, {"get", "c", "-w", "json"}), "\"mod_revision\":1006"));
}

TEST_F(EtcdctlServiceTest, SameOutputsAsEtcd) {
  if (!fs::exists("/usr/bin/etcd")) GTEST_SKIP() << "etcd (etcd-server) not installed";
  const std::string ours = StartMember(dir_ + "/ours", FreePort());
  const std::string etcd = StartMember(dir_ + "/etcd", FreePort(), /*real_etcd=*/true);
  // Commands whose output does not depend on state, or on state both get the same way.
  const std::vector<std::vector<std::string>> commands = {
      {"lease", "grant", "60"},
      {"lease", "grant", "10000000000"},
      {"lease", "timetolive", "1234"},
      {"lease", "timetolive", "1234", "-w", "json"},
      {"lease", "keep-alive", "--once", "1234"},
      {"lease", "revoke", "1234"},
      {"lease", "list"},
      {"member", "list"},
      {"member", "list", "-w", "json"},
      {"member", "remove", "1234"},
      {"member", "promote", "1234"},
      {"member", "add", "x", "--peer-urls=foo"},
      {"alarm", "list"},
      {"alarm", "list", "-w", "json"},
      {"defrag"},
      {"move-leader", "1234"},
      {"endpoint", "status", "-w", "json"},
      {"endpoint", "hashkv", "-w", "json"},
      {"endpoint", "health"},
  };
  for (const std::vector<std::string>& c : commands) {
    const Output a = Etcdctl(ours, c);
    const Output b = Etcdctl(etcd, c);
    const std::string what = absl::StrJoin(c, " ");
    EXPECT_EQ(a.code, b.code) << what << "\nours: " << a.out << "\netcd: " << b.out;
    EXPECT_EQ(Mask(a.out), Mask(b.out)) << what << "\nours: " << a.out << "\netcd: " << b.out;
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (argc > 1) g_kvstore = fs::absolute(argv[1]).string();
  return RUN_ALL_TESTS();
}

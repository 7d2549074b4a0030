// The snapshot file format (snapshot_format.h) and `kvstore restore` (restore.h): framing,
// a round trip through the archive, what corrupt or foreign files get, interoperability
// with GNU tar (a reader we did not write), and restored members' data directories.
#include "kvstore/server/snapshot_format.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <stdio.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kvstore/server/kv_server.h"
#include "kvstore/server/restore.h"
#include "kvstore/server/service_test_env.h"
#include "kvstore/storage/mvcc_store.h"
#include "kvstore/storage/raft_log_store.h"

namespace kvstore::server {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string Sha256(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(digest), len);
}

// Every byte of a writer, asking `chunk` bytes at a time.
std::string Drain(SnapshotWriter& w, size_t chunk) {
  std::string out;
  for (;;) {
    absl::StatusOr<std::string> c = w.Next(chunk);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok() || c->empty()) return out;
    out += *c;
  }
}

// Runs `command` through the shell; its standard output, or nullopt if it failed.
std::optional<std::string> Shell(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return std::nullopt;
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  if (pclose(p) != 0) return std::nullopt;
  return out;
}

class SnapshotFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    checkpoint_ = dir_.path() + "/checkpoint";
    fs::create_directory(checkpoint_);
    files_ = {
        {"CURRENT", "MANIFEST-000001\n"},
        {"000007.sst", std::string("\0\1\2 binary\0", 11) + std::string(3000, '\xff')},
        {"empty", ""},
        {"exactly-512", std::string(512, 'e')},
        {"513", std::string(513, 'f')},
    };
    for (const auto& [name, content] : files_) WriteFile(checkpoint_ + "/" + name, content);
    info_ = SnapshotInfo{
        .revision = 77, .compact_revision = 5, .member_id = 0xabc, .cluster_id = 0xdef};
  }

  // A snapshot file of the checkpoint; returns its path.
  std::string MakeSnapshot(const std::string& name = "snap.db") {
    absl::StatusOr<std::unique_ptr<SnapshotWriter>> w = SnapshotWriter::Open(checkpoint_, info_);
    EXPECT_TRUE(w.ok()) << w.status();
    const std::string path = dir_.path() + "/" + name;
    WriteFile(path, Drain(**w, 1 << 20));
    return path;
  }

  TempDir dir_;
  std::string checkpoint_;
  std::map<std::string, std::string> files_;
  SnapshotInfo info_;
};

TEST_F(SnapshotFormatTest, FramingIsEtcdsAndChunkingDoesNotChangeTheBytes) {
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> a = SnapshotWriter::Open(checkpoint_, info_);
  absl::StatusOr<std::unique_ptr<SnapshotWriter>> b = SnapshotWriter::Open(checkpoint_, info_);
  ASSERT_TRUE(a.ok() && b.ok());
  const std::string whole = Drain(**a, 1 << 20);
  const std::string chunked = Drain(**b, 777);
  EXPECT_EQ(whole, chunked);
  EXPECT_EQ(whole.size(), (*a)->size());
  EXPECT_EQ(whole.size() % 512, 32u);
  EXPECT_EQ(whole.substr(whole.size() - 32), Sha256(whole.substr(0, whole.size() - 32)));
  // The writer is done for good.
  absl::StatusOr<std::string> after = (*a)->Next(100);
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->empty());
}

TEST_F(SnapshotFormatTest, RoundTrip) {
  const std::string path = MakeSnapshot();
  absl::StatusOr<uint64_t> payload = VerifySnapshotFile(path, /*skip_hash_check=*/false);
  ASSERT_TRUE(payload.ok()) << payload.status();
  EXPECT_EQ(*payload, fs::file_size(path) - 32);
  const std::string out = dir_.path() + "/out";
  absl::StatusOr<SnapshotInfo> info = ExtractSnapshot(path, *payload, out);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->revision, 77);
  EXPECT_EQ(info->compact_revision, 5);
  EXPECT_EQ(info->member_id, 0xabcu);
  EXPECT_EQ(info->cluster_id, 0xdefu);
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(out)) {
    ++n;
    const std::string name = e.path().filename().string();
    ASSERT_TRUE(files_.count(name)) << name;
    EXPECT_EQ(ReadFile(e.path().string()), files_[name]) << name;
  }
  EXPECT_EQ(n, files_.size());
  // The destination must be new.
  EXPECT_FALSE(ExtractSnapshot(path, *payload, out).ok());
}

TEST_F(SnapshotFormatTest, GnuTarReadsThePayload) {
  if (!Shell("tar --version >/dev/null 2>&1")) GTEST_SKIP() << "no tar";
  const std::string path = MakeSnapshot();
  const std::string tar = dir_.path() + "/payload.tar";
  WriteFile(tar, ReadFile(path).substr(0, fs::file_size(path) - 32));
  std::optional<std::string> listing = Shell("tar -tf " + tar);
  ASSERT_TRUE(listing.has_value());
  std::vector<std::string> names = absl::StrSplit(*listing, '\n', absl::SkipEmpty());
  std::vector<std::string> want = {"kvstore-snapshot"};
  for (const auto& [name, content] : files_) want.push_back("mvcc/" + name);
  EXPECT_EQ(names, want);
  const std::string x = dir_.path() + "/x";
  fs::create_directory(x);
  ASSERT_TRUE(Shell("tar -xf " + tar + " -C " + x).has_value());
  EXPECT_EQ(ReadFile(x + "/mvcc/000007.sst"), files_["000007.sst"]);
  EXPECT_NE(ReadFile(x + "/kvstore-snapshot").find("format kvstore-snapshot-v1\nrevision 77\n"),
            std::string::npos);
}

TEST_F(SnapshotFormatTest, VerifyRefusesDamagedAndUnframedFiles) {
  const std::string path = MakeSnapshot();
  const std::string good = ReadFile(path);

  std::string flipped = good;
  flipped[700] ^= 1;
  WriteFile(path, flipped);
  absl::StatusOr<uint64_t> r = VerifySnapshotFile(path, false);
  EXPECT_TRUE(absl::IsDataLoss(r.status()));
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "expected sha256 ")) << r.status();
  // --skip-hash-check takes it as it is.
  r = VerifySnapshotFile(path, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, good.size() - 32);

  WriteFile(path, good.substr(0, good.size() - 1));
  r = VerifySnapshotFile(path, false);
  EXPECT_EQ(r.status().message(), "snapshot missing hash but --skip-hash-check=false");
  // A bare payload (no trailer) is accepted with --skip-hash-check, as etcd accepts a raw db.
  WriteFile(path, good.substr(0, good.size() - 32));
  r = VerifySnapshotFile(path, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, good.size() - 32);

  r = VerifySnapshotFile(dir_.path() + "/missing.db", false);
  EXPECT_TRUE(absl::IsNotFound(r.status())) << r.status();
}

TEST_F(SnapshotFormatTest, ExtractRefusesAnythingButOurArchive) {
  const std::string good = ReadFile(MakeSnapshot());
  const std::string payload = good.substr(0, good.size() - 32);
  int case_no = 0;
  auto refused = [&](const std::string& bytes, const std::string& why) {
    const std::string path = absl::StrCat(dir_.path(), "/bad", ++case_no);
    WriteFile(path, bytes);
    const std::string out = absl::StrCat(dir_.path(), "/bad-out", case_no);
    absl::StatusOr<SnapshotInfo> r = ExtractSnapshot(path, bytes.size(), out);
    EXPECT_FALSE(r.ok()) << why;
    EXPECT_TRUE(absl::IsDataLoss(r.status())) << why << ": " << r.status();
    // Never anything outside the destination.
    EXPECT_FALSE(fs::exists(dir_.path() + "/evil")) << why;
  };
  // Entries built by hand with a correct header checksum.
  auto entry = [](const std::string& name, const std::string& content) {
    return UstarHeader(name, content.size()) + content +
           std::string((512 - content.size() % 512) % 512, '\0');
  };
  const std::string info_entry = payload.substr(0, 1024);  // header + one block of text
  const std::string end(1024, '\0');

  std::string bad_checksum = payload;
  bad_checksum[5] ^= 1;  // in the first header's name
  refused(bad_checksum, "header checksum");
  refused(std::string(payload.size(), 'x'), "not an archive");
  refused(entry("mvcc/CURRENT", "x") + end, "info entry missing");
  refused(entry("kvstore-snapshot", "format other-v9\nrevision 1\n") + end, "unknown format");
  refused(info_entry + entry("mvcc/../../evil", "x") + end, "path traversal");
  refused(info_entry + entry("../evil", "x") + end, "outside mvcc/");
  refused(info_entry + entry("mvcc/a/b", "x") + end, "subdirectory");
  refused(info_entry + entry("mvcc/CURRENT", "x") + entry("mvcc/CURRENT", "y") + end, "twice");
  refused(info_entry + end, "no store files");
  refused(info_entry + entry("mvcc/CURRENT", "x"), "no end marker");
  std::string padding = info_entry + entry("mvcc/CURRENT", "x") + end;
  padding[1024 + 512 + 100] = 'p';
  refused(padding, "non-zero padding");
  refused(info_entry + entry("mvcc/CURRENT", "x") + end + std::string(511, '\0') + "z",
          "data after the end");
  std::string truncated = info_entry + UstarHeader("mvcc/CURRENT", 1 << 20) + end;
  refused(truncated, "entry larger than the file");
}

// --- kvstore restore ---------------------------------------------------------------------

class RestoreTest : public ::testing::Test {
 protected:
  // A store with history, a compaction, a lease with a key, checkpointed into a snapshot.
  void SetUp() override {
    const std::string src = dir_.path() + "/src";
    absl::StatusOr<std::unique_ptr<mvcc::MvccStore>> opened = mvcc::MvccStore::Open(src);
    ASSERT_TRUE(opened.ok()) << opened.status();
    mvcc::MvccStore& store = **opened;
    auto write = [&store](auto&& f) {
      mvcc::WriteTxn txn = store.BeginWrite();
      f(txn);
      txn.SetAppliedIndex(store.AppliedIndex() + 1);
      ASSERT_TRUE(txn.End().ok());
    };
    write([](mvcc::WriteTxn& t) { ASSERT_TRUE(t.PutLease(555, 60).ok()); });
    write([](mvcc::WriteTxn& t) { ASSERT_TRUE(t.Put("a", "1").ok()); });
    write([](mvcc::WriteTxn& t) { ASSERT_TRUE(t.Put("a", "2").ok()); });
    write([](mvcc::WriteTxn& t) { ASSERT_TRUE(t.Put("leased", "v", 555).ok()); });
    write([](mvcc::WriteTxn& t) { ASSERT_TRUE(t.Put("gone", "x").ok()); });
    write([](mvcc::WriteTxn& t) { ASSERT_TRUE(t.DeleteRange("gone", "").ok()); });
    ASSERT_TRUE(store.Compact(3).ok());
    revision_ = store.CurrentRevision();  // 6
    ASSERT_TRUE(store.CreateCheckpoint(dir_.path() + "/checkpoint").ok());
    absl::StatusOr<std::unique_ptr<SnapshotWriter>> w = SnapshotWriter::Open(
        dir_.path() + "/checkpoint", SnapshotInfo{.revision = revision_, .compact_revision = 3});
    ASSERT_TRUE(w.ok()) << w.status();
    snapshot_ = dir_.path() + "/snap.db";
    WriteFile(snapshot_, Drain(**w, 1 << 16));
  }

  RestoreOptions Options(const std::string& data_dir) {
    RestoreOptions o;
    o.snapshot_path = snapshot_;
    o.data_dir = dir_.path() + "/" + data_dir;
    o.name = "n1";
    o.initial_cluster = "n1=http://127.0.0.1:2380";
    o.advertise_peer_urls = {"http://127.0.0.1:2380"};
    o.bump_revision = 1000;
    return o;
  }

  TempDir dir_;
  std::string snapshot_;
  int64_t revision_ = 0;
};

TEST_F(RestoreTest, BumpsTheRevisionMarksItCompactedAndKeepsLeases) {
  const RestoreOptions o = Options("restored");
  absl::StatusOr<RestoreResult> r = RestoreMember(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->snapshot_revision, revision_);
  EXPECT_EQ(r->revision, revision_ + 1000);
  EXPECT_EQ(r->leases, 1u);
  EXPECT_EQ(r->member_id, ComputeMemberId({"http://127.0.0.1:2380"}, "etcd-cluster"));
  EXPECT_EQ(r->cluster_id, ComputeClusterId({r->member_id}));

  absl::StatusOr<std::unique_ptr<mvcc::MvccStore>> opened =
      mvcc::MvccStore::Open(o.data_dir + "/member/mvcc");
  ASSERT_TRUE(opened.ok()) << opened.status();
  mvcc::MvccStore& store = **opened;
  EXPECT_EQ(store.CurrentRevision(), revision_ + 1000);
  EXPECT_EQ(store.CompactedRevision(), revision_ + 1000);
  EXPECT_FALSE(store.CompactionPending());
  EXPECT_EQ(store.AppliedIndex(), 1u);
  absl::StatusOr<mvcc::RangeResult> all = store.Range("", std::string_view("\0", 1));
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->kvs.size(), 2u);
  EXPECT_EQ(all->kvs[0].key, "a");
  EXPECT_EQ(all->kvs[0].value, "2");
  EXPECT_EQ(all->kvs[0].version, 2);
  EXPECT_EQ(all->kvs[1].key, "leased");
  EXPECT_EQ(all->kvs[1].lease, 555);
  EXPECT_TRUE(mvcc::IsCompactedError(
      store.Range("a", "", mvcc::RangeOptions{.revision = revision_}).status()));
  EXPECT_TRUE(mvcc::IsCompactedError(store.Events(revision_, 0, "", "\x01").status()));
  absl::StatusOr<std::vector<mvcc::LeaseRecord>> leases = store.Leases();
  ASSERT_TRUE(leases.ok());
  EXPECT_EQ(*leases, (std::vector<mvcc::LeaseRecord>{{555, 60}}));
  EXPECT_EQ(*store.KeysWithLease(555), std::vector<std::string>{"leased"});

  absl::StatusOr<std::unique_ptr<storage::RaftLogStore>> log =
      storage::RaftLogStore::Open(o.data_dir + "/member/raft");
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->snapshot_meta().index, 1u);
  EXPECT_EQ((*log)->snapshot_meta().conf_state.voters, std::vector<uint64_t>{r->member_id});
  EXPECT_EQ((*log)->LastIndex(), 1u);
}

TEST_F(RestoreTest, EveryMemberOfTheInitialClusterIsAVoter) {
  RestoreOptions o = Options("three");
  o.name = "n2";
  o.initial_cluster = "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n3=http://10.0.0.3:2380";
  o.advertise_peer_urls = {"http://10.0.0.2:2380"};
  o.cluster_token = "tok";
  absl::StatusOr<RestoreResult> r = RestoreMember(o);
  ASSERT_TRUE(r.ok()) << r.status();
  const uint64_t n1 = ComputeMemberId({"http://10.0.0.1:2380"}, "tok");
  const uint64_t n2 = ComputeMemberId({"http://10.0.0.2:2380"}, "tok");
  const uint64_t n3 = ComputeMemberId({"http://10.0.0.3:2380"}, "tok");
  EXPECT_EQ(r->member_id, n2);
  EXPECT_EQ(r->cluster_id, ComputeClusterId({n1, n2, n3}));
  absl::StatusOr<std::unique_ptr<storage::RaftLogStore>> log =
      storage::RaftLogStore::Open(o.data_dir + "/member/raft");
  ASSERT_TRUE(log.ok());
  std::vector<uint64_t> voters = (*log)->snapshot_meta().conf_state.voters;
  std::sort(voters.begin(), voters.end());
  std::vector<uint64_t> want = {n1, n2, n3};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(voters, want);
}

// A new cluster is one restore per member from the same file: every member must come out
// with the same key space, revision, hash and Raft log, the same member list and cluster id,
// and its own id, so that they elect a leader and agree without having talked.
TEST_F(RestoreTest, EveryMemberRestoredFromOneFileAgrees) {
  const std::string initial =
      "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n2=http://10.0.0.2:2381,"
      "n3=http://10.0.0.3:2380";
  const std::map<std::string, std::vector<std::string>> urls = {
      {"n1", {"http://10.0.0.1:2380"}},
      {"n2", {"http://10.0.0.2:2380", "http://10.0.0.2:2381"}},
      {"n3", {"http://10.0.0.3:2380"}}};
  std::vector<MemberInfo> want_members;
  for (const auto& [name, peer_urls] : urls) {
    want_members.push_back(MemberInfo{
        .id = ComputeMemberId(peer_urls, "tok"), .name = name, .peer_urls = peer_urls});
  }
  std::sort(want_members.begin(), want_members.end(),
            [](const MemberInfo& a, const MemberInfo& b) { return a.id < b.id; });
  std::vector<uint64_t> want_ids;
  for (const MemberInfo& m : want_members) want_ids.push_back(m.id);

  std::optional<mvcc::KvHash> first_hash;
  std::optional<raft::SnapshotMeta> first_meta;
  for (const auto& [name, peer_urls] : urls) {
    RestoreOptions o = Options("restored-" + name);
    o.name = name;
    o.initial_cluster = initial;
    o.advertise_peer_urls = peer_urls;
    o.cluster_token = "tok";
    absl::StatusOr<RestoreResult> r = RestoreMember(o);
    ASSERT_TRUE(r.ok()) << name << ": " << r.status();
    EXPECT_EQ(r->member_id, ComputeMemberId(peer_urls, "tok")) << name;
    EXPECT_EQ(r->cluster_id, ComputeClusterId(want_ids)) << name;
    EXPECT_EQ(r->revision, revision_ + 1000) << name;

    absl::StatusOr<std::unique_ptr<Membership>> membership =
        Membership::Load(o.data_dir + "/member");
    ASSERT_TRUE(membership.ok()) << membership.status();
    EXPECT_EQ((*membership)->member_id(), r->member_id) << name;
    EXPECT_EQ((*membership)->cluster_id(), r->cluster_id) << name;
    std::vector<MemberInfo> members = (*membership)->Members();
    for (MemberInfo& m : members) std::sort(m.peer_urls.begin(), m.peer_urls.end());
    EXPECT_EQ(members, want_members) << name;

    absl::StatusOr<std::unique_ptr<mvcc::MvccStore>> store =
        mvcc::MvccStore::Open(o.data_dir + "/member/mvcc");
    ASSERT_TRUE(store.ok()) << store.status();
    absl::StatusOr<mvcc::KvHash> hash = (*store)->HashKV(0);
    ASSERT_TRUE(hash.ok()) << hash.status();
    EXPECT_EQ(hash->revision, revision_ + 1000) << name;
    EXPECT_EQ(hash->compact_revision, revision_ + 1000) << name;
    EXPECT_EQ((*store)->AppliedIndex(), 1u) << name;

    absl::StatusOr<std::unique_ptr<storage::RaftLogStore>> log =
        storage::RaftLogStore::Open(o.data_dir + "/member/raft");
    ASSERT_TRUE(log.ok()) << log.status();
    raft::SnapshotMeta meta = (*log)->snapshot_meta();
    std::sort(meta.conf_state.voters.begin(), meta.conf_state.voters.end());
    EXPECT_EQ(meta.conf_state.voters, want_ids) << name;
    EXPECT_EQ((*log)->hard_state(), (raft::HardState{.term = 1, .commit = 1})) << name;
    EXPECT_EQ((*log)->LastIndex(), 1u) << name;

    if (!first_hash) {
      first_hash = *hash;
      first_meta = meta;
    } else {
      EXPECT_EQ(hash->hash, first_hash->hash) << name;
      EXPECT_EQ(meta, *first_meta) << name;
    }
  }
}

TEST_F(RestoreTest, BadFlagsAndFilesGetClearErrorsAndLeaveNothing) {
  auto fails = [&](RestoreOptions o, const std::string& message) {
    absl::StatusOr<RestoreResult> r = RestoreMember(o);
    ASSERT_FALSE(r.ok()) << message;
    EXPECT_EQ(r.status().message(), message);
    EXPECT_FALSE(fs::exists(o.data_dir)) << message;
  };
  RestoreOptions o = Options("x");
  o.name = "zz";
  fails(o, "couldn't find local name \"zz\" in the initial cluster configuration");
  o = Options("x");
  o.advertise_peer_urls = {"http://127.0.0.1:9"};
  fails(o,
        "--initial-cluster has n1=http://127.0.0.1:2380 but missing from "
        "--initial-advertise-peer-urls=http://127.0.0.1:9 (resolved urls: "
        "\"http://127.0.0.1:9\" != \"http://127.0.0.1:2380\")");
  o = Options("x");
  o.initial_cluster = "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2380";
  fails(o, "initial cluster n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2380 has duplicate url");
  o = Options("x");
  o.initial_cluster = "n1=ftp://h:1";
  fails(o, "URL scheme must be http, https, unix, or unixs: ftp://h:1");
  o = Options("x");
  o.bump_revision = 0;
  fails(o, "--bump-revision must be at least 1");

  std::string bytes = ReadFile(snapshot_);
  bytes[bytes.size() / 2] ^= 0x40;
  const std::string damaged = dir_.path() + "/damaged.db";
  WriteFile(damaged, bytes);
  o = Options("x");
  o.snapshot_path = damaged;
  absl::StatusOr<RestoreResult> r = RestoreMember(o);
  EXPECT_TRUE(absl::IsDataLoss(r.status())) << r.status();
  EXPECT_TRUE(absl::StartsWith(r.status().message(), "expected sha256 "));
  EXPECT_FALSE(fs::exists(o.data_dir));

  WriteFile(damaged, std::string(4096, 'q'));
  o.snapshot_path = damaged;
  fails(o, "snapshot missing hash but --skip-hash-check=false");
  o.skip_hash_check = true;
  r = RestoreMember(o);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(fs::exists(o.data_dir));

  o = Options("exists");
  fs::create_directory(o.data_dir);
  r = RestoreMember(o);
  EXPECT_EQ(r.status().message(), absl::StrCat("data-dir \"", o.data_dir, "\" exists"));
  EXPECT_TRUE(fs::is_empty(o.data_dir));
}

TEST_F(RestoreTest, DamageInsideTheStoreIsCaughtEvenWithoutTheHashCheck) {
  // Damage the middle of every SST file in the archive (their data blocks carry checksums
  // RocksDB verifies on read), then restore with --skip-hash-check.
  std::string bytes = ReadFile(snapshot_);
  bool damaged_any = false;
  for (size_t off = 0; off + 512 <= bytes.size() - 32; off += 512) {
    const std::string name = bytes.substr(off, 100).c_str();
    if (!absl::EndsWith(name, ".sst")) continue;
    uint64_t size = std::stoull(bytes.substr(off + 124, 11), nullptr, 8);
    bytes[off + 512 + size / 3] ^= 0x55;
    damaged_any = true;
  }
  if (!damaged_any) GTEST_SKIP() << "the checkpoint holds no SST file";
  const std::string path = dir_.path() + "/sst-damaged.db";
  WriteFile(path, bytes);
  RestoreOptions o = Options("y");
  o.snapshot_path = path;
  o.skip_hash_check = true;
  absl::StatusOr<RestoreResult> r = RestoreMember(o);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(fs::exists(o.data_dir));
}

TEST(ParseInitialClusterTest, NamesMayRepeat) {
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> m =
      ParseInitialCluster("a=http://h:1,b=http://h:2,a=http://h:3");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)["a"], (std::vector<std::string>{"http://h:1", "http://h:3"}));
  EXPECT_EQ((*m)["b"], (std::vector<std::string>{"http://h:2"}));
  EXPECT_FALSE(ParseInitialCluster("a").ok());
  EXPECT_FALSE(ParseInitialCluster("").ok());
  EXPECT_FALSE(ParseInitialCluster("=http://h:1").ok());
}

}  // namespace
}  // namespace kvstore::server

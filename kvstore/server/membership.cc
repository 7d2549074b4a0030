#include "kvstore/server/membership.h"

#include <fcntl.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "kvstore/membership.pb.h"
#include "kvstore/storage/raft_codec.h"

namespace kvstore::server {
namespace {

constexpr char kFileName[] = "cluster";

uint64_t Sha1Prefix(const std::string& bytes) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  uint64_t id = 0;
  for (int i = 0; i < 8; ++i) id = (id << 8) | digest[i];
  return id;
}

absl::Status ErrnoError(const std::string& what, const std::string& path) {
  return absl::FailedPreconditionError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

// Writes `bytes` to `path` durably: a temporary file, fsync, rename, fsync of the directory.
absl::Status WriteFileDurably(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", tmp);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = ErrnoError("cannot write", tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = ErrnoError("cannot sync", tmp);
    ::close(fd);
    return s;
  }
  if (::close(fd) != 0) return ErrnoError("cannot close", tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoError("cannot rename", tmp);
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoError("cannot open", dir);
  const int synced = ::fsync(dfd);
  ::close(dfd);
  if (synced != 0) return ErrnoError("cannot sync", dir);
  return absl::OkStatus();
}

MemberInfo FromRecord(const kvstore::internal::MemberRecord& r) {
  MemberInfo m;
  m.id = r.id();
  m.name = r.name();
  m.peer_urls.assign(r.peer_urls().begin(), r.peer_urls().end());
  m.client_urls.assign(r.client_urls().begin(), r.client_urls().end());
  m.is_learner = r.is_learner();
  return m;
}

void ToRecord(const MemberInfo& m, kvstore::internal::MemberRecord* r) {
  r->set_id(m.id);
  r->set_name(m.name);
  for (const std::string& u : m.peer_urls) r->add_peer_urls(u);
  for (const std::string& u : m.client_urls) r->add_client_urls(u);
  r->set_is_learner(m.is_learner);
}

std::string JoinSorted(std::vector<std::string> urls) {
  std::sort(urls.begin(), urls.end());
  return absl::StrJoin(urls, ",");
}

}  // namespace

absl::Status CheckMemberUrl(const std::string& raw) {
  const std::string url(absl::StripAsciiWhitespace(raw));
  const size_t sep = url.find("://");
  const std::string scheme = sep == std::string::npos ? "" : url.substr(0, sep);
  if (scheme != "http" && scheme != "https" && scheme != "unix" && scheme != "unixs") {
    return absl::InvalidArgumentError(
        absl::StrCat("URL scheme must be http, https, unix, or unixs: ", url));
  }
  const std::string rest = url.substr(sep + 3);
  const size_t end = rest.find_first_of("/?#");
  const std::string host = rest.substr(0, end);
  // net.SplitHostPort: "host:port" with a host free of ':', or "[v6]:port".
  const size_t colon = host.rfind(':');
  bool ok = colon != std::string::npos;
  if (ok && absl::StartsWith(host, "[")) {
    ok = colon > 0 && host[colon - 1] == ']' && host.find(']') == colon - 1;
  } else if (ok) {
    ok = host.find(':') == colon && host.find_first_of("[]") == std::string::npos;
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("URL address does not have the form \"host:port\": ", url));
  }
  if (end != std::string::npos && rest[end] == '/') {
    return absl::InvalidArgumentError(absl::StrCat("URL must not contain a path: ", url));
  }
  return absl::OkStatus();
}

absl::Status CheckMemberUrls(const std::vector<std::string>& urls) {
  if (urls.empty()) return absl::InvalidArgumentError("no valid URLs given");
  for (const std::string& u : urls) {
    if (absl::Status s = CheckMemberUrl(u); !s.ok()) return s;
  }
  return absl::OkStatus();
}

uint64_t ComputeMemberId(std::vector<std::string> peer_urls, const std::string& cluster_token) {
  std::sort(peer_urls.begin(), peer_urls.end());
  return Sha1Prefix(absl::StrJoin(peer_urls, "") + cluster_token);
}

uint64_t ComputeClusterId(std::vector<uint64_t> member_ids) {
  std::sort(member_ids.begin(), member_ids.end());
  std::string bytes;
  for (uint64_t id : member_ids) {
    for (int shift = 56; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(id >> shift));
  }
  return Sha1Prefix(bytes);
}

absl::StatusOr<std::string> UrlHostPort(const std::string& url) {
  if (absl::StartsWith(url, "https://")) {
    return absl::InvalidArgumentError("TLS URLs (" + url + ") are not supported");
  }
  std::string rest = url;
  for (const char* scheme : {"http://", "unix://"}) {
    if (absl::StartsWith(rest, scheme)) rest = rest.substr(std::string(scheme).size());
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty() || rest.find(':') == std::string::npos) {
    return absl::InvalidArgumentError("URL \"" + url + "\" has no host:port");
  }
  return rest;
}

absl::StatusOr<std::map<std::string, std::vector<std::string>>> ParseInitialCluster(
    const std::string& initial_cluster) {
  std::map<std::string, std::vector<std::string>> members;
  for (absl::string_view item : absl::StrSplit(initial_cluster, ',', absl::SkipWhitespace())) {
    const std::vector<std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("failed to parse \"", initial_cluster,
                                                     "\": \"", item, "\" is not name=url"));
    }
    if (absl::Status s = CheckMemberUrl(kv[1]); !s.ok()) return s;
    members[kv[0]].push_back(std::string(absl::StripAsciiWhitespace(kv[1])));
  }
  if (members.empty()) {
    return absl::InvalidArgumentError("initial cluster unset and no discovery URL found");
  }
  return members;
}

absl::StatusOr<InitialCluster> ResolveInitialCluster(const BootstrapFlags& flags) {
  const std::string initial_cluster =
      flags.initial_cluster.empty()
          ? absl::StrJoin(flags.advertise_peer_urls, ",",
                          [&flags](std::string* out, const std::string& url) {
                            absl::StrAppend(out, flags.name, "=", url);
                          })
          : flags.initial_cluster;
  absl::StatusOr<std::map<std::string, std::vector<std::string>>> parsed =
      ParseInitialCluster(initial_cluster);
  if (!parsed.ok()) return parsed.status();
  auto self = parsed->find(flags.name);
  if (self == parsed->end()) {
    return absl::InvalidArgumentError(absl::StrCat("couldn't find local name \"", flags.name,
                                                   "\" in the initial cluster configuration"));
  }
  std::set<std::string> seen;
  for (const auto& [name, urls] : *parsed) {
    for (const std::string& u : urls) {
      if (!seen.insert(u).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("initial cluster ", initial_cluster, " has duplicate url"));
      }
    }
  }
  if (absl::Status s = CheckMemberUrls(flags.advertise_peer_urls); !s.ok()) return s;
  const std::string want = JoinSorted(self->second);
  const std::string have = JoinSorted(flags.advertise_peer_urls);
  if (want != have) {
    return absl::InvalidArgumentError(
        absl::StrCat("--initial-cluster has ", flags.name, "=", absl::StrJoin(self->second, ","),
                     " but missing from --initial-advertise-peer-urls=", have,
                     " (resolved urls: \"", have, "\" != \"", want, "\")"));
  }
  InitialCluster out;
  std::vector<uint64_t> ids;
  for (const auto& [name, urls] : *parsed) {
    MemberInfo m;
    m.id = ComputeMemberId(urls, flags.cluster_token);
    m.name = name;
    m.peer_urls = urls;
    if (std::find(ids.begin(), ids.end(), m.id) != ids.end()) {
      // Only a SHA-1 collision gets here: distinct URLs make distinct ids.
      return absl::InvalidArgumentError(
          absl::StrCat("member ", name, " exists with identical ID ", absl::Hex(m.id)));
    }
    ids.push_back(m.id);
    if (name == flags.name) out.member_id = m.id;
    out.members.push_back(std::move(m));
  }
  std::sort(out.members.begin(), out.members.end(),
            [](const MemberInfo& a, const MemberInfo& b) { return a.id < b.id; });
  out.cluster_id = ComputeClusterId(ids);
  return out;
}

Membership::Membership(std::string path, uint64_t member_id, uint64_t cluster_id,
                       std::vector<MemberInfo> members)
    : path_(std::move(path)),
      member_id_(member_id),
      cluster_id_(cluster_id),
      members_(std::move(members)) {}

absl::StatusOr<std::unique_ptr<Membership>> Membership::Load(const std::string& member_dir) {
  const std::string path = (std::filesystem::path(member_dir) / kFileName).string();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec) {
      return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    }
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", path));
  }
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return absl::FailedPreconditionError(absl::StrCat("cannot read ", path));
  kvstore::internal::ClusterRecord record;
  bool ok = bytes.size() >= 4;
  if (ok) {
    const absl::string_view body(bytes.data(), bytes.size() - 4);
    uint32_t crc = 0;
    for (int i = 3; i >= 0; --i)
      crc = (crc << 8) | static_cast<unsigned char>(bytes[body.size() + i]);
    ok = crc == storage::Crc32c(body) && record.ParseFromArray(body.data(), body.size());
  }
  if (!ok) return absl::DataLossError(absl::StrCat(path, " is damaged (checksum mismatch)"));
  std::vector<MemberInfo> members;
  for (const kvstore::internal::MemberRecord& r : record.members()) {
    members.push_back(FromRecord(r));
  }
  return std::unique_ptr<Membership>(
      new Membership(path, record.member_id(), record.cluster_id(), std::move(members)));
}

absl::StatusOr<std::unique_ptr<Membership>> Membership::Create(const std::string& member_dir,
                                                               const InitialCluster& cluster) {
  const std::string path = (std::filesystem::path(member_dir) / kFileName).string();
  std::unique_ptr<Membership> m(
      new Membership(path, cluster.member_id, cluster.cluster_id, cluster.members));
  if (absl::Status s = m->Write(cluster.members); !s.ok()) return s;
  return m;
}

std::vector<MemberInfo> Membership::Members() const {
  absl::MutexLock l(&mu_);
  return members_;
}

std::optional<MemberInfo> Membership::Find(uint64_t id) const {
  absl::MutexLock l(&mu_);
  for (const MemberInfo& m : members_) {
    if (m.id == id) return m;
  }
  return std::nullopt;
}

std::vector<uint64_t> Membership::Ids() const {
  absl::MutexLock l(&mu_);
  std::vector<uint64_t> ids;
  for (const MemberInfo& m : members_) ids.push_back(m.id);
  return ids;
}

absl::Status Membership::SetAttributes(uint64_t id, const std::string& name,
                                       const std::vector<std::string>& client_urls) {
  // One writer at a time; readers keep reading the old list while the file is synced.
  absl::MutexLock w(&write_mu_);
  std::vector<MemberInfo> next = Members();
  auto it =
      std::find_if(next.begin(), next.end(), [id](const MemberInfo& m) { return m.id == id; });
  if (it == next.end()) {
    return absl::NotFoundError(absl::StrCat("member ", absl::Hex(id), " is not in the cluster"));
  }
  if (it->name == name && it->client_urls == client_urls) return absl::OkStatus();
  it->name = name;
  it->client_urls = client_urls;
  if (absl::Status s = Write(next); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  members_ = std::move(next);
  return absl::OkStatus();
}

bool Membership::Contains(uint64_t id) const {
  absl::MutexLock l(&mu_);
  return std::any_of(members_.begin(), members_.end(),
                     [id](const MemberInfo& m) { return m.id == id; });
}

bool Membership::IsLearner(uint64_t id) const {
  absl::ReaderMutexLock l(&mu_);
  return std::any_of(members_.begin(), members_.end(),
                     [id](const MemberInfo& m) { return m.id == id && m.is_learner; });
}

template <typename F>
absl::Status Membership::Mutate(F change) {
  absl::MutexLock w(&write_mu_);
  std::vector<MemberInfo> next = Members();
  if (!change(next)) return absl::OkStatus();
  std::sort(next.begin(), next.end(),
            [](const MemberInfo& a, const MemberInfo& b) { return a.id < b.id; });
  if (absl::Status s = Write(next); !s.ok()) return s;
  absl::MutexLock l(&mu_);
  members_ = std::move(next);
  return absl::OkStatus();
}

absl::Status Membership::Add(const MemberInfo& member) {
  return Mutate([&member](std::vector<MemberInfo>& members) {
    for (MemberInfo& m : members) {
      if (m.id != member.id) continue;
      if (m.peer_urls == member.peer_urls && m.is_learner == member.is_learner) return false;
      m.peer_urls = member.peer_urls;
      m.is_learner = member.is_learner;
      return true;
    }
    members.push_back(MemberInfo{
        .id = member.id, .peer_urls = member.peer_urls, .is_learner = member.is_learner});
    return true;
  });
}

absl::Status Membership::Remove(uint64_t id) {
  return Mutate([id](std::vector<MemberInfo>& members) {
    return std::erase_if(members, [id](const MemberInfo& m) { return m.id == id; }) > 0;
  });
}

absl::Status Membership::UpdatePeerUrls(uint64_t id, const std::vector<std::string>& peer_urls) {
  bool found = false;
  absl::Status s = Mutate([&](std::vector<MemberInfo>& members) {
    for (MemberInfo& m : members) {
      if (m.id != id) continue;
      found = true;
      if (m.peer_urls == peer_urls) return false;
      m.peer_urls = peer_urls;
      return true;
    }
    return false;
  });
  if (s.ok() && !found) {
    return absl::NotFoundError(absl::StrCat("member ", absl::Hex(id), " is not in the cluster"));
  }
  return s;
}

absl::Status Membership::Promote(uint64_t id) {
  bool found = false;
  absl::Status s = Mutate([&](std::vector<MemberInfo>& members) {
    for (MemberInfo& m : members) {
      if (m.id != id) continue;
      found = true;
      if (!m.is_learner) return false;
      m.is_learner = false;
      return true;
    }
    return false;
  });
  if (s.ok() && !found) {
    return absl::NotFoundError(absl::StrCat("member ", absl::Hex(id), " is not in the cluster"));
  }
  return s;
}

absl::Status Membership::Replace(std::vector<MemberInfo> members) {
  return Mutate([&members](std::vector<MemberInfo>& current) {
    if (current == members) return false;
    current = std::move(members);
    return true;
  });
}

std::string Membership::EncodeMembers() const {
  kvstore::internal::ClusterRecord record;
  for (const MemberInfo& m : Members()) ToRecord(m, record.add_members());
  return record.SerializeAsString();
}

absl::StatusOr<std::vector<MemberInfo>> Membership::DecodeMembers(const std::string& bytes) {
  kvstore::internal::ClusterRecord record;
  if (!record.ParseFromString(bytes) || record.members().empty()) {
    return absl::DataLossError("snapshot: the member list cannot be read");
  }
  std::vector<MemberInfo> members;
  for (const kvstore::internal::MemberRecord& r : record.members()) {
    members.push_back(FromRecord(r));
  }
  return members;
}

absl::Status Membership::Write(const std::vector<MemberInfo>& members) const {
  kvstore::internal::ClusterRecord record;
  record.set_member_id(member_id_);
  record.set_cluster_id(cluster_id_);
  for (const MemberInfo& m : members) ToRecord(m, record.add_members());
  std::string bytes = record.SerializeAsString();
  const uint32_t crc = storage::Crc32c(bytes);
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>(crc >> (8 * i)));
  return WriteFileDurably(path_, bytes);
}

}  // namespace kvstore::server

#include "kvstore/server/snapshot_format.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <system_error>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "kvstore/server/sha256.h"

namespace kvstore::server {
namespace fs = std::filesystem;

namespace {

constexpr char kInfoEntry[] = "kvstore-snapshot";
constexpr char kMvccPrefix[] = "mvcc/";
// The info entry is a few lines; anything much larger is not ours.
constexpr uint64_t kMaxInfoSize = 64 * 1024;
// ustar header field offsets and widths.
constexpr size_t kNameOff = 0, kNameLen = 100;
constexpr size_t kModeOff = 100, kUidOff = 108, kGidOff = 116;
constexpr size_t kSizeOff = 124, kSizeLen = 12;
constexpr size_t kMtimeOff = 136;
constexpr size_t kChksumOff = 148, kChksumLen = 8;
constexpr size_t kTypeOff = 156;
constexpr size_t kMagicOff = 257;
constexpr size_t kPrefixOff = 345, kPrefixLen = 155;

uint64_t PaddingFor(uint64_t size) {
  return (kSnapshotBlock - size % kSnapshotBlock) % kSnapshotBlock;
}

// `value` in octal, `width - 1` digits and a NUL.
void PutOctal(std::string* block, size_t off, size_t width, uint64_t value) {
  for (size_t i = width - 1; i-- > 0;) {
    (*block)[off + i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  (*block)[off + width - 1] = '\0';
}

uint32_t HeaderChecksum(const std::string& block) {
  uint32_t sum = 0;
  for (size_t i = 0; i < kSnapshotBlock; ++i) {
    const bool in_field = i >= kChksumOff && i < kChksumOff + kChksumLen;
    sum += in_field ? static_cast<unsigned char>(' ') : static_cast<unsigned char>(block[i]);
  }
  return sum;
}

// An octal field (leading spaces, digits, then NUL or space), or a GNU base-256 one.
bool ParseNumber(absl::string_view field, uint64_t* out) {
  if (!field.empty() && (static_cast<unsigned char>(field[0]) & 0x80) != 0) {
    if ((static_cast<unsigned char>(field[0]) & 0x7f) != 0) return false;  // too large
    uint64_t v = 0;
    for (size_t i = 1; i < field.size(); ++i) {
      if (v >> 56 != 0) return false;
      v = (v << 8) | static_cast<unsigned char>(field[i]);
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < field.size() && field[i] == ' ') ++i;
  uint64_t v = 0;
  size_t digits = 0;
  for (; i < field.size() && field[i] >= '0' && field[i] <= '7'; ++i, ++digits) {
    if (v >> 60 != 0) return false;
    v = (v << 3) | static_cast<uint64_t>(field[i] - '0');
  }
  if (digits == 0) return false;
  for (; i < field.size(); ++i) {
    if (field[i] != '\0' && field[i] != ' ') return false;
  }
  *out = v;
  return true;
}

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

absl::Status Malformed(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("snapshot: not a kvstore snapshot: ", what));
}

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int e = errno;
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(e));
  if (e == ENOENT) return absl::NotFoundError(message);
  return absl::FailedPreconditionError(message);
}

std::string InfoText(const SnapshotInfo& info) {
  return absl::StrCat("format ", kSnapshotFormat, "\nrevision ", info.revision,
                      "\ncompact_revision ", info.compact_revision, "\nmember_id ",
                      absl::Hex(info.member_id), "\ncluster_id ", absl::Hex(info.cluster_id), "\n");
}

absl::StatusOr<SnapshotInfo> ParseInfo(const std::string& text) {
  std::map<std::string, std::string> fields;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    fields[kv.first] = kv.second;
  }
  if (fields["format"] != kSnapshotFormat) {
    return Malformed(absl::StrCat("unknown format \"", absl::CHexEscape(fields["format"]),
                                  "\" (want ", kSnapshotFormat, ")"));
  }
  SnapshotInfo info;
  if (!absl::SimpleAtoi(fields["revision"], &info.revision) || info.revision < 1 ||
      !absl::SimpleAtoi(fields["compact_revision"], &info.compact_revision) ||
      info.compact_revision < 0 || info.compact_revision > info.revision ||
      !absl::SimpleHexAtoi(fields["member_id"], &info.member_id) ||
      !absl::SimpleHexAtoi(fields["cluster_id"], &info.cluster_id)) {
    return Malformed("bad snapshot info entry");
  }
  return info;
}

// Reads exactly n bytes (n may be 0).
bool ReadExact(std::ifstream& in, uint64_t n, std::string* out) {
  out->resize(n);
  if (n == 0) return true;
  in.read(out->data(), static_cast<std::streamsize>(n));
  return static_cast<uint64_t>(in.gcount()) == n;
}

// Writes `bytes` to a new file `path` and syncs it.
absl::Status WriteNewFile(const std::string& path, std::ifstream& in, uint64_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", path);
  std::string buf;
  absl::Status st;
  for (uint64_t left = size; left > 0 && st.ok();) {
    const uint64_t n = std::min<uint64_t>(left, 1 << 20);
    if (!ReadExact(in, n, &buf)) {
      st = Malformed("an entry runs past the end of the file");
      break;
    }
    for (size_t done = 0; done < buf.size();) {
      const ssize_t w = ::write(fd, buf.data() + done, buf.size() - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        st = ErrnoError("write", path);
        break;
      }
      done += static_cast<size_t>(w);
    }
    left -= n;
  }
  if (st.ok() && ::fsync(fd) != 0) st = ErrnoError("fsync", path);
  ::close(fd);
  return st;
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", dir);
  const int r = ::fsync(fd);
  ::close(fd);
  if (r != 0) return ErrnoError("fsync", dir);
  return absl::OkStatus();
}

}  // namespace

namespace {

// The SHA-256 of the next `n` bytes of `in`.
absl::StatusOr<std::string> HashPrefix(std::ifstream& in, uint64_t n) {
  Sha256Digest sha;
  std::string buf;
  for (uint64_t left = n; left > 0;) {
    const uint64_t chunk = std::min<uint64_t>(left, 1 << 20);
    if (!ReadExact(in, chunk, &buf)) return absl::DataLossError("snapshot: short read");
    sha.Update(buf);
    left -= chunk;
  }
  return sha.Final();
}

}  // namespace

class SnapshotWriter::Sha256 : public Sha256Digest {};

std::string UstarHeader(const std::string& name, uint64_t size) {
  std::string h(kSnapshotBlock, '\0');
  std::memcpy(h.data() + kNameOff, name.data(), std::min(name.size(), kNameLen));
  PutOctal(&h, kModeOff, 8, 0644);
  PutOctal(&h, kUidOff, 8, 0);
  PutOctal(&h, kGidOff, 8, 0);
  if (size < (uint64_t{1} << 33)) {
    PutOctal(&h, kSizeOff, kSizeLen, size);
  } else {  // GNU base-256: a flag byte, then the size big-endian
    h[kSizeOff] = static_cast<char>(0x80);
    for (size_t i = kSizeLen - 1; i > 0; --i, size >>= 8) {
      h[kSizeOff + i] = static_cast<char>(size & 0xff);
    }
  }
  PutOctal(&h, kMtimeOff, 12, 0);
  h[kTypeOff] = '0';
  std::memcpy(h.data() + kMagicOff,
              "ustar\0"
              "00",
              8);
  PutOctal(&h, kChksumOff, 7, HeaderChecksum(h));
  h[kChksumOff + 7] = ' ';
  return h;
}

SnapshotWriter::SnapshotWriter() : sha_(std::make_unique<Sha256>()) {}
SnapshotWriter::~SnapshotWriter() = default;

absl::StatusOr<std::unique_ptr<SnapshotWriter>> SnapshotWriter::Open(
    const std::string& checkpoint_dir, const SnapshotInfo& info) {
  std::vector<std::pair<std::string, uint64_t>> files;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(checkpoint_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file(ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("snapshot: ", e.path().string(), " is not a regular file"));
    }
    const uint64_t size = e.file_size(ec);
    if (ec) break;
    if (name.size() + std::strlen(kMvccPrefix) > kNameLen) {
      return absl::FailedPreconditionError(absl::StrCat("snapshot: file name too long: ", name));
    }
    files.emplace_back(name, size);
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot: cannot read checkpoint ", checkpoint_dir, ": ", ec.message()));
  }
  std::sort(files.begin(), files.end());

  std::unique_ptr<SnapshotWriter> w(new SnapshotWriter());
  auto add_bytes = [&w](std::string bytes) {
    w->payload_size_ += bytes.size();
    w->segments_.push_back(Segment{.bytes = std::move(bytes)});
  };
  const std::string text = InfoText(info);
  add_bytes(UstarHeader(kInfoEntry, text.size()) + text + std::string(PaddingFor(text.size()), 0));
  for (const auto& [name, size] : files) {
    add_bytes(UstarHeader(kMvccPrefix + name, size));
    w->segments_.push_back(
        Segment{.path = (fs::path(checkpoint_dir) / name).string(), .file_size = size});
    w->payload_size_ += size;
    add_bytes(std::string(PaddingFor(size), '\0'));
  }
  add_bytes(std::string(2 * kSnapshotBlock, '\0'));
  return w;
}

absl::StatusOr<std::string> SnapshotWriter::Next(size_t max_bytes) {
  std::string out;
  std::string buf;
  while (out.size() < max_bytes && segment_ < segments_.size()) {
    Segment& seg = segments_[segment_];
    const uint64_t total = seg.path.empty() ? seg.bytes.size() : seg.file_size;
    const uint64_t take = std::min<uint64_t>(total - offset_, max_bytes - out.size());
    if (seg.path.empty()) {
      out.append(seg.bytes, offset_, take);
    } else if (take > 0) {
      if (!file_.is_open()) {
        file_.open(seg.path, std::ios::binary);
        if (!file_) return ErrnoError("open", seg.path);
      }
      if (!ReadExact(file_, take, &buf)) {
        return absl::DataLossError(absl::StrCat("snapshot: ", seg.path, " shrank while sent"));
      }
      out.append(buf);
    }
    offset_ += take;
    if (offset_ == total) {
      if (file_.is_open()) file_.close();
      ++segment_;
      offset_ = 0;
    }
  }
  if (!out.empty()) {
    sha_->Update(out);
    return out;
  }
  if (!trailer_sent_) {
    trailer_sent_ = true;
    return sha_->Final();
  }
  return std::string();
}

absl::StatusOr<uint64_t> VerifySnapshotFile(const std::string& path, bool skip_hash_check) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("open", path);
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("stat ", path, ": ", ec.message()));
  }
  const bool has_hash = size % kSnapshotBlock == kSnapshotTrailerSize;
  if (!has_hash) {
    if (!skip_hash_check) {
      return absl::InvalidArgumentError("snapshot missing hash but --skip-hash-check=false");
    }
    return size;  // a bare payload
  }
  const uint64_t payload = size - kSnapshotTrailerSize;
  if (skip_hash_check) return payload;
  absl::StatusOr<std::string> computed = HashPrefix(in, payload);
  if (!computed.ok()) return computed.status();
  std::string stored;
  if (!ReadExact(in, kSnapshotTrailerSize, &stored)) {
    return absl::DataLossError("snapshot: short read");
  }
  if (stored != *computed) {
    return absl::DataLossError(
        absl::StrCat("expected sha256 ", Hex(stored), ", got ", Hex(*computed)));
  }
  return payload;
}

absl::StatusOr<SnapshotInfo> ExtractSnapshot(const std::string& path, uint64_t payload_size,
                                             const std::string& mvcc_dir) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("open", path);
  std::error_code ec;
  if (!fs::create_directory(mvcc_dir, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create ", mvcc_dir, ": ", ec ? ec.message() : std::string("it exists")));
  }
  if (payload_size % kSnapshotBlock != 0) return Malformed("size is not a multiple of 512");

  uint64_t pos = 0;
  std::string block;
  std::optional<SnapshotInfo> info;
  std::set<std::string> written;
  for (;;) {
    if (pos + kSnapshotBlock > payload_size) return Malformed("no end-of-archive marker");
    if (!ReadExact(in, kSnapshotBlock, &block)) return Malformed("short read");
    pos += kSnapshotBlock;
    if (block == std::string(kSnapshotBlock, '\0')) break;

    uint64_t checksum = 0, size = 0;
    const absl::string_view b(block);
    if (!ParseNumber(b.substr(kChksumOff, kChksumLen), &checksum) ||
        checksum != HeaderChecksum(block)) {
      return Malformed(absl::StrCat("bad header checksum at byte ", pos - kSnapshotBlock));
    }
    if (b.substr(kMagicOff, 5) != "ustar") return Malformed("not a ustar archive");
    if (block[kTypeOff] != '0' && block[kTypeOff] != '\0') {
      return Malformed("an entry that is not a regular file");
    }
    if (!ParseNumber(b.substr(kSizeOff, kSizeLen), &size)) return Malformed("bad entry size");
    std::string name(b.substr(kNameOff, kNameLen));
    name.resize(std::strlen(name.c_str()));
    std::string prefix(b.substr(kPrefixOff, kPrefixLen));
    prefix.resize(std::strlen(prefix.c_str()));
    if (!prefix.empty()) name = prefix + "/" + name;
    const uint64_t padded = size + PaddingFor(size);
    if (padded > payload_size - pos) return Malformed(absl::StrCat(name, " runs past the end"));

    if (!info) {
      if (name != kInfoEntry || size > kMaxInfoSize) {
        return Malformed(absl::StrCat("first entry is \"", absl::CHexEscape(name), "\", not \"",
                                      kInfoEntry, "\""));
      }
      std::string text;
      if (!ReadExact(in, size, &text)) return Malformed("short read");
      absl::StatusOr<SnapshotInfo> parsed = ParseInfo(text);
      if (!parsed.ok()) return parsed.status();
      info = *parsed;
    } else {
      const absl::string_view base =
          absl::StartsWith(name, kMvccPrefix) ? absl::string_view(name).substr(5) : "";
      if (base.empty() || base == "." || base == ".." ||
          base.find('/') != absl::string_view::npos || base.find('\0') != absl::string_view::npos) {
        return Malformed(absl::StrCat("unexpected entry \"", absl::CHexEscape(name), "\""));
      }
      if (!written.insert(std::string(base)).second) {
        return Malformed(absl::StrCat("entry \"", name, "\" appears twice"));
      }
      absl::Status s = WriteNewFile((fs::path(mvcc_dir) / std::string(base)).string(), in, size);
      if (!s.ok()) return s;
    }
    std::string pad;
    if (!ReadExact(in, padded - size, &pad)) return Malformed("short read");
    if (pad.find_first_not_of('\0') != std::string::npos) {
      return Malformed(absl::StrCat("non-zero padding after ", name));
    }
    pos += padded;
  }
  // The second end block and any padding after it hold only zeros.
  std::string rest;
  for (uint64_t left = payload_size - pos; left > 0;) {
    const uint64_t n = std::min<uint64_t>(left, 1 << 20);
    if (!ReadExact(in, n, &rest)) return Malformed("short read");
    if (rest.find_first_not_of('\0') != std::string::npos) {
      return Malformed("data after the end-of-archive marker");
    }
    left -= n;
  }
  if (!info) return Malformed("empty archive");
  if (written.empty()) return Malformed("no store files");
  if (absl::Status s = SyncDir(mvcc_dir); !s.ok()) return s;
  return *info;
}

}  // namespace kvstore::server

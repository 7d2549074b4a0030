#include "kvstore/storage/wal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "kvstore/storage/raft_codec.h"

namespace kvstore::storage {
namespace {

namespace fs = std::filesystem;

constexpr size_t kHeaderSize = 8;
constexpr size_t kAlignment = 8;
constexpr absl::string_view kSuffix = ".wal";
constexpr absl::string_view kTempSuffix = ".wal.tmp";
constexpr char kLockFile[] = "wal.lock";

// A record's length is 32 bits, and 0 marks the end of a segment.
constexpr size_t kMaxRecordSize = 0xffffffffu;

absl::Status TooLarge(size_t size) {
  return absl::InvalidArgumentError(
      absl::StrCat("wal: a record of ", size, " bytes is over the limit of ", kMaxRecordSize));
}

size_t FramedSize(size_t payload) {
  return (kHeaderSize + payload + kAlignment - 1) / kAlignment * kAlignment;
}

uint32_t RecordCrc(uint64_t seq, uint32_t length, absl::string_view payload) {
  char prefix[12];  // seq and length, little endian
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>(seq >> (8 * i));
  for (int i = 0; i < 4; ++i) prefix[8 + i] = static_cast<char>(length >> (8 * i));
  return Crc32cExtend(Crc32c(absl::string_view(prefix, sizeof prefix)), payload);
}

absl::Status IoError(absl::string_view what, const std::string& path, int err) {
  return absl::InternalError(absl::StrCat("wal: ", what, " ", path, ": ", std::strerror(err)));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("open", path, errno);
  std::string data;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return IoError("read", path, err);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return data;
}

absl::Status WriteAt(int fd, const std::string& path, absl::string_view data, uint64_t offset) {
  while (!data.empty()) {
    const ssize_t n = pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("write", path, errno);
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

// "<seq>-<tag>.wal" -> (seq, tag).
std::optional<std::pair<uint64_t, uint64_t>> ParseSegmentName(absl::string_view name) {
  if (name.size() != 33 + kSuffix.size() || name[16] != '-' || !absl::EndsWith(name, kSuffix)) {
    return std::nullopt;
  }
  uint64_t seq, tag;
  if (!absl::SimpleHexAtoi(name.substr(0, 16), &seq) ||
      !absl::SimpleHexAtoi(name.substr(17, 16), &tag)) {
    return std::nullopt;
  }
  return std::make_pair(seq, tag);
}

// What one segment file holds.
struct ParsedSegment {
  std::vector<absl::string_view> records;
  uint64_t end = 0;  // just past the last good record
  uint64_t first_record_end = 0;
  // Set if a bad record starts at `end`.
  bool damaged = false;
};

// Whether a record of segment `seq` starts at `pos` of `data` and checks out.
bool ValidRecordAt(uint64_t seq, absl::string_view data, size_t pos,
                   absl::string_view* payload = nullptr) {
  if (data.size() - pos < kHeaderSize) return false;
  const uint32_t length = DecodeFixed32(data.data() + pos);
  if (length == 0 || length > data.size() - pos - kHeaderSize) return false;
  const absl::string_view p = data.substr(pos + kHeaderSize, length);
  if (DecodeFixed32(data.data() + pos + 4) != RecordCrc(seq, length, p)) return false;
  if (payload != nullptr) *payload = p;
  return true;
}

ParsedSegment ParseSegment(uint64_t seq, absl::string_view data) {
  ParsedSegment out;
  size_t pos = 0;
  while (pos < data.size()) {
    const size_t left = data.size() - pos;
    const absl::string_view head = data.substr(pos, std::min(left, kHeaderSize));
    if (head.find_first_not_of('\0') == absl::string_view::npos) break;  // the clean end
    absl::string_view payload;
    if (!ValidRecordAt(seq, data, pos, &payload)) {
      out.damaged = true;
      break;
    }
    out.records.push_back(payload);
    pos = std::min(data.size(), pos + FramedSize(payload.size()));
    if (out.records.size() == 1) out.first_record_end = pos;
  }
  out.end = pos;
  return out;
}

// Whether any valid record of segment `seq` starts after `from` (at an aligned offset).
bool ValidRecordAfter(uint64_t seq, absl::string_view data, size_t from) {
  for (size_t pos = from + kAlignment; pos + kHeaderSize <= data.size(); pos += kAlignment) {
    if (ValidRecordAt(seq, data, pos)) return true;
  }
  return false;
}

}  // namespace

std::string FrameWalRecord(uint64_t seq, absl::string_view payload) {
  std::string out;
  out.reserve(FramedSize(payload.size()));
  const auto length = static_cast<uint32_t>(payload.size());
  PutFixed32(&out, length);
  PutFixed32(&out, RecordCrc(seq, length, payload));
  out.append(payload.data(), payload.size());
  out.resize(FramedSize(payload.size()), '\0');
  return out;
}

Wal::Wal(std::string dir, const Options& options) : dir_(std::move(dir)), options_(options) {}

Wal::~Wal() {
  if (fd_ >= 0) close(fd_);
  if (lock_fd_ >= 0) close(lock_fd_);
}

std::string Wal::PathOf(const Segment& s) const {
  return (fs::path(dir_) / absl::StrFormat("%016x-%016x%s", s.seq, s.tag, kSuffix)).string();
}

std::vector<std::string> Wal::SegmentPaths() const {
  std::vector<std::string> out;
  for (const Segment& s : segments_) out.push_back(PathOf(s));
  return out;
}

absl::StatusOr<std::unique_ptr<Wal>> Wal::Open(
    const std::string& dir, const Options& options,
    const std::function<absl::Status(absl::string_view record)>& replay) {
  std::unique_ptr<Wal> wal(new Wal(dir, options));
  const std::string lock = (fs::path(dir) / kLockFile).string();
  wal->lock_fd_ = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (wal->lock_fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("wal: cannot open ", lock, ": ", std::strerror(errno)));
  }
  if (flock(wal->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("wal: ", dir, " is in use (", lock, ": ", std::strerror(errno), ")"));
  }
  std::vector<Segment> found;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (absl::EndsWith(name, kTempSuffix)) {
      fs::remove(entry.path(), ec);  // an unfinished StartSegment()
      continue;
    }
    if (auto parsed = ParseSegmentName(name)) found.push_back({parsed->first, parsed->second});
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("wal: cannot list ", dir, ": ", ec.message()));
  }
  std::sort(found.begin(), found.end(),
            [](const Segment& a, const Segment& b) { return a.seq < b.seq; });
  // Only the newest run of consecutive segments is the log: older ones are what an
  // interrupted Release() left.
  size_t first = found.size();
  while (first > 0 && (first == found.size() || found[first - 1].seq + 1 == found[first].seq)) {
    --first;
  }
  // Deleted by DropLeftovers(), once the caller has found the log whole without them.
  for (size_t i = 0; i < first; ++i) wal->leftovers_.push_back(wal->PathOf(found[i]));
  found.erase(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(first));

  ParsedSegment last;
  std::string last_data;
  for (size_t i = 0; i < found.size(); ++i) {
    const std::string path = wal->PathOf(found[i]);
    absl::StatusOr<std::string> data = ReadFile(path);
    if (!data.ok()) return data.status();
    ParsedSegment parsed = ParseSegment(found[i].seq, *data);
    const bool is_last = i + 1 == found.size();
    if (parsed.damaged &&
        (!is_last || ValidRecordAfter(found[i].seq, *data, parsed.end))) {
      return absl::DataLossError(absl::StrCat("wal: ", path, " is damaged at offset ", parsed.end,
                                              is_last ? ", before records that are intact" : ""));
    }
    for (absl::string_view record : parsed.records) {
      if (absl::Status s = replay(record); !s.ok()) {
        return absl::Status(s.code(), absl::StrCat(s.message(), " (in ", path, ")"));
      }
    }
    if (is_last && parsed.records.empty()) {
      // Never finished (its first record was not durable): it goes, and appends go to the
      // segment before it.
      fs::remove(path, ec);
      if (options.events != nullptr) options.events->Deleted(path);
      found.pop_back();
    } else {
      // Appends go after the good records of the last segment that has any.
      last = std::move(parsed);
      last_data = std::move(*data);
    }
  }
  wal->segments_ = std::move(found);
  // Deletions must be durable before a segment can take a deleted one's seq again: two
  // segments with one seq would leave the log's order in doubt.
  if (wal->segments_.empty()) {
    if (absl::Status s = common::SyncDirectory(dir); !s.ok()) return s;
    return wal;
  }
  const std::string& path = wal->path_ = wal->PathOf(wal->segments_.back());
  wal->fd_ = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (wal->fd_ < 0) return IoError("open", path, errno);
  wal->offset_ = last.end;
  wal->first_record_end_ = last.first_record_end;
  // Zero whatever follows the good records: a torn record, or records that outlived a
  // lost earlier one (a power loss can keep a later unsynced page and drop an earlier
  // one). Either was never synced; left there, it could be read back as part of the log
  // once new records fill the gap before it.
  const size_t nonzero_end = last_data.find_last_not_of('\0') + 1;
  if (nonzero_end > last.end) {
    const std::string zeros(nonzero_end - last.end, '\0');
    if (absl::Status s = WriteAt(wal->fd_, path, zeros, last.end); !s.ok()) return s;
  }
  // What the file holds may sit in the page cache of a process that was killed, and the
  // directory may not yet hold a rename or a deletion durably: make both as durable as
  // what will be appended.
  if (absl::Status s = wal->Sync(); !s.ok()) return s;
  if (absl::Status s = common::SyncDirectory(dir); !s.ok()) return s;
  return wal;
}

absl::Status Wal::DropLeftovers() {
  for (const std::string& path : leftovers_) {
    if (unlink(path.c_str()) != 0 && errno != ENOENT) return IoError("delete", path, errno);
    if (options_.events != nullptr) options_.events->Deleted(path);
  }
  leftovers_.clear();
  return absl::OkStatus();
}

bool Wal::Fits(size_t size) const {
  return fd_ >= 0 &&
         (offset_ == first_record_end_ || offset_ + FramedSize(size) <= options_.segment_bytes);
}

absl::Status Wal::Write(absl::string_view data) {
  if (absl::Status s = WriteAt(fd_, path_, data, offset_); !s.ok()) return s;
  offset_ += data.size();
  return absl::OkStatus();
}

absl::Status Wal::Sync() {
  if (fdatasync(fd_) != 0) return IoError("fdatasync", path_, errno);
  synced_ = offset_;
  if (options_.events != nullptr) options_.events->Synced(path_, synced_);
  return absl::OkStatus();
}

absl::Status Wal::StartSegment(uint64_t tag, absl::string_view first_record) {
  if (first_record.size() > kMaxRecordSize) return TooLarge(first_record.size());
  if (fd_ >= 0 && synced_ < offset_) {
    if (absl::Status s = Sync(); !s.ok()) return s;
  }
  const Segment next{.seq = segments_.empty() ? 1 : segments_.back().seq + 1, .tag = tag};
  const std::string path = PathOf(next);
  const std::string temp = path + ".tmp";
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("create", temp, errno);
  const std::string frame = FrameWalRecord(next.seq, first_record);
  absl::Status s;
  // A file system without fallocate still works, with slower syncs.
  if (fallocate(fd, 0, 0, static_cast<off_t>(std::max<uint64_t>(options_.segment_bytes,
                                                                 frame.size()))) != 0 &&
      errno != EOPNOTSUPP) {
    s = IoError("preallocate", temp, errno);
  }
  if (s.ok()) s = WriteAt(fd, temp, frame, 0);
  if (s.ok() && fsync(fd) != 0) s = IoError("fsync", temp, errno);
  if (s.ok() && rename(temp.c_str(), path.c_str()) != 0) s = IoError("rename", temp, errno);
  if (!s.ok()) {
    close(fd);
    unlink(temp.c_str());
    return s;
  }
  if (options_.events != nullptr) options_.events->Created(path);
  if (s = common::SyncDirectory(dir_); !s.ok()) {
    close(fd);
    return s;
  }
  if (options_.events != nullptr) options_.events->Synced(path, frame.size());
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
  path_ = path;
  segments_.push_back(next);
  offset_ = first_record_end_ = synced_ = frame.size();
  return absl::OkStatus();
}

absl::Status Wal::Append(absl::string_view record, bool sync) {
  if (fd_ < 0) return absl::FailedPreconditionError("wal: no segment to append to");
  if (record.size() > kMaxRecordSize) return TooLarge(record.size());
  if (absl::Status s = Write(FrameWalRecord(segments_.back().seq, record)); !s.ok()) return s;
  return sync ? Sync() : absl::OkStatus();
}

absl::Status Wal::Release(uint64_t tag) {
  size_t keep = 0;
  for (size_t i = 0; i < segments_.size(); ++i) {
    if (segments_[i].tag <= tag) keep = i;
  }
  for (size_t i = 0; i < keep; ++i) {
    const std::string path = PathOf(segments_[i]);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(i));
      return IoError("delete", path, errno);
    }
    if (options_.events != nullptr) options_.events->Deleted(path);
  }
  segments_.erase(segments_.begin(), segments_.begin() + static_cast<std::ptrdiff_t>(keep));
  return absl::OkStatus();
}

}  // namespace kvstore::storage

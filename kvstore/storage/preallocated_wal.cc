#include "kvstore/storage/preallocated_wal.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "absl/strings/match.h"

namespace kvstore::storage {
namespace {

class PreallocatingFileSystem : public rocksdb::FileSystemWrapper {
 public:
  PreallocatingFileSystem(std::shared_ptr<rocksdb::FileSystem> base, uint64_t bytes)
      : FileSystemWrapper(std::move(base)), bytes_(bytes) {}

  const char* Name() const override { return "kvstore.PreallocatedWal"; }

  rocksdb::IOStatus NewWritableFile(const std::string& name, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* file,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(name, options, file, dbg);
    // RocksDB writes through its own descriptor from offset 0, without O_APPEND, so sizing
    // the file through another one leaves its writes where they were.
    if (s.ok() && bytes_ > 0 && absl::EndsWith(name, ".log")) Allocate(name);
    return s;
  }

 private:
  void Allocate(const std::string& name) const {
    const int fd = ::open(name.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    // On a nearly full disk the space is worth more than the speed-up.
    struct statvfs fs;
    if (::fstatvfs(fd, &fs) == 0 &&
        static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize >= kFreeSpaceFactor * bytes_) {
      // Mode 0: the size moves with the allocation. Failure only costs the speed-up.
      (void)::fallocate(fd, 0, 0, static_cast<off_t>(bytes_));
    }
    ::close(fd);
  }

  // Preallocates only while the disk has this many times the size free.
  static constexpr uint64_t kFreeSpaceFactor = 16;

  const uint64_t bytes_;
};

}  // namespace

std::shared_ptr<rocksdb::FileSystem> PreallocatedWalFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base, uint64_t bytes) {
  return std::make_shared<PreallocatingFileSystem>(std::move(base), bytes);
}

}  // namespace kvstore::storage

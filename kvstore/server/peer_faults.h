// PeerFaults: TEST-ONLY network faults between members, for the failure tests
// (test/failure/). A member started with --test-peer-faults=FILE reads FILE, a list of
// member ids in hex separated by white space, and neither sends Raft messages to those
// members nor accepts messages from them: a partition that leaves client traffic alone.
// The test rewrites FILE to partition and heal; an absent or empty file blocks nobody.
//
// The file is read again when a lookup finds the last reading older than `reread`, so a
// change takes effect within that long (plus the time messages already queued take).
// An unreadable or malformed file keeps the last good reading (and says so in the log).
//
// Threads: Blocked() may be called from any thread.
#ifndef KVSTORE_SERVER_PEER_FAULTS_H_
#define KVSTORE_SERVER_PEER_FAULTS_H_

#include <cstdint>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kvstore::server {

class PeerFaults {
 public:
  explicit PeerFaults(std::string path, absl::Duration reread = absl::Milliseconds(50));

  // Whether messages to and from member `id` are to be dropped.
  bool Blocked(uint64_t id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void ReadIfStale() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const absl::Duration reread_;
  absl::Mutex mu_;
  absl::Time read_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::set<uint64_t> blocked_ ABSL_GUARDED_BY(mu_);
  std::string last_text_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_PEER_FAULTS_H_

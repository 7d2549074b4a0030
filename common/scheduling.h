// The Linux scheduling class a server's threads run in.
//
// A kvstore member is a dozen threads handing work to each other: gRPC's threads take
// requests and peer messages, the Raft driver persists and applies them, reply threads
// answer. In the default class (SCHED_OTHER) a thread that is woken may preempt the one
// running, so under load every hand-off can become a context switch on a busy core, and
// the work is cut into slices too thin to batch. In SCHED_BATCH a woken thread waits for
// the running one's slice to end (or for an idle core, which it gets at once): the same
// work, at the same nice level and CPU share, with far fewer switches. Measured on a
// 2-core machine at 256 clients (docs/benchmarks.md): about 10% less CPU per put with the
// whole cluster in one session, half as much with each member in a session of its own as
// deploy/cluster.sh and service managers start them; single-client latency unchanged.
//
// Thread-safety: SetCpuScheduling changes the calling thread only; threads it starts later
// inherit the class. Call it first in main, before any other thread exists.
#ifndef COMMON_SCHEDULING_H_
#define COMMON_SCHEDULING_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace common {

enum class CpuScheduling {
  kNormal,  // SCHED_OTHER, the kernel's default
  kBatch,   // SCHED_BATCH
};

// "normal" or "batch"; InvalidArgument naming the flag value otherwise.
absl::StatusOr<CpuScheduling> ParseCpuScheduling(std::string_view name);

// Puts the calling thread (and the threads it starts from now on) in `policy`, at nice
// level unchanged. INTERNAL with errno's text if the kernel refuses.
absl::Status SetCpuScheduling(CpuScheduling policy);

// The calling thread's class.
CpuScheduling CurrentCpuScheduling();

}  // namespace common

#endif  // COMMON_SCHEDULING_H_

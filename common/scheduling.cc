#include "common/scheduling.h"

#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace common {

absl::StatusOr<CpuScheduling> ParseCpuScheduling(std::string_view name) {
  if (name == "normal") return CpuScheduling::kNormal;
  if (name == "batch") return CpuScheduling::kBatch;
  return absl::InvalidArgumentError(absl::StrCat("unknown CPU scheduling \"", std::string(name),
                                                 "\": want \"batch\" or \"normal\""));
}

absl::Status SetCpuScheduling(CpuScheduling policy) {
  sched_param param{};
  param.sched_priority = 0;  // the only priority SCHED_OTHER and SCHED_BATCH have
  const int linux_policy = policy == CpuScheduling::kBatch ? SCHED_BATCH : SCHED_OTHER;
  if (sched_setscheduler(0, linux_policy, &param) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot set the CPU scheduling class: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

CpuScheduling CurrentCpuScheduling() {
  return sched_getscheduler(0) == SCHED_BATCH ? CpuScheduling::kBatch : CpuScheduling::kNormal;
}

}  // namespace common

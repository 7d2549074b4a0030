#include "kvstore/server/peer_faults.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace kvstore::server {

PeerFaults::PeerFaults(std::string path, absl::Duration reread)
    : path_(std::move(path)), reread_(reread) {}

bool PeerFaults::Blocked(uint64_t id) {
  absl::MutexLock l(&mu_);
  ReadIfStale();
  return blocked_.count(id) != 0;
}

void PeerFaults::ReadIfStale() {
  const absl::Time now = absl::Now();
  if (now - read_at_ < reread_) return;
  read_at_ = now;
  std::string text;
  {
    std::ifstream in(path_);
    if (in) {
      std::ostringstream buf;
      buf << in.rdbuf();
      text = buf.str();
    }
  }
  if (text == last_text_) return;
  last_text_ = text;  // said once, whether good or not
  std::set<uint64_t> blocked;
  for (absl::string_view word :
       absl::StrSplit(text, absl::ByAnyChar(" \t\r\n,"), absl::SkipEmpty())) {
    uint64_t id = 0;
    if (!absl::SimpleHexAtoi(word, &id)) {
      spdlog::warn("test peer faults: {}: not a member id: '{}'; keeping the last reading",
                   path_, std::string(word));
      return;
    }
    blocked.insert(id);
  }
  blocked_ = std::move(blocked);
  std::string ids;
  for (uint64_t b : blocked_) ids += fmt::format(" {:x}", b);
  spdlog::warn("test peer faults: blocking peers:{}", ids.empty() ? " none" : ids);
}

}  // namespace kvstore::server

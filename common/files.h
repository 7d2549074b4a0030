// Small file-system steps shared by the storage layers.
#ifndef COMMON_FILES_H_
#define COMMON_FILES_H_

#include <string>

#include "absl/status/status.h"

namespace common {

// fsync()s the directory `dir`, making the creations, renames and deletions of its entries
// durable. INTERNAL with the path and errno's text on failure.
absl::Status SyncDirectory(const std::string& dir);

}  // namespace common

#endif  // COMMON_FILES_H_

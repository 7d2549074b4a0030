// The history file: JSON lines, one object per operation, in any order (the checker sorts by
// time). A recorder in Python writes `json.dumps(op)` per line; one in C++ writes
// FormatOperation(op). Fields:
//
//   client  integer                      who issued it (used only in explanations)
//   op      "put" | "get" | "cas" | "delete"
//   key     string
//   value   string                       put, cas: the value written
//   expect  string or null               cas: the value compared against; null = key absent
//   result  string or null               get: the value read; null = key absent
//           true or false                cas: whether the compare held
//   call    integer                      monotonic nanoseconds when the request was sent
//   return  integer                      monotonic nanoseconds when the answer arrived
//   status  "ok" | "unknown" | "fail"
//
// status "ok": the answer arrived; `return` and (get, cas) `result` are required.
// status "unknown": the client gave up (timeout, unavailable, connection lost) and the write
// may or may not have happened; `return` and `result` may be absent and are ignored. A get
// with an unknown outcome is dropped: it says nothing. status "fail": the operation is known
// not to have taken effect; the line is dropped (recorders may also leave it out).
// Other fields are ignored, so a recorder may add its own ("error", "member", ...). Blank
// lines are skipped. Every key starts absent.
//
//   {"client":3,"op":"put","key":"k1","value":"v7","call":123,"return":456,"status":"ok"}
//   {"client":1,"op":"get","key":"k1","result":null,"call":130,"return":140,"status":"ok"}
//   {"client":2,"op":"cas","key":"k1","expect":"v7","value":"v8","result":true,
//    "call":500,"return":900,"status":"ok"}                          (one line in the file)
//   {"client":4,"op":"put","key":"k1","value":"v9","call":950,"status":"unknown"}
#ifndef TEST_LINEARIZABILITY_HISTORY_FILE_H_
#define TEST_LINEARIZABILITY_HISTORY_FILE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "test/linearizability/operation.h"

namespace lincheck {

// Errors are InvalidArgument naming the line, e.g. "line 7: cas needs \"expect\"". Each
// operation's `line` is set to its line number (1-based).
absl::StatusOr<History> ParseHistory(absl::string_view text);
// As ParseHistory, with the path in error messages; NotFound when the file cannot be read.
absl::StatusOr<History> ReadHistoryFile(const std::string& path);

// One line, without the newline, that ParseHistory reads back as `op` (except `line`).
std::string FormatOperation(const Operation& op);

}  // namespace lincheck

#endif  // TEST_LINEARIZABILITY_HISTORY_FILE_H_

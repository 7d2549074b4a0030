// One client operation on the key-value store, as a failure test records it: what was asked,
// what came back, and when (the client's monotonic clock, in nanoseconds). The checker
// (checker.h) decides whether a set of such operations is linearizable.
//
// The model is a map of registers: each key holds a value or is absent (every key starts
// absent). Put writes a value, Delete makes the key absent, Get reads, and Cas writes `value`
// only when the key holds `expect` (nullopt: only when the key is absent).
//
// Outcomes. kOk: the client saw the answer, so the operation took effect exactly once between
// `call` and `ret`. kUnknown: the client gave up (timeout, unavailable, connection lost); the
// operation may have taken effect at any time after `call`, or never, so `ret` and the result
// fields are ignored. An operation known to have failed without effect is not recorded at all,
// and neither is a read with an unknown outcome (it says nothing).
#ifndef TEST_LINEARIZABILITY_OPERATION_H_
#define TEST_LINEARIZABILITY_OPERATION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lincheck {

enum class OpKind { kPut, kGet, kCas, kDelete };
enum class Outcome { kOk, kUnknown };

struct Operation {
  int64_t client = 0;
  OpKind kind = OpKind::kGet;
  std::string key;
  // Put, Cas: the value written.
  std::string value;
  // Cas: the value compared against; nullopt means "the key is absent".
  std::optional<std::string> expect;
  // Get with kOk: the value read; nullopt means the key was absent.
  std::optional<std::string> read;
  // Cas with kOk: whether the compare held (and so the write happened).
  bool succeeded = false;
  // Monotonic nanoseconds. `ret` >= `call`; `ret` is ignored when the outcome is unknown.
  int64_t call = 0;
  int64_t ret = 0;
  Outcome outcome = Outcome::kOk;
  // Where the operation came from: its line in the history file, 0 when built in code.
  int line = 0;
};

using History = std::vector<Operation>;

// Builders for completed operations, for tests and C++ recorders. Unknown outcomes: build one
// and call MarkUnknown.
Operation Put(int64_t client, std::string key, std::string value, int64_t call, int64_t ret);
Operation Get(int64_t client, std::string key, std::optional<std::string> read, int64_t call,
              int64_t ret);
Operation Cas(int64_t client, std::string key, std::optional<std::string> expect, std::string value,
              bool succeeded, int64_t call, int64_t ret);
Operation Delete(int64_t client, std::string key, int64_t call, int64_t ret);
// The operation's result is unknown: it may take effect at any time after its call, or never.
Operation MarkUnknown(Operation op);

const char* OpKindName(OpKind kind);

// One line for explanations, e.g.
//   line 12, client 3: cas("k1", expect "v1" -> "v2") = true  [1000, 2500]
//   client 4: put("k2", "v9") = unknown  [3000, ...]
std::string DescribeOperation(const Operation& op);

}  // namespace lincheck

#endif  // TEST_LINEARIZABILITY_OPERATION_H_

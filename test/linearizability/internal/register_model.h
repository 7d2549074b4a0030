// The sequential specification of one key: a register that holds a value or is absent.
// Values are interned per key into small integers so that a search state is one int.
//
// Not thread-safe; one ValueTable per key being checked.
#ifndef TEST_LINEARIZABILITY_INTERNAL_REGISTER_MODEL_H_
#define TEST_LINEARIZABILITY_INTERNAL_REGISTER_MODEL_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "test/linearizability/operation.h"

namespace lincheck::internal {

// kAbsent, or an index into the key's ValueTable.
using ValueId = int32_t;
inline constexpr ValueId kAbsent = -1;

// The return time of an operation whose outcome is unknown: it stays pending forever.
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

class ValueTable {
 public:
  ValueId Intern(const std::optional<std::string>& value);
  // "absent" or the value quoted and escaped.
  std::string Describe(ValueId id) const;

 private:
  absl::flat_hash_map<std::string, ValueId> ids_;
  std::vector<std::string> values_;
};

// One operation on the key, with its values interned.
struct RegisterOp {
  OpKind kind = OpKind::kGet;
  bool unknown = false;      // may take effect at any time after `call`, or never
  ValueId value = kAbsent;   // put, cas: written
  ValueId expect = kAbsent;  // cas: compared against
  ValueId read = kAbsent;    // get: observed
  bool succeeded = false;    // cas: the recorded result
  int64_t call = 0;
  int64_t ret = 0;  // kNever when unknown
};

// The register's step: whether `op`, with its recorded result, can take effect when the
// register holds `state`, and what it holds afterwards. An unknown op is assumed to take
// effect (a cas whose compare fails is then a legal no-op).
struct Transition {
  bool legal = false;
  ValueId next = kAbsent;
};

inline Transition Apply(const RegisterOp& op, ValueId state) {
  switch (op.kind) {
    case OpKind::kPut:
      return {true, op.value};
    case OpKind::kDelete:
      return {true, kAbsent};
    case OpKind::kGet:
      return {op.read == state, state};
    case OpKind::kCas:
      if (op.unknown) return {true, state == op.expect ? op.value : state};
      if (op.succeeded) return {state == op.expect, op.value};
      return {state != op.expect, state};
  }
  return {};
}

// Whether `op` never changes the register (given its recorded result).
inline bool IsReadOnly(const RegisterOp& op) {
  return !op.unknown && (op.kind == OpKind::kGet || (op.kind == OpKind::kCas && !op.succeeded));
}

}  // namespace lincheck::internal

#endif  // TEST_LINEARIZABILITY_INTERNAL_REGISTER_MODEL_H_

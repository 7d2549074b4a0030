// A small parser for one line of a JSON-lines file: exactly one JSON object (RFC 8259), with
// surrounding whitespace. Top-level fields keep their scalar values; a nested array or object
// is checked for syntax and kept only as kNested (the history format has none, but a recorder
// may add fields of its own). Strings are unescaped to UTF-8, \uXXXX surrogate pairs
// included. A repeated field name is an error.
//
// Errors are InvalidArgument with the byte column (1-based) where parsing stopped.
#ifndef TEST_LINEARIZABILITY_INTERNAL_JSON_OBJECT_H_
#define TEST_LINEARIZABILITY_INTERNAL_JSON_OBJECT_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lincheck::internal {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kNested };
  Type type = Type::kNull;
  bool boolean = false;
  // kString: the unescaped contents. kNumber: the literal as written (e.g. "-12", "1.5e3").
  std::string text;
};

using JsonObject = absl::flat_hash_map<std::string, JsonValue>;

absl::StatusOr<JsonObject> ParseJsonObject(absl::string_view line);

}  // namespace lincheck::internal

#endif  // TEST_LINEARIZABILITY_INTERNAL_JSON_OBJECT_H_

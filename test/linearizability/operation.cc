#include "test/linearizability/operation.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace lincheck {
namespace {

std::string Quoted(const std::string& s) { return absl::StrCat("\"", absl::CHexEscape(s), "\""); }

std::string QuotedOrAbsent(const std::optional<std::string>& v) {
  return v.has_value() ? Quoted(*v) : "absent";
}

}  // namespace

Operation Put(int64_t client, std::string key, std::string value, int64_t call, int64_t ret) {
  return Operation{.client = client,
                   .kind = OpKind::kPut,
                   .key = std::move(key),
                   .value = std::move(value),
                   .call = call,
                   .ret = ret};
}

Operation Get(int64_t client, std::string key, std::optional<std::string> read, int64_t call,
              int64_t ret) {
  return Operation{.client = client,
                   .kind = OpKind::kGet,
                   .key = std::move(key),
                   .read = std::move(read),
                   .call = call,
                   .ret = ret};
}

Operation Cas(int64_t client, std::string key, std::optional<std::string> expect, std::string value,
              bool succeeded, int64_t call, int64_t ret) {
  return Operation{.client = client,
                   .kind = OpKind::kCas,
                   .key = std::move(key),
                   .value = std::move(value),
                   .expect = std::move(expect),
                   .succeeded = succeeded,
                   .call = call,
                   .ret = ret};
}

Operation Delete(int64_t client, std::string key, int64_t call, int64_t ret) {
  return Operation{
      .client = client, .kind = OpKind::kDelete, .key = std::move(key), .call = call, .ret = ret};
}

Operation MarkUnknown(Operation op) {
  op.outcome = Outcome::kUnknown;
  op.read.reset();
  op.succeeded = false;
  return op;
}

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kPut:
      return "put";
    case OpKind::kGet:
      return "get";
    case OpKind::kCas:
      return "cas";
    case OpKind::kDelete:
      return "delete";
  }
  return "?";
}

std::string DescribeOperation(const Operation& op) {
  const bool unknown = op.outcome == Outcome::kUnknown;
  std::string out;
  if (op.line > 0) absl::StrAppend(&out, "line ", op.line, ", ");
  absl::StrAppend(&out, "client ", op.client, ": ", OpKindName(op.kind), "(", Quoted(op.key));
  switch (op.kind) {
    case OpKind::kPut:
      absl::StrAppend(&out, ", ", Quoted(op.value), ")", unknown ? " = unknown" : "");
      break;
    case OpKind::kGet:
      absl::StrAppend(&out, ") = ", unknown ? "unknown" : QuotedOrAbsent(op.read));
      break;
    case OpKind::kCas:
      absl::StrAppend(&out, ", expect ", QuotedOrAbsent(op.expect), " -> ", Quoted(op.value),
                      ") = ", unknown ? "unknown" : (op.succeeded ? "true" : "false"));
      break;
    case OpKind::kDelete:
      absl::StrAppend(&out, ")", unknown ? " = unknown" : "");
      break;
  }
  absl::StrAppend(&out, "  [", op.call, ", ", unknown ? "..." : absl::StrCat(op.ret), "]");
  return out;
}

}  // namespace lincheck

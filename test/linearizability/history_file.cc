#include "test/linearizability/history_file.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "test/linearizability/internal/json_object.h"

namespace lincheck {
namespace {

using internal::JsonObject;
using internal::JsonValue;

const JsonValue* Find(const JsonObject& object, absl::string_view name) {
  auto it = object.find(name);
  return it == object.end() ? nullptr : &it->second;
}

absl::Status Missing(absl::string_view what, absl::string_view name) {
  return absl::InvalidArgumentError(absl::StrCat(what, " needs \"", name, "\""));
}

absl::StatusOr<int64_t> IntegerField(const JsonObject& object, absl::string_view name) {
  const JsonValue* v = Find(object, name);
  if (v == nullptr) return Missing("an operation", name);
  int64_t out;
  if (v->type != JsonValue::Type::kNumber || !absl::SimpleAtoi(v->text, &out)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" must be an integer (nanoseconds or an id)"));
  }
  return out;
}

absl::StatusOr<std::string> StringField(const JsonObject& object, absl::string_view name,
                                        absl::string_view what) {
  const JsonValue* v = Find(object, name);
  if (v == nullptr) return Missing(what, name);
  if (v->type != JsonValue::Type::kString) {
    return absl::InvalidArgumentError(absl::StrCat("\"", name, "\" must be a string"));
  }
  return v->text;
}

// A string, or null for "absent".
absl::StatusOr<std::optional<std::string>> ValueOrNullField(const JsonObject& object,
                                                            absl::string_view name,
                                                            absl::string_view what) {
  const JsonValue* v = Find(object, name);
  if (v == nullptr) return Missing(what, name);
  if (v->type == JsonValue::Type::kNull) return std::optional<std::string>();
  if (v->type != JsonValue::Type::kString) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", name, "\" must be a string or null (absent)"));
  }
  return std::optional<std::string>(v->text);
}

absl::StatusOr<OpKind> ParseKind(const std::string& name) {
  if (name == "put") return OpKind::kPut;
  if (name == "get") return OpKind::kGet;
  if (name == "cas") return OpKind::kCas;
  if (name == "delete") return OpKind::kDelete;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown op \"", name, "\" (want put, get, cas or delete)"));
}

// Sets *keep to false for a line that is dropped (a failed op, a get of unknown outcome).
absl::Status ParseOperation(const JsonObject& object, Operation* op, bool* keep) {
  absl::StatusOr<std::string> kind_name = StringField(object, "op", "an operation");
  if (!kind_name.ok()) return kind_name.status();
  absl::StatusOr<OpKind> kind = ParseKind(*kind_name);
  if (!kind.ok()) return kind.status();
  op->kind = *kind;
  const std::string what = *kind_name;

  absl::StatusOr<std::string> status = StringField(object, "status", "an operation");
  if (!status.ok()) return status.status();
  if (*status == "ok") {
    op->outcome = Outcome::kOk;
  } else if (*status == "unknown") {
    op->outcome = Outcome::kUnknown;
  } else if (*status == "fail") {
    *keep = false;
    return absl::OkStatus();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown status \"", *status, "\" (want ok, unknown or fail)"));
  }
  const bool ok = op->outcome == Outcome::kOk;
  *keep = ok || op->kind != OpKind::kGet;

  absl::StatusOr<int64_t> client = IntegerField(object, "client");
  if (!client.ok()) return client.status();
  op->client = *client;
  absl::StatusOr<std::string> key = StringField(object, "key", "an operation");
  if (!key.ok()) return key.status();
  op->key = *std::move(key);
  absl::StatusOr<int64_t> call = IntegerField(object, "call");
  if (!call.ok()) return call.status();
  op->call = *call;
  if (ok) {
    absl::StatusOr<int64_t> ret = IntegerField(object, "return");
    if (!ret.ok()) return ret.status();
    if (*ret < *call) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"return\" (", *ret, ") is before \"call\" (", *call, ")"));
    }
    op->ret = *ret;
  }

  switch (op->kind) {
    case OpKind::kPut: {
      absl::StatusOr<std::string> value = StringField(object, "value", what);
      if (!value.ok()) return value.status();
      op->value = *std::move(value);
      break;
    }
    case OpKind::kGet: {
      if (!ok) break;
      absl::StatusOr<std::optional<std::string>> read = ValueOrNullField(object, "result", what);
      if (!read.ok()) return read.status();
      op->read = *std::move(read);
      break;
    }
    case OpKind::kCas: {
      absl::StatusOr<std::optional<std::string>> expect = ValueOrNullField(object, "expect", what);
      if (!expect.ok()) return expect.status();
      op->expect = *std::move(expect);
      absl::StatusOr<std::string> value = StringField(object, "value", what);
      if (!value.ok()) return value.status();
      op->value = *std::move(value);
      if (!ok) break;
      const JsonValue* result = Find(object, "result");
      if (result == nullptr) return Missing(what, "result");
      if (result->type != JsonValue::Type::kBool) {
        return absl::InvalidArgumentError("cas \"result\" must be true or false");
      }
      op->succeeded = result->boolean;
      break;
    }
    case OpKind::kDelete:
      break;
  }
  return absl::OkStatus();
}

void AppendJsonString(absl::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<int>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

void AppendValueOrNull(const std::optional<std::string>& v, std::string* out) {
  if (v.has_value()) {
    AppendJsonString(*v, out);
  } else {
    *out += "null";
  }
}

absl::StatusOr<History> Parse(absl::string_view text, absl::string_view source) {
  History history;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    auto error = [&](const absl::Status& s) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, "line ", line_number, ": ", s.message()));
    };
    absl::StatusOr<JsonObject> object = internal::ParseJsonObject(line);
    if (!object.ok()) return error(object.status());
    Operation op;
    bool keep = true;
    if (absl::Status s = ParseOperation(*object, &op, &keep); !s.ok()) return error(s);
    if (!keep) continue;
    op.line = line_number;
    history.push_back(std::move(op));
  }
  return history;
}

}  // namespace

absl::StatusOr<History> ParseHistory(absl::string_view text) { return Parse(text, ""); }

absl::StatusOr<History> ReadHistoryFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("error reading ", path));
  return Parse(contents.str(), absl::StrCat(path, ": "));
}

std::string FormatOperation(const Operation& op) {
  const bool ok = op.outcome == Outcome::kOk;
  std::string out =
      absl::StrCat("{\"client\":", op.client, ",\"op\":\"", OpKindName(op.kind), "\",\"key\":");
  AppendJsonString(op.key, &out);
  switch (op.kind) {
    case OpKind::kPut:
      out += ",\"value\":";
      AppendJsonString(op.value, &out);
      break;
    case OpKind::kGet:
      if (ok) {
        out += ",\"result\":";
        AppendValueOrNull(op.read, &out);
      }
      break;
    case OpKind::kCas:
      out += ",\"expect\":";
      AppendValueOrNull(op.expect, &out);
      out += ",\"value\":";
      AppendJsonString(op.value, &out);
      if (ok) absl::StrAppend(&out, ",\"result\":", op.succeeded ? "true" : "false");
      break;
    case OpKind::kDelete:
      break;
  }
  absl::StrAppend(&out, ",\"call\":", op.call);
  if (ok) absl::StrAppend(&out, ",\"return\":", op.ret);
  absl::StrAppend(&out, ",\"status\":\"", ok ? "ok" : "unknown", "\"}");
  return out;
}

}  // namespace lincheck

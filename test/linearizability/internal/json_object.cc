#include "test/linearizability/internal/json_object.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace lincheck::internal {
namespace {

// Nested values deeper than this are refused rather than recursed into.
constexpr int kMaxDepth = 64;

// Recursive descent over one line. Every method leaves pos_ after what it consumed.
class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<JsonObject> ParseTopLevel() {
    SkipSpace();
    if (!Peek('{')) return Error("expected a JSON object '{'");
    JsonObject object;
    absl::Status s = ParseObject(/*depth=*/0, &object);
    if (!s.ok()) return s;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text after the object");
    return object;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(what, " at column ", pos_ + 1));
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  bool Peek(char c) const { return !AtEnd() && text_[pos_] == c; }
  bool Consume(char c) {
    if (!Peek(c)) return false;
    ++pos_;
    return true;
  }
  void SkipSpace() {
    while (!AtEnd() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r' ||
                        text_[pos_] == '\n')) {
      ++pos_;
    }
  }

  // REQUIRES: at '{'. With `out` null the members are checked and dropped.
  absl::Status ParseObject(int depth, JsonObject* out) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    Consume('{');
    SkipSpace();
    if (Consume('}')) return absl::OkStatus();
    while (true) {
      SkipSpace();
      if (!Peek('"')) return Error("expected a field name in double quotes");
      std::string name;
      if (absl::Status s = ParseString(&name); !s.ok()) return s;
      SkipSpace();
      if (!Consume(':')) return Error("expected ':' after a field name");
      SkipSpace();
      const size_t value_start = pos_;
      JsonValue value;
      if (absl::Status s = ParseValue(depth, &value); !s.ok()) return s;
      if (out != nullptr && !out->emplace(name, std::move(value)).second) {
        pos_ = value_start;
        return Error(absl::StrCat("field \"", name, "\" appears twice"));
      }
      SkipSpace();
      if (Consume('}')) return absl::OkStatus();
      if (!Consume(',')) return Error("expected ',' or '}'");
    }
  }

  // REQUIRES: at '['.
  absl::Status ParseArray(int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    Consume('[');
    SkipSpace();
    if (Consume(']')) return absl::OkStatus();
    while (true) {
      SkipSpace();
      JsonValue ignored;
      if (absl::Status s = ParseValue(depth, &ignored); !s.ok()) return s;
      SkipSpace();
      if (Consume(']')) return absl::OkStatus();
      if (!Consume(',')) return Error("expected ',' or ']'");
    }
  }

  absl::Status ParseValue(int depth, JsonValue* out) {
    if (AtEnd()) return Error("expected a value");
    const char c = text_[pos_];
    if (c == '"') {
      out->type = JsonValue::Type::kString;
      return ParseString(&out->text);
    }
    if (c == '{') {
      out->type = JsonValue::Type::kNested;
      return ParseObject(depth + 1, nullptr);
    }
    if (c == '[') {
      out->type = JsonValue::Type::kNested;
      return ParseArray(depth + 1);
    }
    if (c == '-' || absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      out->type = JsonValue::Type::kNumber;
      return ParseNumber(&out->text);
    }
    if (ConsumeWord("null")) {
      out->type = JsonValue::Type::kNull;
      return absl::OkStatus();
    }
    if (ConsumeWord("true")) {
      out->type = JsonValue::Type::kBool;
      out->boolean = true;
      return absl::OkStatus();
    }
    if (ConsumeWord("false")) {
      out->type = JsonValue::Type::kBool;
      out->boolean = false;
      return absl::OkStatus();
    }
    return Error("expected a value");
  }

  bool ConsumeWord(absl::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
  absl::Status ParseNumber(std::string* out) {
    const size_t start = pos_;
    Consume('-');
    auto digits = [this] {
      const size_t from = pos_;
      while (!AtEnd() && absl::ascii_isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      return pos_ - from;
    };
    if (Peek('0')) {
      ++pos_;
    } else if (digits() == 0) {
      return Error("malformed number");
    }
    if (Consume('.') && digits() == 0) return Error("malformed number");
    if (Consume('e') || Consume('E')) {
      if (!Consume('+')) Consume('-');
      if (digits() == 0) return Error("malformed number");
    }
    *out = std::string(text_.substr(start, pos_ - start));
    return absl::OkStatus();
  }

  // REQUIRES: at '"'.
  absl::Status ParseString(std::string* out) {
    Consume('"');
    out->clear();
    while (true) {
      if (AtEnd()) return Error("unterminated string");
      const char c = text_[pos_];
      if (c == '"') {
        ++pos_;
        return absl::OkStatus();
      }
      if (static_cast<unsigned char>(c) < 0x20) return Error("control character in a string");
      if (c != '\\') {
        out->push_back(c);
        ++pos_;
        continue;
      }
      ++pos_;
      if (AtEnd()) return Error("unterminated string");
      const char e = text_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out->push_back(e);
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u':
          if (absl::Status s = ParseUnicodeEscape(out); !s.ok()) return s;
          break;
        default:
          --pos_;
          return Error("invalid escape in a string");
      }
    }
  }

  absl::Status ParseHex4(uint32_t* out) {
    if (pos_ + 4 > text_.size()) return Error("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = text_[pos_];
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return Error("bad \\u escape");
      v = v * 16 + (absl::ascii_isdigit(static_cast<unsigned char>(c))
                        ? c - '0'
                        : absl::ascii_tolower(static_cast<unsigned char>(c)) - 'a' + 10);
      ++pos_;
    }
    *out = v;
    return absl::OkStatus();
  }

  // After "\u": one code unit, or a surrogate pair written as two escapes.
  absl::Status ParseUnicodeEscape(std::string* out) {
    uint32_t cp = 0;
    if (absl::Status s = ParseHex4(&cp); !s.ok()) return s;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return Error("unpaired low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (!ConsumeWord("\\u")) return Error("unpaired high surrogate");
      uint32_t low = 0;
      if (absl::Status s = ParseHex4(&low); !s.ok()) return s;
      if (low < 0xDC00 || low > 0xDFFF) return Error("unpaired high surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(cp, out);
    return absl::OkStatus();
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<JsonObject> ParseJsonObject(absl::string_view line) {
  return Parser(line).ParseTopLevel();
}

}  // namespace lincheck::internal

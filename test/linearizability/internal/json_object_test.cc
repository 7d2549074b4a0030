#include "test/linearizability/internal/json_object.h"

#include "gtest/gtest.h"

namespace lincheck::internal {
namespace {

TEST(JsonObjectTest, ScalarsOfEveryType) {
  absl::StatusOr<JsonObject> o = ParseJsonObject(
      R"( {"s":"a\"b\\c\n\u00e9\ud83d\ude00", "n":-12, "f":1.5e3, "t":true, "x":false,)"
      R"( "z":null, "nested":{"a":[1,{"b":[]}]}, "arr":[]} )");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->at("s").type, JsonValue::Type::kString);
  EXPECT_EQ(o->at("s").text, "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(o->at("n").type, JsonValue::Type::kNumber);
  EXPECT_EQ(o->at("n").text, "-12");
  EXPECT_EQ(o->at("f").text, "1.5e3");
  EXPECT_TRUE(o->at("t").boolean);
  EXPECT_EQ(o->at("x").type, JsonValue::Type::kBool);
  EXPECT_FALSE(o->at("x").boolean);
  EXPECT_EQ(o->at("z").type, JsonValue::Type::kNull);
  EXPECT_EQ(o->at("nested").type, JsonValue::Type::kNested);
  EXPECT_EQ(o->at("arr").type, JsonValue::Type::kNested);
}

TEST(JsonObjectTest, EmptyObject) {
  absl::StatusOr<JsonObject> o = ParseJsonObject("{}");
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->empty());
}

TEST(JsonObjectTest, MalformedInputNamesTheColumn) {
  struct Case {
    const char* text;
    const char* error;
  };
  for (const Case& c : {
           Case{"", "expected a JSON object '{' at column 1"},
           Case{"[1]", "expected a JSON object"},
           Case{R"({"a":1,})", "expected a field name in double quotes at column 8"},
           Case{R"({"a" 1})", "expected ':'"},
           Case{R"({"a":1 "b":2})", "expected ',' or '}' at column 8"},
           Case{R"({"a":"x)", "unterminated string"},
           Case{R"({"a":"\q"})", "invalid escape"},
           Case{R"({"a":"\ud800"})", "unpaired high surrogate"},
           Case{R"({"a":01})", "expected ',' or '}'"},
           Case{R"({"a":-})", "malformed number"},
           Case{R"({"a":tru})", "expected a value"},
           Case{R"({"a":1,"a":2})", "field \"a\" appears twice"},
           Case{R"({"a":1} x)", "unexpected text after the object"},
           Case{"{\"a\":\"\x01\"}", "control character"},
       }) {
    absl::StatusOr<JsonObject> o = ParseJsonObject(c.text);
    ASSERT_FALSE(o.ok()) << c.text;
    EXPECT_NE(o.status().message().find(c.error), std::string::npos)
        << c.text << " gave: " << o.status();
  }
}

TEST(JsonObjectTest, DeepNestingIsRefused) {
  std::string deep = R"({"a":)" + std::string(100, '[') + std::string(100, ']') + "}";
  absl::StatusOr<JsonObject> o = ParseJsonObject(deep);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("nesting too deep"), std::string::npos);
}

}  // namespace
}  // namespace lincheck::internal

#include "test/linearizability/history_file.h"

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace lincheck {
namespace {

void ExpectSameOperation(const Operation& a, const Operation& b) {
  EXPECT_EQ(a.client, b.client);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.key, b.key);
  EXPECT_EQ(a.value, b.value);
  EXPECT_EQ(a.expect, b.expect);
  EXPECT_EQ(a.read, b.read);
  EXPECT_EQ(a.succeeded, b.succeeded);
  EXPECT_EQ(a.call, b.call);
  EXPECT_EQ(a.outcome, b.outcome);
  if (a.outcome == Outcome::kOk) {
    EXPECT_EQ(a.ret, b.ret);
  }
}

TEST(HistoryFileTest, ParsesEveryKindOfOperation) {
  absl::StatusOr<History> h = ParseHistory(
      R"({"client":3,"op":"put","key":"k1","value":"v7","call":123,"return":456,"status":"ok"})"
      "\n\n"
      R"({"client":1,"op":"get","key":"k1","result":null,"call":130,"return":140,"status":"ok"})"
      "\n"
      R"({"client":1,"op":"get","key":"k1","result":"v7","call":150,"return":160,"status":"ok",)"
      R"( "member":"m2"})"
      "\n"
      R"({"client":2,"op":"cas","key":"k1","expect":"v7","value":"v8","result":true,)"
      R"("call":500,"return":900,"status":"ok"})"
      "\n"
      R"({"client":2,"op":"cas","key":"k2","expect":null,"value":"v1","result":false,)"
      R"("call":500,"return":900,"status":"ok"})"
      "\n"
      R"({"client":4,"op":"put","key":"k1","value":"v9","call":950,"status":"unknown"})"
      "\n"
      R"({"client":5,"op":"delete","key":"k1","call":960,"return":null,"status":"unknown"})"
      "\n"
      R"({"client":6,"op":"delete","key":"k1","call":970,"return":980,"status":"ok"})"
      "\n");
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_EQ(h->size(), 8u);
  ExpectSameOperation((*h)[0], Put(3, "k1", "v7", 123, 456));
  EXPECT_EQ((*h)[0].line, 1);
  ExpectSameOperation((*h)[1], Get(1, "k1", std::nullopt, 130, 140));
  EXPECT_EQ((*h)[1].line, 3);
  ExpectSameOperation((*h)[2], Get(1, "k1", "v7", 150, 160));
  ExpectSameOperation((*h)[3], Cas(2, "k1", "v7", "v8", true, 500, 900));
  ExpectSameOperation((*h)[4], Cas(2, "k2", std::nullopt, "v1", false, 500, 900));
  ExpectSameOperation((*h)[5], MarkUnknown(Put(4, "k1", "v9", 950, 0)));
  ExpectSameOperation((*h)[6], MarkUnknown(Delete(5, "k1", 960, 0)));
  ExpectSameOperation((*h)[7], Delete(6, "k1", 970, 980));
}

TEST(HistoryFileTest, DropsFailedOperationsAndReadsOfUnknownOutcome) {
  absl::StatusOr<History> h = ParseHistory(
      R"({"client":1,"op":"put","key":"k","value":"a","call":1,"return":2,"status":"fail"})"
      "\n"
      R"({"client":1,"op":"get","key":"k","call":3,"status":"unknown"})"
      "\n"
      R"({"client":1,"op":"get","key":"k","result":"a","call":4,"return":5,"status":"ok"})");
  ASSERT_TRUE(h.ok()) << h.status();
  ASSERT_EQ(h->size(), 1u);
  EXPECT_EQ((*h)[0].line, 3);
}

TEST(HistoryFileTest, ErrorsNameTheLineAndTheProblem) {
  const std::string good =
      R"({"client":1,"op":"put","key":"k","value":"a","call":1,"return":2,"status":"ok"})";
  struct Case {
    std::string line;
    std::string error;
  };
  for (const Case& c : {
           Case{"not json", "line 2: expected a JSON object"},
           Case{R"({"client":1,"op":"put","key":"k","call":1,"return":2,"status":"ok"})",
                "line 2: put needs \"value\""},
           Case{R"({"client":1,"op":"get","key":"k","call":1,"return":2,"status":"ok"})",
                "line 2: get needs \"result\""},
           Case{R"({"client":1,"op":"cas","key":"k","value":"b","result":true,"call":1,)"
                R"("return":2,"status":"ok"})",
                "line 2: cas needs \"expect\""},
           Case{R"({"client":1,"op":"cas","key":"k","expect":"a","value":"b","result":"yes",)"
                R"("call":1,"return":2,"status":"ok"})",
                "line 2: cas \"result\" must be true or false"},
           Case{R"({"client":1,"op":"put","key":"k","value":"a","call":1,"status":"ok"})",
                "line 2: an operation needs \"return\""},
           Case{R"({"client":1,"op":"put","key":"k","value":"a","call":5,"return":2,)"
                R"("status":"ok"})",
                "line 2: \"return\" (2) is before \"call\" (5)"},
           Case{R"({"client":1,"op":"put","key":"k","value":"a","call":1.5,"return":2,)"
                R"("status":"ok"})",
                "line 2: \"call\" must be an integer"},
           Case{R"({"client":1,"op":"put","key":"k","value":7,"call":1,"return":2,)"
                R"("status":"ok"})",
                "line 2: \"value\" must be a string"},
           Case{R"({"client":1,"op":"incr","key":"k","call":1,"return":2,"status":"ok"})",
                "line 2: unknown op \"incr\""},
           Case{R"({"client":1,"op":"get","key":"k","result":null,"call":1,"return":2,)"
                R"("status":"timeout"})",
                "line 2: unknown status \"timeout\""},
           Case{R"({"op":"get","key":"k","result":null,"call":1,"return":2,"status":"ok"})",
                "line 2: an operation needs \"client\""},
       }) {
    absl::StatusOr<History> h = ParseHistory(absl::StrCat(good, "\n", c.line, "\n"));
    ASSERT_FALSE(h.ok()) << c.line;
    EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(h.status().message().find(c.error), std::string::npos)
        << c.line << "\n gave: " << h.status();
  }
}

TEST(HistoryFileTest, FormatOperationRoundTrips) {
  const History ops = {
      Put(1, "k", "plain", 10, 20),
      Put(2, "k\"quoted\"\n", "tab\tand\\back\x01slash", 10, 20),
      Get(3, "k", std::nullopt, 30, 40),
      Get(3, "k", "v", 30, 40),
      Cas(4, "k", std::nullopt, "new", true, 50, 60),
      Cas(4, "k", "old", "new", false, 50, 60),
      MarkUnknown(Cas(5, "k", "old", "new", false, 70, 0)),
      MarkUnknown(Put(6, "k", "v", 80, 0)),
      Delete(7, "k", 90, 95),
  };
  std::string text;
  for (const Operation& op : ops) absl::StrAppend(&text, FormatOperation(op), "\n");
  absl::StatusOr<History> parsed = ParseHistory(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
  ASSERT_EQ(parsed->size(), ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    SCOPED_TRACE(FormatOperation(ops[i]));
    ExpectSameOperation((*parsed)[i], ops[i]);
  }
}

TEST(HistoryFileTest, ReadHistoryFileNamesThePath) {
  const std::string path = ::testing::TempDir() + "/lincheck_history_file_test.jsonl";
  {
    std::ofstream out(path);
    out << FormatOperation(Put(1, "k", "v", 1, 2)) << "\n{\"client\":\n";
  }
  absl::StatusOr<History> h = ReadHistoryFile(path);
  ASSERT_FALSE(h.ok());
  EXPECT_NE(h.status().message().find(path + ": line 2: "), std::string::npos) << h.status();
  std::remove(path.c_str());

  EXPECT_EQ(ReadHistoryFile(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace lincheck

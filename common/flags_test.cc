#include "common/flags.h"

#include <gtest/gtest.h>

#include <vector>

namespace common {
namespace {

absl::Status ParseArgs(FlagSet& f, std::vector<const char*> args) {
  args.insert(args.begin(), "prog");
  return f.Parse(static_cast<int>(args.size()), const_cast<char**>(args.data()));
}

TEST(FlagSetTest, ParsesEqualsAndSpaceFormsWithDashedNames) {
  FlagSet f("prog");
  std::string dir = "default";
  int64_t n = 1;
  bool on = false;
  f.String("data-dir", &dir, "");
  f.Int("snapshot-count", &n, "");
  f.Bool("strict", &on, "");
  ASSERT_TRUE(ParseArgs(f, {"--data-dir=/x", "--snapshot-count", "7", "--strict", "pos"}).ok());
  EXPECT_EQ(dir, "/x");
  EXPECT_EQ(n, 7);
  EXPECT_TRUE(on);
  EXPECT_TRUE(f.IsSet("data-dir"));
  EXPECT_EQ(f.positional(), std::vector<std::string>{"pos"});
}

TEST(FlagSetTest, UnknownFlagAndBadValuesAreErrorsNamingTheFlag) {
  FlagSet f("prog");
  int64_t n = 1;
  f.Int("snapshot-count", &n, "");
  absl::Status s = ParseArgs(f, {"--snapshot-cont=3"});
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_EQ(s.message(), "unknown flag --snapshot-cont");
  s = ParseArgs(f, {"--snapshot-count=many"});
  EXPECT_EQ(s.message(), "invalid value \"many\" for flag --snapshot-count: not an integer");
  s = ParseArgs(f, {"--snapshot-count"});
  EXPECT_EQ(s.message(), "flag --snapshot-count needs a value");
  EXPECT_EQ(n, 1);
}

}  // namespace
}  // namespace common

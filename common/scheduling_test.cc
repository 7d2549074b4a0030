#include "common/scheduling.h"

#include <thread>

#include "gtest/gtest.h"

namespace common {
namespace {

TEST(ParseCpuSchedulingTest, KnowsBothNamesAndRejectsOthers) {
  EXPECT_EQ(*ParseCpuScheduling("batch"), CpuScheduling::kBatch);
  EXPECT_EQ(*ParseCpuScheduling("normal"), CpuScheduling::kNormal);
  absl::StatusOr<CpuScheduling> bad = ParseCpuScheduling("fifo");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("\"fifo\""), std::string::npos);
}

TEST(SetCpuSchedulingTest, ThreadsStartedAfterwardsInheritTheClass) {
  // On a thread of its own, so that the test runner's thread keeps its class.
  std::thread([] {
    ASSERT_TRUE(SetCpuScheduling(CpuScheduling::kBatch).ok());
    EXPECT_EQ(CurrentCpuScheduling(), CpuScheduling::kBatch);
    CpuScheduling child = CpuScheduling::kNormal;
    std::thread([&child] { child = CurrentCpuScheduling(); }).join();
    EXPECT_EQ(child, CpuScheduling::kBatch);

    ASSERT_TRUE(SetCpuScheduling(CpuScheduling::kNormal).ok());
    EXPECT_EQ(CurrentCpuScheduling(), CpuScheduling::kNormal);
    std::thread([&child] { child = CurrentCpuScheduling(); }).join();
    EXPECT_EQ(child, CpuScheduling::kNormal);
  }).join();
}

}  // namespace
}  // namespace common

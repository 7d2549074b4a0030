#include "test/linearizability/internal/set_interner.h"

#include <random>
#include <set>

#include "gtest/gtest.h"

namespace lincheck::internal {
namespace {

TEST(SetInternerTest, EqualSetsHaveEqualIdsWhateverTheOrderOfInsertion) {
  SetInterner sets(1000);
  SetInterner::SetId a = SetInterner::kEmpty;
  for (size_t e : {3, 700, 64, 999, 0}) a = sets.Insert(a, e);
  SetInterner::SetId b = SetInterner::kEmpty;
  for (size_t e : {999, 0, 64, 3, 700}) b = sets.Insert(b, e);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, sets.Erase(a, 64));
  EXPECT_EQ(sets.Erase(sets.Erase(a, 64), 3), sets.Erase(sets.Erase(b, 3), 64));
  SetInterner::SetId c = a;
  for (size_t e : {3, 700, 64, 999, 0}) c = sets.Erase(c, e);
  EXPECT_EQ(c, SetInterner::kEmpty);
}

TEST(SetInternerTest, MatchesStdSetUnderRandomChanges) {
  for (size_t universe : {1, 63, 64, 65, 200, 5000}) {
    SCOPED_TRACE(universe);
    SetInterner sets(universe);
    std::mt19937_64 rng(universe);
    std::set<size_t> model;
    SetInterner::SetId id = SetInterner::kEmpty;
    for (int step = 0; step < 2000; ++step) {
      const size_t e = std::uniform_int_distribution<size_t>(0, universe - 1)(rng);
      id = model.count(e) ? sets.Erase(id, e) : sets.Insert(id, e);
      if (model.count(e)) {
        model.erase(e);
      } else {
        model.insert(e);
      }
      const size_t probe = std::uniform_int_distribution<size_t>(0, universe - 1)(rng);
      ASSERT_EQ(sets.Contains(id, probe), model.count(probe) > 0);
      ASSERT_EQ(sets.Contains(id, e), model.count(e) > 0);
    }
  }
}

}  // namespace
}  // namespace lincheck::internal

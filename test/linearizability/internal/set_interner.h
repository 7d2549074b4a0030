// Sets of operation indices for the search's memo (search.h), as hash-consed persistent
// bitsets: a complete binary tree whose leaves are 64-bit words of the bitset, with every
// leaf and node interned. Equal sets therefore have equal ids, so a configuration of the
// search is a few integers however many operations there are, and comparing two is exact
// and O(1). Adding or removing an element makes at most one new node per level (log2 of the
// number of words); unchanged subtrees are shared with the sets they came from.
//
// Nothing is ever freed: memory grows with the number of distinct nodes created. Not
// thread-safe; each search owns one.
#ifndef TEST_LINEARIZABILITY_INTERNAL_SET_INTERNER_H_
#define TEST_LINEARIZABILITY_INTERNAL_SET_INTERNER_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace lincheck::internal {

class SetInterner {
 public:
  using SetId = uint32_t;

  // Sets over [0, universe).
  explicit SetInterner(size_t universe);

  // The empty set.
  static constexpr SetId kEmpty = 0;

  // REQUIRES: element < universe.
  SetId Insert(SetId set, size_t element) { return Update(set, element, true); }
  SetId Erase(SetId set, size_t element) { return Update(set, element, false); }
  bool Contains(SetId set, size_t element) const;

  // Distinct leaves and nodes interned so far.
  size_t size() const;

 private:
  SetId Update(SetId set, size_t element, bool present);

  // Tree levels below the root; level 0 is the leaves.
  int height_ = 0;
  // Leaves: id -> word and back. Id 0 is the zero word.
  std::vector<uint64_t> words_;
  absl::flat_hash_map<uint64_t, SetId> word_ids_;
  // nodes_[h - 1]: the nodes of level h, id -> (left, right) children of level h - 1 and
  // back. At every level id 0 is the node over zero words only.
  std::vector<std::vector<std::pair<SetId, SetId>>> nodes_;
  std::vector<absl::flat_hash_map<std::pair<SetId, SetId>, SetId>> node_ids_;
};

}  // namespace lincheck::internal

#endif  // TEST_LINEARIZABILITY_INTERNAL_SET_INTERNER_H_

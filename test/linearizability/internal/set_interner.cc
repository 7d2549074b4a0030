#include "test/linearizability/internal/set_interner.h"

namespace lincheck::internal {

SetInterner::SetInterner(size_t universe) {
  const size_t words = universe == 0 ? 1 : (universe + 63) / 64;
  while ((size_t{1} << height_) < words) ++height_;
  words_.push_back(0);
  word_ids_.emplace(0, kEmpty);
  nodes_.resize(height_);
  node_ids_.resize(height_);
  for (int h = 0; h < height_; ++h) {
    nodes_[h].push_back({kEmpty, kEmpty});
    node_ids_[h].emplace(std::make_pair(kEmpty, kEmpty), kEmpty);
  }
}

bool SetInterner::Contains(SetId set, size_t element) const {
  const size_t word = element / 64;
  SetId id = set;
  for (int h = height_; h > 0; --h) {
    const auto& [left, right] = nodes_[h - 1][id];
    id = (word >> (h - 1) & 1) ? right : left;
  }
  return (words_[id] >> (element % 64) & 1) != 0;
}

SetInterner::SetId SetInterner::Update(SetId set, size_t element, bool present) {
  const size_t word = element / 64;
  // The path from the root down to the leaf: path[h] is the id at level h.
  SetId path[64];
  path[height_] = set;
  for (int h = height_; h > 0; --h) {
    const auto& [left, right] = nodes_[h - 1][path[h]];
    path[h - 1] = (word >> (h - 1) & 1) ? right : left;
  }
  const uint64_t bit = uint64_t{1} << (element % 64);
  const uint64_t new_word = present ? words_[path[0]] | bit : words_[path[0]] & ~bit;
  auto [leaf, inserted] = word_ids_.try_emplace(new_word, static_cast<SetId>(words_.size()));
  if (inserted) words_.push_back(new_word);
  SetId id = leaf->second;
  for (int h = 1; h <= height_; ++h) {
    const auto& [left, right] = nodes_[h - 1][path[h]];
    const std::pair<SetId, SetId> children =
        (word >> (h - 1) & 1) ? std::make_pair(left, id) : std::make_pair(id, right);
    auto [node, added] =
        node_ids_[h - 1].try_emplace(children, static_cast<SetId>(nodes_[h - 1].size()));
    if (added) nodes_[h - 1].push_back(children);
    id = node->second;
  }
  return id;
}

size_t SetInterner::size() const {
  size_t n = words_.size();
  for (const auto& level : nodes_) n += level.size();
  return n;
}

}  // namespace lincheck::internal

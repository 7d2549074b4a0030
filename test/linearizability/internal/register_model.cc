#include "test/linearizability/internal/register_model.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace lincheck::internal {

ValueId ValueTable::Intern(const std::optional<std::string>& value) {
  if (!value.has_value()) return kAbsent;
  auto [it, inserted] = ids_.try_emplace(*value, static_cast<ValueId>(values_.size()));
  if (inserted) values_.push_back(*value);
  return it->second;
}

std::string ValueTable::Describe(ValueId id) const {
  if (id == kAbsent) return "absent";
  return absl::StrCat("\"", absl::CHexEscape(values_[id]), "\"");
}

}  // namespace lincheck::internal

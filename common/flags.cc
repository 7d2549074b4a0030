#include "common/flags.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace common {

void FlagSet::String(const std::string& name, std::string* value, const std::string& help) {
  flags_[name] = Flag{help, *value, false, [value](const std::string& v) {
                        *value = v;
                        return absl::OkStatus();
                      }};
}

void FlagSet::Int(const std::string& name, int64_t* value, const std::string& help) {
  flags_[name] = Flag{help, absl::StrCat(*value), false, [name, value](const std::string& v) {
                        int64_t parsed;
                        if (!absl::SimpleAtoi(v, &parsed)) {
                          return absl::InvalidArgumentError(absl::StrCat(
                              "invalid value \"", v, "\" for flag --", name, ": not an integer"));
                        }
                        *value = parsed;
                        return absl::OkStatus();
                      }};
}

void FlagSet::Bool(const std::string& name, bool* value, const std::string& help) {
  flags_[name] = Flag{help, *value ? "true" : "false", true, [name, value](const std::string& v) {
                        bool parsed;
                        if (!absl::SimpleAtob(v, &parsed)) {
                          return absl::InvalidArgumentError(absl::StrCat(
                              "invalid value \"", v, "\" for flag --", name, ": not a boolean"));
                        }
                        *value = parsed;
                        return absl::OkStatus();
                      }};
}

absl::Status FlagSet::Parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() < 2 || arg[0] != '-') {
      positional_.push_back(arg);
      continue;
    }
    arg = arg.substr(arg[1] == '-' ? 2 : 1);  // etcd takes -flag as well as --flag
    if (arg == "help" || arg == "h") return absl::CancelledError("help requested");
    std::string name = arg, value;
    const size_t eq = arg.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto it = flags_.find(name);
    if (it == flags_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (it->second.is_bool) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (absl::Status s = it->second.set(value); !s.ok()) return s;
    set_[name] = true;
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("usage: ", program_, " [flags]\n");
  for (const auto& [name, f] : flags_) {
    absl::StrAppend(&out, "  --", name, "  ", f.help, " (default \"", f.default_text, "\")\n");
  }
  return out;
}

}  // namespace common

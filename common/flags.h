// Command-line flags with the names daemons like etcd use (dashes allowed, which abseil's
// flags do not): `--name=value` or `--name value`; booleans also as `--name`. An unknown
// flag or a value of the wrong type is an error naming the flag.
//
//   common::FlagSet flags("kvstore");
//   std::string dir = "default.etcd";
//   flags.String("data-dir", &dir, "where the member keeps its data");
//   if (absl::Status s = flags.Parse(argc, argv); !s.ok()) { print s and flags.Usage(); exit 2; }
//
// Not thread-safe; used once at start-up.
#ifndef COMMON_FLAGS_H_
#define COMMON_FLAGS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace common {

class FlagSet {
 public:
  explicit FlagSet(std::string program) : program_(std::move(program)) {}

  // Each binds a flag to a variable that holds its default until Parse() sets it.
  void String(const std::string& name, std::string* value, const std::string& help);
  void Int(const std::string& name, int64_t* value, const std::string& help);
  void Bool(const std::string& name, bool* value, const std::string& help);

  // Parses argv[1..]; arguments that are not flags are kept in positional().
  // `--help` makes Parse return a Cancelled status (print Usage()).
  absl::Status Parse(int argc, char** argv);
  const std::vector<std::string>& positional() const { return positional_; }
  // Whether the flag was given on the command line.
  bool IsSet(const std::string& name) const { return set_.count(name) > 0; }
  std::string Usage() const;

 private:
  struct Flag {
    std::string help;
    std::string default_text;
    bool is_bool = false;
    std::function<absl::Status(const std::string&)> set;
  };

  std::string program_;
  std::map<std::string, Flag> flags_;
  std::map<std::string, bool> set_;
  std::vector<std::string> positional_;
};

}  // namespace common

#endif  // COMMON_FLAGS_H_

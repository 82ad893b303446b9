// Flags of the bench programs (CLI11 through common/flags): every program takes --json (one
// JSON object of its figures instead of the table) and its own numeric flags, each validated;
// an unknown flag is an error naming the closest valid one.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>

#include "common/flags/flags.h"

namespace prunelab::bench {

class BenchFlags {
 public:
  BenchFlags(const std::string& program, const std::string& about) : app_(about, program) {
    app_.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app_.add_flag("--json", json_, "print one JSON object of the figures");
  }
  // A positive integer flag such as `--rounds 7`; *value holds the default.
  BenchFlags& Int(const std::string& flag, int* value, const std::string& help) {
    app_.add_option(flag, *value, help)->check(CLI::PositiveNumber)->capture_default_str();
    return *this;
  }
  BenchFlags& String(const std::string& flag, std::string* value, const std::string& help) {
    app_.add_option(flag, *value, help);
    return *this;
  }
  BenchFlags& Bool(const std::string& flag, bool* value, const std::string& help) {
    app_.add_flag(flag, *value, help);
    return *this;
  }
  // nullopt: go on; otherwise the exit code for main().
  std::optional<int> Parse(int argc, char** argv) { return flags::Parse(app_, argc, argv); }
  bool json() const { return json_; }

 private:
  CLI::App app_;
  bool json_ = false;
};

}  // namespace prunelab::bench

// Command-line parsing for every prunelab program (CLI, coordinator, worker, benches), over
// CLI11. Programs declare their flags on a CLI::App; Parse adds what every program needs:
// an unknown flag is an error that names the closest valid flag, a bad number names the
// flag and the value, and the exit codes are the same everywhere (0 help, 2 usage error).
// CLI11 is included only by flags.cc and the programs' main files.
#pragma once

#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace prunelab::flags {

// Parses argv into app. Returns nullopt to go on, or the exit code to return from main():
// 0 after --help, 2 after a usage error (printed on stderr with a hint).
std::optional<int> Parse(CLI::App& app, int argc, char** argv);

// The long flag of `app` (or of its selected subcommand) closest to `unknown` by edit
// distance, or "" when none is close enough to be a likely typo.
std::string ClosestFlag(const CLI::App& app, const std::string& unknown);

}  // namespace prunelab::flags

// Flag handling shared by every bench program (no LibTorch): --json and integer flags.
#pragma once

#include <cstdlib>
#include <cstring>

namespace prunelab::bench {

inline bool WantJson(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--json") == 0) return true;
  return false;
}

// Value of an integer flag such as `--rounds 7`, or `fallback`.
inline int IntFlag(int argc, char** argv, const char* name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atoi(argv[i + 1]);
  return fallback;
}

}  // namespace prunelab::bench

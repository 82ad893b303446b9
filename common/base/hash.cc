#include "common/base/hash.h"

#include <cstdint>
#include <cstdio>

namespace prunelab {

std::string ContentHash(std::string_view data) {
  uint64_t a = 0xcbf29ce484222325ULL;  // FNV offset basis
  uint64_t b = 0x84222325cbf29ce4ULL;  // second lane, different basis
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  for (unsigned char c : data) {
    a = (a ^ c) * kPrime;
    b = (b ^ static_cast<unsigned char>(c + 0x5b)) * kPrime;
  }
  char out[33];
  std::snprintf(out, sizeof(out), "%016llx%016llx", static_cast<unsigned long long>(a),
                static_cast<unsigned long long>(b));
  return out;
}

}  // namespace prunelab

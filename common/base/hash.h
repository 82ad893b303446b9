// Content hashes used for cache keys and artifact names (hex strings).
#pragma once

#include <string>
#include <string_view>

namespace prunelab {

// 128-bit FNV-1a (two independent 64-bit lanes), hex encoded, 32 characters.
// Not cryptographic: it names content and detects corruption, it does not authenticate.
std::string ContentHash(std::string_view data);

}  // namespace prunelab

// Content hashes: artifact names, chunk checks and cache keys (lowercase hex strings).
// Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace prunelab {

// BLAKE2b-256 (libsodium crypto_generichash), 64 hex characters. Cryptographic: finding two
// contents with the same name is infeasible, so a name fixes its content.
std::string ContentHash(std::string_view data);

// ContentHash of data that arrives in pieces (an upload): Update with every piece in order,
// then Final once; equal to ContentHash of the concatenation. Not copyable.
class ContentHasher {
 public:
  ContentHasher();
  ~ContentHasher();
  ContentHasher(const ContentHasher&) = delete;
  ContentHasher& operator=(const ContentHasher&) = delete;
  void Update(std::string_view data);
  std::string Final();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The name prunelab 0.3 gave content (two FNV-1a lanes, 32 hex characters). NOT collision
// resistant: only used to keep reading artifacts and baseline-cache entries that a store
// written by 0.3 already holds. Nothing new is ever named with it.
std::string LegacyContentHash(std::string_view data);
bool IsLegacyContentName(std::string_view name);
// A name ContentHash gives (64 lowercase hex characters): safe as a file name.
bool IsContentName(std::string_view name);

// True when `data` is the content named `name`: BLAKE2b-256 for current names, the legacy
// hash for 32-character names written by 0.3 (see above).
bool MatchesContentName(std::string_view name, std::string_view data);

}  // namespace prunelab

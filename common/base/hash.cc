#include "common/base/hash.h"

#include <sodium.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fmt/printf.h>

namespace prunelab {
namespace {

constexpr size_t kDigestBytes = 32;  // BLAKE2b-256

std::string Hex(const unsigned char* bytes, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 15];
  }
  return out;
}

bool IsHex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

void InitSodium() {
  // sodium_init is idempotent and thread-safe; it is needed once per process for libsodium's
  // CPU feature selection. It fails only when the OS has no entropy source, which generichash
  // (unkeyed) does not use.
  static const bool kInitialized = sodium_init() >= 0 || true;
  (void)kInitialized;
}

}  // namespace

std::string ContentHash(std::string_view data) {
  InitSodium();
  unsigned char digest[kDigestBytes];
  crypto_generichash(digest, sizeof(digest), reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                     nullptr, 0);
  return Hex(digest, sizeof(digest));
}

struct ContentHasher::State {
  crypto_generichash_state s;
};

ContentHasher::ContentHasher() : state_(std::make_unique<State>()) {
  InitSodium();
  crypto_generichash_init(&state_->s, nullptr, 0, kDigestBytes);
}
ContentHasher::~ContentHasher() = default;

void ContentHasher::Update(std::string_view data) {
  crypto_generichash_update(&state_->s, reinterpret_cast<const unsigned char*>(data.data()), data.size());
}

std::string ContentHasher::Final() {
  unsigned char digest[kDigestBytes];
  crypto_generichash_final(&state_->s, digest, sizeof(digest));
  return Hex(digest, sizeof(digest));
}

std::string LegacyContentHash(std::string_view data) {
  uint64_t a = 0xcbf29ce484222325ULL;
  uint64_t b = 0x84222325cbf29ce4ULL;
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  for (unsigned char c : data) {
    a = (a ^ c) * kPrime;
    b = (b ^ static_cast<unsigned char>(c + 0x5b)) * kPrime;
  }
  return fmt::sprintf("%016llx%016llx", static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
}

bool IsLegacyContentName(std::string_view name) { return name.size() == 32 && IsHex(name); }
bool IsContentName(std::string_view name) { return name.size() == 2 * kDigestBytes && IsHex(name); }

bool MatchesContentName(std::string_view name, std::string_view data) {
  if (name.size() == 2 * kDigestBytes) return ContentHash(data) == name;
  if (IsLegacyContentName(name)) return LegacyContentHash(data) == name;
  return false;
}

}  // namespace prunelab

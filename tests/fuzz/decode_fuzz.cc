// libFuzzer target: any bytes into the wire decoder. It must never crash, hang or trip a
// sanitizer; whatever it accepts must encode and decode again to the same message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/codec/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  auto msg = prunelab::Decode(bytes);
  if (!msg.ok()) return 0;
  std::string again = prunelab::Encode(msg.value());
  auto back = prunelab::Decode(again);
  if (!back.ok() || back->index() != msg->index() || prunelab::Encode(back.value()) != again) std::abort();
  return 0;
}

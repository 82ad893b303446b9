// Codec: the one place that reads and writes Cap'n Proto. Converts Message <-> bytes.
// Thread-safety: free functions, no shared state.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "common/types.h"

namespace prunelab {

inline constexpr uint32_t kProtocolVersion = 1;
// Upper bound on any message; also what transports set as ZMQ_MAXMSGSIZE.
inline constexpr size_t kMaxMessageBytes = 256u << 20;

std::string Encode(const Message& msg);

// Validates untrusted bytes: alignment, Cap'n Proto structure (traversal and nesting limits),
// protocol version and a known body. Never throws.
StatusOr<Message> Decode(std::string_view bytes);

// Short name of a message's type, for logs and error replies.
const char* MessageName(const Message& msg);

}  // namespace prunelab

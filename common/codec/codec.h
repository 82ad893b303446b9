// Codec: the one place that reads and writes Cap'n Proto. Converts Message <-> bytes.
// Thread-safety: free functions, no shared state.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "common/base/message_kinds.h"
#include "common/base/types.h"

namespace prunelab {

inline constexpr uint32_t kProtocolVersion = 1;
// Upper bound on any message; also what transports set as ZMQ_MAXMSGSIZE.
inline constexpr size_t kMaxMessageBytes = 256u << 20;

std::string Encode(const Message& msg);

// Validates untrusted bytes: alignment, Cap'n Proto structure (traversal and nesting limits),
// protocol version and a known body. Never throws.
StatusOr<Message> Decode(std::string_view bytes);

// ---- store records (Cap'n Proto; values written before these existed were JSON and still read) ----
struct TaskRecordData {
  Task task;
  std::string state;
  std::string worker;
  uint32_t slot = 0;
  std::vector<std::string> attempt_errors;
};
std::string EncodeTaskRecord(const TaskRecordData& r);
StatusOr<TaskRecordData> DecodeTaskRecord(std::string_view bytes);
std::string EncodeResultRecord(const TrialResult& r);
StatusOr<TrialResult> DecodeResultRecord(std::string_view bytes);

// Short name of a message's type, for logs and error replies (KindOf(msg).name).
const char* MessageName(const Message& msg);

// Who may send a message (KindOf(msg).sender): the coordinator's worker endpoint takes worker
// messages only, its client endpoint client messages only; artifacts may be fetched on both;
// replies on neither.
Sender SenderOf(const Message& msg);

}  // namespace prunelab

// What each kind of message is, stated once beside the kind: its name, who may send it to the
// coordinator, whether handling it writes to the store, and whether its reply must wait until
// that write is durable. One entry per alternative of `Message`; an alternative without an
// entry does not compile (KindOf visits every alternative), so a new message cannot be
// acknowledged before its write is on disk by omission.
#pragma once

#include <type_traits>
#include <variant>

#include "common/base/types.h"

namespace prunelab {

// Who may send a message to the coordinator: a worker (worker endpoint), a client (client
// endpoint), either, or nobody (replies flow only from the coordinator).
enum class Sender { kWorker, kClient, kEither, kNobody };

struct MessageKind {
  const char* name;  // as logs and errors spell it: "SubmitResult"
  Sender sender;
  bool writes;   // handling it writes to the store (refused while the store is failed)
  bool durable;  // its reply is sent only after the write is synced (implies writes)
};

// No primary definition: see the file comment.
template <typename T>
struct MessageTraits;

#define PRUNELAB_MESSAGE_KIND(T, NAME, SENDER, WRITES, DURABLE)                              \
  template <>                                                                                \
  struct MessageTraits<T> {                                                                  \
    static constexpr MessageKind kKind{NAME, Sender::SENDER, WRITES, DURABLE};               \
    static_assert(!DURABLE || WRITES, #T ": a durable reply needs a write to be durable of"); \
  }

//                    type                 name                sender    writes durable
PRUNELAB_MESSAGE_KIND(RegisterMsg,         "Register",         kWorker,  true,  false);
PRUNELAB_MESSAGE_KIND(HeartbeatMsg,        "Heartbeat",        kWorker,  false, false);
PRUNELAB_MESSAGE_KIND(RequestWorkMsg,      "RequestWork",      kWorker,  true,  false);
PRUNELAB_MESSAGE_KIND(SubmitResultMsg,     "SubmitResult",     kWorker,  true,  true);
PRUNELAB_MESSAGE_KIND(FetchArtifactMsg,    "FetchArtifact",    kEither,  false, false);
PRUNELAB_MESSAGE_KIND(RegisterReplyMsg,    "RegisterReply",    kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(AssignMsg,           "Assign",           kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(NoWorkMsg,           "NoWork",           kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(ResultAckMsg,        "ResultAck",        kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(ArtifactReplyMsg,    "ArtifactReply",    kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(SubmitSweepMsg,      "SubmitSweep",      kClient,  true,  true);
PRUNELAB_MESSAGE_KIND(SubmitReplyMsg,      "SubmitReply",      kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(StatusRequestMsg,    "StatusRequest",    kClient,  false, false);
PRUNELAB_MESSAGE_KIND(StatusReplyMsg,      "StatusReply",      kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(ResultsRequestMsg,   "ResultsRequest",   kClient,  false, false);
PRUNELAB_MESSAGE_KIND(ResultsReplyMsg,     "ResultsReply",     kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(WorkersRequestMsg,   "WorkersRequest",   kClient,  false, false);
PRUNELAB_MESSAGE_KIND(WorkersReplyMsg,     "WorkersReply",     kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(ErrorMsg,            "Error",            kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(SweepControlMsg,     "SweepControl",     kClient,  true,  true);
PRUNELAB_MESSAGE_KIND(PutArtifactChunkMsg, "PutArtifactChunk", kEither,  true,  false);
PRUNELAB_MESSAGE_KIND(PutArtifactReplyMsg, "PutArtifactReply", kNobody,  false, false);
PRUNELAB_MESSAGE_KIND(ReleaseCommandMsg,   "ReleaseCommand",   kClient,  true,  true);
PRUNELAB_MESSAGE_KIND(ReleaseReplyMsg,     "ReleaseReply",     kNobody,  false, false);

#undef PRUNELAB_MESSAGE_KIND

// The kind of the message a variant of message types holds (every alternative needs an entry).
template <typename Variant>
const MessageKind& KindOfAny(const Variant& m) {
  return std::visit([](const auto& x) -> const MessageKind& { return MessageTraits<std::decay_t<decltype(x)>>::kKind; },
                    m);
}
inline const MessageKind& KindOf(const Message& m) { return KindOfAny(m); }

}  // namespace prunelab

// Compiled, not run, by the message_kinds_* tests: with PRUNELAB_ADD_KIND_WITHOUT_ENTRY a
// message type without a MessageTraits entry joins the variant, and the build must fail.
#include <variant>

#include "common/base/message_kinds.h"

namespace prunelab {
struct NewKindMsg {};
#ifdef PRUNELAB_ADD_KIND_WITHOUT_ENTRY
using Wire = std::variant<RegisterMsg, SubmitResultMsg, NewKindMsg>;
#else
using Wire = std::variant<RegisterMsg, SubmitResultMsg>;
#endif
const MessageKind& Probe(const Wire& w) { return KindOfAny(w); }
}  // namespace prunelab

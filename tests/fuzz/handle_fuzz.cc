// libFuzzer target: the coordinator's whole handling path, as a peer drives it. The input is
// a sequence of frames (2-byte little-endian length, then the bytes of one message); each is
// decoded, checked against the endpoint it arrived on (the first byte of a frame picks it),
// handled by a Coordinator on an in-memory store and a fake clock, and after every message the
// views a user reads are produced: sweep statuses, workers and results as JSON, and the HTTP
// API (/api/sweeps, /api/workers, /metrics, /api/sweeps/ID/decisions). It must never crash,
// throw, trip a sanitizer, or have the handler's last-resort guard catch an exception (that is
// reported as internal_error, and is a finding too).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/base/clock.h"
#include "common/codec/codec.h"
#include "common/codec/records.h"
#include "coordinator/http/http.h"
#include "coordinator/scheduler/coordinator.h"
#include "coordinator/store/store_view.h"

namespace {

using namespace prunelab;
using namespace prunelab::coordinator;

void Views(Coordinator& core, Store& store, DashboardState& dash) {
  DashboardSnapshot snap;
  snap.sweeps = core.Sweeps();
  snap.workers = core.Workers();
  dash.Publish(snap);
  for (const auto& s : snap.sweeps) {
    (void)DumpJson(ToJson(s));
    auto results = ReadResults(store, s.id);
    if (results.ok())
      for (const auto& r : results.value()) (void)DumpJson(ToJson(r));
    (void)ServeGet("/api/sweeps/" + s.id + "/decisions", store, dash);
  }
  for (const auto& w : snap.workers) (void)DumpJson(ToJson(w));
  for (const char* path : {"/api/sweeps", "/api/workers", "/metrics"}) (void)ServeGet(path, store, dash);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto store = NewMemoryStore();
  FakeClock clock;
  CoordinatorOptions options;
  options.max_trials_per_sweep = 200;  // keeps one input's work small; the limit path is exercised too
  Coordinator core(*store, clock, options);
  DashboardState dash;
  size_t at = 0;
  for (int frames = 0; at + 3 <= size && frames < 32; ++frames) {
    const bool worker_endpoint = data[at] & 1;
    const size_t len = data[at + 1] | (static_cast<size_t>(data[at + 2]) << 8);
    at += 3;
    if (len > size - at) break;
    std::string bytes(reinterpret_cast<const char*>(data + at), len);
    at += len;
    auto msg = Decode(bytes);
    if (!msg.ok()) continue;
    const Sender sender = SenderOf(msg.value());
    if (sender == Sender::kNobody || (sender == Sender::kWorker && !worker_endpoint) ||
        (sender == Sender::kClient && worker_endpoint))
      continue;  // refused by the service before the coordinator sees it
    auto reply = core.Handle(msg.value());
    if (reply) {
      if (auto* e = std::get_if<ErrorMsg>(&*reply); e && e->code == "internal_error") std::abort();
      (void)Encode(*reply);
    }
    (void)core.Commit();
    clock.AdvanceMs(700);
    core.Tick();
    Views(core, *store, dash);
  }
  return 0;
}

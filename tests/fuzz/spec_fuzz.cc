// libFuzzer target: any text into the sweep-spec parser. It must never crash or throw; a spec
// it accepts must expand into tasks with unique ids, as many trials as TrialCount says,
// each benchmarked on every target after it.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "common/spec/spec.h"
#include "common/spec/task_graph.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto spec = prunelab::ParseSpec(text);
  if (!spec.ok()) return 0;
  if (prunelab::TrialCount(spec.value()) > 20000) return 0;  // valid but huge: not worth expanding here
  auto tasks = prunelab::ExpandTasks(spec.value(), "sw-fuzz");
  std::set<std::string> ids;
  size_t trials = 0, benches = 0;
  for (const auto& t : tasks) {
    if (!ids.insert(t.task_id).second) std::abort();
    if (t.kind == prunelab::TaskKind::kPruneTrial) ++trials;
    if (t.kind == prunelab::TaskKind::kBenchmarkVariant) {
      ++benches;
      if (!ids.count(t.depends_on)) std::abort();  // its prune task comes first
    }
  }
  if (trials != prunelab::TrialCount(spec.value())) std::abort();
  if (spec->mode != "sensitivity" && benches != trials * spec->targets.size()) std::abort();
  return 0;
}

// Writes the seed corpora of the fuzz targets into DIR/{decode,spec,handle}: encoded messages
// of every kind, the example specs' shapes, and what a hostile-operator campaign found
// (a 0xFF byte in a spec comment, a non-UTF-8 worker id, thousands of sparsities, a huge name,
// duplicate keys, deep nesting, messages sent to the wrong endpoint).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/base/hash.h"
#include "common/codec/codec.h"

namespace {

using namespace prunelab;

std::string Frame(bool worker_endpoint, const std::string& bytes) {
  std::string f;
  f += static_cast<char>(worker_endpoint ? 1 : 0);
  f += static_cast<char>(bytes.size() & 0xff);
  f += static_cast<char>((bytes.size() >> 8) & 0xff);
  return f + bytes;
}

// Encodes m, then replaces `marker` in the bytes (our encoder never writes invalid UTF-8).
std::string Patched(const Message& m, const std::string& marker, const std::string& with) {
  std::string b = Encode(m);
  auto at = b.find(marker);
  if (at != std::string::npos) b.replace(at, marker.size(), with);
  return b;
}

void Write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  const std::string spec = "name: f\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [0.5]}\n";
  std::string many = "name: many\nmodel: mlp\nsweep: {criterion: l1, granularity: unstructured, sparsity: [";
  for (int i = 1; i <= 3000; ++i) many += (i > 1 ? "," : "") + std::to_string(i / 3001.0);
  many += "]}\n";
  std::vector<std::pair<std::string, std::string>> specs{
      {"basic", spec},
      {"ff_in_comment", spec + "# caf\xFF\n"},
      {"duplicate_model", "name: d\nmodel: mlp\nmodel: cnn\nsweep: {criterion: l1, granularity: unstructured, sparsity: 0.5}\n"},
      {"many_sparsities", many},
      {"long_name", "name: " + std::string(20000, 'n') + "\nmodel: mlp\n"},
      {"deep", "name: x\nmodel: mlp\nsweep: " + std::string(200, '[') + std::string(200, ']') + "\n"},
      {"report", spec + "report: {objectives: [accuracy:max, latency_p90_ms:min], recommend: knee}\n"},
      {"user_model", "name: u\nmodel: {torchscript: net.pt, input_shape: [1, 28, 28]}\nsweep: {criterion: l1, granularity: "
                     "structured, sparsity: [0.5]}\ntargets: [a, b]\n"},
  };
  for (const auto& [name, text] : specs) Write(dir + "/spec/" + name, text);

  RegisterMsg reg{"w1", "local", {}, 2, {}};
  SubmitResultMsg result;
  result.worker_id = "w1";
  result.result.sweep_id = "sw-0001";
  result.result.task_id = "train";
  result.result.kind = TaskKind::kTrainBaseline;
  result.result.ok = true;
  result.artifact = "PK\x03\x04model";
  result.result.artifact_hash = ContentHash(result.artifact);
  std::vector<std::pair<std::string, Message>> messages{
      {"register", reg},
      {"heartbeat", HeartbeatMsg{"w1", "sw-0001/train", "training", 0.5, 0}},
      {"request", RequestWorkMsg{"w1", 0}},
      {"result", result},
      {"fetch", FetchArtifactMsg{ContentHash("x")}},
      {"put_chunk", PutArtifactChunkMsg{ContentHash("abc"), "up1", 3, 0, "abc", ContentHash("abc")}},
      {"submit", SubmitSweepMsg{spec, ""}},
      {"status", StatusRequestMsg{""}},
      {"results", ResultsRequestMsg{"sw-0001"}},
      {"workers", WorkersRequestMsg{}},
      {"cancel", SweepControlMsg{"sw-0001", "cancel"}},
      {"release", ReleaseCommandMsg{"release", "local", "sw-0001", "recommended", "note"}},
      {"evaluate", ReleaseCommandMsg{"evaluate", "local", "", "", "", false, "", "", "", "/data/new", "npy"}},
      {"policy", ReleaseCommandMsg{"policy", "local", "", "", "", false, "", "", "", "", "", false, "{\"psi\": [0.1, 0.2]}"}},
  };
  for (const auto& [name, m] : messages) Write(dir + "/decode/" + name, Encode(m));
  Write(dir + "/decode/ff_worker_id", Patched(RegisterMsg{"wQQ", "local", {}, 1, {}}, "wQQ", "w\xC3("));

  // Whole conversations for the handling path: client submits, worker registers, pulls,
  // reports; the seen attacks in between.
  const std::string submit = Frame(false, Encode(SubmitSweepMsg{spec, ""}));
  const std::string conversation = submit + Frame(true, Encode(reg)) + Frame(true, Encode(RequestWorkMsg{"w1", 0})) +
                                   Frame(true, Encode(result)) + Frame(true, Encode(RequestWorkMsg{"w1", 1})) +
                                   Frame(false, Encode(StatusRequestMsg{""})) + Frame(false, Encode(WorkersRequestMsg{}));
  Write(dir + "/handle/conversation", conversation);
  Write(dir + "/handle/ff_spec", Frame(false, Patched(SubmitSweepMsg{spec + "# cafZ\n", ""}, "cafZ", "caf\xFF")));
  Write(dir + "/handle/ff_worker", Frame(true, Patched(RegisterMsg{"wQQ", "local", {}, 1, {}}, "wQQ", "w\xC3(")) +
                                       Frame(false, Encode(WorkersRequestMsg{})));
  Write(dir + "/handle/roles_crossed", Frame(true, Encode(SubmitSweepMsg{spec, ""})) + Frame(false, Encode(reg)));
  Write(dir + "/handle/cancel", submit + Frame(false, Encode(SweepControlMsg{"sw-0001", "cancel"})) +
                                    Frame(false, Encode(ResultsRequestMsg{"sw-0001"})));
  Write(dir + "/handle/releases",
        conversation +
            Frame(false, Encode(ReleaseCommandMsg{"release", "local", "sw-0001", "base", "", true, "fuzz"})) +
            Frame(false, Encode(ReleaseCommandMsg{"policy", "local", "", "", "", false, "", "", "", "", "", false,
                                                  "{\"on_critical\": \"rollback\"}"})) +
            Frame(false, Encode(ReleaseCommandMsg{"evaluate", "local", "", "", "", false, "", "", "", "/d", "npy"})) +
            Frame(false, Encode(ReleaseCommandMsg{"rollback", "local"})) + Frame(false, Encode(ReleaseCommandMsg{"releases"})));
  Write(dir + "/handle/user_model", Frame(false, Encode(SubmitSweepMsg{specs[7].second, "PK\x03\x04net"})) +
                                        Frame(true, Encode(RegisterMsg{"", "a", {}, 1, {}})));
  return 0;
}

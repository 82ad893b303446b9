// prunelab export: a variant (or a release) as TorchScript with its model card; folded
// preprocessing (prunelab-fold) and ONNX (prunelab-onnx) through the tools beside this binary.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/printf.h>

#include "common/base/hash.h"
#include "common/codec/records.h"
#include "common/net/artifact_fetch.h"
#include "common/spec/spec.h"
#include "common/spec/zoo_names.h"
#include "coordinator/cli/cli.h"
#include "coordinator/decide/model_card.h"
#include "coordinator/store/artifact_store.h"
#include "coordinator/store/store.h"

namespace prunelab::cli {

namespace pc = ::prunelab::coordinator;

pl::StatusOr<std::string> FetchArtifact(const Args& a, const std::string& hash) {
  if (a.Has("--data-dir")) {
    auto store = pc::OpenRocksDbStore(a.Get("--data-dir") + "/store", /*read_only=*/true);
    if (!store.ok()) return store.status();
    auto artifacts = pc::OpenFileArtifactStore(a.Get("--data-dir") + "/artifacts", store.value().get(), 0, /*read_only=*/true);
    if (!artifacts.ok()) return artifacts.status();
    auto size = artifacts.value()->Size(hash);
    if (!size.ok()) return size.status();
    if (!size.value()) return pl::Status::NotFound("artifact " + hash + " is not in " + a.Get("--data-dir"));
    auto bytes = artifacts.value()->Read(hash, 0, *size.value());
    if (bytes.ok() && !pl::MatchesContentName(hash, bytes.value()))
      return pl::Status::Corruption("artifact " + hash + " in " + a.Get("--data-dir") + " does not match its hash");
    return bytes;
  }
  pl::ZmqContext ctx;
  pl::RpcClient rpc(ctx, CoordinatorEndpoint(a), ClientSec(a));
  return pl::FetchArtifactChunked([&](const pl::Message& m) { return rpc.Call(m, 60000); }, hash);
}

bool WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  return static_cast<bool>(out);
}

// Runs a program (no shell) and waits; its exit status, or -1 when it could not start.
int RunProgram(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const auto& s : argv) args.push_back(const_cast<char*>(s.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  if (pid < 0) return -1;
  int st = 0;
  if (waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string Csv(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : ",") + fmt::sprintf("%.9g", x);
  return s;
}

// --fold-preprocessing: what the worker did to the sweep's data before the model saw it,

// folded into model.pt by prunelab-fold (beside this binary; it links LibTorch, the CLI does not).
pl::Status FoldInto(const std::string& model_path, const std::string& spec_yaml, json* card) {
  auto spec = pl::ParseSpec(spec_yaml);
  if (!spec.ok()) return pl::Status::InvalidArgument("the sweep's spec is not readable: " + spec.status().message());
  std::vector<int64_t> shape = pl::SampleShapeOr(spec->input_shape);
  std::vector<double> mean = spec->dataset.mean, stdev = spec->dataset.std;
  if (spec->dataset.name != "npy" && spec->dataset.name != "folder") mean = {0.2860}, stdev = {0.3530};
  std::string shape_csv;
  for (int64_t d : shape) shape_csv += (shape_csv.empty() ? "" : ",") + std::to_string(d);
  std::error_code ec;
  const std::string bin = (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "prunelab-fold").string();
  const std::string folded = model_path + ".folded";
  std::vector<std::string> argv{bin, "--in", model_path, "--out", folded, "--input-shape", shape_csv};
  if (!mean.empty()) argv.insert(argv.end(), {"--mean", Csv(mean)});
  if (!stdev.empty()) argv.insert(argv.end(), {"--std", Csv(stdev)});
  const int rc = RunProgram(argv);
  if (rc != 0)
    return pl::Status::Internal(rc == 127 || rc == -1 ? "prunelab-fold not found at " + bin + " (build it)"
                                                      : "prunelab-fold failed (exit " + std::to_string(rc) + ", see above)");
  std::filesystem::rename(folded, model_path, ec);
  if (ec) return pl::Status::IoError("cannot move " + folded + " into place: " + ec.message());
  auto& in = (*card)["input"];
  in["dtype"] = "pixel values 0-255, uint8 or float";
  in["layout"] = "N x C x H x W, C of 1, 3 or 4 (alpha dropped; gray and RGB converted), any H x W (resized)";
  in["preprocessing"] = "folded into the module: / 255, channels converted, bilinear resize to " + shape_csv +
                        ", (x - [" + Csv(mean) + "]) / [" + Csv(stdev) + "]; give it raw pixels";
  in["folded"] = true;
  return pl::Status::Ok();
}

// --format onnx: model.onnx beside model.pt, made and validated by prunelab-onnx (beside this
// binary: it links LibTorch and OpenCV; PyTorch's exporter runs in python3-torch).
pl::Status OnnxInto(const std::string& dir, const std::string& spec_yaml, json* card) {
  std::error_code ec;
  const std::string bin = (std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "prunelab-onnx").string();
  if (!std::filesystem::exists(bin))
    return pl::Status::Internal("prunelab-onnx not found at " + bin +
                                " (it is built where OpenCV DNN is installed: cluster/install-deps.sh installs libopencv-dnn-dev)");
  const std::string spec = dir + "/.sweep-spec.yaml", report = dir + "/.onnx-report.json";
  if (!WriteFile(spec, spec_yaml)) return pl::Status::IoError("cannot write into " + dir);
  const int rc = RunProgram({bin, "--model", dir + "/model.pt", "--onnx", dir + "/model.onnx", "--spec", spec, "--report", report});
  std::filesystem::remove(spec, ec);
  std::ifstream in(report, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove(report, ec);
  if (rc != 0 && rc != 3) return pl::Status::InvalidArgument("the variant was not exported to ONNX (prunelab-onnx exit " + std::to_string(rc) + ", the reason is above)");
  auto j = pl::ParseJson(text);
  if (!j.ok()) return pl::Status::Internal("prunelab-onnx wrote no report");
  (*card)["onnx"] = j.value();
  (*card)["onnx"]["file"] = "model.onnx";
  if (rc == 3) return pl::Status::InvalidArgument("OpenCV's test accuracy differs from LibTorch's (model_card.json: onnx)");
  return pl::Status::Ok();
}



int CmdExport(const Args& a) {
  std::string dir = a.Get("--out");
  const bool onnx = a.Get("--format") == "onnx";
  if (a.Has("--release")) return ExportRelease(a);
  if (onnx && a.Has("--fold-preprocessing"))
    return Fail("--fold-preprocessing applies to --format torchscript (ONNX takes the model's own input; see the card)");
  if (a.positional.size() < 2 || dir.empty())
    return Fail("export needs a sweep id, a trial (or base@TARGET) and an output directory, e.g. prunelab export sw-0001 t003@local -o out/"
                " (or --release TARGET for the target's current release)");
  auto sweep = FetchSweep(a, a.positional[0]);
  if (!sweep.ok()) return Fail(sweep.status().ToString());
  pl::StatusOr<std::vector<pl::TrialResult>> rows = std::move(sweep->results);
  const pl::TrialResult* row = nullptr;
  const pl::TrialResult* base = nullptr;
  for (const auto& r : rows.value())
    if (r.task_id == a.positional[1]) row = &r;
  if (!row) return Fail("no result '" + a.positional[1] + "' in " + a.positional[0] + " (see `prunelab results " + a.positional[0] + "`)");
  for (const auto& r : rows.value())
    if (r.baseline && r.ok && r.target == row->target) base = &r;
  if (!row->ok) return Fail(row->task_id + " failed (" + row->error + "): nothing to export");
  std::string artifact = row->artifact_hash;
  // A dense baseline's benchmark rows (base@TARGET) measure the model the sweep's training
  // task stored: export that one.
  if (artifact.empty() && row->baseline)
    for (const auto& r : rows.value())
      if (r.kind == pl::TaskKind::kTrainBaseline && r.ok && !r.artifact_hash.empty()) artifact = r.artifact_hash;
  if (artifact.empty())
    return Fail(row->task_id + " has no stored model (intermediate rounds and sensitivity trials are not kept; export a final trial)");
  auto bytes = FetchArtifact(a, artifact);
  if (!bytes.ok()) return Fail(bytes.status().ToString());
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Fail("cannot create " + dir + ": " + ec.message());
  json card = pc::ModelCard(*row, base);
  if (card.contains("perplexity") && (onnx || a.Has("--fold-preprocessing")))
    return Fail(std::string(onnx ? "--format onnx" : "--fold-preprocessing") +
                ": not built yet for language models (their export is the TorchScript file and its card; run without it)");
  if (!WriteFile(dir + "/model.pt", bytes.value())) return Fail("cannot write into " + dir);
  if (a.Has("--fold-preprocessing"))
    if (pl::Status st = FoldInto(dir + "/model.pt", sweep->spec_yaml, &card); !st.ok())
      return Fail("--fold-preprocessing: " + st.ToString());
  pl::Status onnx_status = onnx ? OnnxInto(dir, sweep->spec_yaml, &card) : pl::Status::Ok();
  if (!WriteFile(dir + "/model_card.json", pl::DumpJson(card, 2) + "\n") ||
      !WriteFile(dir + "/model_card.md", pc::ModelCardMarkdown(card)))
    return Fail("cannot write into " + dir);
  if (!onnx_status.ok()) return Fail("--format onnx: " + onnx_status.ToString());
  if (onnx) {
    const json& o = card["onnx"];
    std::printf("model.onnx (opset %d): onnx.checker ok; %s: max |difference| %.3g over %d test samples (outputs up to %.3g); "
                "test accuracy %.2f %% in LibTorch and in OpenCV (%d samples)\n",
                o.value("opset", 0), o.value("runtime", std::string("?")).c_str(), o.value("max_abs_diff", 0.0),
                o.value("samples_compared", 0), o.value("output_max_abs", 0.0), 100 * o.value("accuracy_opencv", 0.0),
                o.value("test_samples", 0));
  }
  std::error_code size_ec;
  std::printf("exported %s %s to %s: model.pt (%ju bytes%s), model_card.json, model_card.md\n", a.positional[0].c_str(),
              row->task_id.c_str(), dir.c_str(), static_cast<uintmax_t>(std::filesystem::file_size(dir + "/model.pt", size_ec)),
              a.Has("--fold-preprocessing") ? "; takes raw pixels 0-255, preprocessing folded in" : "");
  std::printf("load it in Python: torch.jit.load('%s/model.pt')\n", dir.c_str());
  return 0;
}

// export --release T: the target's current release, as `export SWEEP TRIAL` writes it, plus
// release.json (version, who, when, gates, changelog, reference).
int ExportRelease(const Args& a) {
  if (!a.positional.empty()) return Fail("export --release takes no sweep id or trial (the release names them)");
  pl::ReleaseCommandMsg m;
  m.action = "releases";
  m.target = a.Get("--release");
  auto h = RequestRelease(a, m);
  if (!h.ok()) return Fail(h.status().ToString());
  json current;
  for (const auto& t : (*h)["targets"])
    for (const auto& r : t["releases"])
      if (r.value("current", false)) current = r;
  if (!current.is_object()) return Fail("target '" + m.target + "' has no release (prunelab releases lists them)");
  Args inner = a;
  inner.flags.erase("--release");
  inner.positional = {current.value("sweep", ""), current.value("trial", "")};
  if (int rc = CmdExport(inner); rc != 0) return rc;
  if (!WriteFile(a.Get("--out") + "/release.json", pl::DumpJson(current, 2) + "\n")) return Fail("cannot write into " + a.Get("--out"));
  std::printf("release %s of target %s (%s %s): release.json written beside it\n", current.value("version", "").c_str(),
              m.target.c_str(), current.value("sweep", "").c_str(), current.value("trial", "").c_str());
  return 0;
}


}  // namespace prunelab::cli

// prunelab-onnx: converts an exported TorchScript variant to ONNX (PyTorch's exporter, through
// worker/onnx_export.py) and validates it in a second runtime, OpenCV's DNN module: the
// outputs on test inputs against LibTorch's (max absolute difference) and the test-set
// accuracy of both, which must be equal. Used by `prunelab export --format onnx`, which
// knows the sweep's spec (dataset, input shape). Prints one JSON object.
#include <torch/script.h>
#include <torch/torch.h>

#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/base/text.h"
#include "common/flags/flags.h"
#include "common/spec/files.h"
#include "common/spec/spec.h"
#include "common/spec/zoo_names.h"
#include "worker/engine/data/fashion_mnist.h"
#include "worker/engine/data/user_data.h"
#include "worker/engine/model/graph.h"
#include "worker/engine/model/model.h"
#include "worker/engine/model/quantize.h"

namespace {

using nlohmann::json;

int Fail(const std::string& why, int code = 1) {
  std::fprintf(stderr, "prunelab-onnx: %s\n", why.c_str());
  return code;
}


// The sweep's test split, shaped as the model takes it (what the worker evaluated on).
prunelab::StatusOr<prunelab::worker::Dataset> TestSet(const prunelab::SweepSpec& spec, const std::vector<int64_t>& shape) {
  const auto& d = spec.dataset;
  const bool user = d.name == "npy" || d.name == "folder";
  auto data = user ? prunelab::worker::LoadUserDataset(d, false, d.test_subset, shape.size() == 3 ? shape : std::vector<int64_t>{})
                   : prunelab::worker::LoadFashionMnist(d.path, false, d.test_subset);
  if (!data.ok()) return data.status();
  std::vector<int64_t> full{data->inputs.size(0)};
  int64_t per = 1;
  for (int64_t d : shape) per *= d;
  full.insert(full.end(), shape.begin(), shape.end());
  if (data->inputs.numel() != per * data->inputs.size(0))
    return prunelab::Status::InvalidArgument("model.input_shape has " + std::to_string(per) +
                                             " values per sample; the dataset gives " +
                                             std::to_string(data->inputs.numel() / std::max<int64_t>(1, data->inputs.size(0))));
  data->inputs = data->inputs.reshape(full).contiguous();
  return data;
}

// OpenCV's outputs for `images`, a batch at a time (one sample at a time if the network
// does not take a batch axis).
torch::Tensor RunOpenCv(cv::dnn::Net& net, const torch::Tensor& images, int64_t batch) {
  std::vector<torch::Tensor> outs;
  for (int64_t s = 0; s < images.size(0); s += batch) {
    torch::Tensor x = images.slice(0, s, std::min(images.size(0), s + batch)).contiguous();
    std::vector<int> sizes(x.sizes().begin(), x.sizes().end());
    cv::Mat blob(static_cast<int>(sizes.size()), sizes.data(), CV_32F, x.data_ptr<float>());
    net.setInput(blob);
    cv::Mat out = net.forward().clone();
    outs.push_back(torch::from_blob(out.ptr<float>(), {x.size(0), static_cast<int64_t>(out.total()) / x.size(0)}).clone());
  }
  return torch::cat(outs);
}

// The variant specialized to what it will be given: forward inlined, configuration folded
// (eval mode), the input's non-batch sizes and rank constants, autocast off. Shape checks
// such as `if x.size(1) != 3:` disappear, so the ONNX graph has no control flow a second
// runtime would have to run.
torch::jit::Module Specialize(const torch::jit::Module& m, const std::vector<int64_t>& shape) {
  using torch::jit::Node;
  torch::jit::Module s = prunelab::worker::CloneModule(m);
  s.eval();
  auto g = torch::jit::toGraphFunction(s.get_method("forward").function()).graph();
  prunelab::worker::InlineGraph(*g);
  torch::jit::ConstantPropagation(g);
  prunelab::worker::FoldModuleConfiguration(s, g, /*fold_training=*/true);
  torch::jit::Value* input = g->inputs()[1];
  const std::vector<Node*> all = prunelab::worker::AllNodes(g->block());
  const int64_t rank = static_cast<int64_t>(shape.size()) + 1;
  for (Node* n : all) {
    const std::string kind = n->kind().toQualString();
    std::optional<c10::IValue> value;
    if (kind == "aten::size" && n->inputs().size() == 2 && n->input(0) == input) {
      auto d = torch::jit::toIValue(n->input(1));
      if (d && d->isInt()) {
        int64_t i = d->toInt() < 0 ? d->toInt() + rank : d->toInt();
        if (i >= 1 && i < rank) value = c10::IValue(shape[i - 1]);
      }
    } else if (kind == "aten::dim" && n->input(0) == input) {
      value = c10::IValue(rank);
    } else if (kind == "aten::is_autocast_enabled") {
      value = c10::IValue(false);
    } else if (kind == "aten::expand" && n->input(0) == input && !shape.empty() && shape[0] == 1) {
      // Grey to RGB as x.expand(-1, 3, -1, -1): OpenCV's importer cannot broadcast that
      // Expand; the same copies as a concatenation along the channels.
      auto sizes = torch::jit::toIValue(n->input(1));
      if (sizes && sizes->isIntList() && sizes->toIntVector().size() == shape.size() + 1 && sizes->toIntVector()[1] > 1) {
        torch::jit::WithInsertPoint guard(n);
        std::vector<torch::jit::Value*> copies(sizes->toIntVector()[1], input);
        auto* list = g->insertNode(g->createList(input->type(), copies))->output();
        auto* cat = g->insert(c10::Symbol::fromQualString("aten::cat"), {list, g->insertConstant(1)});
        n->output()->replaceAllUsesWith(cat);
      }
      continue;
    }
    if (!value) continue;
    torch::jit::WithInsertPoint guard(n);
    n->output()->replaceAllUsesWith(g->insertConstant(*value));
  }
  torch::jit::ConstantPropagation(g);
  torch::jit::EliminateDeadCode(g);
  return prunelab::worker::CloneModule(s);
}

}  // namespace

int main(int argc, char** argv) {
  std::string model, onnx, spec_path, report_path, python = "/usr/bin/python3", exporter = PRUNELAB_ONNX_EXPORTER;
  int compare = 64, opset = 13;
  CLI::App app("prunelab-onnx: TorchScript variant -> model.onnx, validated in OpenCV DNN against LibTorch", "prunelab-onnx");
  app.add_option("--model", model, "the exported model.pt")->required();
  app.add_option("--onnx", onnx, "where model.onnx goes")->required();
  app.add_option("--spec", spec_path, "the sweep's spec (dataset and input shape)")->required();
  app.add_option("--compare", compare, "test samples whose outputs are compared element by element");
  app.add_option("--opset", opset, "ONNX opset");
  app.add_option("--python", python, "interpreter with python3-torch and python3-onnx");
  app.add_option("--exporter", exporter, "the exporter script");
  app.add_option("--report", report_path, "also write the JSON report here");
  if (auto rc = prunelab::flags::Parse(app, argc, argv)) return *rc;
  auto text = prunelab::ReadSpecFile(spec_path);
  if (!text.ok()) return Fail(text.status().ToString());
  auto spec = prunelab::ParseSpec(text.value());
  if (!spec.ok()) return Fail("the sweep's spec is not readable: " + spec.status().message());
  const std::vector<int64_t> shape = prunelab::SampleShapeOr(spec->input_shape);
  std::string shape_csv;
  for (int64_t d : shape) shape_csv += (shape_csv.empty() ? "" : ",") + std::to_string(d);

  // 1. The variant specialized to its input, then PyTorch's exporter and onnx.checker.
  const std::string specialized = onnx + ".specialized.pt";
  try {
    (void)prunelab::worker::SelectQuantizedEngine();
    torch::jit::Module loaded = torch::jit::load(model);
    Specialize(loaded, shape).save(specialized);
  } catch (const std::exception& e) {
    return Fail(std::string("cannot prepare model.pt for export: ") + e.what());
  }
  const std::string cmd = prunelab::ShellQuoted(python) + " " + prunelab::ShellQuoted(exporter) + " --in " + prunelab::ShellQuoted(specialized) + " --out " + prunelab::ShellQuoted(onnx) +
                          " --input-shape " + shape_csv + " --opset " + std::to_string(opset);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return Fail("cannot run " + python);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  const int st = pclose(p);
  std::remove(specialized.c_str());
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return Fail("the variant does not export to ONNX (the reason is above; exporter " + exporter + ")");
  json report = json::parse(out, nullptr, false);
  if (report.is_discarded()) return Fail("the exporter printed no JSON: " + out);
  report["checker"] = "onnx.checker.check_model: ok";

  // 2. The same test inputs through LibTorch and OpenCV.
  auto test = TestSet(spec.value(), shape);
  if (!test.ok()) return Fail("the sweep's test set: " + test.status().ToString());
  torch::Tensor ref;
  try {
    torch::jit::Module m = torch::jit::load(model);
    m.eval();
    torch::NoGradGuard g;
    std::vector<torch::Tensor> parts;
    for (int64_t s = 0; s < test->size(); s += 256)
      parts.push_back(m.forward({test->inputs.slice(0, s, std::min(test->size(), s + 256))}).toTensor());
    ref = torch::cat(parts);
  } catch (const std::exception& e) {
    return Fail(std::string("LibTorch cannot run model.pt: ") + e.what());
  }
  torch::Tensor got;
  std::string batching = "batches of 64";
  try {
    cv::dnn::Net net = cv::dnn::readNetFromONNX(onnx);
    try {
      got = RunOpenCv(net, test->inputs, 64);
    } catch (const cv::Exception&) {
      net = cv::dnn::readNetFromONNX(onnx);
      got = RunOpenCv(net, test->inputs, 1);
      batching = "one sample at a time (the network would not take a batch)";
    }
  } catch (const cv::Exception& e) {
    return Fail(std::string("OpenCV DNN cannot run model.onnx: ") + e.what());
  }
  if (got.sizes() != ref.sizes())
    return Fail("OpenCV outputs " + c10::str(got.sizes()) + ", LibTorch " + c10::str(ref.sizes()));
  const int64_t k = std::min<int64_t>(compare, ref.size(0));
  const double max_diff = (got.slice(0, 0, k) - ref.slice(0, 0, k)).abs().max().item<double>();
  auto pred_ref = ref.argmax(1), pred_cv = got.argmax(1);
  const double acc_ref = pred_ref.eq(test->labels).to(torch::kDouble).mean().item<double>();
  const double acc_cv = pred_cv.eq(test->labels).to(torch::kDouble).mean().item<double>();
  report["runtime"] = std::string("OpenCV DNN ") + CV_VERSION;
  report["opencv_input"] = batching;
  report["samples_compared"] = k;
  report["max_abs_diff"] = max_diff;
  report["output_max_abs"] = ref.slice(0, 0, k).abs().max().item<double>();
  report["test_samples"] = test->size();
  report["accuracy_libtorch"] = acc_ref;
  report["accuracy_opencv"] = acc_cv;
  report["argmax_disagreements"] = pred_ref.ne(pred_cv).sum().item<int64_t>();
  report["accuracy_equal"] = acc_ref == acc_cv;
  if (report_path.empty())
    std::printf("%s\n", report.dump().c_str());
  else
    std::ofstream(report_path) << report.dump() << "\n";
  if (acc_ref != acc_cv)
    return Fail("OpenCV's test accuracy " + std::to_string(acc_cv) + " differs from LibTorch's " + std::to_string(acc_ref), 3);
  return 0;
}

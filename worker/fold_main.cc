// prunelab-fold: folds a model's preprocessing into it (used by `prunelab export
// --fold-preprocessing`, which knows the sweep's dataset and input shape).
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/flags/flags.h"
#include "common/spec/files.h"
#include "worker/engine/model/fold.h"

int main(int argc, char** argv) {
  std::string in, out;
  std::vector<int64_t> shape;
  std::vector<double> mean, stdev;
  CLI::App app("prunelab-fold: wraps a TorchScript model so it takes pixel values 0-255 (N x C x H x W, any size) and "
               "applies the scaling, channel conversion, resize and mean/std the model was trained with",
               "prunelab-fold");
  app.add_option("--in", in, "the exported model.pt")->required();
  app.add_option("--out", out, "where the wrapped model goes")->required();
  app.add_option("--input-shape", shape, "one sample's shape, e.g. 3 32 32")->delimiter(',')->required();
  app.add_option("--mean", mean, "per-channel mean of [0, 1] pixels")->delimiter(',');
  app.add_option("--std", stdev, "per-channel std")->delimiter(',');
  if (auto rc = prunelab::flags::Parse(app, argc, argv)) return *rc;
  auto bytes = prunelab::ReadRegularFile(in, prunelab::kMaxUserModelBytes, "--in");
  if (!bytes.ok()) {
    std::fprintf(stderr, "prunelab-fold: %s\n", bytes.status().ToString().c_str());
    return 1;
  }
  auto folded = prunelab::worker::FoldPreprocessing(bytes.value(), {shape, mean, stdev});
  if (!folded.ok()) {
    std::fprintf(stderr, "prunelab-fold: %s\n", folded.status().ToString().c_str());
    return 1;
  }
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  f << folded.value();
  if (!f) {
    std::fprintf(stderr, "prunelab-fold: cannot write %s\n", out.c_str());
    return 1;
  }
  return 0;
}

// Shared setup for the bench programs: the zoo CNN, a sample pool, and --json handling.
#pragma once

#include <torch/torch.h>

#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "common/base/stats.h"
#include "bench/bench_flags.h"
#include "worker/engine/data/fashion_mnist.h"

namespace prunelab::bench {

// Real Fashion-MNIST test images when installed, else seeded noise of the same shape
// (timings do not depend on pixel values).
inline worker::Dataset SamplePool(int64_t n) {
  auto d = worker::LoadFashionMnist("/usr/share/datasets/fashion-mnist", false, static_cast<uint32_t>(n));
  if (d.ok()) return std::move(d).value();
  torch::manual_seed(1);
  worker::Dataset s;
  s.inputs = torch::randn({n, 1, 28, 28});
  s.labels = torch::zeros({n}, torch::kInt64);
  return s;
}

// Runs a shell command, returning its stdout; *code gets its exit status (-1: it did not run).
inline std::string RunCapture(const std::string& cmd, int* code) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    *code = -1;
    return out;
  }
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int st = pclose(p);
  *code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// Debian's interpreter: python3-torch and python3-torchvision are Debian packages, and a
// pyenv python3 first on PATH lacks them.
inline std::string DebianPython() { return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

// "a,b,c" -> {a, b, c} (blanks trimmed, empty items dropped).
inline std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.erase(item.begin());
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace prunelab::bench

#include "common/spec/spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <fmt/printf.h>

#include "common/base/hash.h"
#include "common/base/result_metrics.h"
#include "common/base/text.h"
#include "common/spec/files.h"
#include "common/spec/objectives.h"
#include "common/spec/zoo_names.h"

namespace prunelab {

const std::vector<std::string>& AllowedTasks() {
  static const std::vector<std::string> v{"image_classification", "causal_lm"};
  return v;
}

const std::vector<std::string>& AllowedModels() {
  static const std::vector<std::string> v{"mlp", "cnn", "resnet", "vit", "gpt", "{torchscript: PATH, input_shape: [...]}"};
  return v;
}
const std::vector<std::string>& AllowedCriteria() {
  static const std::vector<std::string> v{"random", "l1", "l2", "gradient", "taylor", "activation", "apoz", "wanda", "sparsegpt", "loss", "angular"};
  return v;
}
const std::vector<std::string>& AllowedGranularities() {
  static const std::vector<std::string> v{"unstructured", "structured", "channel (= structured)", "N:M (e.g. 2:4, 4:8)",
                                          "depth (whole residual blocks)"};
  return v;
}
bool IsStructured(const std::string& g) { return g == "structured" || g == "channel"; }

bool ParseNm(const std::string& g, int* n, int* m) {
  auto colon = g.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= g.size()) return false;
  for (size_t i = 0; i < g.size(); ++i)
    if (i != colon && !std::isdigit(static_cast<unsigned char>(g[i]))) return false;
  if (g.size() > 8) return false;
  *n = std::stoi(g.substr(0, colon));
  *m = std::stoi(g.substr(colon + 1));
  return *n > 0 && *n < *m && *m <= 64;
}
const std::vector<std::string>& AllowedScenarios() {
  static const std::vector<std::string> v{"single_stream", "multi_stream", "server", "offline"};
  return v;
}
const std::vector<std::string>& AllowedSchedules() {
  static const std::vector<std::string> v{"one_shot", "iterative"};
  return v;
}

namespace {

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Limits on what one spec may ask for; each error names the limit.
constexpr size_t kMaxListItems = 1000;  // any list field (sparsities, layers, exclude, ...)
constexpr size_t kMaxTargets = 64;
constexpr int kMaxYamlDepth = 32;

// Deepest [ / { nesting in flow style, outside quotes and comments. Checked before the YAML
// parser runs: yaml-cpp recurses per level and would exhaust the stack on a hostile file.
int FlowNestingDepth(const std::string& text) {
  int depth = 0, deepest = 0;
  char quote = 0;
  bool comment = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (comment) {
      if (c == '\n') comment = false;
      continue;
    }
    if (quote) {
      if (c == quote && !(quote == '"' && i > 0 && text[i - 1] == '\\')) quote = 0;
      continue;
    }
    if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' || text[i - 1] == '\n')) comment = true;
    else if (c == '"' || c == '\'') quote = c;
    else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    else if ((c == ']' || c == '}') && depth > 0) --depth;
  }
  return deepest;
}

// Collects every problem so the user fixes a spec in one pass.
class Checker {
 public:
  void Error(const std::string& path, const std::string& what) { errors_.push_back(path + ": " + what); }
  bool ok() const { return errors_.empty(); }
  std::string Report() const {
    std::string out = "invalid sweep spec (" + std::to_string(errors_.size()) + " problem" +
                      (errors_.size() == 1 ? "" : "s") + "):";
    for (const auto& e : errors_) out += "\n  " + e;
    return out;
  }

  void OnlyKeys(const YAML::Node& map, const std::string& path, const std::vector<std::string>& allowed) {
    for (const auto& kv : map) {
      std::string key = kv.first.as<std::string>("");
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        Error(Child(path, key), "unknown field (allowed fields: " + Join(allowed) + ")");
    }
  }

  bool IsMap(const YAML::Node& n, const std::string& path) {
    if (n.IsMap()) return true;
    Error(path, "must be a mapping of fields");
    return false;
  }

  template <typename T>
  void Number(const YAML::Node& map, const std::string& path, const std::string& key, T* out, double lo,
              double hi) {
    YAML::Node n = map[key];
    if (!n) return;  // keep the default
    std::string p = Child(path, key);
    double v = 0;
    try {
      if (!n.IsScalar()) throw YAML::BadConversion(n.Mark());
      v = n.as<double>();
    } catch (const YAML::Exception&) {
      Error(p, "must be a number in [" + Fmt(lo) + ", " + Fmt(hi) + "]");
      return;
    }
    if (std::is_integral<T>::value && std::floor(v) != v) {
      Error(p, "must be a whole number, got " + Fmt(v));
      return;
    }
    if (!(v >= lo && v <= hi)) {
      Error(p, "must be in [" + Fmt(lo) + ", " + Fmt(hi) + "], got " + Fmt(v));
      return;
    }
    *out = static_cast<T>(v);
  }

  void Bool(const YAML::Node& map, const std::string& path, const std::string& key, bool* out) {
    YAML::Node n = map[key];
    if (!n) return;
    try {
      *out = n.as<bool>();
    } catch (const YAML::Exception&) {
      Error(Child(path, key), "must be true or false");
    }
  }

  // "A scalar or a list of them": each item with its path ("sweep.sparsity" for a scalar,
  // "sweep.sparsity[2]" in a list). `empty_hint` is the error for an empty list.
  std::vector<std::pair<std::string, YAML::Node>> Items(const YAML::Node& n, const std::string& path,
                                                        const std::string& empty_hint, size_t max_items = kMaxListItems) {
    std::vector<std::pair<std::string, YAML::Node>> items;
    if (!n.IsSequence()) {
      items.emplace_back(path, n);
      return items;
    }
    if (n.size() > max_items) {
      Error(path, "has " + std::to_string(n.size()) + " items; the limit is " + std::to_string(max_items));
      return items;
    }
    for (size_t i = 0; i < n.size(); ++i) items.emplace_back(path + "[" + std::to_string(i) + "]", n[i]);
    if (items.empty()) Error(path, "must not be empty" + empty_hint);
    return items;
  }

  // Appends v unless it is already there ("'x' is listed twice" at path).
  template <typename T>
  bool AddUnique(std::vector<T>* out, const T& v, const std::string& path, const std::string& shown) {
    if (std::find(out->begin(), out->end(), v) != out->end()) {
      Error(path, shown + " is listed twice");
      return false;
    }
    out->push_back(v);
    return true;
  }

  // Reads a scalar or a list of scalars constrained to `allowed`.
  std::vector<std::string> Choices(const YAML::Node& n, const std::string& path,
                                   const std::vector<std::string>& allowed) {
    std::vector<std::string> out;
    if (!n) {
      Error(path, "is required (allowed values: " + Join(allowed) + ")");
      return out;
    }
    for (const auto& [p, item] : Items(n, path, " (allowed values: " + Join(allowed) + ")")) {
      if (!item.IsScalar()) {
        Error(p, "must be one of: " + Join(allowed));
        continue;
      }
      std::string v = item.as<std::string>();
      if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
        Error(p, "'" + v + "' is not allowed (allowed values: " + Join(allowed) + ")");
      else
        AddUnique(&out, v, p, "'" + v + "'");
    }
    return out;
  }

  // A scalar or a list of names, taken as they are (checked against the model later).
  std::vector<std::string> Names(const YAML::Node& n, const std::string& path) {
    std::vector<std::string> out;
    if (n.IsSequence() && n.size() == 0) return out;  // an empty list of names is allowed
    for (const auto& item : Items(n, path, "")) out.push_back(item.second.IsScalar() ? item.second.as<std::string>() : "");
    return out;
  }

  static std::string Child(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }
  static std::string Fmt(double v) {
    return fmt::sprintf("%g", v);
  }

 private:
  std::vector<std::string> errors_;
};

bool ValidName(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// A schedule's defaults: a language model fine-tunes with AdamW at 1e-3 (SGD's 0.01 is the
// image default).
ScheduleSpec DefaultSchedule(const SweepSpec& spec) {
  ScheduleSpec s;
  if (spec.training.optimizer == "adamw") s.finetune_learning_rate = 1e-3;
  return s;
}

void ParseSchedule(Checker& c, const YAML::Node& n, const std::string& path, SweepSpec* spec) {
  ScheduleSpec s = DefaultSchedule(*spec);
  if (n.IsScalar()) {
    auto v = c.Choices(n, path, AllowedSchedules());
    if (v.empty()) return;
    s.type = v[0];
  } else if (c.IsMap(n, path)) {
    c.OnlyKeys(n, path, {"type", "finetune_epochs", "finetune_fraction", "learning_rate", "rounds", "curve", "rewind",
                         "distill"});
    auto v = c.Choices(n["type"], Checker::Child(path, "type"), AllowedSchedules());
    if (v.empty()) return;
    s.type = v[0];
    c.Number(n, path, "finetune_epochs", &s.finetune_epochs, 0, 100);
    c.Number(n, path, "finetune_fraction", &s.finetune_fraction, 0, 10);
    if (n["finetune_epochs"] && n["finetune_fraction"])
      c.Error(Checker::Child(path, "finetune_fraction"), "give finetune_epochs or finetune_fraction, not both");
    c.Number(n, path, "learning_rate", &s.finetune_learning_rate, 1e-6, 10);
    c.Number(n, path, "rounds", &s.rounds, 1, 100);
    if (n["curve"]) {
      auto cv = c.Choices(n["curve"], Checker::Child(path, "curve"), {"linear", "cubic"});
      if (!cv.empty()) s.curve = cv[0];
    }
    c.Number(n, path, "rewind", &s.rewind, 0, 1);
    if (n["distill"]) {
      // Knowledge distillation: fine-tuning learns the dense baseline's softened outputs too.
      const std::string dp = Checker::Child(path, "distill");
      if (c.IsMap(n["distill"], dp)) {
        c.OnlyKeys(n["distill"], dp, {"temperature", "alpha"});
        s.distill_temperature = 4;
        c.Number(n["distill"], dp, "temperature", &s.distill_temperature, 0.5, 100);
        c.Number(n["distill"], dp, "alpha", &s.distill_alpha, 0, 1);
      }
    }
    if (s.type != "iterative" && (n["rounds"] || n["curve"]))
      c.Error(Checker::Child(path, "rounds"), "rounds and curve apply to type iterative only");
  } else {
    return;
  }
  spec->schedules.push_back(s);
}

// Checks that span sections: names against the zoo model, criteria against granularities.
const std::vector<std::string>& LatencyFields() {
  static const std::vector<std::string> f = [] {
    std::vector<std::string> names;
    for (const auto& m : ResultMetrics())
      if (m.IsLatency()) names.push_back(m.name);
    return names;
  }();
  return f;
}

void ParseReport(Checker& c, const YAML::Node& r, ReportSpec* out) {
  if (!c.IsMap(r, "report")) return;
  c.OnlyKeys(r, "report", {"objectives", "recommend", "gates"});
  if (YAML::Node o = r["objectives"]) {
    std::string text;
    std::vector<YAML::Node> items;
    if (o.IsSequence()) for (const auto& i : o) items.push_back(i); else items.push_back(o);
    for (const auto& i : items) text += (text.empty() ? "" : ",") + (i.IsScalar() ? i.as<std::string>() : std::string("?"));
    auto parsed = ParseObjectives(text);
    if (!parsed.ok()) c.Error("report.objectives", parsed.status().message());
    else out->objectives = text;
  }
  if (r["recommend"]) {
    auto v = c.Choices(r["recommend"], "report.recommend", {"fastest", "most_accurate", "knee"});
    if (!v.empty()) out->recommend = v[0];
  }
  if (YAML::Node g = r["gates"]) {
    if (!c.IsMap(g, "report.gates")) return;
    GateSpec& gs = out->gates;
    c.OnlyKeys(g, "report.gates", {"max_accuracy_drop", "max_perplexity_ratio", "max_worst_class_drop",
                                   "latency_budget_ms", "max_memory_fraction", "min_throughput_sps"});
    c.Number(g, "report.gates", "max_perplexity_ratio", &gs.max_perplexity_ratio, 1, 1e6);
    c.Number(g, "report.gates", "max_accuracy_drop", &gs.max_accuracy_drop, 0, 100);
    c.Number(g, "report.gates", "max_worst_class_drop", &gs.max_worst_class_drop, 0, 100);
    c.Number(g, "report.gates", "max_memory_fraction", &gs.max_memory_fraction, 0, 10);
    c.Number(g, "report.gates", "min_throughput_sps", &gs.min_throughput_sps, 0, 1e12);
    if (YAML::Node lb = g["latency_budget_ms"]) {
      if (c.IsMap(lb, "report.gates.latency_budget_ms")) {
        for (const auto& kv : lb) {
          std::string field = kv.first.as<std::string>();
          if (std::find(LatencyFields().begin(), LatencyFields().end(), field) == LatencyFields().end()) {
            c.Error("report.gates.latency_budget_ms." + field, "not a latency field (allowed: " + Join(LatencyFields()) + ")");
            continue;
          }
          double v = 0;
          c.Number(lb, "report.gates.latency_budget_ms", field, &v, 1e-6, 1e6);
          gs.latency_budget_ms[field] = v;
        }
      }
    }
  }
}

// Granularity depth ranks whole blocks (loss, angular, random); the other granularities
// rank weights or structures, which loss and angular do not.
void CheckDepth(Checker& c, SweepSpec* spec) {
  const bool depth = std::find(spec->granularities.begin(), spec->granularities.end(), "depth") != spec->granularities.end();
  const bool others = spec->granularities.size() > (depth ? 1u : 0u);
  const std::vector<std::string> block_criteria{"loss", "angular", "random"};
  for (size_t i = 0; i < spec->criteria.size(); ++i) {
    const std::string& cr = spec->criteria[i];
    const bool ranks_blocks = cr == "loss" || cr == "angular";
    if (depth && std::find(block_criteria.begin(), block_criteria.end(), cr) == block_criteria.end())
      c.Error("sweep.criterion", "'" + cr + "' scores weights or structures; granularity depth ranks whole blocks "
              "(allowed with depth: loss, angular, random; run other criteria in a separate sweep)");
    else if (ranks_blocks && others)
      c.Error("sweep.criterion", "'" + cr + "' ranks residual blocks; use it with granularity depth only "
              "(this sweep also lists another granularity: run those in a separate sweep)");
  }
  if (spec->mode == "sensitivity" && (spec->quantize.size() != 1 || spec->quantize[0] != "none"))
    c.Error("sweep.quantize", "does not apply to mode sensitivity (its trials are evaluated unquantized)");
  if (!depth) return;
  if (spec->mode == "sensitivity")
    c.Error("sweep.granularity", "depth does not apply to mode sensitivity (the loss criterion already measures each block skipped alone)");
  for (const auto& s : spec->schedules)
    if (s.rewind >= 0) c.Error("sweep.schedule.rewind", "does not apply to granularity depth");
  if (!spec->pruning.overrides.empty())
    c.Error("pruning.overrides", "do not apply to granularity depth (blocks are removed whole)");
  if (spec->model != "torchscript" && ZooBlockNames(spec->model).empty())
    c.Error("sweep.granularity", "depth: zoo model '" + spec->model + "' has no residual blocks (depth applies to resnet, "
            "vit and torchscript models with y = x + f(x) blocks)");
}

void CrossCheck(Checker& c, SweepSpec* spec) {
  CheckDepth(c, spec);
  const bool lm = spec->dataset.task == "causal_lm";
  if (spec->model != "torchscript" && (spec->model == "gpt") != lm)
    c.Error("model", lm ? "'" + spec->model + "' is an image classifier; task causal_lm takes gpt (the zoo decoder) or "
                          "{torchscript: PATH} (your decoder: int64 ids [batch, tokens] -> logits [batch, tokens, vocabulary])"
                        : "'gpt' is a language model: give task: causal_lm (and a text or tokens dataset)");
  bool any_structured = false, any_masked = false;
  for (const auto& g : spec->granularities) {
    if (g == "depth") continue;
    (IsStructured(g) ? any_structured : any_masked) = true;
  }
  for (const auto& cr : spec->criteria)
    if ((cr == "wanda" || cr == "sparsegpt") && any_structured)
      c.Error("sweep.criterion", "'" + cr + "' prunes single weights from what the layer sees on calibration data; use it "
              "with granularity unstructured or N:M (this sweep also lists structured: run those in a separate sweep)");
  for (const auto& cr : spec->criteria)
    if ((cr == "activation" || cr == "apoz") && any_masked)
      c.Error("sweep.criterion", "'" + cr + "' scores whole structures from their outputs; use it with granularity "
              "structured only (this sweep also lists a mask granularity: run those in a separate sweep)");
  const bool zoo = spec->model != "torchscript";
  std::vector<std::string> layers = ZooLayerNames(spec->model), groups = ZooGroupNames(spec->model),
                           blocks = ZooBlockNames(spec->model);
  auto known = [&](const std::string& n) {
    return n == "first" || n == "last" || std::find(layers.begin(), layers.end(), n) != layers.end() ||
           std::find(groups.begin(), groups.end(), n) != groups.end() ||
           std::find(blocks.begin(), blocks.end(), n) != blocks.end();
  };
  std::string names = "layers: " + Join(layers) + "; groups: " + Join(groups) +
                      (blocks.empty() ? "" : "; blocks: " + Join(blocks)) + "; or first, last";
  if (zoo) {
    for (size_t i = 0; i < spec->pruning.exclude.size(); ++i)
      if (!known(spec->pruning.exclude[i]))
        c.Error("pruning.exclude[" + std::to_string(i) + "]", "'" + spec->pruning.exclude[i] + "' is not in " + spec->model + " (" + names + ")");
    for (const auto& o : spec->pruning.overrides)
      if (!known(o.name)) c.Error("pruning.overrides." + o.name, "not in " + spec->model + " (" + names + ")");
  }
  if (spec->mode == "sensitivity") {
    if (any_structured && any_masked)
      c.Error("sweep.granularity", "a sensitivity sweep prunes either layers (unstructured, N:M) or structure groups (structured), not both");
    const auto& pool = any_structured ? groups : layers;
    if (spec->layers.empty()) {
      if (!zoo) c.Error("sweep.layers", "is required for a torchscript model in sensitivity mode: the layer names to probe");
      spec->layers = pool;
    } else if (zoo) {
      for (size_t i = 0; i < spec->layers.size(); ++i)
        if (std::find(pool.begin(), pool.end(), spec->layers[i]) == pool.end())
          c.Error("sweep.layers[" + std::to_string(i) + "]", "'" + spec->layers[i] + "' is not a " +
                  (any_structured ? "structure group" : "prunable layer") + " of " + spec->model + " (allowed: " + Join(pool) + ")");
    }
  }
}

// Duplicate keys (yaml-cpp keeps both and reads the first: `model:` twice was accepted
// silently) and nesting depth, over the whole document.
void CheckStructure(Checker& c, const YAML::Node& n, const std::string& path, int depth) {
  if (depth > kMaxYamlDepth) {
    c.Error(path.empty() ? "(top level)" : path, "nested deeper than " + std::to_string(kMaxYamlDepth) + " levels");
    return;
  }
  if (n.IsMap()) {
    std::set<std::string> seen;
    for (const auto& kv : n) {
      std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "(non-scalar key)";
      std::string child = path.empty() ? key : path + "." + key;
      if (!seen.insert(key).second)
        c.Error(child, "appears twice (line " + std::to_string(kv.first.Mark().line + 1) + "); give each field once");
      CheckStructure(c, kv.second, child, depth + 1);
    }
  } else if (n.IsSequence()) {
    size_t i = 0;
    for (const auto& item : n) CheckStructure(c, item, path + "[" + std::to_string(i++) + "]", depth + 1);
  }
}

void ParseName(Checker& c, const YAML::Node& root, SweepSpec* spec) {
  if (!root["name"] || !root["name"].IsScalar()) {
    c.Error("name", "is required: a sweep name of letters, digits, '-', '_', '.'");
    return;
  }
  spec->name = root["name"].as<std::string>();
  if (!ValidName(spec->name)) c.Error("name", Quoted(spec->name) + " must be 1-64 letters, digits, '-', '_' or '.'");
}

// A zoo name, or {torchscript: PATH, input_shape: [...]} for a user's model.
void ParseModel(Checker& c, const YAML::Node& mn, bool lm, SweepSpec* spec) {
  if (!mn || !mn.IsMap()) {
    std::vector<std::string> zoo(ZooModelNames());
    auto models = c.Choices(mn, "model", zoo);
    if (models.size() > 1) c.Error("model", "exactly one model per sweep");
    if (!models.empty()) spec->model = models[0];
    return;
  }
  c.OnlyKeys(mn, "model", {"torchscript", "input_shape"});
  spec->model = "torchscript";
  if (!mn["torchscript"] || !mn["torchscript"].IsScalar() || mn["torchscript"].as<std::string>().empty())
    c.Error("model.torchscript", "is required: the path of a TorchScript file (torch.jit.save), relative to the spec");
  else
    spec->model_path = mn["torchscript"].as<std::string>();
  YAML::Node is = mn["input_shape"];
  if (lm && is) {
    c.Error("model.input_shape", "does not apply to task causal_lm: the model reads dataset.sequence_length token ids");
    return;
  }
  if (lm) return;
  if (!is || !is.IsSequence() || is.size() == 0) {
    c.Error("model.input_shape", "is required: the per-sample input shape, e.g. [1, 28, 28] or [784]");
    return;
  }
  for (size_t i = 0; i < is.size(); ++i) {
    int64_t d = 0;
    try {
      d = is[i].as<int64_t>();
    } catch (const YAML::Exception&) {
    }
    if (d <= 0) c.Error("model.input_shape[" + std::to_string(i) + "]", "must be a positive whole number");
    spec->input_shape.push_back(d);
  }
}

// The language-modeling part of a dataset: text (a corpus directory, tokenized on the
// worker with a SentencePiece model trained to vocab_size or the user's tokenizer) or tokens
// (DIR/train.bin + DIR/val.bin, or .npy, with ids below vocab_size); windows of
// sequence_length ids.
void ParseTextDataset(Checker& c, const YAML::Node& d, DatasetConfig* out) {
  c.OnlyKeys(d, "dataset", {"name", "path", "train_subset", "test_subset", "sequence_length", "vocab_size", "tokenizer"});
  out->sequence_length = 64;
  c.Number(d, "dataset", "sequence_length", &out->sequence_length, 2, 4096);
  if (out->name == "tokens" && !d["vocab_size"])
    c.Error("dataset.vocab_size", "is required for name tokens: every token id in the files lies below it (2 to 65536)");
  if (out->name == "text" && !d["tokenizer"] && !d["vocab_size"]) out->vocab_size = 512;
  c.Number(d, "dataset", "vocab_size", &out->vocab_size, out->name == "text" ? 8 : 2, 65536);
  if (YAML::Node t = d["tokenizer"]) {
    if (out->name != "text") c.Error("dataset.tokenizer", "applies to name text (token files are already tokenized)");
    else if (!t.IsScalar() || t.as<std::string>().empty())
      c.Error("dataset.tokenizer", "must be the path of a SentencePiece .model file on the workers");
    else if (d["vocab_size"])
      c.Error("dataset.vocab_size", "give vocab_size (prunelab trains a tokenizer of that size) or tokenizer (yours), not both");
    else out->tokenizer = t.as<std::string>();
  }
  c.Number(d, "dataset", "train_subset", &out->train_subset, 0, 100000000);
  c.Number(d, "dataset", "test_subset", &out->test_subset, 0, 100000000);
}

void ParseDataset(Checker& c, const YAML::Node& d, DatasetConfig* out) {
  const bool lm = out->task == "causal_lm";
  if (lm) {
    out->name = "text";
    out->path = "/usr/share/games/fortunes";
    out->vocab_size = 512;
    out->sequence_length = 64;
  }
  if (!d) return;
  if (!c.IsMap(d, "dataset")) return;
  if (d["name"]) {
    // The format: IDX files (Fashion-MNIST's layout), NumPy arrays, or a folder per class;
    // for language modeling, raw text or token files.
    auto v = lm ? c.Choices(d["name"], "dataset.name", {"text", "tokens"})
                : c.Choices(d["name"], "dataset.name", {"fashion-mnist", "idx", "npy", "folder"});
    if (!v.empty()) out->name = v[0];
  }
  if (d["path"]) out->path = d["path"].as<std::string>();
  if (lm) return ParseTextDataset(c, d, out);
  c.OnlyKeys(d, "dataset", {"name", "path", "train_subset", "test_subset", "mean", "std", "classes"});
  const bool idx = out->name == "fashion-mnist" || out->name == "idx";
  c.Number(d, "dataset", "train_subset", &out->train_subset, 0, idx ? 60000 : 100000000);
  c.Number(d, "dataset", "test_subset", &out->test_subset, 0, idx ? 10000 : 100000000);
  for (const char* key : {"mean", "std"}) {
    if (!d[key]) continue;
    auto* dst = std::string(key) == "mean" ? &out->mean : &out->std;
    const std::string path = std::string("dataset.") + key;
    if (idx) {
      c.Error(path, "applies to npy and folder datasets (IDX data is normalized with Fashion-MNIST's mean and std)");
      continue;
    }
    for (const auto& [p, item] : c.Items(d[key], path, ": one value per input channel, e.g. [0.485, 0.456, 0.406]", 64)) {
      double v = std::nan("");
      try {
        v = item.as<double>();
      } catch (const YAML::Exception&) {
      }
      bool ok = std::string(key) == "mean" ? std::isfinite(v) : (std::isfinite(v) && v > 0);
      if (!ok) c.Error(p, std::string(key) == "mean" ? "must be a number" : "must be a positive number");
      else dst->push_back(v);
    }
  }
  if (!out->mean.empty() && !out->std.empty() && out->mean.size() != out->std.size())
    c.Error("dataset.std", "has " + std::to_string(out->std.size()) + " values; dataset.mean has " +
                               std::to_string(out->mean.size()) + " (one per input channel each)");
  if (d["classes"]) {
    for (const auto& [p, item] : c.Items(d["classes"], "dataset.classes", ": the class names in label order", 100000)) {
      if (!item.IsScalar() || item.as<std::string>().empty()) c.Error(p, "must be a class name");
      else c.AddUnique(&out->class_names, item.as<std::string>(), p, "'" + item.as<std::string>() + "'");
    }
  }
}

void ParseTraining(Checker& c, const YAML::Node& t, bool user_model, TrainingConfig* out) {
  if (!c.IsMap(t, "training")) return;
  c.OnlyKeys(t, "training", {"epochs", "batch_size", "learning_rate", "momentum", "weight_decay", "seed", "precision",
                             "optimizer"});
  if (t["optimizer"]) {
    auto v = c.Choices(t["optimizer"], "training.optimizer", {"sgd", "adamw"});
    if (!v.empty()) out->optimizer = v[0];
  }
  if (t["precision"]) {
    auto v = c.Choices(t["precision"], "training.precision", {"fp32", "bf16"});
    if (!v.empty()) out->precision = v[0];
  }
  // A user's model may arrive trained: epochs 0 takes it as the baseline as it is.
  c.Number(t, "training", "epochs", &out->epochs, user_model ? 0 : 1, 1000);
  c.Number(t, "training", "batch_size", &out->batch_size, 1, 65536);
  c.Number(t, "training", "learning_rate", &out->learning_rate, 1e-6, 10);
  c.Number(t, "training", "momentum", &out->momentum, 0, 0.999);
  c.Number(t, "training", "weight_decay", &out->weight_decay, 0, 1);
  c.Number(t, "training", "seed", &out->seed, 0, 9007199254740991.0);
}

// unstructured, structured (= channel), or an N:M pattern such as 2:4.
void ParseGranularities(Checker& c, const YAML::Node& g, std::vector<std::string>* out) {
  const std::string allowed = " (allowed values: " + Join(AllowedGranularities()) + ")";
  if (!g) {
    c.Error("sweep.granularity", "is required" + allowed);
    return;
  }
  const std::vector<std::string> fixed{"unstructured", "structured", "channel", "depth"};
  for (const auto& [p, item] : c.Items(g, "sweep.granularity", allowed)) {
    std::string v = item.IsScalar() ? item.as<std::string>() : "";
    int n = 0, m = 0;
    if (std::find(fixed.begin(), fixed.end(), v) == fixed.end() && !ParseNm(v, &n, &m))
      c.Error(p, "'" + v + "' is not allowed (allowed values: " + Join(AllowedGranularities()) +
                     "; N:M needs 0 < N < M <= 64)");
    else
      c.AddUnique(out, v, p, "'" + v + "'");
  }
}

void ParseSparsities(Checker& c, const YAML::Node& sp, std::vector<double>* out) {
  if (!sp) {
    c.Error("sweep.sparsity", "is required: a list of fractions in (0, 1), e.g. [0.5, 0.8]");
    return;
  }
  for (const auto& [p, item] : c.Items(sp, "sweep.sparsity", ": a list of fractions in (0, 1)")) {
    double v = -1;
    try {
      v = item.as<double>();
    } catch (const YAML::Exception&) {
    }
    if (!(v > 0 && v < 1))
      c.Error(p, "must be a fraction in (0, 1), e.g. 0.5 for 50 %");
    else
      c.AddUnique(out, v, p, Checker::Fmt(v));
  }
}

void ParseSweep(Checker& c, const YAML::Node& s, SweepSpec* spec) {
  if (!s) {
    c.Error("sweep", "is required: a mapping with criterion, granularity, sparsity, schedule");
    return;
  }
  if (!c.IsMap(s, "sweep")) return;
  c.OnlyKeys(s, "sweep", {"mode", "criterion", "granularity", "sparsity", "schedule", "layers", "quantize"});
  if (s["quantize"]) {
    spec->quantize = c.Choices(s["quantize"], "sweep.quantize", {"none", "int8", "int8_dynamic"});
    if (spec->quantize.empty()) spec->quantize = {"none"};
  }
  if (s["mode"]) {
    auto v = c.Choices(s["mode"], "sweep.mode", {"grid", "sensitivity"});
    if (!v.empty()) spec->mode = v[0];
  }
  if (YAML::Node ls = s["layers"]) {
    spec->layers = c.Names(ls, "sweep.layers");
    if (spec->mode != "sensitivity") c.Error("sweep.layers", "applies to mode sensitivity only");
  }
  spec->criteria = c.Choices(s["criterion"], "sweep.criterion", AllowedCriteria());
  ParseGranularities(c, s["granularity"], &spec->granularities);
  ParseSparsities(c, s["sparsity"], &spec->sparsities);
  YAML::Node sc = s["schedule"];
  if (!sc) {
    spec->schedules.push_back(DefaultSchedule(*spec));
  } else if (sc.IsSequence()) {
    if (sc.size() == 0) c.Error("sweep.schedule", "must not be empty");
    for (size_t i = 0; i < sc.size(); ++i) ParseSchedule(c, sc[i], "sweep.schedule[" + std::to_string(i) + "]", spec);
  } else {
    ParseSchedule(c, sc, "sweep.schedule", spec);
  }
}

void ParsePruning(Checker& c, const YAML::Node& p, PruningSpec* ps) {
  if (!c.IsMap(p, "pruning")) return;
  c.OnlyKeys(p, "pruning", {"scope", "min_keep", "exclude", "overrides", "round_to", "calibration_batches"});
  if (p["scope"]) {
    auto v = c.Choices(p["scope"], "pruning.scope", {"layer", "global"});
    if (!v.empty()) ps->scope = v[0];
  }
  c.Number(p, "pruning", "min_keep", &ps->min_keep, 0, 1);
  c.Number(p, "pruning", "round_to", &ps->round_to, 1, 4096);
  c.Number(p, "pruning", "calibration_batches", &ps->calibration_batches, 1, 10000);
  if (YAML::Node ex = p["exclude"]) ps->exclude = c.Names(ex, "pruning.exclude");
  YAML::Node ov = p["overrides"];
  if (!ov) return;
  if (!ov.IsMap()) {
    c.Error("pruning.overrides", "must map layer or group names to sparsities, e.g. {fc1: 0.9}");
    return;
  }
  for (const auto& kv : ov) {
    std::string name = kv.first.as<std::string>("");
    double v = -1;
    try {
      v = kv.second.as<double>();
    } catch (const YAML::Exception&) {
    }
    if (!(v >= 0 && v < 1)) c.Error("pruning.overrides." + name, "must be a sparsity in [0, 1)");
    else ps->overrides.push_back({name, v});
  }
}

void ParseBenchmark(Checker& c, const YAML::Node& b, BenchmarkConfig* bc) {
  if (!c.IsMap(b, "benchmark")) return;
  c.OnlyKeys(b, "benchmark", {"profile", "scenarios", "warmup_queries", "min_queries", "min_duration_s",
                              "max_duration_s", "offline_batch_size", "offline_min_samples", "offline_min_duration_s",
                              "multi_stream_samples", "server_latency_bound_ms", "server_target_qps", "ab_rounds",
                              "sparse_forms", "threads", "confirm_rounds", "confirm_candidates"});
  if (b["profile"]) {
    auto v = c.Choices(b["profile"], "benchmark.profile", {"lab", "mlperf"});
    if (!v.empty()) bc->profile = v[0];
  }
  if (b["scenarios"]) bc->scenarios = c.Choices(b["scenarios"], "benchmark.scenarios", AllowedScenarios());
  c.Number(b, "benchmark", "warmup_queries", &bc->warmup_queries, 0, 1e6);
  c.Number(b, "benchmark", "min_queries", &bc->min_queries, 1, 1e7);
  c.Number(b, "benchmark", "min_duration_s", &bc->min_duration_s, 0, 3600);
  c.Number(b, "benchmark", "max_duration_s", &bc->max_duration_s, 0.01, 86400);
  c.Number(b, "benchmark", "offline_batch_size", &bc->offline_batch_size, 1, 65536);
  c.Number(b, "benchmark", "offline_min_samples", &bc->offline_min_samples, 1, 1e8);
  c.Number(b, "benchmark", "offline_min_duration_s", &bc->offline_min_duration_s, 0, 3600);
  c.Number(b, "benchmark", "multi_stream_samples", &bc->multi_stream_samples, 1, 1024);
  c.Number(b, "benchmark", "server_latency_bound_ms", &bc->server_latency_bound_ms, 0.001, 1e6);
  c.Number(b, "benchmark", "server_target_qps", &bc->server_target_qps, 0, 1e7);
  c.Number(b, "benchmark", "ab_rounds", &bc->ab_rounds, 0, 100);
  c.Bool(b, "benchmark", "sparse_forms", &bc->sparse_forms);
  c.Number(b, "benchmark", "threads", &bc->threads, 1, 1024);
  c.Number(b, "benchmark", "confirm_rounds", &bc->confirm_rounds, 0, 100);
  c.Number(b, "benchmark", "confirm_candidates", &bc->confirm_candidates, 1,
           static_cast<double>(kMaxConfirmCandidates - 1));
  if (bc->max_duration_s < bc->min_duration_s || bc->max_duration_s < bc->offline_min_duration_s)
    c.Error("benchmark.max_duration_s", "must be at least min_duration_s and offline_min_duration_s");
}

// A target is a name, or {name: NAME, threads: N} when its deployment gives the model other
// than benchmark.threads intra-op threads.
void ParseTargets(Checker& c, const YAML::Node& tg, SweepSpec* spec) {
  std::vector<std::string>* out = &spec->targets;
  if (!tg) {
    *out = {"local"};
    return;
  }
  for (const auto& [p, item] : c.Items(tg, "targets", ": list at least one hardware target name, e.g. [local]", kMaxTargets)) {
    std::string v;
    uint32_t threads = 0;
    if (item.IsMap()) {
      c.OnlyKeys(item, p, {"name", "threads"});
      v = item["name"] && item["name"].IsScalar() ? item["name"].as<std::string>() : "";
      c.Number(item, p, "threads", &threads, 1, 1024);
    } else {
      v = item.IsScalar() ? item.as<std::string>() : "";
    }
    if (!ValidName(v)) {
      c.Error(item.IsMap() ? p + ".name" : p, "a target name is 1-64 letters, digits, '-', '_' or '.'");
    } else {
      c.AddUnique(out, v, p, "'" + v + "'");
      if (threads > 0) spec->target_threads[v] = threads;
    }
  }
}

}  // namespace

StatusOr<SweepSpec> ParseSpec(const std::string& yaml_text) {
  if (yaml_text.size() > kMaxSpecBytes)
    return Status::InvalidArgument("spec is " + std::to_string(yaml_text.size()) + " bytes; the limit is " +
                                   std::to_string(kMaxSpecBytes) + " bytes");
  if (size_t bad = 0; !IsValidUtf8(yaml_text, &bad))
    return Status::InvalidArgument("spec is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  if (int depth = FlowNestingDepth(yaml_text); depth > kMaxYamlDepth)
    return Status::InvalidArgument("spec nests [ ] / { } " + std::to_string(depth) + " levels deep; the limit is " +
                                   std::to_string(kMaxYamlDepth));
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("spec is not valid YAML: line " + std::to_string(e.mark.line + 1) +
                                   ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  if (!root || !root.IsMap())
    return Status::InvalidArgument(
        "invalid sweep spec: the top level must be a mapping with fields name, model, dataset, training, sweep, "
        "benchmark, targets");
  Checker c;
  SweepSpec spec;
  try {
    CheckStructure(c, root, "", 0);
    if (!c.ok()) return Status::InvalidArgument(c.Report());
    c.OnlyKeys(root, "", {"name", "task", "model", "dataset", "training", "pruning", "sweep", "benchmark", "targets",
                          "priority", "report"});
    if (root["task"]) {
      auto v = c.Choices(root["task"], "task", AllowedTasks());
      if (!v.empty()) spec.dataset.task = v[0];
    }
    const bool lm = spec.dataset.task == "causal_lm";
    if (YAML::Node r = root["report"]) ParseReport(c, r, &spec.report);
    c.Number(root, "", "priority", &spec.priority, -100, 100);
    ParseName(c, root, &spec);
    if (lm) {
      // Language-model defaults: AdamW (SGD trains a transformer slowly), short windows.
      spec.training.optimizer = "adamw";
      spec.training.learning_rate = 3e-3;
      spec.training.weight_decay = 0.1;
      spec.training.batch_size = 32;
    }
    ParseModel(c, root["model"], lm, &spec);
    ParseDataset(c, root["dataset"], &spec.dataset);
    if (YAML::Node t = root["training"]) ParseTraining(c, t, spec.model == "torchscript", &spec.training);
    ParseSweep(c, root["sweep"], &spec);
    if (YAML::Node p = root["pruning"]) ParsePruning(c, p, &spec.pruning);
    if (YAML::Node b = root["benchmark"]) ParseBenchmark(c, b, &spec.benchmark);
    ParseTargets(c, root["targets"], &spec);
    CrossCheck(c, &spec);
  } catch (const YAML::Exception& e) {
    c.Error("(line " + std::to_string(e.mark.line + 1) + ")", e.msg);
  }
  if (!c.ok()) return Status::InvalidArgument(c.Report());
  spec.spec_hash = ContentHash(yaml_text);
  return spec;
}

StatusOr<std::string> ReadSpecFile(const std::string& path) { return ReadSpecText(path); }

static std::string BaselineKeyText(const SweepSpec& spec) {
  std::ostringstream os;
  os.precision(17);
  const auto& d = spec.dataset;
  const auto& t = spec.training;
  os << "model=" << spec.model << ";data=" << d.name << ":" << d.path << ":" << d.train_subset << ":"
     << d.test_subset;
  if (!d.mean.empty() || !d.std.empty()) {
    os << ";norm=";
    for (double v : d.mean) os << v << ",";
    os << "/";
    for (double v : d.std) os << v << ",";
  }
  os << ";train=" << t.epochs << ":" << t.batch_size << ":" << t.learning_rate << ":"
     << t.momentum << ":" << t.weight_decay << ":" << t.seed << ";v=2";
  if (t.precision != "fp32") os << ";precision=" << t.precision;  // fp32 keys stay as they were
  if (t.optimizer != "sgd") os << ";optimizer=" << t.optimizer;
  if (!spec.model_artifact.empty()) os << ";user=" << spec.model_artifact;
  if (d.task != "image_classification")  // image keys stay as they were
    os << ";task=" << d.task << ":" << d.sequence_length << ":" << d.vocab_size << ":" << d.tokenizer;
  return os.str();
}

std::string BaselineKey(const SweepSpec& spec) { return ContentHash(BaselineKeyText(spec)); }
std::string LegacyBaselineKey(const SweepSpec& spec) { return LegacyContentHash(BaselineKeyText(spec)); }

}  // namespace prunelab

namespace prunelab {

StatusOr<std::string> WithDataset(const std::string& yaml_text, const std::string& name, const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
    if (!root.IsMap()) return Status::InvalidArgument("the spec is not a mapping");
    YAML::Node d = root["dataset"];
    d["name"] = name;
    d["path"] = path;
    root["dataset"] = d;
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(std::string("the spec is not valid YAML: ") + e.what());
  }
  YAML::Emitter out;
  out << root;
  std::string text = std::string(out.c_str()) + "\n";
  auto check = ParseSpec(text);
  if (!check.ok()) return Status::InvalidArgument("with dataset " + name + " " + path + ": " + check.status().message());
  return text;
}

}  // namespace prunelab

#include "coordinator/decide/model_card.h"

#include <cstdio>

#include <fmt/printf.h>

#include "common/codec/records.h"
#include "common/spec/zoo_names.h"

namespace prunelab::coordinator {

using nlohmann::json;

namespace {
std::string Pct(double v) {
  return fmt::sprintf("%.2f %%", 100.0 * v);
}
std::string Points(double fraction) {
  return fmt::sprintf("%.2f points", 100.0 * fraction);
}
}  // namespace

json ModelCard(const TrialResult& r, const TrialResult* baseline) {
  json cfg = json::object();
  if (!r.trial_json.empty()) {
    auto p = ParseJson(r.trial_json);
    if (p.ok()) cfg = p.value();
  }
  std::vector<int64_t> shape = ZooSampleShape();
  if (cfg.contains("input_shape") && cfg["input_shape"].is_array() && !cfg["input_shape"].empty())
    shape = cfg["input_shape"].get<std::vector<int64_t>>();
  json layers = json::array();
  for (const auto& l : r.layers)
    layers.push_back({{"name", l.name}, {"weights_dense", l.dense}, {"weights_now", l.total}, {"nonzero", l.nonzero},
                      {"sparsity", l.dense ? 1.0 - static_cast<double>(l.nonzero) / l.dense : 0.0}});
  const json lm = cfg.value("language_model", json(nullptr));
  if (lm.is_object()) shape = {lm.value("sequence_length", int64_t{0})};
  std::vector<int64_t> batch_shape{-1};
  batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
  json card{
      {"card_version", 1},
      {"variant", {{"sweep", r.sweep_id}, {"trial", r.task_id}, {"target", r.target}}},
      {"model", r.model},
      {"file", "model.pt"},
      {"format", cfg.contains("quantization")
                     ? "TorchScript (torch.jit.load), " + cfg["quantization"].value("mode", std::string("int8")) +
                           ": quantized::* ops, run on LibTorch's " +
                           cfg["quantization"].value("engine", std::string("?")) + " engine"
                     : std::string("TorchScript (torch.jit.load)")},
      // sweep.quantize: mode, engine, weight and activation schemes, the calibration set
      {"quantization", cfg.value("quantization", json(nullptr))},
      {"input",
       {{"shape", batch_shape},
        {"dtype", "float32"},
        {"layout", "N x per-sample shape; -1 = any batch size"},
        {"preprocessing", r.preprocessing.empty()
                              ? "pixel / 255, then (x - 0.2860) / 0.3530 (Fashion-MNIST mean and std); not folded into the module"
                              : r.preprocessing + "; not folded into the module"},
        {"output", "logits over " + std::to_string(r.per_class_accuracy.empty() ? 10 : r.per_class_accuracy.size()) +
                       " classes (argmax = predicted class)"},
        {"classes", r.class_names}}},
      {"pruning",
       {{"criterion", r.criterion},
        {"pattern", r.granularity},
        {"requested_sparsity", r.sparsity},
        {"achieved_sparsity", r.achieved_sparsity},
        {"scope", cfg.value("scope", "layer")},
        {"exclude", cfg.value("exclude", json::array())},
        {"overrides", cfg.value("overrides", json::object())},
        {"round_to", cfg.value("round_to", 1)},
        // granularity depth: the model's blocks, those removed, and their importance per round
        {"depth", cfg.value("depth", json(nullptr))},
        {"wanda", cfg.value("wanda", json(nullptr))},
        {"sparsegpt", cfg.value("sparsegpt", json(nullptr))},
        {"per_layer", layers}}},
      {"schedule",
       {{"type", r.schedule},
        {"rounds", cfg.value("rounds", 1)},
        {"curve", cfg.value("curve", "")},
        {"rewind", cfg.value("rewind", -1.0)},
        {"distillation", cfg.value("distill_temperature", 0.0) > 0
                             ? json{{"teacher", "the dense baseline"},
                                    {"temperature", cfg.value("distill_temperature", 0.0)},
                                    {"alpha", cfg.value("distill_alpha", 0.5)}}
                             : json(nullptr)},
        {"finetune_epochs", cfg.value("finetune_epochs", 0.0)},
        {"finetune_learning_rate", cfg.value("finetune_learning_rate", 0.0)},
        {"baseline_training", cfg.value("training", json::object())}}},
      {"accuracy",
       {{"baseline", baseline ? baseline->accuracy : r.baseline_accuracy},
        {"final", r.accuracy},
        {"per_class", r.per_class_accuracy},
        {"baseline_per_class", baseline ? json(baseline->per_class_accuracy) : json(nullptr)},
        {"worst_class", r.worst_class},
        {"worst_class_name", r.worst_class >= 0 && static_cast<size_t>(r.worst_class) < r.class_names.size()
                                 ? r.class_names[r.worst_class] : ""},
        {"worst_class_drop", r.worst_class_drop},
        {"test_set", "Fashion-MNIST test split as configured in the sweep (see spec hash)"}}},
      {"size",
       {{"params_before", r.params_before}, {"params_after", r.params},
        {"bytes_before", r.model_bytes_before}, {"bytes_after", r.model_bytes}}},
      {"latency",
       {{"p50_ms", r.latency_p50_ms}, {"p90_ms", r.latency_p90_ms}, {"p99_ms", r.latency_p99_ms},
        {"speedup_p90", r.speedup_p90}, {"deployable_form", r.deployable_form}, {"valid", r.bench_valid}}},
      {"seed", r.seed},
      {"spec_hash", cfg.value("spec_hash", "")},
      {"library_versions", {{"prunelab", kPrunelabVersion}, {"libtorch", r.hardware.torch_version}, {"blas", r.hardware.blas}}},
      {"hardware", ToJson(r.hardware)},
      {"artifact_hash", r.artifact_hash}};
  if (lm.is_object()) {
    // A language model: token ids in, next-token logits out, scored by perplexity.
    const double base_ppl = baseline ? baseline->perplexity : r.baseline_perplexity;
    card["task"] = "causal_language_modeling";
    card["format"] = "TorchScript (torch.jit.load)";
    card["input"] = {{"shape", batch_shape},
                     {"dtype", "int64"},
                     {"layout", "N x token ids; -1 = any batch size"},
                     {"preprocessing", r.preprocessing},
                     {"output", "next-token logits [N, " + std::to_string(shape[0]) + ", vocabulary]"},
                     {"tokenizer", cfg.value("tokenizer", json(nullptr))}};
    if (card["schedule"]["distillation"].is_object())
      card["schedule"]["distillation"]["teacher"] = "the dense baseline, per token";
    card.erase("accuracy");
    card["perplexity"] = {
        {"baseline", base_ppl},
        {"final", r.perplexity},
        {"ratio", base_ppl > 0 ? r.perplexity / base_ppl : 0.0},
        {"next_token_accuracy", r.accuracy},
        {"baseline_next_token_accuracy", baseline ? baseline->accuracy : r.baseline_accuracy},
        {"test_set", "the held-out split of " + lm.value("path", std::string("the corpus")) + " as configured in the sweep"}};
    card["latency"]["query"] = "one window of " + std::to_string(shape[0]) + " tokens, all positions at once (no generation)";
  } else {
    card["task"] = "image_classification";
  }
  return card;
}

std::string ModelCardMarkdown(const json& c) {
  std::string md;
  auto line = [&](const std::string& s) { md += s + "\n"; };
  const auto& p = c["pruning"];
  const json a = c.value("accuracy", json::object());
  const auto& s = c["size"];
  const auto& sch = c["schedule"];
  const auto& in = c["input"];
  line("# Model card: " + c["model"].get<std::string>() + " " + p["pattern"].get<std::string>() + " " +
       Pct(p["achieved_sparsity"].get<double>()) + " (" + c["variant"]["sweep"].get<std::string>() + " " +
       c["variant"]["trial"].get<std::string>() + ")");
  line("");
  line("- File: `model.pt` (" + c["format"].get<std::string>() + "), artifact " + c["artifact_hash"].get<std::string>());
  line("- Input: " + in.value("dtype", std::string("float32")) + " tensor of shape " + in["shape"].dump() + "; " +
       in["preprocessing"].get<std::string>());
  line("- Output: " + in["output"].get<std::string>());
  line("");
  line("## Pruning");
  line("- Criterion `" + p["criterion"].get<std::string>() + "`, pattern `" + p["pattern"].get<std::string>() + "`, scope `" +
       p["scope"].get<std::string>() + "`; requested " + Pct(p["requested_sparsity"].get<double>()) + ", achieved " +
       Pct(p["achieved_sparsity"].get<double>()) + " of prunable weights");
  std::string schedule = "- Schedule `" + sch["type"].get<std::string>() + "`";
  if (sch["type"] == "iterative")
    schedule += ", " + sch["rounds"].dump() + " rounds, curve " + sch["curve"].get<std::string>();
  if (sch["rewind"].get<double>() >= 0) schedule += ", rewound to " + sch["rewind"].dump() + " of the baseline's training";
  if (sch.contains("distillation") && sch["distillation"].is_object())
    schedule += ", distilled from the dense baseline (temperature " + sch["distillation"]["temperature"].dump() +
                ", alpha " + sch["distillation"]["alpha"].dump() + ")";
  line(schedule + ", fine-tuning " + sch["finetune_epochs"].dump() + " epoch(s) at lr " + sch["finetune_learning_rate"].dump());
  line("- Exclusions " + p["exclude"].dump() + ", overrides " + p["overrides"].dump() + ", widths rounded to " + p["round_to"].dump());
  if (p.contains("depth") && p["depth"].is_object()) {
    const auto& d = p["depth"];
    std::string all;
    for (const auto& b : d.value("blocks", json::array()))
      all += (all.empty() ? "" : ", ") + b.value("name", std::string("?")) + " (" + b.value("shortcut", std::string("?")) + ")";
    std::string removed;
    for (const auto& b : d.value("removed", json::array())) removed += (removed.empty() ? "" : ", ") + b.get<std::string>();
    line("- Depth: removed " + removed + " of the blocks " + all + "; ranked by " +
         d.value("importance_measure", std::string("?")));
  }
  if (c.contains("onnx") && c["onnx"].is_object()) {
    const auto& o = c["onnx"];
    const std::string b = fmt::sprintf("max |difference| %.3g over %d test samples; test accuracy %.2f %% (LibTorch) vs %.2f %% (OpenCV)",
                  o.value("max_abs_diff", 0.0), o.value("samples_compared", 0), 100 * o.value("accuracy_libtorch", 0.0),
                  100 * o.value("accuracy_opencv", 0.0));
    line("- ONNX: `model.onnx` (opset " + std::to_string(o.value("opset", 0)) + "), " + o.value("checker", std::string("?")) +
         "; run in " + o.value("runtime", std::string("?")) + ": " + b);
  }
  if (c.contains("quantization") && c["quantization"].is_object()) {
    const auto& q = c["quantization"];
    line("- Quantized " + q.value("mode", std::string("?")) + " on " + q.value("engine", std::string("?")) + ": weights " +
         q.value("weights", std::string("?")) + "; activations " + q.value("activations", std::string("?")) + "; " +
         std::to_string(q.value("quantized_layers", 0)) + " layers quantized, " + std::to_string(q.value("float_layers", 0)) +
         " left in float, " + std::to_string(q.value("batch_norms_folded", 0)) + " batch norms folded; calibration: " +
         q.value("calibration", std::string("?")));
  }
  line("");
  line("| layer | weights (dense) | weights (now) | non-zero | sparsity |");
  line("|---|---:|---:|---:|---:|");
  for (const auto& l : p["per_layer"])
    line("| " + l["name"].get<std::string>() + " | " + l["weights_dense"].dump() + " | " + l["weights_now"].dump() + " | " +
         l["nonzero"].dump() + " | " + Pct(l["sparsity"].get<double>()) + " |");
  line("");
  if (c.contains("perplexity")) {
    const auto& q = c["perplexity"];
    const std::string b = fmt::sprintf("- Baseline %.2f, this variant %.2f (%.3fx); next-token accuracy %.2f %% -> %.2f %%",
                  q.value("baseline", 0.0), q.value("final", 0.0), q.value("ratio", 0.0),
                  100 * q.value("baseline_next_token_accuracy", 0.0), 100 * q.value("next_token_accuracy", 0.0));
    line("## Perplexity (held-out text, lower is better)");
    line(b);
    line("- Test set: " + q.value("test_set", std::string("?")));
    if (in.contains("tokenizer") && in["tokenizer"].is_object())
      line("- Tokenizer: " + in["tokenizer"].dump());
    line("");
  } else {
    line("## Accuracy (top-1)");
    line("- Baseline " + Pct(a["baseline"].get<double>()) + ", this variant " + Pct(a["final"].get<double>()) +
         "; worst class " + a["worst_class"].dump() +
             (a.value("worst_class_name", "").empty() ? "" : " (" + a.value("worst_class_name", "") + ")") + " lost " + Points(a["worst_class_drop"].get<double>()));
    std::string pc = "- Per class:";
    for (size_t k = 0; k < a["per_class"].size(); ++k) pc += " " + std::to_string(k) + ": " + Pct(a["per_class"][k].get<double>()) + ";";
    line(pc);
    line("");
  }
  line("## Size and speed");
  line("- Parameters " + s["params_before"].dump() + " -> " + s["params_after"].dump() + "; saved bytes " +
       s["bytes_before"].dump() + " -> " + s["bytes_after"].dump());
  const auto& lat = c["latency"];
  std::string buf = fmt::sprintf("- Single-stream latency on %s: p50 %.4f ms, p90 %.4f ms, p99 %.4f ms (form %s, %s); p90 speedup vs dense %.2fx",
                c["variant"]["target"].get<std::string>().c_str(), lat["p50_ms"].get<double>(), lat["p90_ms"].get<double>(),
                lat["p99_ms"].get<double>(), lat["deployable_form"].get<std::string>().c_str(),
                lat["valid"].get<bool>() ? "VALID" : "INVALID", lat["speedup_p90"].get<double>());
  line(buf);
  line("");
  line("## Provenance");
  line("- Seed " + c["seed"].dump() + ", spec hash " + c["spec_hash"].dump());
  line("- Versions " + c["library_versions"].dump());
  const auto& h = c["hardware"];
  line("- Hardware " + h.value("cpu_model", "") + ", " + h["cores"].dump() + " cores, " + h["threads"].dump() +
       " threads, device " + h.value("device", "") + ", host " + h.value("hostname", ""));
  return md;
}

}  // namespace prunelab::coordinator

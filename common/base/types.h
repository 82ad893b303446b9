// Plain structs shared by CLI, coordinator and worker. The codec maps them to and from
// Cap'n Proto (schemas/prunelab.capnp); nothing else touches the wire format.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace prunelab {

struct HardwareFingerprint {
  std::string hostname;
  std::string cpu_model;
  std::string isa_flags;
  uint32_t cores = 0;
  uint64_t memory_bytes = 0;
  uint32_t threads = 0;
  std::string torch_version;
  std::string blas;
  std::string gpu;
  std::string device = "cpu";
};

// The largest artifact (user model, baseline, variant) a coordinator takes by default
// (prunelab-coordinator --max-artifact-mb). Artifacts travel in chunks (PutArtifactChunk,
// FetchArtifact), so this bounds disk use, not memory.
inline constexpr uint64_t kDefaultMaxArtifactBytes = 8ull << 30;

// Fashion-MNIST (IDX) pixels are fed as (pixel / 255 - mean) / std; other data in that
// model's format must be normalized the same way.
inline constexpr double kFashionMnistMean = 0.2860;
inline constexpr double kFashionMnistStd = 0.3530;

struct DatasetConfig {
  std::string name = "fashion-mnist";  // format: fashion-mnist | idx | npy | folder
  std::string path = "/usr/share/datasets/fashion-mnist";
  uint32_t train_subset = 0;  // 0 = all
  uint32_t test_subset = 0;   // 0 = all
  // npy and folder: pixels scaled to [0, 1], then (x - mean[c]) / std[c] (empty: 0 and 1).
  std::vector<double> mean;
  std::vector<double> std;
  std::vector<std::string> class_names;  // spec's dataset.classes, or a folder dataset's sub-folders
  // The learning task the data serves (the spec's top-level `task`): image_classification
  // (every format above) or causal_lm (formats text and tokens). Empty reads as
  // image_classification (older peers and records).
  std::string task = "image_classification";
  uint32_t sequence_length = 0;  // causal_lm: token ids per window the model reads
  uint32_t vocab_size = 0;       // causal_lm: text: the tokenizer trained to this size; tokens: ids below it
  std::string tokenizer;         // causal_lm text: the user's SentencePiece model file (empty: trained)
};

struct TrainingConfig {
  uint32_t epochs = 2;
  uint32_t batch_size = 64;
  double learning_rate = 0.05;
  double momentum = 0.9;
  double weight_decay = 0.0;
  uint64_t seed = 42;
  // fp32, or bf16: autocast to bfloat16 with channels-last activations for training and
  // fine-tuning (AVX512-BF16 / AMX CPUs; evaluation and benchmarks stay as the model is).
  std::string precision = "fp32";
  // sgd (momentum, the image default) | adamw (decoupled weight decay, betas 0.9/0.95: the
  // language-model default). Empty reads as sgd (older peers and records).
  std::string optimizer = "sgd";
};

struct LayerValue {
  std::string name;
  double value = 0;
};

// How one trial prunes (the spec's sweep axes plus its `pruning` section and schedule).
struct TrialConfig {
  std::string criterion;
  std::string granularity;
  std::string schedule;       // one_shot | iterative | sensitivity
  double sparsity = 0.0;      // requested fraction of prunable weights / structures removed
  double finetune_epochs = 1; // recovery fine-tuning budget in epochs (may be fractional)
  double finetune_learning_rate = 0.01;
  std::string scope = "layer";         // layer: same sparsity per layer; global: one ranking
  double min_keep = 0.01;              // global scope: fraction of every layer always kept
  std::vector<std::string> exclude;    // layer/group names (or "first", "last") left dense
  std::vector<LayerValue> overrides;   // per-layer/group sparsity
  uint32_t round_to = 1;               // structured: kept widths rounded to a multiple of this
  uint32_t rounds = 1;                 // iterative: prune/fine-tune rounds
  std::string curve = "cubic";         // iterative: linear | cubic (Zhu & Gupta)
  double rewind = -1;                  // lottery ticket: <0 off; else fraction of baseline training to rewind to (0 = init)
  std::string layer;                   // sensitivity: the single layer/group pruned
  uint32_t calibration_batches = 8;    // gradient/taylor/activation scoring batches
  // Knowledge distillation during fine-tuning, the dense baseline as teacher: loss =
  // alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy. T <= 0: off.
  double distill_temperature = 0;
  double distill_alpha = 0.5;
  // After pruning and fine-tuning: none, int8 (post-training static: per-channel int8
  // weights, activations calibrated on calibration_batches) or int8_dynamic (linear layers).
  // A trial of granularity "dense" quantizes the baseline itself.
  std::string quantize = "none";
};

struct BenchmarkConfig {
  std::string profile = "lab";  // lab: these settings; mlperf: MLPerf's minimums (600 s, ...)
  std::vector<std::string> scenarios = {"single_stream", "offline"};
  uint32_t warmup_queries = 50;
  uint32_t min_queries = 500;            // single_stream, multi_stream, server
  double min_duration_s = 1.0;           // every scenario
  double max_duration_s = 60.0;          // hard stop per run (INVALID if minimums unmet)
  uint32_t offline_batch_size = 256;
  uint32_t offline_min_samples = 2048;
  double offline_min_duration_s = 1.0;
  uint32_t multi_stream_samples = 8;
  double server_latency_bound_ms = 10.0;  // p99 bound
  double server_target_qps = 0;           // 0: search for the highest QPS meeting the bound
  uint32_t ab_rounds = 3;                 // interleaved baseline/variant single-stream pairs
  bool sparse_forms = true;               // also time sparse execution forms (CSR on CPU)
  // Intra-op threads every timing of this target uses: what the deployment gives the model
  // (spec: benchmark.threads, or a target's own `threads`), not the worker's training
  // setting. Recorded with every figure (hardware.threads). 0: the worker's own setting.
  uint32_t threads = 1;
  // Confirmation round (confirm@TARGET): once every benchmark of a target is done, the
  // baseline, the front and the best `confirm_candidates` variants passing the gates are timed
  // again, interleaved round-robin on one worker, `confirm_rounds` times; the recommendation
  // comes from that round. 0 rounds: off.
  uint32_t confirm_rounds = 5;
  uint32_t confirm_candidates = 3;
};

enum class TaskKind {
  kTrainBaseline = 0,
  kEvaluateBaseline = 1,
  kPruneTrial = 2,
  kBenchmarkVariant = 3,
  kEvaluateRelease = 4,
  kConfirmTarget = 5,  // the confirmation round of one target (confirm@TARGET)
};
const char* TaskKindName(TaskKind kind);

// evaluateRelease: what is measured besides the released variant on the task's dataset.
struct EvaluationConfig {
  std::string release;      // e.g. "v2"
  bool reference = false;   // the release's reference run: input-feature bins are made from this data
  bool compare_dense = false;  // also evaluate and time the dense baseline
  std::string bins_json;    // {"feature": [edges...]} fixed at release; empty for the reference run
};

// One model timed in a confirmation round: the dense baseline (task "base@TARGET") or a
// benchmarked variant, in the execution form its own benchmark chose.
struct ConfirmCandidate {
  std::string task_id;   // the row it confirms, e.g. "t002@local"
  std::string artifact;  // content hash of the model
  std::string form;      // dense | frozen | csr
};

// At most this many models in one confirmation round (the baseline included).
inline constexpr size_t kMaxConfirmCandidates = 8;

struct Task {
  std::string sweep_id;
  std::string task_id;
  uint32_t attempt = 0;
  TaskKind kind = TaskKind::kPruneTrial;
  std::string target;  // empty: any target
  std::string model;
  DatasetConfig dataset;
  TrainingConfig training;
  TrialConfig trial;
  BenchmarkConfig benchmark;
  std::string baseline_key;
  std::string baseline_artifact;
  std::string model_artifact;          // user TorchScript model (content hash), empty for the zoo
  std::vector<int64_t> input_shape;    // per-sample input shape, e.g. [1, 28, 28]
  std::string spec_hash;               // content hash of the sweep spec text
  std::string variant_artifact;        // benchmarkVariant: the pruned variant (content hash)
  std::string depends_on;              // benchmarkVariant: the pruneTrial task making it
  EvaluationConfig evaluation;         // evaluateRelease only
  // confirmTarget: the models timed, the baseline first; filled when the target's benchmarks
  // are done (the task waits blocked until then).
  std::vector<ConfirmCandidate> candidates;
};

// One prunable layer's weights: dense = in the baseline, total = now (after structural
// removal), nonzero = total minus masked zeros.
struct LayerStat {
  std::string name;
  uint64_t dense = 0;
  uint64_t total = 0;
  uint64_t nonzero = 0;
};

struct TrialResult {
  std::string sweep_id;
  std::string task_id;
  uint32_t attempt = 0;
  std::string worker_id;            // who measured this row (a variant's row: its benchmark's worker)
  std::string pruned_by;            // a variant's row: the worker that pruned and fine-tuned it
  std::vector<std::string> class_names;  // the dataset's, in label order (empty: unknown)
  std::string preprocessing;             // what the model's input is (scaling, resize, mean/std)
  std::string target;
  TaskKind kind = TaskKind::kPruneTrial;
  std::string model;
  std::string criterion;
  std::string granularity;
  std::string schedule;
  double sparsity = 0;
  double achieved_sparsity = 0;
  bool baseline = false;
  bool ok = false;
  std::string error;
  double accuracy = 0;
  std::vector<double> per_class_accuracy;
  double baseline_accuracy = 0;     // the dense model's accuracy on the same test set
  double worst_class_drop = 0;      // max over classes of (baseline - variant) per-class accuracy
  // The task's quality metric: "accuracy" (classification; empty reads as accuracy) or
  // "perplexity" (language modeling: exp of the mean negative log-likelihood per held-out
  // token; `accuracy` is then next-token top-1).
  std::string metric;
  double perplexity = 0;
  double baseline_perplexity = 0;   // the dense model's on the same held-out text
  int32_t worst_class = -1;         // the class with that drop (-1: not computed)
  double latency_mean_ms = 0;
  double latency_p50_ms = 0;
  double latency_p90_ms = 0;
  double latency_p99_ms = 0;
  double latency_p95_ms = 0;
  double latency_p999_ms = 0;
  double early_stop_p90_ms = 0;    // single-stream p90 upper bound at 99 % confidence
  bool bench_valid = false;        // every scenario run VALID
  double multistream_p99_ms = 0;   // 0 when not run
  double server_max_qps = 0;       // highest QPS meeting the p99 bound (0 when not run)
  double server_p99_ms = 0;
  uint64_t peak_rss_bytes = 0;     // worker process peak RSS during the benchmark
  double speedup_p90 = 0;          // median of interleaved baseline/variant p90 ratios (0: none)
  double speedup_min = 0;
  double speedup_max = 0;
  std::string deployable_form;     // fastest execution form measured (dense, csr)
  std::string benchmark_json;      // per-scenario reports, forms, A/B rounds, summaries
  uint64_t queries = 0;
  double bench_duration_s = 0;
  double throughput_sps = 0;
  uint64_t params = 0;
  uint64_t model_bytes = 0;
  double train_seconds = 0;
  double eval_seconds = 0;
  uint64_t seed = 0;
  HardwareFingerprint hardware;
  std::string artifact_hash;       // baseline: the trained model; trial: the pruned variant
  int64_t finished_at_ms = 0;
  std::vector<LayerStat> layers;   // per prunable layer
  uint64_t params_before = 0;      // the dense baseline's parameter count and saved size
  uint64_t model_bytes_before = 0;
  uint32_t round = 0;              // iterative: this row's round (1..rounds); 0: final/only
  uint32_t rounds = 0;
  std::string layer;               // sensitivity: the layer/group pruned alone
  std::string trial_json;          // the trial's full configuration (scope, schedule, ...) + spec hash
  std::vector<TrialResult> intermediates;  // iterative rounds before the last; stored as their own rows
};

// The single-stream latency figures of a row (milliseconds): what a comparison scales
// together (coordinator/decide/pareto.h LatencyScale).
inline constexpr double TrialResult::*kSingleStreamLatencyFields[] = {
    &TrialResult::latency_mean_ms, &TrialResult::latency_p50_ms,  &TrialResult::latency_p90_ms,
    &TrialResult::latency_p95_ms,  &TrialResult::latency_p99_ms,  &TrialResult::latency_p999_ms,
    &TrialResult::early_stop_p90_ms};

struct SweepStatus {
  std::string id;
  std::string name;
  std::string state;
  uint32_t trials = 0;
  uint32_t done = 0;
  uint32_t failed = 0;
  uint32_t running = 0;
  uint32_t pending = 0;
  int64_t created_at_ms = 0;
  std::string note;  // e.g. which targets have pending work but no live worker
};

struct WorkerStatus {
  std::string worker_id;
  std::string target;
  HardwareFingerprint hardware;
  bool alive = false;
  int64_t last_seen_ms_ago = 0;
  std::string task_id;
  std::string phase;
  double progress = 0;
  uint32_t slots = 1;
};

// A task a worker holds, as it reports it when it registers again.
struct RunningTask {
  std::string sweep_id;
  std::string task_id;
  uint32_t attempt = 0;
  uint32_t slot = 0;
};

// ---- messages (one per Envelope.body variant) ----
struct RegisterMsg {
  std::string worker_id;
  std::string target;
  HardwareFingerprint hardware;
  uint32_t slots = 1;                // tasks it runs at once
  std::vector<RunningTask> running;  // still running (it re-registers after a coordinator restart)
};
struct RegisterReplyMsg { std::string worker_id; uint32_t heartbeat_interval_ms = 1000; };
struct HeartbeatMsg { std::string worker_id; std::string task_id; std::string phase; double progress = 0; uint32_t slot = 0; };
struct RequestWorkMsg { std::string worker_id; uint32_t slot = 0; };
struct AssignMsg { Task task; };
struct NoWorkMsg { uint32_t retry_after_ms = 500; std::string reason; };
// artifact: inline bytes, or empty when uploaded beforehand under result.artifact_hash.
struct SubmitResultMsg { std::string worker_id; TrialResult result; std::string artifact; };
struct ResultAckMsg { std::string task_id; uint32_t attempt = 0; bool accepted = false; std::string note; };
struct FetchArtifactMsg { std::string hash; uint64_t offset = 0; uint32_t max_bytes = 0; };  // one chunk
struct ArtifactReplyMsg {
  std::string hash;
  bool found = false;
  std::string data;        // bytes [offset, offset + data.size()) of the artifact
  uint64_t offset = 0;
  uint64_t total_bytes = 0;
  std::string chunk_hash;  // ContentHash(data)
};
// user_model: TorchScript bytes. submission_id: the client's, the same on every resend of one
// submission (a resend after a lost reply gets the stored sweep's id, not a second sweep).
struct SubmitSweepMsg {
  std::string spec_yaml;
  std::string user_model;
  std::string submission_id = {};
  std::string user_model_hash = {};  // uploaded beforehand in chunks (user_model empty)
};
// One chunk of an upload; see schemas/prunelab.capnp PutArtifactChunk.
struct PutArtifactChunkMsg {
  std::string hash;
  std::string upload_id;
  uint64_t total_bytes = 0;
  uint64_t offset = 0;
  std::string data;
  std::string chunk_hash;
};
struct PutArtifactReplyMsg {
  std::string hash;
  uint64_t next_offset = 0;
  bool complete = false;
};
struct SubmitReplyMsg {
  std::string sweep_id;
  uint32_t tasks = 0;
  bool already_stored = false;  // a resend: this submission was stored by an earlier attempt
};
struct StatusRequestMsg { std::string sweep_id; };
struct StatusReplyMsg { std::vector<SweepStatus> sweeps; };
struct ResultsRequestMsg { std::string sweep_id; };
struct ResultsReplyMsg { std::vector<TrialResult> results; std::string spec_yaml; };  // spec: the sweep's own
struct WorkersRequestMsg {};
struct WorkersReplyMsg { std::vector<WorkerStatus> workers; };
struct ErrorMsg { std::string code; std::string message; };
struct SweepControlMsg { std::string sweep_id; std::string action; };  // pause | resume | cancel; reply: StatusReply
// Releases, rollback, evaluations and policies (schemas/prunelab.capnp ReleaseCommand); reply: ReleaseReplyMsg.
struct ReleaseCommandMsg {
  std::string action = {};
  std::string target = {};
  std::string sweep_id = {};
  std::string trial = {};
  std::string note = {};
  bool force = false;
  std::string reason = {};
  std::string version = {};
  std::string released_by = {};
  std::string data_path = {};
  std::string data_format = {};
  bool compare_dense = false;
  std::string policy_json = {};
  uint32_t limit = 0;
  uint32_t subset = 0;
};
struct ReleaseReplyMsg { std::string json; };

using Message = std::variant<RegisterMsg, HeartbeatMsg, RequestWorkMsg, SubmitResultMsg,
                             FetchArtifactMsg, RegisterReplyMsg, AssignMsg, NoWorkMsg,
                             ResultAckMsg, ArtifactReplyMsg, SubmitSweepMsg, SubmitReplyMsg,
                             StatusRequestMsg, StatusReplyMsg, ResultsRequestMsg,
                             ResultsReplyMsg, WorkersRequestMsg, WorkersReplyMsg, ErrorMsg,
                             SweepControlMsg, PutArtifactChunkMsg, PutArtifactReplyMsg, ReleaseCommandMsg,
                             ReleaseReplyMsg>;

}  // namespace prunelab

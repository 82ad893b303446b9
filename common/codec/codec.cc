#include "common/codec/codec.h"

#include "common/codec/records.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstring>

#include "common/base/text.h"

#include "prunelab.capnp.h"

namespace prunelab {
namespace {

namespace s = schema;

// Text written into a message: always valid UTF-8 (invalid sequences replaced), so what one
// side sends the other side's strict decoder accepts. Lives until the end of the full
// expression, which is as long as the builder's set() needs it (it copies).
class TextArg {
 public:
  explicit TextArg(const std::string& v) {
    if (IsValidUtf8(v)) {
      reader_ = capnp::Text::Reader(v.c_str(), v.size());
    } else {
      fixed_ = ToValidUtf8(v);
      reader_ = capnp::Text::Reader(fixed_.c_str(), fixed_.size());
    }
  }
  TextArg(const TextArg&) = delete;
  TextArg& operator=(const TextArg&) = delete;
  operator capnp::Text::Reader() const { return reader_; }

 private:
  std::string fixed_;
  capnp::Text::Reader reader_;
};
TextArg T(const std::string& v) { return TextArg(v); }
capnp::Data::Reader D(const std::string& v) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(v.data()), v.size());
}
// Text from the network must be UTF-8 (JSON views, logs and the HTTP API print it); a message
// with one bad byte anywhere is refused whole by Decode. Stored records are ours: they are
// read leniently (bad sequences replaced), so a store written before this check still opens.
struct InvalidText {
  size_t offset;
};
thread_local bool t_strict_text = false;

std::string S(capnp::Text::Reader r) {
  std::string_view v(r.begin(), r.size());
  size_t bad = 0;
  if (IsValidUtf8(v, &bad)) return std::string(v);
  if (t_strict_text) throw InvalidText{bad};
  return ToValidUtf8(v);
}

// Sets strict text checking for the decoder on this thread, for one scope.
class StrictText {
 public:
  StrictText() { t_strict_text = true; }
  ~StrictText() { t_strict_text = false; }
};
std::string S(capnp::Data::Reader r) { return std::string(reinterpret_cast<const char*>(r.begin()), r.size()); }

// ---- writers ----
void Put(s::Hardware::Builder b, const HardwareFingerprint& h) {
  b.setHostname(T(h.hostname));
  b.setCpuModel(T(h.cpu_model));
  b.setIsaFlags(T(h.isa_flags));
  b.setCores(h.cores);
  b.setMemoryBytes(h.memory_bytes);
  b.setThreads(h.threads);
  b.setTorchVersion(T(h.torch_version));
  b.setBlas(T(h.blas));
  b.setGpu(T(h.gpu));
  b.setDevice(T(h.device));
}

void Put(s::Task::Builder b, const Task& t) {
  b.setSweepId(T(t.sweep_id));
  b.setTaskId(T(t.task_id));
  b.setAttempt(t.attempt);
  b.setKind(static_cast<s::TaskKind>(t.kind));
  b.setTarget(T(t.target));
  b.setModel(T(t.model));
  auto d = b.initDataset();
  d.setName(T(t.dataset.name));
  d.setPath(T(t.dataset.path));
  d.setTrainSubset(t.dataset.train_subset);
  d.setTestSubset(t.dataset.test_subset);
  auto mean = d.initMean(t.dataset.mean.size());
  for (size_t i = 0; i < t.dataset.mean.size(); ++i) mean.set(i, t.dataset.mean[i]);
  auto sd = d.initStd(t.dataset.std.size());
  for (size_t i = 0; i < t.dataset.std.size(); ++i) sd.set(i, t.dataset.std[i]);
  auto names = d.initClassNames(t.dataset.class_names.size());
  for (size_t i = 0; i < t.dataset.class_names.size(); ++i) names.set(i, T(t.dataset.class_names[i]));
  d.setTask(T(t.dataset.task));
  d.setSequenceLength(t.dataset.sequence_length);
  d.setVocabSize(t.dataset.vocab_size);
  d.setTokenizer(T(t.dataset.tokenizer));
  auto tr = b.initTraining();
  tr.setOptimizer(T(t.training.optimizer));
  tr.setEpochs(t.training.epochs);
  tr.setBatchSize(t.training.batch_size);
  tr.setLearningRate(t.training.learning_rate);
  tr.setMomentum(t.training.momentum);
  tr.setWeightDecay(t.training.weight_decay);
  tr.setSeed(t.training.seed);
  tr.setPrecision(T(t.training.precision));
  auto tc = b.initTrial();
  tc.setCriterion(T(t.trial.criterion));
  tc.setGranularity(T(t.trial.granularity));
  tc.setSchedule(T(t.trial.schedule));
  tc.setSparsity(t.trial.sparsity);
  tc.setFinetuneEpochs(t.trial.finetune_epochs);
  tc.setFinetuneLearningRate(t.trial.finetune_learning_rate);
  tc.setScope(T(t.trial.scope));
  tc.setMinKeep(t.trial.min_keep);
  auto ex = tc.initExclude(t.trial.exclude.size());
  for (size_t i = 0; i < t.trial.exclude.size(); ++i) ex.set(i, T(t.trial.exclude[i]));
  auto ov = tc.initOverrides(t.trial.overrides.size());
  for (size_t i = 0; i < t.trial.overrides.size(); ++i) {
    ov[i].setName(T(t.trial.overrides[i].name));
    ov[i].setValue(t.trial.overrides[i].value);
  }
  tc.setRoundTo(t.trial.round_to);
  tc.setRounds(t.trial.rounds);
  tc.setCurve(T(t.trial.curve));
  tc.setRewind(t.trial.rewind);
  tc.setLayer(T(t.trial.layer));
  tc.setCalibrationBatches(t.trial.calibration_batches);
  tc.setDistillTemperature(t.trial.distill_temperature);
  tc.setDistillAlpha(t.trial.distill_alpha);
  tc.setQuantize(T(t.trial.quantize));
  auto bc = b.initBenchmark();
  bc.setWarmupQueries(t.benchmark.warmup_queries);
  bc.setMinQueries(t.benchmark.min_queries);
  bc.setMinDurationS(t.benchmark.min_duration_s);
  bc.setOfflineBatchSize(t.benchmark.offline_batch_size);
  bc.setOfflineMinDurationS(t.benchmark.offline_min_duration_s);
  bc.setProfile(T(t.benchmark.profile));
  auto sc = bc.initScenarios(t.benchmark.scenarios.size());
  for (size_t i = 0; i < t.benchmark.scenarios.size(); ++i) sc.set(i, T(t.benchmark.scenarios[i]));
  bc.setMaxDurationS(t.benchmark.max_duration_s);
  bc.setOfflineMinSamples(t.benchmark.offline_min_samples);
  bc.setMultiStreamSamples(t.benchmark.multi_stream_samples);
  bc.setServerLatencyBoundMs(t.benchmark.server_latency_bound_ms);
  bc.setServerTargetQps(t.benchmark.server_target_qps);
  bc.setAbRounds(t.benchmark.ab_rounds);
  bc.setSparseForms(t.benchmark.sparse_forms);
  bc.setThreads(t.benchmark.threads);
  bc.setConfirmRounds(t.benchmark.confirm_rounds);
  bc.setConfirmCandidates(t.benchmark.confirm_candidates);
  b.setBaselineKey(T(t.baseline_key));
  b.setBaselineArtifact(T(t.baseline_artifact));
  b.setModelArtifact(T(t.model_artifact));
  auto is = b.initInputShape(t.input_shape.size());
  for (size_t i = 0; i < t.input_shape.size(); ++i) is.set(i, t.input_shape[i]);
  b.setSpecHash(T(t.spec_hash));
  b.setVariantArtifact(T(t.variant_artifact));
  b.setDependsOn(T(t.depends_on));
  if (t.kind == TaskKind::kEvaluateRelease) {
    auto e = b.initEvaluation();
    e.setRelease(T(t.evaluation.release));
    e.setReference(t.evaluation.reference);
    e.setCompareDense(t.evaluation.compare_dense);
    e.setBinsJson(T(t.evaluation.bins_json));
  }
  if (!t.candidates.empty()) {
    auto cs = b.initCandidates(t.candidates.size());
    for (size_t i = 0; i < t.candidates.size(); ++i) {
      cs[i].setTaskId(T(t.candidates[i].task_id));
      cs[i].setArtifact(T(t.candidates[i].artifact));
      cs[i].setForm(T(t.candidates[i].form));
    }
  }
}

void Put(s::Result::Builder b, const TrialResult& r) {
  b.setSweepId(T(r.sweep_id));
  b.setTaskId(T(r.task_id));
  b.setAttempt(r.attempt);
  b.setWorkerId(T(r.worker_id));
  b.setPrunedBy(T(r.pruned_by));
  auto cn = b.initClassNames(r.class_names.size());
  for (size_t i = 0; i < r.class_names.size(); ++i) cn.set(i, T(r.class_names[i]));
  b.setPreprocessing(T(r.preprocessing));
  b.setTarget(T(r.target));
  b.setKind(static_cast<s::TaskKind>(r.kind));
  b.setModel(T(r.model));
  b.setCriterion(T(r.criterion));
  b.setGranularity(T(r.granularity));
  b.setSchedule(T(r.schedule));
  b.setSparsity(r.sparsity);
  b.setAchievedSparsity(r.achieved_sparsity);
  b.setBaseline(r.baseline);
  b.setOk(r.ok);
  b.setError(T(r.error));
  b.setAccuracy(r.accuracy);
  auto pc = b.initPerClassAccuracy(r.per_class_accuracy.size());
  for (size_t i = 0; i < r.per_class_accuracy.size(); ++i) pc.set(i, r.per_class_accuracy[i]);
  b.setLatencyMeanMs(r.latency_mean_ms);
  b.setLatencyP50Ms(r.latency_p50_ms);
  b.setLatencyP90Ms(r.latency_p90_ms);
  b.setLatencyP99Ms(r.latency_p99_ms);
  b.setQueries(r.queries);
  b.setBenchDurationS(r.bench_duration_s);
  b.setThroughputSps(r.throughput_sps);
  b.setParams(r.params);
  b.setModelBytes(r.model_bytes);
  b.setTrainSeconds(r.train_seconds);
  b.setEvalSeconds(r.eval_seconds);
  b.setSeed(r.seed);
  Put(b.initHardware(), r.hardware);
  b.setArtifactHash(T(r.artifact_hash));
  b.setFinishedAtMs(r.finished_at_ms);
  b.setLatencyP95Ms(r.latency_p95_ms);
  b.setLatencyP999Ms(r.latency_p999_ms);
  b.setEarlyStopP90Ms(r.early_stop_p90_ms);
  b.setBenchValid(r.bench_valid);
  b.setMultistreamP99Ms(r.multistream_p99_ms);
  b.setServerMaxQps(r.server_max_qps);
  b.setServerP99Ms(r.server_p99_ms);
  b.setPeakRssBytes(r.peak_rss_bytes);
  b.setSpeedupP90(r.speedup_p90);
  b.setSpeedupMin(r.speedup_min);
  b.setSpeedupMax(r.speedup_max);
  b.setDeployableForm(T(r.deployable_form));
  b.setBenchmarkJson(T(r.benchmark_json));
  b.setBaselineAccuracy(r.baseline_accuracy);
  b.setMetric(T(r.metric));
  b.setPerplexity(r.perplexity);
  b.setBaselinePerplexity(r.baseline_perplexity);
  b.setWorstClassDrop(r.worst_class_drop);
  b.setWorstClass(r.worst_class);
  auto ls = b.initLayers(r.layers.size());
  for (size_t i = 0; i < r.layers.size(); ++i) {
    ls[i].setName(T(r.layers[i].name));
    ls[i].setDense(r.layers[i].dense);
    ls[i].setTotal(r.layers[i].total);
    ls[i].setNonzero(r.layers[i].nonzero);
  }
  b.setParamsBefore(r.params_before);
  b.setModelBytesBefore(r.model_bytes_before);
  b.setRound(r.round);
  b.setRounds(r.rounds);
  b.setLayer(T(r.layer));
  b.setTrialJson(T(r.trial_json));
  auto im = b.initIntermediates(r.intermediates.size());
  for (size_t i = 0; i < r.intermediates.size(); ++i) Put(im[i], r.intermediates[i]);
}

void Put(s::SweepStatus::Builder b, const SweepStatus& v) {
  b.setId(T(v.id));
  b.setName(T(v.name));
  b.setState(T(v.state));
  b.setTrials(v.trials);
  b.setDone(v.done);
  b.setFailed(v.failed);
  b.setRunning(v.running);
  b.setPending(v.pending);
  b.setCreatedAtMs(v.created_at_ms);
  b.setNote(T(v.note));
}

void Put(s::WorkerStatus::Builder b, const WorkerStatus& v) {
  b.setWorkerId(T(v.worker_id));
  b.setTarget(T(v.target));
  Put(b.initHardware(), v.hardware);
  b.setAlive(v.alive);
  b.setLastSeenMsAgo(v.last_seen_ms_ago);
  b.setTaskId(T(v.task_id));
  b.setPhase(T(v.phase));
  b.setProgress(v.progress);
  b.setSlots(v.slots);
}

struct BodyWriter {
  s::Envelope::Body::Builder body;
  void operator()(const RegisterMsg& m) {
    auto b = body.initRegister();
    b.setWorkerId(T(m.worker_id));
    b.setTarget(T(m.target));
    Put(b.initHardware(), m.hardware);
    b.setSlots(m.slots);
    auto run = b.initRunning(static_cast<unsigned>(m.running.size()));
    for (size_t i = 0; i < m.running.size(); ++i) {
      run[i].setSweepId(T(m.running[i].sweep_id));
      run[i].setTaskId(T(m.running[i].task_id));
      run[i].setAttempt(m.running[i].attempt);
      run[i].setSlot(m.running[i].slot);
    }
  }
  void operator()(const HeartbeatMsg& m) {
    auto b = body.initHeartbeat();
    b.setWorkerId(T(m.worker_id));
    b.setTaskId(T(m.task_id));
    b.setPhase(T(m.phase));
    b.setProgress(m.progress);
    b.setSlot(m.slot);
  }
  void operator()(const RequestWorkMsg& m) {
    auto b = body.initRequestWork();
    b.setWorkerId(T(m.worker_id));
    b.setSlot(m.slot);
  }
  void operator()(const SubmitResultMsg& m) {
    auto b = body.initSubmitResult();
    b.setWorkerId(T(m.worker_id));
    Put(b.initResult(), m.result);
    b.setArtifact(D(m.artifact));
  }
  void operator()(const FetchArtifactMsg& m) {
    auto b = body.initFetchArtifact();
    b.setHash(T(m.hash));
    b.setOffset(m.offset);
    b.setMaxBytes(m.max_bytes);
  }
  void operator()(const RegisterReplyMsg& m) {
    auto b = body.initRegisterReply();
    b.setWorkerId(T(m.worker_id));
    b.setHeartbeatIntervalMs(m.heartbeat_interval_ms);
  }
  void operator()(const AssignMsg& m) { Put(body.initAssign(), m.task); }
  void operator()(const NoWorkMsg& m) {
    auto b = body.initNoWork();
    b.setRetryAfterMs(m.retry_after_ms);
    b.setReason(T(m.reason));
  }
  void operator()(const ResultAckMsg& m) {
    auto b = body.initResultAck();
    b.setTaskId(T(m.task_id));
    b.setAttempt(m.attempt);
    b.setAccepted(m.accepted);
    b.setNote(T(m.note));
  }
  void operator()(const ArtifactReplyMsg& m) {
    auto b = body.initArtifactReply();
    b.setHash(T(m.hash));
    b.setFound(m.found);
    b.setData(D(m.data));
    b.setOffset(m.offset);
    b.setTotalBytes(m.total_bytes);
    b.setChunkHash(T(m.chunk_hash));
  }
  void operator()(const SubmitSweepMsg& m) {
    auto b = body.initSubmitSweep();
    b.setSpecYaml(T(m.spec_yaml));
    b.setUserModel(D(m.user_model));
    b.setSubmissionId(T(m.submission_id));
    b.setUserModelHash(T(m.user_model_hash));
  }
  void operator()(const PutArtifactChunkMsg& m) {
    auto b = body.initPutArtifactChunk();
    b.setHash(T(m.hash));
    b.setUploadId(T(m.upload_id));
    b.setTotalBytes(m.total_bytes);
    b.setOffset(m.offset);
    b.setData(D(m.data));
    b.setChunkHash(T(m.chunk_hash));
  }
  void operator()(const PutArtifactReplyMsg& m) {
    auto b = body.initPutArtifactReply();
    b.setHash(T(m.hash));
    b.setNextOffset(m.next_offset);
    b.setComplete(m.complete);
  }
  void operator()(const SubmitReplyMsg& m) {
    auto b = body.initSubmitReply();
    b.setSweepId(T(m.sweep_id));
    b.setTasks(m.tasks);
    b.setAlreadyStored(m.already_stored);
  }
  void operator()(const StatusRequestMsg& m) { body.initStatusRequest().setSweepId(T(m.sweep_id)); }
  void operator()(const StatusReplyMsg& m) {
    auto l = body.initStatusReply().initSweeps(m.sweeps.size());
    for (size_t i = 0; i < m.sweeps.size(); ++i) Put(l[i], m.sweeps[i]);
  }
  void operator()(const ResultsRequestMsg& m) { body.initResultsRequest().setSweepId(T(m.sweep_id)); }
  void operator()(const ResultsReplyMsg& m) {
    auto b = body.initResultsReply();
    auto l = b.initResults(m.results.size());
    for (size_t i = 0; i < m.results.size(); ++i) Put(l[i], m.results[i]);
    b.setSpecYaml(T(m.spec_yaml));
  }
  void operator()(const WorkersRequestMsg&) { body.initWorkersRequest(); }
  void operator()(const SweepControlMsg& m) {
    auto b = body.initSweepControl();
    b.setSweepId(T(m.sweep_id));
    b.setAction(T(m.action));
  }
  void operator()(const ReleaseCommandMsg& m) {
    auto b = body.initReleaseCommand();
    b.setAction(T(m.action));
    b.setTarget(T(m.target));
    b.setSweepId(T(m.sweep_id));
    b.setTrial(T(m.trial));
    b.setNote(T(m.note));
    b.setForce(m.force);
    b.setReason(T(m.reason));
    b.setVersion(T(m.version));
    b.setReleasedBy(T(m.released_by));
    b.setDataPath(T(m.data_path));
    b.setDataFormat(T(m.data_format));
    b.setCompareDense(m.compare_dense);
    b.setPolicyJson(T(m.policy_json));
    b.setLimit(m.limit);
    b.setSubset(m.subset);
  }
  void operator()(const ReleaseReplyMsg& m) { body.initReleaseReply().setJson(T(m.json)); }
  void operator()(const WorkersReplyMsg& m) {
    auto l = body.initWorkersReply().initWorkers(m.workers.size());
    for (size_t i = 0; i < m.workers.size(); ++i) Put(l[i], m.workers[i]);
  }
  void operator()(const ErrorMsg& m) {
    auto b = body.initError();
    b.setCode(T(m.code));
    b.setMessage(T(m.message));
  }
};

// ---- readers ----
HardwareFingerprint Get(s::Hardware::Reader r) {
  HardwareFingerprint h;
  h.hostname = S(r.getHostname());
  h.cpu_model = S(r.getCpuModel());
  h.isa_flags = S(r.getIsaFlags());
  h.cores = r.getCores();
  h.memory_bytes = r.getMemoryBytes();
  h.threads = r.getThreads();
  h.torch_version = S(r.getTorchVersion());
  h.blas = S(r.getBlas());
  h.gpu = S(r.getGpu());
  h.device = S(r.getDevice());
  return h;
}

StatusOr<TaskKind> GetKind(s::TaskKind k) {
  switch (k) {
    case s::TaskKind::TRAIN_BASELINE: return TaskKind::kTrainBaseline;
    case s::TaskKind::EVALUATE_BASELINE: return TaskKind::kEvaluateBaseline;
    case s::TaskKind::PRUNE_TRIAL: return TaskKind::kPruneTrial;
    case s::TaskKind::BENCHMARK_VARIANT: return TaskKind::kBenchmarkVariant;
    case s::TaskKind::EVALUATE_RELEASE: return TaskKind::kEvaluateRelease;
    case s::TaskKind::CONFIRM_TARGET: return TaskKind::kConfirmTarget;
  }
  return Status::InvalidArgument("unknown task kind " + std::to_string(static_cast<int>(k)));
}

StatusOr<Task> Get(s::Task::Reader r) {
  Task t;
  t.sweep_id = S(r.getSweepId());
  t.task_id = S(r.getTaskId());
  t.attempt = r.getAttempt();
  auto kind = GetKind(r.getKind());
  if (!kind.ok()) return kind.status();
  t.kind = kind.value();
  t.target = S(r.getTarget());
  t.model = S(r.getModel());
  auto d = r.getDataset();
  t.dataset.name = S(d.getName());
  t.dataset.path = S(d.getPath());
  t.dataset.train_subset = d.getTrainSubset();
  t.dataset.test_subset = d.getTestSubset();
  for (double v : d.getMean()) t.dataset.mean.push_back(v);
  for (double v : d.getStd()) t.dataset.std.push_back(v);
  for (auto n : d.getClassNames()) t.dataset.class_names.push_back(S(n));
  t.dataset.task = S(d.getTask());
  if (t.dataset.task.empty()) t.dataset.task = "image_classification";  // an older peer
  t.dataset.sequence_length = d.getSequenceLength();
  t.dataset.vocab_size = d.getVocabSize();
  t.dataset.tokenizer = S(d.getTokenizer());
  auto tr = r.getTraining();
  t.training.epochs = tr.getEpochs();
  t.training.batch_size = tr.getBatchSize();
  t.training.optimizer = S(tr.getOptimizer());
  if (t.training.optimizer.empty()) t.training.optimizer = "sgd";  // an older peer
  t.training.learning_rate = tr.getLearningRate();
  t.training.momentum = tr.getMomentum();
  t.training.weight_decay = tr.getWeightDecay();
  t.training.seed = tr.getSeed();
  t.training.precision = tr.hasPrecision() && tr.getPrecision().size() ? S(tr.getPrecision()) : "fp32";
  auto tc = r.getTrial();
  t.trial.criterion = S(tc.getCriterion());
  t.trial.granularity = S(tc.getGranularity());
  t.trial.schedule = S(tc.getSchedule());
  t.trial.sparsity = tc.getSparsity();
  t.trial.finetune_epochs = tc.getFinetuneEpochs();
  t.trial.finetune_learning_rate = tc.getFinetuneLearningRate();
  t.trial.scope = S(tc.getScope());
  t.trial.min_keep = tc.getMinKeep();
  for (auto e : tc.getExclude()) t.trial.exclude.push_back(S(e));
  for (auto o : tc.getOverrides()) t.trial.overrides.push_back({S(o.getName()), o.getValue()});
  t.trial.round_to = tc.getRoundTo();
  t.trial.rounds = tc.getRounds();
  t.trial.curve = S(tc.getCurve());
  t.trial.rewind = tc.getRewind();
  t.trial.layer = S(tc.getLayer());
  t.trial.calibration_batches = tc.getCalibrationBatches();
  t.trial.distill_temperature = tc.getDistillTemperature();
  t.trial.distill_alpha = tc.getDistillTemperature() > 0 ? tc.getDistillAlpha() : 0.5;
  t.trial.quantize = tc.hasQuantize() && tc.getQuantize().size() > 0 ? S(tc.getQuantize()) : "none";
  auto bc = r.getBenchmark();
  t.benchmark.warmup_queries = bc.getWarmupQueries();
  t.benchmark.min_queries = bc.getMinQueries();
  t.benchmark.min_duration_s = bc.getMinDurationS();
  t.benchmark.offline_batch_size = bc.getOfflineBatchSize();
  t.benchmark.offline_min_duration_s = bc.getOfflineMinDurationS();
  t.benchmark.profile = S(bc.getProfile());
  t.benchmark.scenarios.clear();
  for (auto sc : bc.getScenarios()) t.benchmark.scenarios.push_back(S(sc));
  t.benchmark.max_duration_s = bc.getMaxDurationS();
  t.benchmark.offline_min_samples = bc.getOfflineMinSamples();
  t.benchmark.multi_stream_samples = bc.getMultiStreamSamples();
  t.benchmark.server_latency_bound_ms = bc.getServerLatencyBoundMs();
  t.benchmark.server_target_qps = bc.getServerTargetQps();
  t.benchmark.ab_rounds = bc.getAbRounds();
  t.benchmark.sparse_forms = bc.getSparseForms();
  t.benchmark.threads = bc.getThreads();  // 0 from a peer that predates it: the worker's own
  t.benchmark.confirm_rounds = bc.getConfirmRounds();
  t.benchmark.confirm_candidates = bc.getConfirmCandidates();
  t.baseline_key = S(r.getBaselineKey());
  t.baseline_artifact = S(r.getBaselineArtifact());
  t.model_artifact = S(r.getModelArtifact());
  for (int64_t d : r.getInputShape()) t.input_shape.push_back(d);
  t.spec_hash = S(r.getSpecHash());
  t.variant_artifact = S(r.getVariantArtifact());
  t.depends_on = S(r.getDependsOn());
  if (r.hasEvaluation()) {
    auto e = r.getEvaluation();
    t.evaluation.release = S(e.getRelease());
    t.evaluation.reference = e.getReference();
    t.evaluation.compare_dense = e.getCompareDense();
    t.evaluation.bins_json = S(e.getBinsJson());
  }
  if (r.getCandidates().size() > kMaxConfirmCandidates)
    return Status::InvalidArgument("task: " + std::to_string(r.getCandidates().size()) +
                                   " confirmation candidates; the limit is " + std::to_string(kMaxConfirmCandidates));
  for (auto c : r.getCandidates()) t.candidates.push_back({S(c.getTaskId()), S(c.getArtifact()), S(c.getForm())});
  return t;
}

StatusOr<TrialResult> Get(s::Result::Reader r) {
  TrialResult v;
  v.sweep_id = S(r.getSweepId());
  v.task_id = S(r.getTaskId());
  v.attempt = r.getAttempt();
  v.worker_id = S(r.getWorkerId());
  v.pruned_by = S(r.getPrunedBy());
  for (auto n : r.getClassNames()) v.class_names.push_back(S(n));
  v.preprocessing = S(r.getPreprocessing());
  v.target = S(r.getTarget());
  auto kind = GetKind(r.getKind());
  if (!kind.ok()) return kind.status();
  v.kind = kind.value();
  v.model = S(r.getModel());
  v.criterion = S(r.getCriterion());
  v.granularity = S(r.getGranularity());
  v.schedule = S(r.getSchedule());
  v.sparsity = r.getSparsity();
  v.achieved_sparsity = r.getAchievedSparsity();
  v.baseline = r.getBaseline();
  v.ok = r.getOk();
  v.error = S(r.getError());
  v.accuracy = r.getAccuracy();
  for (double a : r.getPerClassAccuracy()) v.per_class_accuracy.push_back(a);
  v.latency_mean_ms = r.getLatencyMeanMs();
  v.latency_p50_ms = r.getLatencyP50Ms();
  v.latency_p90_ms = r.getLatencyP90Ms();
  v.latency_p99_ms = r.getLatencyP99Ms();
  v.queries = r.getQueries();
  v.bench_duration_s = r.getBenchDurationS();
  v.throughput_sps = r.getThroughputSps();
  v.params = r.getParams();
  v.model_bytes = r.getModelBytes();
  v.train_seconds = r.getTrainSeconds();
  v.eval_seconds = r.getEvalSeconds();
  v.seed = r.getSeed();
  v.hardware = Get(r.getHardware());
  v.artifact_hash = S(r.getArtifactHash());
  v.finished_at_ms = r.getFinishedAtMs();
  v.latency_p95_ms = r.getLatencyP95Ms();
  v.latency_p999_ms = r.getLatencyP999Ms();
  v.early_stop_p90_ms = r.getEarlyStopP90Ms();
  v.bench_valid = r.getBenchValid();
  v.multistream_p99_ms = r.getMultistreamP99Ms();
  v.server_max_qps = r.getServerMaxQps();
  v.server_p99_ms = r.getServerP99Ms();
  v.peak_rss_bytes = r.getPeakRssBytes();
  v.speedup_p90 = r.getSpeedupP90();
  v.speedup_min = r.getSpeedupMin();
  v.speedup_max = r.getSpeedupMax();
  v.deployable_form = S(r.getDeployableForm());
  v.benchmark_json = S(r.getBenchmarkJson());
  v.baseline_accuracy = r.getBaselineAccuracy();
  v.metric = S(r.getMetric());
  v.perplexity = r.getPerplexity();
  v.baseline_perplexity = r.getBaselinePerplexity();
  v.worst_class_drop = r.getWorstClassDrop();
  v.worst_class = r.getWorstClass();
  for (auto l : r.getLayers()) v.layers.push_back({S(l.getName()), l.getDense(), l.getTotal(), l.getNonzero()});
  v.params_before = r.getParamsBefore();
  v.model_bytes_before = r.getModelBytesBefore();
  v.round = r.getRound();
  v.rounds = r.getRounds();
  v.layer = S(r.getLayer());
  v.trial_json = S(r.getTrialJson());
  for (auto im : r.getIntermediates()) {
    auto sub = Get(im);
    if (!sub.ok()) return sub.status();
    v.intermediates.push_back(std::move(sub).value());
  }
  return v;
}

SweepStatus Get(s::SweepStatus::Reader r) {
  SweepStatus v;
  v.id = S(r.getId());
  v.name = S(r.getName());
  v.state = S(r.getState());
  v.trials = r.getTrials();
  v.done = r.getDone();
  v.failed = r.getFailed();
  v.running = r.getRunning();
  v.pending = r.getPending();
  v.created_at_ms = r.getCreatedAtMs();
  v.note = S(r.getNote());
  return v;
}

WorkerStatus Get(s::WorkerStatus::Reader r) {
  WorkerStatus v;
  v.worker_id = S(r.getWorkerId());
  v.target = S(r.getTarget());
  v.hardware = Get(r.getHardware());
  v.alive = r.getAlive();
  v.last_seen_ms_ago = r.getLastSeenMsAgo();
  v.task_id = S(r.getTaskId());
  v.phase = S(r.getPhase());
  v.progress = r.getProgress();
  v.slots = r.getSlots();
  return v;
}

StatusOr<Message> ReadBody(s::Envelope::Body::Reader body) {
  using B = s::Envelope::Body;
  switch (body.which()) {
    case B::REGISTER: {
      auto r = body.getRegister();
      RegisterMsg m{S(r.getWorkerId()), S(r.getTarget()), Get(r.getHardware()), std::max(1u, r.getSlots()), {}};
      for (auto t : r.getRunning()) m.running.push_back({S(t.getSweepId()), S(t.getTaskId()), t.getAttempt(), t.getSlot()});
      return Message(std::move(m));
    }
    case B::HEARTBEAT: {
      auto r = body.getHeartbeat();
      return Message(HeartbeatMsg{S(r.getWorkerId()), S(r.getTaskId()), S(r.getPhase()), r.getProgress(), r.getSlot()});
    }
    case B::REQUEST_WORK: return Message(RequestWorkMsg{S(body.getRequestWork().getWorkerId()), body.getRequestWork().getSlot()});
    case B::SUBMIT_RESULT: {
      auto r = body.getSubmitResult();
      auto res = Get(r.getResult());
      if (!res.ok()) return res.status();
      return Message(SubmitResultMsg{S(r.getWorkerId()), std::move(res).value(), S(r.getArtifact())});
    }
    case B::FETCH_ARTIFACT: {
      auto r = body.getFetchArtifact();
      return Message(FetchArtifactMsg{S(r.getHash()), r.getOffset(), r.getMaxBytes()});
    }
    case B::REGISTER_REPLY: {
      auto r = body.getRegisterReply();
      return Message(RegisterReplyMsg{S(r.getWorkerId()), r.getHeartbeatIntervalMs()});
    }
    case B::ASSIGN: {
      auto t = Get(body.getAssign());
      if (!t.ok()) return t.status();
      return Message(AssignMsg{std::move(t).value()});
    }
    case B::NO_WORK: {
      auto r = body.getNoWork();
      return Message(NoWorkMsg{r.getRetryAfterMs(), S(r.getReason())});
    }
    case B::RESULT_ACK: {
      auto r = body.getResultAck();
      return Message(ResultAckMsg{S(r.getTaskId()), r.getAttempt(), r.getAccepted(), S(r.getNote())});
    }
    case B::ARTIFACT_REPLY: {
      auto r = body.getArtifactReply();
      return Message(ArtifactReplyMsg{S(r.getHash()), r.getFound(), S(r.getData()), r.getOffset(), r.getTotalBytes(),
                                      S(r.getChunkHash())});
    }
    case B::SUBMIT_SWEEP: {
      auto sw = body.getSubmitSweep();
      return Message(SubmitSweepMsg{S(sw.getSpecYaml()), S(sw.getUserModel()), S(sw.getSubmissionId()),
                                    S(sw.getUserModelHash())});
    }
    case B::PUT_ARTIFACT_CHUNK: {
      auto r = body.getPutArtifactChunk();
      return Message(PutArtifactChunkMsg{S(r.getHash()), S(r.getUploadId()), r.getTotalBytes(), r.getOffset(),
                                         S(r.getData()), S(r.getChunkHash())});
    }
    case B::PUT_ARTIFACT_REPLY: {
      auto r = body.getPutArtifactReply();
      return Message(PutArtifactReplyMsg{S(r.getHash()), r.getNextOffset(), r.getComplete()});
    }
    case B::SUBMIT_REPLY: {
      auto r = body.getSubmitReply();
      return Message(SubmitReplyMsg{S(r.getSweepId()), r.getTasks(), r.getAlreadyStored()});
    }
    case B::STATUS_REQUEST: return Message(StatusRequestMsg{S(body.getStatusRequest().getSweepId())});
    case B::STATUS_REPLY: {
      StatusReplyMsg m;
      for (auto s : body.getStatusReply().getSweeps()) m.sweeps.push_back(Get(s));
      return Message(std::move(m));
    }
    case B::RESULTS_REQUEST: return Message(ResultsRequestMsg{S(body.getResultsRequest().getSweepId())});
    case B::RESULTS_REPLY: {
      ResultsReplyMsg m;
      for (auto r : body.getResultsReply().getResults()) {
        auto res = Get(r);
        if (!res.ok()) return res.status();
        m.results.push_back(std::move(res).value());
      }
      m.spec_yaml = S(body.getResultsReply().getSpecYaml());
      return Message(std::move(m));
    }
    case B::WORKERS_REQUEST: return Message(WorkersRequestMsg{});
    case B::SWEEP_CONTROL: {
      auto c = body.getSweepControl();
      return Message(SweepControlMsg{S(c.getSweepId()), S(c.getAction())});
    }
    case B::RELEASE_COMMAND: {
      auto c = body.getReleaseCommand();
      return Message(ReleaseCommandMsg{S(c.getAction()), S(c.getTarget()), S(c.getSweepId()), S(c.getTrial()),
                                       S(c.getNote()), c.getForce(), S(c.getReason()), S(c.getVersion()),
                                       S(c.getReleasedBy()), S(c.getDataPath()), S(c.getDataFormat()),
                                       c.getCompareDense(), S(c.getPolicyJson()), c.getLimit(), c.getSubset()});
    }
    case B::RELEASE_REPLY: return Message(ReleaseReplyMsg{S(body.getReleaseReply().getJson())});
    case B::WORKERS_REPLY: {
      WorkersReplyMsg m;
      for (auto w : body.getWorkersReply().getWorkers()) m.workers.push_back(Get(w));
      return Message(std::move(m));
    }
    case B::ERROR: {
      auto r = body.getError();
      return Message(ErrorMsg{S(r.getCode()), S(r.getMessage())});
    }
  }
  return Status::InvalidArgument("unknown message type " + std::to_string(static_cast<int>(body.which())));
}

}  // namespace

const char* TaskKindName(TaskKind kind) {
  switch (kind) {
    case TaskKind::kTrainBaseline: return "train_baseline";
    case TaskKind::kEvaluateBaseline: return "evaluate_baseline";
    case TaskKind::kPruneTrial: return "prune_trial";
    case TaskKind::kBenchmarkVariant: return "benchmark_variant";
    case TaskKind::kEvaluateRelease: return "evaluate_release";
    case TaskKind::kConfirmTarget: return "confirm_target";
  }
  return "unknown";
}

std::string Encode(const Message& msg) {
  capnp::MallocMessageBuilder builder;
  auto env = builder.initRoot<s::Envelope>();
  env.setProtocolVersion(kProtocolVersion);
  std::visit(BodyWriter{env.initBody()}, msg);
  kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

StatusOr<Message> Decode(std::string_view bytes) {
  if (bytes.empty()) return Status::InvalidArgument("empty message");
  if (bytes.size() > kMaxMessageBytes) return Status::InvalidArgument("message exceeds size limit");
  if (bytes.size() % sizeof(capnp::word) != 0) {
    return Status::InvalidArgument("truncated message: " + std::to_string(bytes.size()) +
                                   " bytes is not a whole number of 8-byte words");
  }
  // Copy into word-aligned storage: ZeroMQ frames carry no alignment guarantee.
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::ReaderOptions options;
  // Bound the traversal by what actually arrived: Cap'n Proto counts each element of a
  // list of empty structs as a word read, so a small message cannot claim millions of
  // elements (found by tests/fuzz: a 200-byte message decoded into gigabytes of results).
  // Twice the size leaves room for fields read more than once.
  options.traversalLimitInWords = 2 * words.size() + 1024;
  options.nestingLimit = 16;
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    auto env = reader.getRoot<s::Envelope>();
    if (env.getProtocolVersion() != kProtocolVersion) {
      return Status::InvalidArgument("protocol version " + std::to_string(env.getProtocolVersion()) +
                                     " not supported (this build speaks " +
                                     std::to_string(kProtocolVersion) + ")");
    }
    StrictText strict;
    return ReadBody(env.getBody());
  } catch (const kj::Exception& e) {
    return Status::InvalidArgument(std::string("malformed message: ") + e.getDescription().cStr());
  } catch (const InvalidText& e) {
    return Status::InvalidArgument("malformed message: a text field is not valid UTF-8 (bad byte at offset " +
                                   std::to_string(e.offset) + " of the field)");
  }
}

namespace {

std::string Flat(capnp::MallocMessageBuilder& builder) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(builder);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// Reads a stored record: trusted, but checked like anything read from disk.
template <typename Root, typename Fn>
auto ReadRecord(std::string_view bytes, Fn&& fn) -> decltype(fn(std::declval<typename Root::Reader>())) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0)
    return Status::Corruption("stored record of " + std::to_string(bytes.size()) + " bytes is not a Cap'n Proto message");
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 2 * words.size() + 1024;
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    return fn(reader.getRoot<Root>());
  } catch (const kj::Exception& e) {
    return Status::Corruption(std::string("stored record: ") + e.getDescription().cStr());
  }
}

bool LooksLikeJson(std::string_view b) { return !b.empty() && b[0] == '{'; }

}  // namespace

std::string EncodeTaskRecord(const TaskRecordData& r) {
  capnp::MallocMessageBuilder builder;
  auto b = builder.initRoot<s::TaskRecord>();
  Put(b.initTask(), r.task);
  b.setState(T(r.state));
  b.setWorker(T(r.worker));
  b.setSlot(r.slot);
  auto errs = b.initAttemptErrors(static_cast<unsigned>(r.attempt_errors.size()));
  for (size_t i = 0; i < r.attempt_errors.size(); ++i) errs.set(static_cast<unsigned>(i), T(r.attempt_errors[i]));
  return Flat(builder);
}

StatusOr<TaskRecordData> DecodeTaskRecord(std::string_view bytes) {
  if (LooksLikeJson(bytes)) {
    auto j = ParseJson(std::string(bytes));
    if (!j.ok()) return j.status();
    auto task = TaskFromJson((*j)["task"]);
    if (!task.ok()) return task.status();
    TaskRecordData d;
    d.task = std::move(task).value();
    d.state = j->value("state", "pending");
    d.worker = j->value("worker", "");
    d.slot = j->value("slot", 0u);
    d.attempt_errors = j->value("attempt_errors", std::vector<std::string>{});
    return d;
  }
  return ReadRecord<s::TaskRecord>(bytes, [](s::TaskRecord::Reader r) -> StatusOr<TaskRecordData> {
    auto task = Get(r.getTask());
    if (!task.ok()) return task.status();
    TaskRecordData d;
    d.task = std::move(task).value();
    d.state = S(r.getState());
    d.worker = S(r.getWorker());
    d.slot = r.getSlot();
    for (auto e : r.getAttemptErrors()) d.attempt_errors.push_back(S(e));
    return d;
  });
}

std::string EncodeResultRecord(const TrialResult& r) {
  capnp::MallocMessageBuilder builder;
  Put(builder.initRoot<s::Result>(), r);
  return Flat(builder);
}

StatusOr<TrialResult> DecodeResultRecord(std::string_view bytes) {
  if (LooksLikeJson(bytes)) {
    auto j = ParseJson(std::string(bytes));
    if (!j.ok()) return j.status();
    return ResultFromJson(j.value());
  }
  return ReadRecord<s::Result>(bytes, [](s::Result::Reader r) { return Get(r); });
}

Sender SenderOf(const Message& msg) { return KindOf(msg).sender; }

const char* MessageName(const Message& msg) { return KindOf(msg).name; }

}  // namespace prunelab

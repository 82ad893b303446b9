# Every message exchanged between the prunelab CLI, the coordinator and workers.
# Wire rule: each ZeroMQ message frame carries exactly one Envelope. A peer that sees a
# protocolVersion it does not speak answers with an ErrorReply and drops the message.
@0x96a712e782faac31;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("prunelab::schema");

const protocolVersion :UInt32 = 1;

struct Hardware {
  hostname @0 :Text;
  cpuModel @1 :Text;
  isaFlags @2 :Text;        # space-separated subset of /proc/cpuinfo flags (avx2, avx512f, ...)
  cores @3 :UInt32;         # logical CPUs
  memoryBytes @4 :UInt64;
  threads @5 :UInt32;       # intra-op threads LibTorch uses on this worker
  torchVersion @6 :Text;
  blas @7 :Text;            # path of the BLAS library actually loaded
  gpu @8 :Text;             # empty when none
  device @9 :Text;          # cpu | cuda:N
}

struct DatasetConfig {
  name @0 :Text;
  path @1 :Text;
  trainSubset @2 :UInt32;   # 0 = all 60k
  testSubset @3 :UInt32;    # 0 = all 10k
  mean @4 :List(Float64);   # per-channel normalization of [0, 1] pixels (npy, folder)
  std @5 :List(Float64);
  classNames @6 :List(Text); # from the spec; folder datasets: their sub-folder names
  task @7 :Text;             # image_classification (empty: the same) | causal_lm
  sequenceLength @8 :UInt32; # causal_lm: token ids per window
  vocabSize @9 :UInt32;      # causal_lm: tokenizer size (text) or the ids' bound (tokens)
  tokenizer @10 :Text;       # causal_lm text: the user's SentencePiece model (empty: trained)
}

struct TrainingConfig {
  epochs @0 :UInt32;
  batchSize @1 :UInt32;
  learningRate @2 :Float64;
  momentum @3 :Float64;
  weightDecay @4 :Float64;
  seed @5 :UInt64;
  precision @6 :Text;       # fp32 | bf16 (empty: fp32)
  optimizer @7 :Text;       # sgd (empty: the same) | adamw
}

struct TrialConfig {
  criterion @0 :Text;
  granularity @1 :Text;
  schedule @2 :Text;
  sparsity @3 :Float64;
  finetuneEpochsWhole @4 :UInt32;   # superseded by finetuneEpochs (fractional budgets)
  finetuneLearningRate @5 :Float64;
  finetuneEpochs @6 :Float64;
  scope @7 :Text;                   # layer | global
  minKeep @8 :Float64;              # global scope: fraction of every layer always kept
  exclude @9 :List(Text);           # layer/group names left dense ("first", "last" allowed)
  overrides @10 :List(LayerValue);  # per-layer/group sparsity
  roundTo @11 :UInt32;              # structured: kept widths rounded to a multiple
  rounds @12 :UInt32;               # iterative rounds
  curve @13 :Text;                  # linear | cubic
  rewind @14 :Float64;              # lottery-ticket rewind point (fraction of baseline training); < 0: off
  layer @15 :Text;                  # sensitivity: the one layer/group pruned
  calibrationBatches @16 :UInt32;
  distillTemperature @17 :Float64;  # > 0: fine-tune with the dense baseline as teacher
  distillAlpha @18 :Float64;        # weight of the teacher's soft targets (labels: 1 - alpha)
  quantize @19 :Text;               # none | int8 | int8_dynamic (empty from older peers: none)
}

struct LayerValue {
  name @0 :Text;
  value @1 :Float64;
}

struct LayerStat {
  name @0 :Text;
  dense @1 :UInt64;    # weights in the baseline
  total @2 :UInt64;    # weights now (after structural removal)
  nonzero @3 :UInt64;
}

struct BenchmarkConfig {
  warmupQueries @0 :UInt32;
  minQueries @1 :UInt32;
  minDurationS @2 :Float64;
  offlineBatchSize @3 :UInt32;
  offlineMinDurationS @4 :Float64;
  profile @5 :Text;
  scenarios @6 :List(Text);
  maxDurationS @7 :Float64;
  offlineMinSamples @8 :UInt32;
  multiStreamSamples @9 :UInt32;
  serverLatencyBoundMs @10 :Float64;
  serverTargetQps @11 :Float64;
  abRounds @12 :UInt32;
  sparseForms @13 :Bool;
  threads @14 :UInt32;            # intra-op threads for timing (the target's); 0: the worker's own
  confirmRounds @15 :UInt32;      # confirmation round: interleaved rounds (0: off)
  confirmCandidates @16 :UInt32;  # confirmation round: best passing variants timed again
}

enum TaskKind {
  trainBaseline @0;      # train the dense model once; produces the baseline artifact
  evaluateBaseline @1;   # evaluate + benchmark the dense model on one target
  pruneTrial @2;         # prune, fine-tune and evaluate one variant (any worker; GPU preferred)
  benchmarkVariant @3;   # benchmark one pruned variant against the baseline on one target
  evaluateRelease @4;    # a released variant on new data, on its target: accuracy, drift, latency
  confirmTarget @5;      # time a target's best candidates again, interleaved round-robin on one worker
}

# confirmTarget: one model timed in the round (the baseline first).
struct ConfirmCandidate {
  taskId @0 :Text;    # the row it confirms
  artifact @1 :Text;  # content hash of the model
  form @2 :Text;      # the execution form its benchmark chose
}

# evaluateRelease: what to measure besides the variant (variantArtifact) on the task's dataset.
struct EvaluationConfig {
  release @0 :Text;         # the release evaluated, e.g. "v2"
  reference @1 :Bool;       # the release's reference run: bins are made from this data
  compareDense @2 :Bool;    # also evaluate and time the dense baseline (baselineArtifact)
  binsJson @3 :Text;        # input-feature bin edges fixed at release ({"feature": [edges]}); empty for the reference
}

struct Task {
  sweepId @0 :Text;
  taskId @1 :Text;
  attempt @2 :UInt32;
  kind @3 :TaskKind;
  target @4 :Text;          # empty: any target may run it
  model @5 :Text;
  dataset @6 :DatasetConfig;
  training @7 :TrainingConfig;
  trial @8 :TrialConfig;
  benchmark @9 :BenchmarkConfig;
  baselineKey @10 :Text;    # content hash of model + data + training settings
  baselineArtifact @11 :Text; # content hash of the trained baseline (empty for trainBaseline)
  modelArtifact @12 :Text;    # user TorchScript model (content hash); empty for the built-in zoo
  inputShape @13 :List(Int64);
  specHash @14 :Text;
  variantArtifact @15 :Text;  # benchmarkVariant: content hash of the pruned variant
  dependsOn @16 :Text;        # benchmarkVariant: the pruneTrial task that makes the variant
  evaluation @17 :EvaluationConfig;  # evaluateRelease only
  candidates @18 :List(ConfirmCandidate);  # confirmTarget only
}

struct Result {
  sweepId @0 :Text;
  taskId @1 :Text;
  attempt @2 :UInt32;
  workerId @3 :Text;
  target @4 :Text;
  kind @5 :TaskKind;
  model @6 :Text;
  criterion @7 :Text;
  granularity @8 :Text;
  schedule @9 :Text;
  sparsity @10 :Float64;
  achievedSparsity @11 :Float64;
  baseline @12 :Bool;
  ok @13 :Bool;
  error @14 :Text;
  accuracy @15 :Float64;
  perClassAccuracy @16 :List(Float64);
  latencyMeanMs @17 :Float64;
  latencyP50Ms @18 :Float64;
  latencyP90Ms @19 :Float64;
  latencyP99Ms @20 :Float64;
  queries @21 :UInt64;
  benchDurationS @22 :Float64;
  throughputSps @23 :Float64;
  params @24 :UInt64;
  modelBytes @25 :UInt64;
  trainSeconds @26 :Float64;
  evalSeconds @27 :Float64;
  seed @28 :UInt64;
  hardware @29 :Hardware;
  artifactHash @30 :Text;   # set by trainBaseline
  finishedAtMs @31 :Int64;
  latencyP95Ms @32 :Float64;
  latencyP999Ms @33 :Float64;
  earlyStopP90Ms @34 :Float64;
  benchValid @35 :Bool;
  multistreamP99Ms @36 :Float64;
  serverMaxQps @37 :Float64;
  serverP99Ms @38 :Float64;
  peakRssBytes @39 :UInt64;
  speedupP90 @40 :Float64;
  speedupMin @41 :Float64;
  speedupMax @42 :Float64;
  deployableForm @43 :Text;
  benchmarkJson @44 :Text;  # detail: per-scenario reports and summaries, forms, A/B rounds
  baselineAccuracy @45 :Float64;
  worstClassDrop @46 :Float64;
  worstClass @47 :Int32;
  layers @48 :List(LayerStat);
  paramsBefore @49 :UInt64;
  modelBytesBefore @50 :UInt64;
  round @51 :UInt32;                 # iterative: 1..rounds for intermediate rows; 0 final
  rounds @52 :UInt32;
  layer @53 :Text;                   # sensitivity trials
  trialJson @54 :Text;
  intermediates @55 :List(Result);   # iterative rounds before the last
  prunedBy @56 :Text;                # the worker that pruned and fine-tuned the variant
  classNames @57 :List(Text);        # the dataset's class names in label order (empty: unknown)
  preprocessing @58 :Text;           # what the model's input is: scaling, resize, mean/std
  metric @59 :Text;                  # accuracy (empty: the same) | perplexity
  perplexity @60 :Float64;           # language modeling: on the held-out text
  baselinePerplexity @61 :Float64;
}

struct SweepStatus {
  id @0 :Text;
  name @1 :Text;
  state @2 :Text;           # running | done | failed
  trials @3 :UInt32;        # result-producing tasks (baseline evaluations + pruning trials)
  done @4 :UInt32;
  failed @5 :UInt32;
  running @6 :UInt32;
  pending @7 :UInt32;
  createdAtMs @8 :Int64;
  note @9 :Text;            # e.g. "no live worker for target(s): gpu-a"
}

struct WorkerStatus {
  workerId @0 :Text;
  target @1 :Text;
  hardware @2 :Hardware;
  alive @3 :Bool;
  lastSeenMsAgo @4 :Int64;
  taskId @5 :Text;
  phase @6 :Text;
  progress @7 :Float64;
  slots @8 :UInt32;         # tasks it runs at once
}

# Store records (RocksDB values): binary, not JSON, so recording a result stays cheap.
struct TaskRecord {
  task @0 :Task;
  state @1 :Text;             # blocked | pending | running | done | failed
  worker @2 :Text;
  slot @3 :UInt32;
  attemptErrors @4 :List(Text);
}

struct Envelope {
  protocolVersion @0 :UInt32;
  body :union {
    # worker -> coordinator
    register @1 :Register;
    heartbeat @2 :Heartbeat;
    requestWork @3 :RequestWork;
    submitResult @4 :SubmitResult;
    fetchArtifact @5 :FetchArtifact;
    # coordinator -> worker
    registerReply @6 :RegisterReply;
    assign @7 :Task;
    noWork @8 :NoWork;
    resultAck @9 :ResultAck;
    artifactReply @10 :ArtifactReply;
    # client <-> coordinator
    submitSweep @11 :SubmitSweep;
    submitReply @12 :SubmitReply;
    statusRequest @13 :StatusRequest;
    statusReply @14 :StatusReply;
    resultsRequest @15 :ResultsRequest;
    resultsReply @16 :ResultsReply;
    workersRequest @17 :WorkersRequest;
    workersReply @18 :WorkersReply;
    # either direction
    error @19 :ErrorReply;
    # client -> coordinator (reply: statusReply)
    sweepControl @20 :SweepControl;
    # worker or client -> coordinator (reply: putArtifactReply or error)
    putArtifactChunk @21 :PutArtifactChunk;
    putArtifactReply @22 :PutArtifactReply;
    # client -> coordinator: releases, rollback, evaluations, policies (reply: releaseReply)
    releaseCommand @23 :ReleaseCommand;
    releaseReply @24 :ReleaseReply;
  }
}

struct Register {
  workerId @0 :Text;
  target @1 :Text;
  hardware @2 :Hardware;
  slots @3 :UInt32;              # tasks run at once (0 = 1)
  running @4 :List(RunningTask); # what it is still running (re-registration after a restart)
}
struct RunningTask { sweepId @0 :Text; taskId @1 :Text; attempt @2 :UInt32; slot @3 :UInt32; }
struct RegisterReply { workerId @0 :Text; heartbeatIntervalMs @1 :UInt32; }
struct Heartbeat { workerId @0 :Text; taskId @1 :Text; phase @2 :Text; progress @3 :Float64; slot @4 :UInt32; }
struct RequestWork { workerId @0 :Text; slot @1 :UInt32; }
struct NoWork { retryAfterMs @0 :UInt32; reason @1 :Text; }
# artifact: the model inline (small ones, and workers before 0.6); empty when it was uploaded
# beforehand with putArtifactChunk under result.artifactHash.
struct SubmitResult { workerId @0 :Text; result @1 :Result; artifact @2 :Data; }
struct ResultAck { taskId @0 :Text; attempt @1 :UInt32; accepted @2 :Bool; note @3 :Text; }
struct FetchArtifact {
  hash @0 :Text;
  offset @1 :UInt64;     # first byte wanted
  maxBytes @2 :UInt32;   # chunk size wanted (0 = the coordinator's default)
}
struct ArtifactReply {
  hash @0 :Text;
  found @1 :Bool;
  data @2 :Data;         # bytes [offset, offset + size(data)) of the artifact
  offset @3 :UInt64;
  totalBytes @4 :UInt64; # size of the whole artifact
  chunkHash @5 :Text;    # content hash of data, checked by the receiver per chunk
}
# userModel: TorchScript bytes named by the spec. submissionId: chosen by the client, the same
# on every resend of one submission, so a resend after a lost reply is answered with the sweep
# already stored (alreadyStored) instead of storing it twice.
# userModelHash: the model was uploaded beforehand with putArtifactChunk (userModel empty).
struct SubmitSweep { specYaml @0 :Text; userModel @1 :Data; submissionId @2 :Text; userModelHash @3 :Text; }
# Uploads of artifacts of any size (up to the coordinator's --max-artifact-mb), one chunk per
# message, in order. The coordinator writes each chunk to a staging file as it arrives (it
# never holds a whole artifact), checks every chunk's hash and the whole artifact's hash, and
# only then makes it visible under its name (fsync, atomic rename). A reply names the byte it
# wants next, so an uploader resumes after a lost reply or a coordinator restart.
struct PutArtifactChunk {
  hash @0 :Text;        # content hash of the whole artifact
  uploadId @1 :Text;    # chosen by the uploader, the same for every chunk of one upload
  totalBytes @2 :UInt64;
  offset @3 :UInt64;    # where data starts
  data @4 :Data;
  chunkHash @5 :Text;   # content hash of data
}
struct PutArtifactReply {
  hash @0 :Text;
  nextOffset @1 :UInt64;  # the byte the coordinator wants next
  complete @2 :Bool;      # stored, verified and durable under hash
}
struct SubmitReply { sweepId @0 :Text; tasks @1 :UInt32; alreadyStored @2 :Bool; }
struct StatusRequest { sweepId @0 :Text; }   # empty: every sweep
struct StatusReply { sweeps @0 :List(SweepStatus); }
struct ResultsRequest { sweepId @0 :Text; }
struct ResultsReply { results @0 :List(Result); specYaml @1 :Text; }
struct WorkersRequest { }
struct WorkersReply { workers @0 :List(WorkerStatus); }
struct ErrorReply { code @0 :Text; message @1 :Text; }
struct SweepControl { sweepId @0 :Text; action @1 :Text; }   # pause | resume | cancel
# Releases and continuous evaluation. Every field is validated by the coordinator (lengths,
# allowed values); which fields an action reads is listed beside it.
struct ReleaseCommand {
  action @0 :Text;        # release (sweepId, trial, target, note, force, reason) | releases (target)
                          # | rollback (target, version) | evaluate (target, dataPath, dataFormat, compareDense)
                          # | evaluations (target, limit) | policy (target, policyJson: empty reads it)
  target @1 :Text;
  sweepId @2 :Text;
  trial @3 :Text;         # a result of the sweep on the target: t003, t003@T, base, or recommended
  note @4 :Text;
  force @5 :Bool;         # release a variant that fails the gates (reason required, recorded)
  reason @6 :Text;
  version @7 :Text;       # rollback: the release to go back to (empty: the last known-good)
  releasedBy @8 :Text;    # who the client says it is (OS user); replaced by the CURVE key when the connection has one
  dataPath @9 :Text;      # evaluate: the new data, as the target's workers see it
  dataFormat @10 :Text;   # npy | fashion-mnist | folder
  compareDense @11 :Bool;
  policyJson @12 :Text;   # policy: thresholds and the action on critical (see README "Releases")
  limit @13 :UInt32;      # evaluations: how many, newest first (0: 20)
  subset @14 :UInt32;     # evaluate: the first N samples only (0: all)
}
# The coordinator's answer: a JSON document (releases, events, evaluations, policy), shown by the CLI.
struct ReleaseReply { json @0 :Text; }

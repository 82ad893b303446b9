// prunelab: the command-line client. `run` embeds a coordinator and local workers;
// every other command talks to a coordinator (--coordinator) or reads a data directory
// (--data-dir) directly. This file: the command line (CLI11) and dispatch; the commands
// live in one file per group (see cli.h).
#include <signal.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/flags/flags.h"
#include "coordinator/cli/cli.h"

namespace prunelab::cli {

namespace {

const char* kUsage =
    "\nCommands in short:\n"
    "  run SPEC.yaml [--workers N] [--data-dir DIR] [--threads N] [--http PORT]\n"
    "        run a sweep locally: embedded coordinator + N worker processes; prints the Pareto table\n"
    "  submit SPEC.yaml [--coordinator tcp://HOST:PORT]      submit to a running coordinator; prints the sweep id\n"
    "  status [ID] [--wait]                                  progress of one or every sweep\n"
    "  results ID [--json]                                   every result of a sweep\n"
    "  pareto ID [--target NAME] [--json]                    Pareto fronts per target, release gates, the recommendation\n"
    "        [--objectives accuracy:max,latency_p90_ms:min,...] [--rule fastest|most_accurate|knee] [--max-drop PT] [--max-memory F]\n"
    "  report ID -o DIR                                      report.html (self-contained), report.md, results.json, results.csv, model cards\n"
    "  compare NEW OLD                                       gate a new sweep against a known-good one (exit 1 on a regression)\n"
    "  summary ID TRIAL [--scenario NAME]                    benchmark summaries (mlperf_log_summary style) of one result\n"
    "  export ID TRIAL -o DIR [--fold-preprocessing] [--format onnx]   the variant as TorchScript (model.pt; and model.onnx) + model card\n"
    "  sensitivity ID                                        per-layer accuracy curves of a sensitivity sweep\n"
    "  pause ID | resume ID | cancel ID                      hold a sweep's queued tasks / release them / fail what is unfinished\n"
    "  workers [--json]                                      registered workers and their hardware\n"
    "  sweeps [--json]                                       sweeps in the store\n"
    "  keygen DIR/NAME                                       CURVE key pair: NAME.key (secret, 0600) and NAME.pub\n"
    "  release ID TRIAL --target T [--note TEXT] [--force --reason TEXT] [--wait]   promote a variant (or 'recommended') to T's next release\n"
    "  releases [--target T] [--json]                        release history per target: versions, events, latest evaluations\n"
    "  rollback --target T [--to vN] [--reason TEXT]         back to the last known-good release (recorded as an event)\n"
    "  evaluate --target T --data DIR [--dense] [--every MIN | --watch DIR]   the current release on new data: accuracy, drift, latency\n"
    "  evaluations [--target T] [--limit N] [--json]         evaluation records with their levels\n"
    "  policy --target T [--on-critical notify|rollback|resweep] [--psi W,C] ...   thresholds and what happens on critical\n"
    "  export --release T -o DIR                             the current release of T (model.pt, card, release.json)\n"
    "  results, pareto, report, compare, summary, export, sensitivity and sweeps take --data-dir DIR instead of --coordinator to read a store directly.\n"
    "  --coordinator defaults to $PRUNELAB_COORDINATOR or tcp://127.0.0.1:5556 (the coordinator's client endpoint).\n"
    "  With a CURVE coordinator: --curve-key NAME.key --server-key coordinator.pub (or $PRUNELAB_CURVE_KEY,\n"
    "  $PRUNELAB_SERVER_KEY); NAME.pub must be in the coordinator's --allow-clients list.\n";


// The command line: every command with the flags it takes (CLI11). Parsing fills Args, which
// the commands read; a flag a command does not take is an error naming the closest one.
class CommandLine {
 public:
  CommandLine() : app_("prunelab: pruning sweeps over a coordinator and workers", "prunelab") {
    app_.require_subcommand(1, 1);
    app_.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // a flag given twice: the last wins
    app_.footer(kUsage);
    Command("run", "run a sweep locally: embedded coordinator + N worker processes; prints the Pareto table", {"SPEC.yaml"});
    Integer("--workers", "local worker processes (default 2)")->check(CLI::Range(1, 64));
    Option("--data-dir", "where the store and logs go (default ./prunelab-data)");
    Integer("--threads", "LibTorch threads per worker (default cores / workers)")->check(CLI::Range(1, 1024));
    Integer("--http", "serve the dashboard on 127.0.0.1:PORT")->check(CLI::Range(0, 65535));
    Command("submit", "submit to a running coordinator; prints the sweep id", {"SPEC.yaml"}, kRemote);
    Command("status", "progress of one or every sweep", {"[ID]"}, kRemote | kJson);
    Flag("--wait", "poll until every sweep shown is done");
    Command("results", "every result of a sweep", {"ID"}, kRemote | kStore | kJson);
    Command("pareto", "Pareto fronts per target, release gates, the recommendation", {"ID"}, kRemote | kStore | kJson | kDecide);
    Option("--target", "only this hardware target");
    Command("report", "report.html (self-contained), report.md, results.json, results.csv, model cards", {"ID"},
            kRemote | kStore | kDecide);
    Option("-o,--out", "output directory")->required();
    Command("compare", "gate a new sweep against a known-good one (exit 1 on a regression)", {"NEW", "OLD"},
            kRemote | kStore | kDecide);
    Real("--accuracy-tolerance", "accuracy points the new recommendation may lose (default 0.5)")->check(CLI::NonNegativeNumber);
    Real("--latency-tolerance", "fraction p90 latency may grow (default 0.10)")->check(CLI::NonNegativeNumber);
    Command("summary", "benchmark summaries (mlperf_log_summary style) of one result", {"ID", "TRIAL"}, kRemote | kStore);
    Option("--scenario", "single_stream, multi_stream, server or offline");
    Command("export", "the variant (or the dense baseline) as TorchScript model.pt + model card", {"[ID]", "[TRIAL]"},
            kRemote | kStore);
    Option("--release", "export the current release of this target instead of ID TRIAL (adds release.json)");
    Option("-o,--out", "output directory")->required();
    Flag("--fold-preprocessing", "model.pt takes pixel values 0-255 (any size): scaling, channels, resize and "
                                 "mean/std of the sweep's data are folded in");
    Option("--format", "torchscript (default) or onnx: also model.onnx, checked by onnx.checker and run in OpenCV DNN "
                       "against LibTorch on the sweep's test set")
        ->check(CLI::IsMember({"torchscript", "onnx"}));
    Command("sensitivity", "per-layer accuracy curves of a sensitivity sweep", {"ID"}, kRemote | kStore | kJson);
    for (const char* c : {"pause", "resume", "cancel"})
      Command(c, std::string(c) + " a sweep (hold / release its queued tasks / fail what is unfinished)", {"ID"},
              kRemote | kJson);
    Command("workers", "registered workers and their hardware", {}, kRemote | kJson);
    Command("sweeps", "sweeps in the store", {}, kRemote | kStore | kJson);
    Command("keygen", "CURVE key pair: NAME.key (secret, 0600) and NAME.pub", {"DIR/NAME"});
    Command("release", "promote a benchmarked variant to the next release of a target (gates checked)", {"ID", "TRIAL"},
            kRemote | kJson);
    Option("--target", "the hardware target released for")->required();
    Option("--note", "recorded with the release");
    Flag("--force", "release a variant that fails the gates (needs --reason)");
    Option("--reason", "why the gates are overridden (recorded)");
    Flag("--wait", "wait for the reference run and print it");
    Command("releases", "release history per target: versions, events, latest evaluations", {}, kRemote | kJson);
    Option("--target", "only this target");
    Command("rollback", "make an earlier release current again (default: the last known-good); recorded as an event",
            {}, kRemote | kJson);
    Option("--target", "the target")->required();
    Option("--to", "the release to go back to, e.g. v1");
    Option("--reason", "recorded with the rollback");
    Command("evaluate", "evaluate the target's current release on new data (accuracy, per class, drift, latency)", {},
            kRemote | kJson);
    Option("--target", "the target whose current release is evaluated")->required();
    Option("--data", "dataset directory as the target's workers see it (its test split is used)");
    Option("--format", "npy, fashion-mnist or folder (default: from the files in --data)")
        ->check(CLI::IsMember({"npy", "fashion-mnist", "folder"}));
    Flag("--dense", "also evaluate and time the dense teacher on the same data (A/B)");
    Integer("--subset", "the first N samples only")->check(CLI::Range(1, 100000000));
    Real("--every", "evaluate --data again every MIN minutes until Ctrl-C")->check(CLI::PositiveNumber);
    Option("--watch", "evaluate each new sub-directory of DIR (a dataset each) as it appears");
    Integer("--max-evaluations", "stop after N evaluations (--every, --watch)")->check(CLI::Range(1, 1000000));
    Flag("--no-wait", "print the evaluation id and return");
    Command("evaluations", "evaluation records of releases with their levels", {}, kRemote | kJson);
    Option("--target", "only this target");
    Integer("--limit", "newest N (default 20)")->check(CLI::Range(1, 100000));
    Command("policy", "show or set a target's thresholds and what happens on critical", {}, kRemote | kJson);
    Option("--target", "the target")->required();
    Option("--on-critical", "notify (log + metric), rollback (to the last known-good) or resweep (the release's sweep on the new data)")
        ->check(CLI::IsMember({"notify", "rollback", "resweep"}));
    Option("--accuracy-drop", "WARN,CRIT points below the dense teacher (default 2,5)");
    Option("--class-drop", "WARN,CRIT worst-class points below the teacher (default 5,10)");
    Option("--psi", "WARN,CRIT population stability index (default 0.1,0.25)");
    Option("--memory", "WARN,CRIT model bytes as a fraction of dense (default 0.5,0.7)");
    Option("--throughput", "WARN,CRIT offline samples/s, lower is worse (default 1000,500)");
    Option("--latency-p95-ms", "WARN,CRIT single-stream p95 in ms (default: the sweep's p95 budget, x1.2 critical)");
    Real("--gate-max-drop", "this target's release gate: accuracy drop in points (instead of the sweep's)")->check(CLI::NonNegativeNumber);
    Real("--gate-max-memory", "this target's release gate: memory fraction of dense")->check(CLI::Range(0.0, 10.0));
  }

  // nullopt: go on with args(); otherwise the exit code.
  std::optional<int> Parse(int argc, char** argv) {
    if (auto rc = pl::flags::Parse(app_, argc, argv)) return rc;
    for (auto& c : commands_) {
      if (!c.app->parsed()) continue;
      args_.command = c.app->get_name();
      for (auto& p : c.positionals)
        if (p.option->count() > 0) args_.positional.push_back(*p.value);
      for (auto& o : c.options) {
        if (o.option->count() == 0) continue;
        if (o.real) args_.numbers[o.key] = *o.real;
        if (o.integer) args_.numbers[o.key] = static_cast<double>(*o.integer);
        args_.flags[o.key] = o.is_flag ? "1" : o.value ? *o.value : o.option->as<std::string>();
      }
    }
    return std::nullopt;
  }
  const Args& args() const { return args_; }

 private:
  enum Groups : unsigned { kRemote = 1, kStore = 2, kJson = 4, kDecide = 8 };
  struct Bound {
    CLI::Option* option;
    std::string key;  // the long name, e.g. "--out"
    std::unique_ptr<std::string> value;
    bool is_flag = false;
    std::unique_ptr<double> real;     // Real: CLI11 converts into it
    std::unique_ptr<int64_t> integer; // Integer: likewise; "1.5" is refused naming the flag
  };
  struct Cmd {
    CLI::App* app;
    std::vector<Bound> positionals;
    std::vector<Bound> options;
  };

  void Command(const std::string& name, const std::string& help, std::vector<std::string> positionals,
               unsigned groups = 0) {
    commands_.push_back(Cmd{app_.add_subcommand(name, help), {}, {}});
    for (const std::string& p : positionals) {
      bool optional = p.front() == '[';
      std::string label = optional ? p.substr(1, p.size() - 2) : p;
      auto value = std::make_unique<std::string>();
      CLI::Option* o = commands_.back().app->add_option(label, *value);
      if (!optional) o->required();
      commands_.back().positionals.push_back(Bound{o, label, std::move(value)});
    }
    if (groups & kRemote) {
      Option("--coordinator", "client endpoint (default $PRUNELAB_COORDINATOR or tcp://127.0.0.1:5556)");
      Option("--curve-key", "this client's CURVE secret key file (or $PRUNELAB_CURVE_KEY)");
      Option("--server-key", "the coordinator's public key file (or $PRUNELAB_SERVER_KEY)");
      Integer("--timeout-ms", "how long to wait for each reply (default 15000)")->check(CLI::Range(100, 3600000));
    }
    if (groups & kStore) Option("--data-dir", "read this data directory's store instead of asking a coordinator");
    if (groups & kJson) Flag("--json", "machine-readable output");
    if (groups & kDecide) {
      Option("--objectives", "e.g. accuracy:max,latency_p90_ms:min (default: the spec's report.objectives)");
      Option("--rule", "fastest, most_accurate or knee")->check(CLI::IsMember({"fastest", "most_accurate", "knee"}));
      Real("--max-drop", "release gate: accuracy drop in points vs dense (default 2)")->check(CLI::NonNegativeNumber);
      Real("--max-memory", "release gate: model memory as a fraction of dense (default 0.5)")
          ->check(CLI::Range(0.0, 1.0));
    }
  }
  CLI::Option* Option(const std::string& names, const std::string& help) {
    auto value = std::make_unique<std::string>();
    CLI::Option* o = commands_.back().app->add_option(names, *value, help);
    commands_.back().options.push_back(Bound{o, "--" + o->get_lnames().front(), std::move(value)});
    return o;
  }
  CLI::Option* Real(const std::string& names, const std::string& help) {
    auto value = std::make_unique<double>();
    CLI::Option* o = commands_.back().app->add_option(names, *value, help);
    commands_.back().options.push_back(Bound{o, "--" + o->get_lnames().front(), nullptr, false, std::move(value), nullptr});
    return o;
  }
  CLI::Option* Integer(const std::string& names, const std::string& help) {
    auto value = std::make_unique<int64_t>();
    CLI::Option* o = commands_.back().app->add_option(names, *value, help)->check(CLI::TypeValidator<int64_t>("an integer"));
    commands_.back().options.push_back(Bound{o, "--" + o->get_lnames().front(), nullptr, false, nullptr, std::move(value)});
    return o;
  }
  void Flag(const std::string& name, const std::string& help) {
    CLI::Option* o = commands_.back().app->add_flag(name, help);
    commands_.back().options.push_back(Bound{o, name, nullptr, true});
  }

  CLI::App app_;
  std::vector<Cmd> commands_;
  Args args_;
};


}  // namespace

int Main(int argc, char** argv) {
  CommandLine line;
  if (auto rc = line.Parse(argc, argv)) return *rc;
  const Args& a = line.args();
  g_timeout_ms = static_cast<int>(a.Integer("--timeout-ms", g_timeout_ms));
  signal(SIGPIPE, SIG_IGN);
  if (a.command == "run") return CmdRun(a);
  if (a.command == "submit") return CmdSubmit(a);
  if (a.command == "status") return CmdStatus(a);
  if (a.command == "results") return CmdResults(a);
  if (a.command == "pareto") return CmdPareto(a);
  if (a.command == "workers") return CmdWorkers(a);
  if (a.command == "summary") return CmdSummary(a);
  if (a.command == "sweeps") return CmdSweeps(a);
  if (a.command == "export") return CmdExport(a);
  if (a.command == "pause" || a.command == "resume" || a.command == "cancel") return CmdSweepControl(a);
  if (a.command == "sensitivity") return CmdSensitivity(a);
  if (a.command == "keygen") return CmdKeygen(a);
  if (a.command == "report") return CmdReport(a);
  if (a.command == "compare") return CmdCompare(a);
  if (a.command == "release") return CmdRelease(a);
  if (a.command == "releases") return CmdReleases(a);
  if (a.command == "rollback") return CmdRollback(a);
  if (a.command == "evaluate") return CmdEvaluate(a);
  if (a.command == "evaluations") return CmdEvaluations(a);
  if (a.command == "policy") return CmdPolicy(a);
  return 2;  // unreachable: the parser accepts only the commands above
}

}  // namespace prunelab::cli

int main(int argc, char** argv) { return prunelab::cli::Main(argc, argv); }

// The deconvtune command line: parses arguments with CLI11 and hands them to tools/commands.cpp.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "codegen/epilogue.hpp"
#include "tools/autotune_command.hpp"
#include "tools/cli_checks.hpp"
#include "tools/commands.hpp"
#include "tools/db_command.hpp"
#include "tools/default_report.hpp"
#include "tools/table.hpp"
#include "tuner/worker.hpp"

namespace {

// The exit code of `deconvtune worker` (README's table): the tuner reads it in its reports.
int worker_exit_code(deconvtune::tuner::WorkerEnd end) {
  using deconvtune::tuner::WorkerEnd;
  switch (end) {
    case WorkerEnd::kInputClosed:
      return deconvtune::tools::kExitOk;
    case WorkerEnd::kUnreadable:
      return deconvtune::tools::kExitBadInput;
    case WorkerEnd::kFailed:
      break;
  }
  return deconvtune::tools::kExitFailure;
}

// Checked where they are applied, by the problem's own parsers (one list of the names).
void add_dtype_and_layout_options(CLI::App& command, std::string& dtype, std::string& layout) {
  command.add_option("--dtype", dtype,
                     "float32, bfloat16 or float16: x, w, bias and y (overrides the problem's)");
  command.add_option("--layout", layout,
                     "NCHW or NHWC (channels_last) for x and y (overrides the problem's)");
}

void add_problem_options(CLI::App& command, deconvtune::tools::ProblemArgs& args) {
  command
      .add_option("--problem", args.problem,
                  "'seed', a JSON file or inline JSON with PyTorch's ConvTranspose2d names "
                  "(batch, in_channels, out_channels, height, width, kernel_size, stride, padding, "
                  "output_padding, dilation, groups, bias, epilogue, precision, dtype, layout)")
      ->capture_default_str();
  command.add_option("--precision", args.precision, "fp32 or tf32 (overrides the problem's)")
      ->check(CLI::IsMember({"fp32", "tf32"}));
  add_dtype_and_layout_options(command, args.dtype, args.layout);
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substituted = diagonal + (a[i - 1] != b[j - 1]);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substituted});
    }
  }
  return row[b.size()];
}

// CLI11 reads an unknown subcommand as a stray argument and says only "A subcommand is required".
// Walks the leading words of the command line down the subcommand tree and names the first that is
// not a command of its level, with the nearest command name when one is close (a typo, or a word
// it contains: "tune" for autotune).
std::string unknown_subcommand_message(CLI::App& app, int argc, char** argv) {
  CLI::App* level = &app;
  std::string path = "deconvtune";
  for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
    const std::string word = argv[i];
    const std::vector<CLI::App*> commands = level->get_subcommands([](CLI::App*) { return true; });
    if (commands.empty()) return {};  // a positional argument of a leaf command
    auto known = std::find_if(commands.begin(), commands.end(),
                              [&](CLI::App* command) { return command->get_name() == word; });
    if (known != commands.end()) {
      level = *known;
      path += " " + word;
      continue;
    }
    std::string names, nearest;
    size_t best = word.size() / 2 + 1;
    for (CLI::App* command : commands) {
      if (command->get_group().empty()) continue;  // hidden
      const std::string& name = command->get_name();
      names += (names.empty() ? "" : ", ") + name;
      const bool part = word.size() >= 3 && name.find(word) != std::string::npos;
      const size_t distance = part ? 1 : edit_distance(word, name);
      if (distance < best) {
        best = distance;
        nearest = name;
      }
    }
    return "'" + word + "' is not a command of " + path +
           (nearest.empty() ? "" : "; did you mean '" + nearest + "'?") + " (commands: " + names +
           ")";
  }
  return {};
}

}  // namespace

namespace {

using namespace deconvtune::tools;

CLI::App* add_run_command(CLI::App& app, RunArgs& args) {
  CLI::App* command = app.add_subcommand(
      "run",
      "Generate, compile, launch on fresh random inputs, verify against the float64 GPU reference "
      "and time. Without a GPU: compile the problem's variants for sm_90a and say what was not "
      "run.");
  add_problem_options(*command, args.problem);
  command->add_option("--config", args.config, "a config name (see inspect --list-configs)");
  command->add_flag("--all-configs", args.all_configs, "run every config of the space (a sweep)");
  command->add_option("--only", args.name_filter,
                      "with --all-configs: only the configs whose name contains this text");
  command->add_option("--reps", args.reps, "timed runs (median reported)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  command->add_option("--warmup", args.warmup, "untimed runs first")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  command->add_option("--seed", args.seed, "random seed for the inputs (default: fresh)");
  command->add_option("--device", args.device, "GPU ordinal")->capture_default_str();
  command->add_flag("--json", args.json, kJsonHelp);
  command->add_flag("--wide", args.wide, kWideHelp);
  command->add_flag("--require-gpu", args.require_gpu, "exit 3 when no GPU is present");
  return command;
}

CLI::App* add_inspect_command(CLI::App& app, InspectArgs& args) {
  CLI::App* command = app.add_subcommand(
      "inspect",
      "Print a config's generated CUDA source, its PTX, SASS or resources, or the space.");
  add_problem_options(*command, args.problem);
  command->add_option("--config", args.config, "a config name (default: the default config)");
  command->add_option("--arch", args.arch, "target, e.g. sm_90a (default: the GPU's, else sm_90a)");
  command->add_flag("--ptx", args.ptx, "print the PTX instead of the source");
  command->add_flag("--sass", args.sass, "print the SASS (needs cuobjdump)");
  command->add_flag("--resources", args.resources,
                    "print registers, shared memory and spills (ptxas's report, else the cubin's)");
  command->add_flag("--log", args.log, "print NVRTC's options and full log (ptxas report)");
  command->add_flag("--list-configs", args.list_configs,
                    "list the variant space: a table of config names and parameters");
  command->add_flag("--json", args.json, "with --list-configs: " + std::string(kJsonHelp));
  command->add_flag("--wide", args.wide, kWideHelp);
  return command;
}

CLI::App* add_autotune_command(CLI::App& app, AutotuneArgs& args) {
  CLI::App* command = app.add_subcommand(
      "autotune",
      "Find the fastest verified config of a problem (or of every problem in a file) on this GPU: "
      "compile the space in parallel, verify each candidate against the float64 reference, time "
      "it in a worker subprocess, record every trial and the winner in the tuning DB.");
  command->add_option("--problem", args.problem,
                      "'seed', a JSON file or inline JSON (see run --help)");
  command->add_option("--problems", args.problems,
                      "a file with one problem per line, as --problem takes ('#' comments)");
  command->add_option("--precision", args.precision, "fp32 or tf32 (overrides the problem's)")
      ->check(CLI::IsMember({"fp32", "tf32"}));
  add_dtype_and_layout_options(*command, args.dtype, args.layout);
  command
      ->add_option("--db", args.db,
                   "tuning DB path (default: $DECONVTUNE_DB, else "
                   "$XDG_CACHE_HOME/deconvtune/tuning.db)")
      ->check(tuning_db_path());
  command
      ->add_option("--strategy", args.strategy,
                   "auto (exhaustive for small spaces, random under a budget, else "
                   "halving), exhaustive, random or halving (successive halving)")
      ->check(CLI::IsMember({"auto", "exhaustive", "random", "halving"}))
      ->capture_default_str();
  command
      ->add_option("--budget-seconds", args.budget_seconds,
                   "stop starting candidates after this long (0: no limit); with several "
                   "problems each gets an equal share of what is left when it starts, and its "
                   "first candidate (the rule default) is measured whatever is left")
      ->check(finite_seconds("--budget-seconds"));
  command
      ->add_option("--max-trials", args.max_trials,
                   "measure at most this many candidates per problem (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  command->add_flag("--retune", args.retune,
                    "measure again the configs the DB already holds for this problem and GPU");
  command->add_option("--device", args.device, "GPU ordinal")->capture_default_str();
  command->add_option("--devices", args.devices,
                      "'all' or a list like 0,1: one measuring worker per GPU, sharing the "
                      "problems");
  command->add_option("--shard", args.shard,
                      "i/n: tune only shard i (from 0) of n of the problems, a stable "
                      "partition by problem key (merge the shard DBs with `db import`)");
  command->add_option("--reps", args.reps, "timed runs per candidate (median recorded)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  command->add_option("--warmup", args.warmup, "untimed runs first")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  command->add_option("--top", args.top, "rows of the best-candidates table")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  command->add_flag("--json", args.json, kJsonHelp);
  command->add_flag("--wide", args.wide, kWideHelp);
  command->add_flag("--no-launch", args.no_launch,
                    "skip the winner's timed first launch at the end");
  CLI::Option* quiet = command->add_flag("-q,--quiet", args.quiet,
                                         "no progress: only the summary at the end and errors");
  command
      ->add_flag("-v,--verbose", args.verbose,
                 "a line per trial even on a terminal, with the reason of each failure")
      ->excludes(quiet);
  // Test-only options, hidden from --help.
  command->add_flag("--simulate", args.simulate)->group("");
  command->add_option("--simulate-trial-ms", args.simulate_trial_ms)->group("");
  command->add_option("--kernel-deadline", args.kernel_deadline)
      ->check(finite_seconds("--kernel-deadline") & CLI::PositiveNumber)
      ->group("");
  command->add_option("--inject-faults", args.inject_faults)->group("");
  return command;
}

// `deconvtune worker`, hidden: the tuner's measuring subprocess.
struct WorkerArgs {
  deconvtune::tuner::WorkerOptions options;
  bool simulate = false;  // test-only (the simulated measurer: tuner/simulate.hpp)
  double simulate_trial_ms = 0;
};

CLI::App* add_worker_command(CLI::App& app, WorkerArgs& args) {
  CLI::App* command = app.add_subcommand("worker", "");
  command->group("");
  command->add_option("--device", args.options.device);
  command->add_flag("--simulate", args.simulate);
  command->add_option("--simulate-trial-ms", args.simulate_trial_ms);
  return command;
}

int worker_command(WorkerArgs& args) {
  if (args.simulate)
    args.options.simulation = deconvtune::tuner::Simulation{args.simulate_trial_ms};
  return worker_exit_code(deconvtune::tuner::serve_as_worker(args.options, kExitFailure));
}

CLI::App* add_default_report_command(CLI::App& app, DefaultReportArgs& args) {
  CLI::App* command = app.add_subcommand(
      "default-report",
      "How far the untuned default (nearest tuned winner or rule, each problem's own winner left "
      "out) is from the tuned winner, per problem and precision; verified and timed on the GPU.");
  command->add_option("--problems", args.problems, "a problems file (as autotune takes)")
      ->required();
  command->add_option("--precisions", args.precisions, "fp32, tf32 or both")
      ->check(CLI::IsMember({"fp32", "tf32", "fp32,tf32", "tf32,fp32"}))
      ->capture_default_str();
  command->add_option("--db", args.db, "tuning DB path (default: $DECONVTUNE_DB, else ~/.cache)")
      ->check(tuning_db_path());
  command->add_option("--out", args.out, "also write the markdown table to this file");
  command->add_option("--reps", args.reps, "timed runs per config")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  command->add_option("--device", args.device, "GPU ordinal")->capture_default_str();
  command->add_flag("--json", args.json, kJsonHelp);
  return command;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace deconvtune::tools;
  CLI::App app{
      "deconvtune: fused ConvTranspose2d + epilogue kernels, generated per shape, compiled with "
      "NVRTC, verified and timed on the GPU.\nEpilogue ops: " +
      deconvtune::epilogue_op_names()};
  app.require_subcommand(1);
  app.set_version_flag("--version", "deconvtune 0.1.0");

  RunArgs run;
  CLI::App* run_cmd = add_run_command(app, run);
  InspectArgs inspect;
  CLI::App* inspect_cmd = add_inspect_command(app, inspect);
  AutotuneArgs autotune;
  CLI::App* autotune_cmd = add_autotune_command(app, autotune);
  WorkerArgs worker;
  CLI::App* worker_cmd = add_worker_command(app, worker);
  DbArgs db;
  CLI::App* db_cmd = add_db_command(app, db);
  DefaultReportArgs report;
  CLI::App* report_cmd = add_default_report_command(app, report);

  if (std::string unknown = unknown_subcommand_message(app, argc, argv); !unknown.empty()) {
    std::fprintf(stderr, "deconvtune: error: %s\n", unknown.c_str());
    return kExitBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }
  try {
    if (*run_cmd) return run_command(run);
    if (*inspect_cmd) return inspect_command(inspect);
    if (*db_cmd) return db_command(db);
    if (*autotune_cmd) return autotune_command(autotune);
    if (*worker_cmd) return worker_command(worker);
    if (*report_cmd) return default_report_command(report);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deconvtune: error: %s\n", e.what());
    return kExitFailure;
  }
  return kExitBadInput;
}

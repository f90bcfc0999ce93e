#include "tools/autotune_command.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "codegen/generator.hpp"
#include "gpu/driver_api.hpp"
#include "tools/cli_checks.hpp"
#include "tools/commands.hpp"
#include "tools/table.hpp"
#include "tools/trial_report.hpp"
#include "tuner/problem_set.hpp"
#include "tuner/progress.hpp"
#include "tuner/tuner.hpp"

namespace deconvtune::tools {
namespace {

// Set by the SIGINT and SIGTERM handler, read by the tuner (TuneRequest::stop).
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "a signal handler stores to it");

void on_stop_signal(int) {
  stop_requested.store(true);
  // A second signal while stopping ends the process at once: the default action.
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// While alive, SIGINT and SIGTERM ask the tuner to stop instead of killing the process. A signal
// the process was started with ignored (a background job of a script) stays ignored.
class StopOnSignals {
 public:
  StopOnSignals() {
    stop_requested.store(false);
    for (Saved& saved : saved_) {
      sigaction(saved.signal, nullptr, &saved.old);
      if (saved.old.sa_handler == SIG_IGN) continue;
      struct sigaction action {};
      action.sa_handler = on_stop_signal;
      sigemptyset(&action.sa_mask);
      action.sa_flags = SA_RESTART;
      saved.installed = sigaction(saved.signal, &action, nullptr) == 0;
    }
  }
  ~StopOnSignals() {
    for (Saved& saved : saved_) {
      if (saved.installed) sigaction(saved.signal, &saved.old, nullptr);
    }
  }
  StopOnSignals(const StopOnSignals&) = delete;
  StopOnSignals& operator=(const StopOnSignals&) = delete;

 private:
  struct Saved {
    int signal;
    struct sigaction old {};
    bool installed = false;
  };
  Saved saved_[2] = {{SIGINT}, {SIGTERM}};
};

std::vector<int> parse_int_list(const std::string& text, const char* option) {
  std::vector<int> values;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    int value = -1;
    auto [end, error] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || error != std::errc() || end != item.data() + item.size() || value < 0) {
      throw BadInput{
          fmt::format("{} '{}': '{}' is not a non-negative whole number", option, text, item)};
    }
    if (std::find(values.begin(), values.end(), value) != values.end()) {
      throw BadInput{fmt::format("{} '{}' lists {} twice", option, text, value)};
    }
    values.push_back(value);
  }
  if (values.empty()) throw BadInput{fmt::format("{} '{}' lists nothing", option, text)};
  return values;
}

std::vector<int> resolve_devices(const AutotuneArgs& args) {
  if (args.devices.empty()) return {args.device};
  if (args.devices != "all") return parse_int_list(args.devices, "--devices");
  if (args.simulate) return {0};
  int count = 0;
  DT_CU(cuDeviceGetCount(&count));
  if (count < 1) throw NoGpuError("--devices all: the driver reports no GPU");
  std::vector<int> all;
  for (int i = 0; i < count; ++i) all.push_back(i);
  return all;
}

std::vector<Problem> load_problems(const AutotuneArgs& args) {
  std::optional<Precision> precision;
  try {
    if (!args.precision.empty()) precision = parse_precision(args.precision);
    if (!args.problems.empty()) {
      std::vector<Problem> problems = tuner::read_problems_file(args.problems, precision);
      // A file's float32 and bfloat16 lines of one shape are one problem once overridden.
      std::vector<Problem> unique;
      std::set<std::string> keys;
      for (Problem& problem : problems) {
        override_dtype_and_layout(problem, args.dtype, args.layout);
        if (keys.insert(problem.key()).second) unique.push_back(std::move(problem));
      }
      return unique;
    }
    Problem problem = Problem::from_argument(args.problem);
    if (precision) problem.precision = *precision;
    override_dtype_and_layout(problem, args.dtype, args.layout);
    return {problem};
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
}

// The summary of one problem: how the run went, the best candidates with their figures (% of the
// best, speedup over the rule default, GB/s), the failures and the winner.
struct ProblemSummary {
  const tuner::TuneReport& report;
  const Problem& problem;
  std::vector<db::TrialRecord> best_first;  // every trial of the key in the DB, not only this run's
  KeyFigures figures;
};

ProblemSummary summarize(const tuner::TuneReport& report, const Problem& problem,
                         db::TuningDb& db) {
  db::TrialFilter filter;
  filter.problem_key = report.problem_key;
  filter.device_key = report.device_key;
  filter.generator_version = generator_version();
  filter.precision = problem.precision;
  std::vector<db::TrialRecord> best_first = db.trials_matching(filter);
  KeyFigures figures = key_figures(problem, db.device(report.device_key), best_first);
  return {report, problem, std::move(best_first), std::move(figures)};
}

std::map<std::string, int> status_counts(const tuner::TuneReport& report) {
  std::map<std::string, int> counts;
  for (const db::TrialRecord& trial : report.trials) ++counts[std::string(to_string(trial.status))];
  return counts;
}

void print_summary(const ProblemSummary& summary, const Output& out, int top) {
  const tuner::TuneReport& report = summary.report;
  out.say("\nproblem  {}\ndevice   {}\n", out.problem_text(summary.problem), report.device_key);
  std::string statuses;
  for (const auto& [status, count] : status_counts(report)) {
    statuses += fmt::format("{}{} {}", statuses.empty() ? "" : ", ", count, status);
  }
  out.say(
      "space    {} configs, strategy {}, {} measured now ({}), {} skipped as already measured"
      "{}\n",
      report.space_size, to_string(report.strategy), report.trials.size(),
      statuses.empty() ? "none" : statuses, report.skipped_already_measured,
      report.stopped_by_budget ? "; stopped by the budget" : "");
  const double per_second =
      report.wall_seconds > 0 ? report.trials.size() / report.wall_seconds : 0;
  out.say(
      "time     compile {:.2f} s ({} compiled, {} from the cubin cache; runs ahead of the "
      "measuring), measure {:.2f} s, wall {:.2f} s, {:.2f} candidates/s, worker restarts {}\n",
      report.compile_seconds, report.compiled, report.cubin_cache_hits, report.measure_seconds,
      report.wall_seconds, per_second, report.worker_restarts);
  const std::vector<db::TrialRecord> best = best_verified(summary.best_first, top);
  if (best.empty()) {
    out.say("(no verified config)\n");
  } else {
    out.print(trial_table(best, summary.figures, TrialColumns::kSummary));
  }
  for (const db::TrialRecord& trial : report.trials) {
    if (trial.status == Disposition::kOk) continue;
    out.say("{}\n", failure_line(trial));
  }
  if (!report.error.empty()) out.say("error    {}\n", report.error);
  out.say("default  {}\n", rule_default_text(summary.figures));
  if (report.winner) {
    out.say("winner   {} {} ms (max |err| {}), {}\n", report.winner->config_name,
            cell::ms(report.winner->median_ms), cell::error(report.winner->max_error),
            bandwidth_text(summary.figures, report.winner->median_ms));
  } else {
    out.say("winner   none: no config verified\n");
  }
  if (report.first_launch) {
    const tuner::FirstLaunch& launch = *report.first_launch;
    out.say(
        "first launch of the winner: done {:.1f} ms after the run began, tuning included "
        "(context {:.1f} ms, "
        "cubin {} {:.1f} ms, load + buffers {:.1f} ms, launch + sync {:.1f} ms)\n",
        launch.since_start_ms, launch.context_ms,
        launch.cubin_from_cache ? "from the cache" : "compiled", launch.cubin_ms, launch.load_ms,
        launch.launch_ms);
  } else if (!report.first_launch_skipped.empty()) {
    out.say("first launch: skipped ({})\n", report.first_launch_skipped);
  }
}

nlohmann::json summary_json(const ProblemSummary& summary, int top) {
  const tuner::TuneReport& report = summary.report;
  nlohmann::json line = {{"problem_key", report.problem_key},
                         {"name", summary.problem.name},
                         {"label", compact_label(summary.problem)},
                         {"device_key", report.device_key},
                         {"strategy", to_string(report.strategy)},
                         {"space", report.space_size},
                         {"trials", report.trials.size()},
                         {"skipped", report.skipped_already_measured},
                         {"compiled", report.compiled},
                         {"cubin_cache_hits", report.cubin_cache_hits},
                         {"compile_s", report.compile_seconds},
                         {"measure_s", report.measure_seconds},
                         {"wall_s", report.wall_seconds},
                         {"worker_restarts", report.worker_restarts},
                         {"stopped_by_budget", report.stopped_by_budget},
                         {"statuses", status_counts(report)},
                         {"figures", figures_json(summary.figures)},
                         {"winner", nullptr},
                         {"winner_ms", nullptr},
                         {"first_launch_ms", nullptr},
                         {"error", report.error}};
  nlohmann::json best = nlohmann::json::array();
  for (const db::TrialRecord& trial : best_verified(summary.best_first, top)) {
    best.push_back(trial_json(trial, summary.figures));
  }
  line["best"] = best;
  nlohmann::json failed = nlohmann::json::array();
  for (const db::TrialRecord& trial : report.trials) {
    if (trial.status != Disposition::kOk) failed.push_back(trial_json(trial, summary.figures));
  }
  line["not_used"] = failed;
  if (report.winner) {
    line["winner"] = report.winner->config_name;
    line["winner_ms"] = report.winner->median_ms;
  }
  if (report.first_launch) line["first_launch_ms"] = report.first_launch->since_start_ms;
  return line;
}

void fill_request(const AutotuneArgs& args, const std::vector<Problem>& problems,
                  tuner::TuneRequest& request) {
  request.problem = problems.front();
  request.db_path = args.db;
  try {
    request.pick_strategy = args.strategy == "auto";
    if (!request.pick_strategy) request.strategy = tuner::parse_strategy(args.strategy);
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
  request.budget_seconds = args.budget_seconds;
  request.max_trials = args.max_trials;
  request.retune = args.retune;
  request.devices = resolve_devices(args);
  request.device = request.devices.front();
  request.trial.timed_runs = args.reps;
  request.trial.warmup_runs = args.warmup;
  request.kernel_deadline_seconds = args.kernel_deadline;
  request.launch_winner = !args.no_launch;
  if (args.simulate) request.simulation = tuner::Simulation{args.simulate_trial_ms};
  request.start = args.start;
  if (!args.inject_faults.empty()) {
    for (int kind : parse_int_list(args.inject_faults, "--inject-faults")) {
      try {
        request.extra_candidates.push_back(
            Config::from_name(fmt::format("fault_ffma_kind{}_mishexact", kind)));
      } catch (const std::invalid_argument& e) {
        throw BadInput{e.what()};
      }
    }
  }
}

// Tunes with the progress view `args` asks for, stopping on SIGINT or SIGTERM. Nullopt when
// interrupted, after the line that says how far it got.
std::optional<std::vector<tuner::TuneReport>> tune_with_progress(
    const AutotuneArgs& args, const std::vector<Problem>& problems, tuner::TuneRequest& request,
    const Output& out) {
  tuner::ProgressStyle style = tuner::ProgressStyle::kQuiet;
  if (args.verbose) {
    style = tuner::ProgressStyle::kVerboseLines;
  } else if (!args.quiet) {
    style = isatty(STDERR_FILENO) == 1 ? tuner::ProgressStyle::kBar : tuner::ProgressStyle::kLines;
  }
  tuner::ProgressPrinter printer(
      [](const std::string& text) {
        std::fputs(text.c_str(), stderr);
        std::fflush(stderr);
      },
      style, args.start, args.budget_seconds, static_cast<int>(problems.size()),
      [] { return tuner::terminal_width(STDERR_FILENO); });
  request.on_candidate_start = [&](const std::string& problem_key, const std::string& config) {
    printer.started(problem_key, config);
  };
  if (!args.quiet) {
    out.say("tuning {} problem(s) on device(s) {}{}, DB {}\n", problems.size(),
            fmt::join(request.devices, ","), args.simulate ? " (simulated)" : "",
            args.db.empty() ? db::TuningDb::default_path() : args.db);
    std::fflush(out.human());
  }
  std::vector<tuner::TuneReport> reports;
  StopOnSignals signals;
  request.stop = &stop_requested;
  try {
    reports = tuner::autotune_batch(problems, request,
                                    [&](int done, int total, const db::TrialRecord& trial) {
                                      printer.update(done, total, trial);
                                    });
  } catch (const std::exception& e) {
    printer.finish();
    if (!stop_requested) throw;
    fmt::print(stderr, "deconvtune: error while stopping: {}\n", e.what());
  } catch (...) {
    printer.finish();
    throw;
  }
  printer.finish();
  if (stop_requested) {
    // Every recorded trial is in the DB already; a rerun skips them.
    const std::string count = printer.total() > 0
                                  ? fmt::format("{} of {}", printer.done(), printer.total())
                                  : fmt::format("{}", printer.done());
    fmt::print(stderr,
               "interrupted: {} measured, best so far {}, rerun the same command to resume\n",
               count, printer.best_so_far());
    return std::nullopt;
  }
  return reports;
}

int autotune_checked(const AutotuneArgs& args) {
  if (args.problem.empty() == args.problems.empty()) {
    throw BadInput{"give exactly one of --problem and --problems"};
  }
  const Output out(args.json, args.wide);
  std::vector<Problem> problems = load_problems(args);
  tuner::TuneRequest request;
  if (!args.shard.empty()) {
    tuner::Shard shard;
    try {
      shard = tuner::parse_shard(args.shard);
    } catch (const std::invalid_argument& e) {
      throw BadInput{e.what()};
    }
    const size_t all = problems.size();
    problems = tuner::select_shard(problems, shard);
    out.say("shard {}/{}: {} of {} problem(s)\n", shard.index, shard.count, problems.size(), all);
    if (problems.empty()) {
      if (out.json()) out.emit({{"problems", nlohmann::json::array()}});
      return kExitOk;
    }
  }
  if (!args.simulate) {
    std::string why;
    if (!DriverApi::available(&why)) throw NoGpuError(why);
  }
  fill_request(args, problems, request);
  std::optional<std::vector<tuner::TuneReport>> reports =
      tune_with_progress(args, problems, request, out);
  if (!reports) return kExitInterrupted;  // under --json too: no document, exit 130 says why
  db::TuningDb db(args.db.empty() ? db::TuningDb::default_path() : args.db, /*read_only=*/true);
  std::map<std::string, const Problem*> by_key;  // a report names its problem by key
  for (const Problem& problem : problems) by_key.emplace(problem.key(), &problem);
  int without_winner = 0;
  nlohmann::json documents = nlohmann::json::array();
  for (const tuner::TuneReport& report : *reports) {
    const ProblemSummary summary = summarize(report, *by_key.at(report.problem_key), db);
    print_summary(summary, out, args.top);
    if (out.json()) documents.push_back(summary_json(summary, args.top));
    without_winner += !report.winner;
  }
  if (out.json()) out.emit({{"problems", documents}});
  return without_winner ? kExitFailure : kExitOk;
}

}  // namespace

int autotune_command(const AutotuneArgs& args) {
  try {
    return autotune_checked(args);
  } catch (const BadInput& e) {
    fmt::print(stderr, "deconvtune: error: {}\n", e.message);
    return kExitBadInput;
  } catch (const NoGpuError& e) {
    fmt::print(stderr, "deconvtune: error: {} (autotune measures on a GPU)\n", e.what());
    return kExitNoGpu;
  }
}

}  // namespace deconvtune::tools

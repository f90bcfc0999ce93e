#include "tools/default_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tools/commands.hpp"
#include "tools/table.hpp"
#include "trial/benchmark.hpp"
#include "tuner/heuristic.hpp"
#include "tuner/problem_set.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tools {
namespace {

struct Measured {
  std::string status;  // "ok", or the disposition
  double ms = NAN;
};

std::string ms_text(const std::optional<Measured>& m) {
  if (!m) return std::string(kUnknown);
  if (m->status != "ok") return m->status;
  return fmt::format("{:.3f}", m->ms);
}

// a / b where both were measured, else NaN.
double ratio_of(const std::optional<Measured>& a, const std::optional<Measured>& b) {
  if (!a || !b || a->status != "ok" || b->status != "ok") return NAN;
  return a->ms / b->ms;
}

std::string ratio_text(const std::optional<Measured>& a, const std::optional<Measured>& b) {
  const double ratio = ratio_of(a, b);
  return std::isnan(ratio) ? std::string(kUnknown) : cell::ratio(ratio);
}

// One pick as JSON: its config, and its time where it was measured (or recorded).
nlohmann::json pick_json(const std::string& config, const std::optional<Measured>& m) {
  return {{"config", config.empty() ? nlohmann::json(nullptr) : nlohmann::json(config)},
          {"status", m ? nlohmann::json(m->status) : nlohmann::json(nullptr)},
          {"median_ms", json_number(m && m->status == "ok" ? m->ms : NAN)}};
}

// Whose winners are reported: the GPU present, else the DB's only device (times as recorded).
struct ReportDevice {
  bool gpu = false;
  std::string why_no_gpu;
  std::optional<Context> context;
  DeviceLimits limits;
  db::DeviceRecord record;
};

// The device to report on, or the reason there is none (no GPU and not exactly one device).
std::string open_report_device(const DefaultReportArgs& args, const db::TuningDb& db,
                               ReportDevice& device) {
  device.gpu = DriverApi::available(&device.why_no_gpu);
  if (device.gpu) {
    device.context.emplace(args.device);
    const DeviceInfo& info = device.context->info();
    device.limits = info.limits();
    device.record = {info.name, info.arch(), info.sm_count, info.driver_version, nvrtc_version()};
    return "";
  }
  std::vector<db::DeviceRecord> devices = db.devices();
  if (devices.size() != 1) {
    return fmt::format(
        "no GPU ({}) and the DB holds {} devices: cannot tell whose winners to report",
        device.why_no_gpu, devices.size());
  }
  device.record = devices.front();
  return "";
}

// One row's three picks: the tuned winner (if any), the heuristic's and the rule's.
struct Picks {
  std::optional<db::WinnerRecord> winner;
  UntunedChoice heuristic;
  Config rule;
};

using MeasuredConfigs = std::map<std::string, std::optional<Measured>>;

// Without a GPU: the times the tuner recorded for the picks on this problem, where it did.
MeasuredConfigs recorded_times(const db::TuningDb& db, const db::WinnerKey& key) {
  MeasuredConfigs measured;
  for (const db::TrialRecord& trial : db.trials(key)) {
    if (trial.status == Disposition::kOk)
      measured[trial.config_name] = Measured{"ok", trial.median_ms};
  }
  return measured;
}

// On the GPU: each distinct pick verified against float64 and timed now. Counts the picks that did
// not verify in `failures`; nullopt when the CUDA context is lost (nothing more can run).
std::optional<MeasuredConfigs> measure_now(const DefaultReportArgs& args, Context& context,
                                           const Problem& problem, const Picks& picks,
                                           int& failures) {
  std::vector<Config> configs = {picks.heuristic.config, picks.rule};
  if (picks.winner) configs.push_back(Config::from_name(picks.winner->config_name));
  MeasuredConfigs measured;
  std::vector<Config> unique;
  for (const Config& c : configs) {
    if (measured.emplace(c.name(), std::nullopt).second) unique.push_back(c);
  }
  Verifier verifier(context, problem);
  verifier.randomize_inputs(1);
  const std::vector<CompileResult> compiled =
      compile_configs(problem, unique, context.info().arch());
  TrialOptions options;
  options.timed_runs = args.reps;
  for (size_t i = 0; i < unique.size(); ++i) {
    TrialResult trial = run_trial(context, verifier, unique[i], options, &compiled[i]);
    measured[unique[i].name()] =
        Measured{std::string(to_string(trial.disposition)), trial.timing.median_ms};
    if (trial.disposition == Disposition::kOk) continue;
    ++failures;
    fmt::print(stderr, "{} on {}: {}\n", unique[i].name(), problem.key(), trial.reason);
    if (trial.disposition == Disposition::kFaulted) return std::nullopt;
  }
  return measured;
}

// The picks' ratios over the winner, across the rows that have one.
struct Ratios {
  std::vector<double> heuristic, rule;
  static double geomean(const std::vector<double>& v) {
    double log_sum = 0;
    for (double x : v) log_sum += std::log(x);
    return v.empty() ? NAN : std::exp(log_sum / static_cast<double>(v.size()));
  }
  static double worst(const std::vector<double>& v) {
    return v.empty() ? NAN : *std::max_element(v.begin(), v.end());
  }
  void add(std::vector<double>& to, const std::optional<Measured>& pick,
           const std::optional<Measured>& winner) {
    if (const double ratio = ratio_of(pick, winner); !std::isnan(ratio)) to.push_back(ratio);
  }
  std::string sentence() const {
    return fmt::format(
        "\nOver the {} rows with a tuned winner: heuristic / winner geometric mean {:.2f}x (worst "
        "{:.2f}x); rule / winner {:.2f}x (worst {:.2f}x).\n",
        heuristic.size(), geomean(heuristic), worst(heuristic), geomean(rule), worst(rule));
  }
  nlohmann::json json() const {
    return {{"rows_with_winner", heuristic.size()},
            {"heuristic_over_winner_geomean", json_number(geomean(heuristic))},
            {"heuristic_over_winner_worst", json_number(worst(heuristic))},
            {"rule_over_winner_geomean", json_number(geomean(rule))},
            {"rule_over_winner_worst", json_number(worst(rule))}};
  }
};

Table report_table() {
  return Table({{"problem"},
                {"precision"},
                {"winner ms", Align::kRight},
                {"heuristic ms", Align::kRight},
                {"heuristic / winner", Align::kRight},
                {"rule ms", Align::kRight},
                {"rule / winner", Align::kRight},
                {"winner"},
                {"heuristic pick (source)"},
                {"rule pick"}});
}

// One (problem, precision): its row of the table and of the JSON, and its ratios.
void add_row(const Problem& problem, const Picks& picks, const MeasuredConfigs& measured,
             Table& table, nlohmann::json& rows, Ratios& ratios) {
  auto find = [&](const std::string& name) -> std::optional<Measured> {
    auto it = measured.find(name);
    return it == measured.end() ? std::nullopt : it->second;
  };
  const std::optional<Measured> w = picks.winner ? find(picks.winner->config_name) : std::nullopt;
  const std::optional<Measured> h = find(picks.heuristic.config.name());
  const std::optional<Measured> r = find(picks.rule.name());
  ratios.add(ratios.heuristic, h, w);
  ratios.add(ratios.rule, r, w);
  const char* source = picks.heuristic.nearest_key.empty() ? "rule" : "nearest";
  table.add_row({problem_text(problem, /*wide=*/false), std::string(to_string(problem.precision)),
                 ms_text(w), ms_text(h), ratio_text(h, w), ms_text(r), ratio_text(r, w),
                 picks.winner ? "`" + picks.winner->config_name + "`" : "not tuned",
                 fmt::format("`{}` ({})", picks.heuristic.config.name(), source),
                 "`" + picks.rule.name() + "`"});
  nlohmann::json heuristic_pick = pick_json(picks.heuristic.config.name(), h);
  heuristic_pick["source"] = source;
  heuristic_pick["over_winner"] = json_number(ratio_of(h, w));
  nlohmann::json rule_pick = pick_json(picks.rule.name(), r);
  rule_pick["over_winner"] = json_number(ratio_of(r, w));
  rows.push_back(
      {{"name", problem.name.empty() ? nlohmann::json(nullptr) : nlohmann::json(problem.name)},
       {"problem_key", problem.key()},
       {"label", compact_label(problem)},
       {"precision", to_string(problem.precision)},
       {"winner", pick_json(picks.winner ? picks.winner->config_name : "", w)},
       {"heuristic", heuristic_pick},
       {"rule", rule_pick}});
}

std::string report_heading(const DefaultReportArgs& args, const ReportDevice& device) {
  return fmt::format(
      "# Untuned default vs tuned winner ({}, generator {})\n\n"
      "heuristic = what the runtime runs for a problem it has no winner for: the nearest tuned "
      "problem's winner (this problem's own winner left out) when legal, else the rule "
      "(default_config). Times: {}. Ratios > 1: slower than the winner.\n\n",
      device.record.key(), generator_version(),
      device.gpu
          ? fmt::format("measured now, median of {} runs after verification against float64",
                        args.reps)
          : fmt::format("no GPU ({}): the times the tuner recorded in the DB, where it measured "
                        "the config",
                        device.why_no_gpu));
}

int report(const DefaultReportArgs& args) {
  const Output output(args.json, /*wide=*/false);
  std::vector<Precision> precisions;
  std::stringstream list(args.precisions);
  for (std::string item; std::getline(list, item, ',');)
    precisions.push_back(parse_precision(item));
  std::vector<Problem> problems = tuner::read_problems_file(args.problems);
  db::TuningDb db(args.db.empty() ? db::TuningDb::default_path() : args.db, /*read_only=*/true);
  ReportDevice device;
  if (const std::string why = open_report_device(args, db, device); !why.empty()) {
    fmt::print(stderr, "deconvtune: error: {}\n", why);
    // A reader of --json gets a document saying why there are no rows, not an empty stdout.
    if (output.json()) {
      output.emit(
          {{"error", why}, {"no_gpu", device.why_no_gpu}, {"rows", nlohmann::json::array()}});
    }
    return kExitNoGpu;
  }
  const std::string device_key = device.record.key();
  Table table = report_table();
  Ratios ratios;
  nlohmann::json rows = nlohmann::json::array();
  int failures = 0;
  for (Problem problem : problems) {
    for (Precision precision : precisions) {
      problem.precision = precision;
      const db::WinnerKey key{problem.key(), device_key, generator_version(), precision};
      const Picks picks{
          db.winner(key),
          choose_untuned_config(problem, device.limits, db, device_key, generator_version()),
          default_config(problem, device.limits)};
      std::optional<MeasuredConfigs> measured =
          device.gpu ? measure_now(args, *device.context, problem, picks, failures)
                     : recorded_times(db, key);
      if (!measured) {
        fmt::print(stderr, "The CUDA context is lost; stopping.\n");
        return kExitFailure;
      }
      add_row(problem, picks, *measured, table, rows, ratios);
    }
  }
  const std::string out = report_heading(args, device) + table.markdown() + ratios.sentence();
  output.say("{}", out);
  if (output.json()) {
    output.emit({{"device_key", device_key},
                 {"generator", generator_version()},
                 {"times", device.gpu ? "measured" : "recorded"},
                 {"rows", rows},
                 {"summary", ratios.json()}});
  }
  if (!args.out.empty()) {
    std::ofstream file(args.out);
    file << out;
    if (!file) {
      fmt::print(stderr, "deconvtune: error: cannot write {}\n", args.out);
      return kExitFailure;
    }
  }
  return failures ? kExitFailure : kExitOk;
}

}  // namespace

int default_report_command(const DefaultReportArgs& args) {
  try {
    return report(args);
  } catch (const NoGpuError& e) {
    fmt::print(stderr, "deconvtune: error: {}\n", e.what());
    return kExitNoGpu;
  } catch (const db::DbError& e) {
    fmt::print(stderr, "deconvtune: error: {}\n", e.what());
    return kExitBadInput;
  } catch (const std::invalid_argument& e) {  // a bad problems file or precision
    fmt::print(stderr, "deconvtune: error: {}\n", e.what());
    return kExitBadInput;
  }
}

}  // namespace deconvtune::tools

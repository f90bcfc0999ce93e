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

int report(const DefaultReportArgs& args) {
  const Output output(args.json, /*wide=*/false);
  std::vector<Precision> precisions;
  std::stringstream list(args.precisions);
  for (std::string item; std::getline(list, item, ',');)
    precisions.push_back(parse_precision(item));
  std::vector<Problem> problems = tuner::read_problems_file(args.problems);
  db::TuningDb db(args.db.empty() ? db::TuningDb::default_path() : args.db, /*read_only=*/true);

  std::string why_no_gpu;
  const bool gpu = DriverApi::available(&why_no_gpu);
  std::optional<Context> context;
  DeviceLimits limits;
  db::DeviceRecord device;
  if (gpu) {
    context.emplace(args.device);
    const DeviceInfo& info = context->info();
    limits = info.limits();
    device = {info.name, info.arch(), info.sm_count, info.driver_version, nvrtc_version()};
  } else {
    // Without a GPU: the winners of the DB's only device, if it has exactly one.
    std::vector<db::DeviceRecord> devices = db.devices();
    if (devices.size() != 1) {
      const std::string why = fmt::format(
          "no GPU ({}) and the DB holds {} devices: cannot tell whose winners to report",
          why_no_gpu, devices.size());
      fmt::print(stderr, "deconvtune: error: {}\n", why);
      // A reader of --json gets a document saying why there are no rows, not an empty stdout.
      if (output.json())
        output.emit({{"error", why}, {"no_gpu", why_no_gpu}, {"rows", nlohmann::json::array()}});
      return kExitNoGpu;
    }
    device = devices.front();
  }
  const std::string device_key = device.key();
  std::string out = fmt::format(
      "# Untuned default vs tuned winner ({}, generator {})\n\n"
      "heuristic = what the runtime runs for a problem it has no winner for: the nearest tuned "
      "problem's winner (this problem's own winner left out) when legal, else the rule "
      "(default_config). Times: {}. Ratios > 1: slower than the winner.\n\n",
      device_key, generator_version(),
      gpu ? fmt::format("measured now, median of {} runs after verification against float64",
                        args.reps)
          : fmt::format("no GPU ({}): the times the tuner recorded in the DB, where it measured "
                        "the config",
                        why_no_gpu));
  Table table({{"problem"},
               {"precision"},
               {"winner ms", Align::kRight},
               {"heuristic ms", Align::kRight},
               {"heuristic / winner", Align::kRight},
               {"rule ms", Align::kRight},
               {"rule / winner", Align::kRight},
               {"winner"},
               {"heuristic pick (source)"},
               {"rule pick"}});
  std::vector<double> heuristic_ratios, rule_ratios;
  nlohmann::json rows = nlohmann::json::array();
  int failures = 0;
  for (Problem problem : problems) {
    for (Precision precision : precisions) {
      problem.precision = precision;
      std::optional<db::WinnerRecord> winner =
          db.winner({problem.key(), device_key, generator_version(), precision});
      const UntunedChoice heuristic =
          choose_untuned_config(problem, limits, db, device_key, generator_version());
      const Config rule = default_config(problem, limits);
      std::map<std::string, std::optional<Measured>> measured;
      // Without a GPU: the times the tuner recorded for these configs on this problem, if any.
      for (const db::TrialRecord& trial :
           db.trials({problem.key(), device_key, generator_version(), precision})) {
        if (trial.status == Disposition::kOk)
          measured[trial.config_name] = Measured{"ok", trial.median_ms};
      }
      if (gpu) {
        std::vector<Config> configs = {heuristic.config, rule};
        if (winner) configs.push_back(Config::from_name(winner->config_name));
        measured.clear();
        std::vector<Config> unique;
        for (const Config& c : configs) {
          if (!measured.count(c.name())) measured[c.name()] = std::nullopt, unique.push_back(c);
        }
        Verifier verifier(*context, problem);
        verifier.randomize_inputs(1);
        const std::vector<CompileResult> compiled =
            compile_configs(problem, unique, context->info().arch());
        TrialOptions options;
        options.timed_runs = args.reps;
        for (size_t i = 0; i < unique.size(); ++i) {
          TrialResult trial = run_trial(*context, verifier, unique[i], options, &compiled[i]);
          const bool ok = trial.disposition == Disposition::kOk;
          failures += !ok;
          measured[unique[i].name()] =
              Measured{std::string(to_string(trial.disposition)), trial.timing.median_ms};
          if (!ok)
            fmt::print(stderr, "{} on {}: {}\n", unique[i].name(), problem.key(), trial.reason);
          if (trial.disposition == Disposition::kFaulted) {
            fmt::print(stderr, "The CUDA context is lost; stopping.\n");
            return kExitFailure;
          }
        }
      }
      auto find = [&](const std::string& name) -> std::optional<Measured> {
        auto it = measured.find(name);
        return it == measured.end() ? std::nullopt : it->second;
      };
      const std::optional<Measured> w = winner ? find(winner->config_name) : std::nullopt;
      const std::optional<Measured> h = find(heuristic.config.name());
      const std::optional<Measured> r = find(rule.name());
      if (w && h && w->status == "ok" && h->status == "ok")
        heuristic_ratios.push_back(h->ms / w->ms);
      if (w && r && w->status == "ok" && r->status == "ok") rule_ratios.push_back(r->ms / w->ms);
      table.add_row({problem_text(problem, /*wide=*/false), std::string(to_string(precision)),
                     ms_text(w), ms_text(h), ratio_text(h, w), ms_text(r), ratio_text(r, w),
                     winner ? "`" + winner->config_name + "`" : "not tuned",
                     fmt::format("`{}` ({})", heuristic.config.name(),
                                 heuristic.nearest_key.empty() ? "rule" : "nearest"),
                     "`" + rule.name() + "`"});
      nlohmann::json heuristic_pick = pick_json(heuristic.config.name(), h);
      heuristic_pick["source"] = heuristic.nearest_key.empty() ? "rule" : "nearest";
      heuristic_pick["over_winner"] = json_number(ratio_of(h, w));
      nlohmann::json rule_pick = pick_json(rule.name(), r);
      rule_pick["over_winner"] = json_number(ratio_of(r, w));
      rows.push_back(
          {{"name", problem.name.empty() ? nlohmann::json(nullptr) : nlohmann::json(problem.name)},
           {"problem_key", problem.key()},
           {"label", compact_label(problem)},
           {"precision", to_string(precision)},
           {"winner", pick_json(winner ? winner->config_name : "", w)},
           {"heuristic", heuristic_pick},
           {"rule", rule_pick}});
    }
  }
  auto geomean = [](const std::vector<double>& v) {
    double log_sum = 0;
    for (double x : v) log_sum += std::log(x);
    return v.empty() ? NAN : std::exp(log_sum / static_cast<double>(v.size()));
  };
  auto worst = [](const std::vector<double>& v) {
    return v.empty() ? NAN : *std::max_element(v.begin(), v.end());
  };
  out += table.markdown();
  out += fmt::format(
      "\nOver the {} rows with a tuned winner: heuristic / winner geometric mean {:.2f}x (worst "
      "{:.2f}x); rule / winner {:.2f}x (worst {:.2f}x).\n",
      heuristic_ratios.size(), geomean(heuristic_ratios), worst(heuristic_ratios),
      geomean(rule_ratios), worst(rule_ratios));
  output.say("{}", out);
  if (output.json()) {
    output.emit({{"device_key", device_key},
                 {"generator", generator_version()},
                 {"times", gpu ? "measured" : "recorded"},
                 {"rows", rows},
                 {"summary",
                  {{"rows_with_winner", heuristic_ratios.size()},
                   {"heuristic_over_winner_geomean", json_number(geomean(heuristic_ratios))},
                   {"heuristic_over_winner_worst", json_number(worst(heuristic_ratios))},
                   {"rule_over_winner_geomean", json_number(geomean(rule_ratios))},
                   {"rule_over_winner_worst", json_number(worst(rule_ratios))}}}});
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

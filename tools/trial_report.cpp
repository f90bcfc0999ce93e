#include "tools/trial_report.hpp"

#include <fmt/format.h>

#include <set>

#include "tuner/progress.hpp"

namespace deconvtune::tools {
namespace {

bool verified(const db::TrialRecord& trial) { return trial.status == Disposition::kOk; }

// Only a verified trial has times; a failed one's are not measurements.
double verified_ms(const db::TrialRecord& trial, double ms) { return verified(trial) ? ms : NAN; }

}  // namespace

DeviceLimits limits_of(const db::DeviceRecord& device) {
  // validate_device guarantees "sm_" and at least two digits: "sm_90a" is 9.0, "sm_100" 10.0.
  const int number = std::stoi(device.arch.substr(3));
  DeviceLimits limits;
  limits.sm_major = number / 10;
  limits.sm_minor = number % 10;
  limits.sm_count = device.sm_count;
  return limits;
}

KeyFigures key_figures(const Problem& problem, const std::optional<db::DeviceRecord>& device,
                       const std::vector<db::TrialRecord>& best_first) {
  KeyFigures figures;
  figures.problem = problem;
  figures.rule_default =
      default_config(problem, device ? limits_of(*device) : DeviceLimits{}).name();
  if (device && device->copy_gbps > 0) figures.copy_gbps = device->copy_gbps;
  bool rule_default_verified = false;
  for (const db::TrialRecord& trial : best_first) {
    const bool is_default = trial.config_name == figures.rule_default;
    if (!verified(trial)) {
      // Failed trials come after the verified ones: a failure counts only when none verified.
      if (is_default && !rule_default_verified && figures.rule_default_failure.empty()) {
        figures.rule_default_failure = to_string(trial.status);
      }
      continue;
    }
    if (std::isnan(figures.best_ms)) figures.best_ms = trial.median_ms;
    if (is_default && !rule_default_verified) {
      rule_default_verified = true;
      figures.rule_default_ms = trial.median_ms;
    }
  }
  return figures;
}

std::string bandwidth_text(const KeyFigures& figures, double ms) {
  if (std::isnan(figures.copy_gbps)) {
    return fmt::format("{} GB/s (copy bandwidth not measured)", cell::gbps(figures.gbps(ms)));
  }
  return fmt::format("{} GB/s ({} of the {} GB/s copy)", cell::gbps(figures.gbps(ms)),
                     cell::percent(100 * figures.fraction_of_copy(ms)),
                     cell::gbps(figures.copy_gbps));
}

std::string rule_default_text(const KeyFigures& figures) {
  if (!figures.rule_default_failure.empty()) {
    return fmt::format("{}: {}, no verified time", figures.rule_default,
                       figures.rule_default_failure);
  }
  if (std::isnan(figures.rule_default_ms)) {
    return fmt::format("{}: not measured", figures.rule_default);
  }
  return fmt::format("{}: {} ms; the best is {} faster", figures.rule_default,
                     cell::ms(figures.rule_default_ms),
                     cell::ratio(figures.speedup_over_default(figures.best_ms)));
}

std::vector<db::TrialRecord> best_verified(const std::vector<db::TrialRecord>& best_first,
                                           size_t limit) {
  std::vector<db::TrialRecord> best;
  std::set<std::string> configs;
  for (const db::TrialRecord& trial : best_first) {
    if (best.size() >= limit) break;
    if (verified(trial) && configs.insert(trial.config_name).second) best.push_back(trial);
  }
  return best;
}

Table trial_table(const std::vector<db::TrialRecord>& trials, const KeyFigures& figures,
                  TrialColumns which) {
  // Left out first when the window is narrow: detail before the figures that answer "is it
  // faster?" (speedup over the default, then % of best, then GB/s).
  const bool every = which == TrialColumns::kEvery;
  std::vector<Column> columns = {{"#", Align::kRight, 6},      {"config"},
                                 {"median ms", Align::kRight}, {"speedup", Align::kRight, 1},
                                 {"% best", Align::kRight, 2}, {"GB/s", Align::kRight, 3},
                                 {"% copy", Align::kRight, 4}, {"min ms", Align::kRight, 7},
                                 {"max ms", Align::kRight, 8}, {"max |err|", Align::kRight, 5},
                                 {"regs", Align::kRight, 9},   {"spill B", Align::kRight, 10}};
  if (every) {
    columns.insert(columns.begin() + 2, Column{"status"});
    columns.push_back({"smem B", Align::kRight, 11});
    columns.push_back({"compile ms", Align::kRight, 12});
    columns.push_back({"measured at", Align::kLeft, 13});
  }
  Table table(std::move(columns));
  size_t rank = 0;
  for (const db::TrialRecord& trial : trials) {
    const double ms = verified_ms(trial, trial.median_ms);
    std::vector<std::string> cells = {std::to_string(++rank),
                                      trial.config_name,
                                      cell::ms(ms),
                                      cell::ratio(figures.speedup_over_default(ms)),
                                      cell::percent(figures.percent_of_best(ms)),
                                      cell::gbps(figures.gbps(ms)),
                                      cell::percent(100 * figures.fraction_of_copy(ms)),
                                      cell::ms(verified_ms(trial, trial.min_ms)),
                                      cell::ms(verified_ms(trial, trial.max_ms)),
                                      cell::error(trial.max_error),
                                      cell::count(trial.registers),
                                      cell::count(trial.spill_bytes)};
    if (every) {
      cells.insert(cells.begin() + 2, std::string(to_string(trial.status)));
      cells.push_back(cell::count(trial.shared_bytes));
      cells.push_back(cell::whole(trial.compile_ms));
      cells.push_back(trial.measured_at);
    }
    table.add_row(std::move(cells));
  }
  return table;
}

std::string failure_line(const db::TrialRecord& trial) {
  return fmt::format("  not used: {} {}: {}", trial.config_name, to_string(trial.status),
                     tuner::reason_line(trial.reason));
}

nlohmann::json trial_json(const db::TrialRecord& trial, const KeyFigures& figures) {
  const double ms = verified_ms(trial, trial.median_ms);
  return {{"config", trial.config_name},
          {"status", to_string(trial.status)},
          {"reason", trial.reason},
          {"median_ms", json_number(ms)},
          {"min_ms", json_number(verified_ms(trial, trial.min_ms))},
          {"max_ms", json_number(verified_ms(trial, trial.max_ms))},
          {"max_error", json_number(trial.max_error)},
          {"registers", json_count(trial.registers)},
          {"shared_bytes", json_count(trial.shared_bytes)},
          {"spill_bytes", json_count(trial.spill_bytes)},
          {"compile_ms", trial.compile_ms},
          {"measured_at", trial.measured_at},
          {"percent_of_best", json_number(figures.percent_of_best(ms))},
          {"speedup_over_default", json_number(figures.speedup_over_default(ms))},
          {"gbps", json_number(figures.gbps(ms))},
          {"fraction_of_copy", json_number(figures.fraction_of_copy(ms))}};
}

nlohmann::json figures_json(const KeyFigures& figures) {
  return {{"best_ms", json_number(figures.best_ms)},
          {"rule_default",
           {{"config", figures.rule_default}, {"median_ms", json_number(figures.rule_default_ms)}}},
          {"io_bytes", figures.problem.io_bytes()},
          {"copy_gbps", json_number(figures.copy_gbps)}};
}

}  // namespace deconvtune::tools

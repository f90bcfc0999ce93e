#pragma once
// What the tools say about the trials of one tuning key (problem, device, generator version,
// precision), in the autotune summary and in `db show` alike: each verified time as a percentage
// of the best, as a speedup over the rule's default config (what the runtime runs untuned), and as
// GB/s of the traffic no kernel avoids (Problem::io_bytes), with the fraction of the device's copy
// bandwidth where one is known.
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "codegen/problem.hpp"
#include "codegen/search_space.hpp"
#include "tools/table.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tools {

// The limits default_config() reads, from a stored device: the arch and SM count. The record does
// not store the shared memory per block, so that is DeviceLimits' (sm_90's 227 KiB).
DeviceLimits limits_of(const db::DeviceRecord& device);

struct KeyFigures {
  Problem problem;
  double best_ms = NAN;              // the fastest verified trial
  std::string rule_default;          // default_config()'s name for the problem on the device
  double rule_default_ms = NAN;      // its fastest verified trial; NaN: not measured, or it failed
  std::string rule_default_failure;  // its status when every trial of it failed ("wrong")
  double copy_gbps = NAN;  // the device's (db::DeviceRecord::copy_gbps); NaN: not measured

  double percent_of_best(double ms) const { return 100.0 * best_ms / ms; }
  double speedup_over_default(double ms) const { return rule_default_ms / ms; }
  double gbps(double ms) const { return static_cast<double>(problem.io_bytes()) / (ms * 1e6); }
  double fraction_of_copy(double ms) const { return gbps(ms) / copy_gbps; }
};

// `best_first` as TuningDb::trials_matching orders them. `device`: nullopt when the DB has no
// record of it (then the rule default is the one for DeviceLimits{}).
KeyFigures key_figures(const Problem& problem, const std::optional<db::DeviceRecord>& device,
                       const std::vector<db::TrialRecord>& best_first);

// "812 GB/s (copy bandwidth not measured)", or "(61% of the 1330 GB/s copy)" once it is.
std::string bandwidth_text(const KeyFigures& figures, double ms);
// The rule default's line: "<config>: 2.8300 ms; the best is 1.21x faster", "<config>: wrong, no
// verified time" or "<config>: not measured".
std::string rule_default_text(const KeyFigures& figures);

// The autotune summary's candidates: the verified trials of `best_first`, each config once (at
// its best: halving and --retune measure a config more than once), at most `limit`.
std::vector<db::TrialRecord> best_verified(const std::vector<db::TrialRecord>& best_first,
                                           size_t limit);

enum class TrialColumns {
  kSummary,  // the autotune summary: times, figures, error and resources
  kEvery,    // db show: those and the status, shared memory, compile time and time stamp
};
// A row per trial, ranked in the order given.
Table trial_table(const std::vector<db::TrialRecord>& trials, const KeyFigures& figures,
                  TrialColumns columns);

// A failed trial's line under a table: "  not used: <config> <status>: <first line of the reason>".
// Reasons are lines of their own, not a column: a column would be cut to nothing at 80 columns.
std::string failure_line(const db::TrialRecord& trial);

// A trial with its figures; unknown values are null.
nlohmann::json trial_json(const db::TrialRecord& trial, const KeyFigures& figures);
// The key's figures: best_ms, rule_default {config, median_ms}, copy_gbps.
nlohmann::json figures_json(const KeyFigures& figures);

}  // namespace deconvtune::tools

#pragma once
// The tuner: for one problem on one GPU, enumerate the space, compile candidates in parallel,
// measure each in a worker subprocess (verify first, then time), record every trial in the tuning
// DB and pick the winner. A candidate that fails to compile, faults, hangs or is wrong is recorded
// with its Disposition and reason, and tuning goes on.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "codegen/config.hpp"
#include "codegen/problem.hpp"
#include "runtime/benchmark.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

enum class Strategy { kExhaustive, kRandom, kSuccessiveHalving };

struct TuneRequest {
  Problem problem;  // its precision is the tuning precision
  std::string db_path;  // empty: TuningDb::default_path()
  Strategy strategy = Strategy::kExhaustive;
  double budget_seconds = 0;  // 0: no limit
  int max_trials = 0;         // 0: no limit
  bool retune = false;        // measure configs the DB already holds for this key again
  int device = 0;
  TrialOptions trial;
  double kernel_deadline_seconds = 10;  // a launch running longer is killed as kTimedOut
  std::string worker_binary;  // the executable that runs `worker`; empty: this process's own
  std::vector<Config> extra_candidates;  // appended to the space (the tests' fault configs)
};

struct TuneReport {
  std::vector<db::TrialRecord> trials;  // this run's, in the order measured
  std::optional<db::WinnerRecord> winner;
  int skipped_already_measured = 0;
  double compile_seconds = 0, measure_seconds = 0, wall_seconds = 0;
};

// Progress as candidates finish: (done, total, the trial just recorded).
using ProgressFn = std::function<void(int, int, const db::TrialRecord&)>;

TuneReport autotune(const TuneRequest& request, const ProgressFn& progress = {});

}  // namespace deconvtune::tuner

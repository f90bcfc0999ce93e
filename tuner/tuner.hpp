#pragma once
// The tuner: for one problem on one GPU, enumerate the space, compile candidates in parallel,
// measure each in a worker subprocess (verify first, then time), record every trial in the tuning
// DB and pick the winner. A candidate that fails to compile, faults, hangs or is wrong is recorded
// with its Disposition and reason, and tuning goes on.
//
// Promises:
// - Each trial is recorded in its own DB transaction as soon as it finishes: a killed tuner loses
//   at most the candidates in flight (one per device).
// - Configs the DB already holds a trial of for (problem, device, generator version, precision)
//   are skipped unless `retune`.
// - Compiled cubins are looked up in, and stored to, the DB's cubin cache.
// - The tuner process itself is the only DB writer; workers never open the DB.
// - Many problems on many GPUs (autotune_batch): one worker per GPU, a shared queue of problems,
//   every problem tuned once per GPU model among the devices.
#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/config.hpp"
#include "codegen/problem.hpp"
#include "trial/benchmark.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune {
struct DeviceInfo;  // gpu/driver_api.hpp
}

namespace deconvtune::tuner {

// The record a GPU's results are keyed by: its name, arch and SM count, its driver and this
// build's NVRTC. The one conversion the tuner, the engine and the tests use.
db::DeviceRecord device_record(const DeviceInfo& info);

enum class Strategy { kExhaustive, kRandom, kSuccessiveHalving };
std::string_view to_string(Strategy strategy);   // "exhaustive", "random", "halving"
Strategy parse_strategy(std::string_view text);  // throws std::invalid_argument naming the value

// What `--strategy auto` (the command line's default) picks for `candidates` pending configs:
// exhaustive for small spaces, random when a budget or trial cap bounds a large one, otherwise
// successive halving.
constexpr size_t kSmallSpace = 256;
Strategy pick_strategy(size_t candidates, double budget_seconds, int max_trials);

class TuneError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The worker could not set itself up for one problem (e.g. the problem does not fit in the GPU's
// memory): that problem is reported with the reason (TuneReport::error) and the others go on.
class ProblemSetupError : public TuneError {
 public:
  using TuneError::TuneError;
};

// TEST SEAM (tuner/simulate.hpp): a deterministic fake measurer instead of the GPU, so the
// tuner, the DB's recording path, sharding and the kill and load tests run on a machine without
// a GPU. The workers still run as subprocesses (the CLI's `worker --simulate`) and the DB is real.
struct Simulation {
  double trial_ms = 0;            // how long each simulated trial takes
  bool compile_for_real = false;  // compile with NVRTC through the cubin cache; simulate measuring
  // The trials' measured_at instead of db::utc_timestamp(), so that a test can hand the tuner a
  // stamp the DB already holds (two tuners stamping one instant) when it wants to, not by chance.
  // Called from every device's thread. Null: the real clock.
  std::function<std::string()> stamp_clock = nullptr;
};

struct TuneRequest {
  Problem problem;      // its precision is the tuning precision
  std::string db_path;  // empty: TuningDb::default_path()
  Strategy strategy = Strategy::kExhaustive;
  bool pick_strategy = false;  // true: ignore `strategy`, use pick_strategy()
  double budget_seconds = 0;   // 0: no limit
  int max_trials = 0;          // 0: no limit (per problem)
  bool retune = false;         // measure configs the DB already holds for this key again
  int device = 0;
  std::vector<int> devices;  // several GPUs (autotune_batch); empty: {device}
  TrialOptions trial;
  double kernel_deadline_seconds = 10;  // a launch running longer is killed as kTimedOut
  double setup_deadline_seconds = 300;  // worker start, context and reference on a new problem
  // The deconvtune executable that runs `worker` (a path, or a name searched on PATH). Empty: the
  // rule of worker_executable() (tuner/executable.hpp), never a file in the current directory.
  std::string worker_binary;
  std::vector<Config> extra_candidates;  // appended to the space (the tests' fault configs)
  bool extra_candidates_only = false;    // TEST ONLY: the space is extra_candidates alone
  uint64_t random_seed = 1;  // the shuffled part of the order (measuring_order), mixed with the key
  uint64_t input_seed = 1;   // the verifier's random inputs
  unsigned compile_threads = 0;  // 0: one per hardware thread, shared among the devices
  // After tuning, launch the winner once from the cubin cache and time it (GPU mode only).
  bool launch_winner = true;
  // When the run began, for FirstLaunch::since_start_ms and the budget; unset: when called.
  std::optional<std::chrono::steady_clock::time_point> start;
  std::optional<Simulation> simulation;  // TEST SEAM: set, nothing runs on a GPU
  // Interruption (e.g. set from a SIGINT handler: a lock-free atomic is async-signal-safe). Once it
  // reads true, no candidate starts, the candidates in flight are abandoned within ~0.1 s (their
  // workers killed, nothing recorded for them; a chunk being compiled is finished first), no
  // winner is launched, and autotune_batch returns what was recorded (TuneReport::interrupted).
  // A worker killed by SIGINT or SIGTERM (Ctrl-C reaches the whole process group) is never
  // recorded as a faulting candidate. Null: never stopped.
  const std::atomic<bool>* stop = nullptr;
  // Called as a candidate starts measuring (problem key, config name), serialized with the
  // ProgressFn, for a view of what is in flight.
  std::function<void(const std::string&, const std::string&)> on_candidate_start;
};

// The first launch of the winner from the cubin cache, in the tuner process.
struct FirstLaunch {
  std::string config_name;
  bool cubin_from_cache = false;
  double since_start_ms = 0;  // from `start` (autotune's argument) to the launch's completion
  double context_ms = 0, cubin_ms = 0, load_ms = 0, launch_ms = 0;
};

struct TuneReport {
  std::vector<db::TrialRecord> trials;  // this run's, in the order measured
  std::optional<db::WinnerRecord> winner;
  int skipped_already_measured = 0;
  double compile_seconds = 0, measure_seconds = 0, wall_seconds = 0;
  // Extensions:
  std::string problem_key;
  std::string device_key;
  Strategy strategy = Strategy::kExhaustive;  // the one used
  int space_size = 0;                         // enumerated configs plus extra candidates
  int compiled = 0, cubin_cache_hits = 0;
  int worker_restarts = 0;
  int retried_after_kill = 0;  // candidates measured again after their worker was SIGKILLed
  bool stopped_by_budget = false;
  bool interrupted = false;  // TuneRequest::stop was set before this problem was done
  std::optional<FirstLaunch> first_launch;
  std::string first_launch_skipped;  // why there is no first_launch, when there is none
  std::string error;  // when the problem could not be tuned at all (ProblemSetupError's reason)
};

// Progress as candidates finish: (done, total, the trial just recorded). Calls are serialized.
using ProgressFn = std::function<void(int, int, const db::TrialRecord&)>;

TuneReport autotune(const TuneRequest& request, const ProgressFn& progress = {});

// Many problems: `settings` gives everything but the problem. One report per (problem, GPU model),
// in the order of `problems`. The first problem's winner is launched when settings.launch_winner.
std::vector<TuneReport> autotune_batch(const std::vector<Problem>& problems,
                                       const TuneRequest& settings,
                                       const ProgressFn& progress = {});

}  // namespace deconvtune::tuner

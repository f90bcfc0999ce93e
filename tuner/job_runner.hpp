#pragma once
// Internal to tuner/: one job, one problem on one GPU model, run on one device. The runner orders
// the job's pending configs (what the runtime would run untuned first), compiles them through the
// compile pipeline, measures each through the device's Measurer in the rounds of the job's
// strategy, and records every trial in the DB as it ends (each in its own transaction), with
// progress. A reply the DB would refuse (an implausible time or error) is recorded as
// kLaunchFailed.
#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "codegen/config.hpp"
#include "codegen/problem.hpp"
#include "tuner/compile_pipeline.hpp"
#include "tuner/device_slot.hpp"
#include "tuner/measurer.hpp"
#include "tuner/run_control.hpp"
#include "tuner/schedule.hpp"
#include "tuner/tuner.hpp"

namespace deconvtune::tuner {

// What the devices of one batch share: the request, the DB, the progress count and the abort flag.
struct BatchState {
  const TuneRequest* request = nullptr;
  db::TuningDb* db = nullptr;
  Clock::time_point start;
  std::mutex progress_mutex;
  ProgressFn progress;
  std::atomic<int> done{0};
  std::atomic<int> total{0};
  std::atomic<bool> abort{false};
  unsigned compile_threads = 1;
};

struct Job {
  Problem problem;
  std::string model_key;  // the GPU model this job is for
  std::vector<Config> pending;
  Strategy strategy = Strategy::kExhaustive;
  int planned = 0;
  TuneReport report;
  // Under a budget: when this job stops starting candidates (its share, fair_share_deadline).
  std::optional<Clock::time_point> deadline;
};

// When a job taken at `now` stops, under a budget of `budget_seconds` from `start` shared by the
// jobs not yet started (this one included, `jobs_left`) on `devices` devices at once: an equal
// part of what is left, so the last problems of a batch are not left without a trial when the
// first ones could use the whole budget; what a job leaves unused goes to the jobs after it. A
// share ends a job only after its first trial (the untuned choice, measured first): the worker's
// setup and the first compiles can take longer than a short share. The run's budget stays a hard
// end.
Clock::time_point fair_share_deadline(Clock::time_point start, double budget_seconds,
                                      Clock::time_point now, size_t jobs_left, size_t devices);

// Fresh stamps tried for a trial whose identity another process took first (JobRunner::record):
// plenty for a clock coarse enough to repeat itself, yet few enough that a DB refusing every stamp
// stops the tuner with an error instead of holding it forever. The tests count them.
inline constexpr int kStampAttempts = 1000;

class JobRunner {
 public:
  JobRunner(BatchState& batch, DeviceSlot& slot, Job& job)
      : batch_(batch),
        request_(*batch.request),
        slot_(slot),
        job_(job),
        measurer_(request_, slot) {}

  // Fills job.report; throws ProblemSetupError when the worker cannot set up the problem.
  void run();

 private:
  // (median ms, index into the survivors) of the candidates that verified in a round.
  using Ranking = std::vector<std::pair<double, size_t>>;

  void first_round(const std::vector<Config>& order, const std::vector<HalvingRound>& rounds,
                   std::vector<Candidate>& survivors, Ranking& ranking);
  void later_rounds(const std::vector<HalvingRound>& rounds,
                    const std::vector<Candidate>& survivors, Ranking ranking);
  void know_copy_bandwidth();
  std::vector<Config> untuned_choices() const;
  db::WinnerKey key() const;
  bool should_stop();
  TrialReply measure(const Candidate& candidate, const TrialOptions& options);
  void record(const Candidate& candidate, const TrialReply& reply);

  BatchState& batch_;
  const TuneRequest& request_;
  DeviceSlot& slot_;
  Job& job_;
  Measurer measurer_;
};

}  // namespace deconvtune::tuner

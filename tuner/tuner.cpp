// The tuner's entry points: a batch of problems becomes one job per (problem, GPU model), the
// devices take jobs from one shared queue (tuner/job_runner.hpp runs each), and the first
// problem's winner is launched once (tuner/first_launch.hpp).
#include "tuner/tuner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "tuner/device_slot.hpp"
#include "tuner/first_launch.hpp"
#include "tuner/job_runner.hpp"
#include "tuner/run_control.hpp"
#include "tuner/schedule.hpp"

namespace deconvtune::tuner {
namespace {

// The longest budget or deadline a request may name (a week): past it a duration is a mistake,
// and converting it to clock ticks could overflow.
constexpr double kMaxSeconds = 7 * 24 * 3600.0;

void check_request(const TuneRequest& settings) {
  if (settings.trial.timed_runs < 1 || settings.trial.warmup_runs < 0) {
    throw TuneError("trial options: timed_runs must be >= 1 and warmup_runs >= 0");
  }
  // A NaN would compare false against every clock reading: no budget, or a deadline never met.
  for (const auto& [name, value, least] :
       {std::make_tuple("budget_seconds", settings.budget_seconds, 0.0),
        std::make_tuple("kernel_deadline_seconds", settings.kernel_deadline_seconds, 1e-3),
        std::make_tuple("setup_deadline_seconds", settings.setup_deadline_seconds, 1e-3)}) {
    if (!std::isfinite(value) || value < least || value > kMaxSeconds) {
      throw TuneError(fmt::format("{} must be a number of seconds in [{}, {}], got {}", name, least,
                                  kMaxSeconds, value));
    }
  }
}

db::WinnerKey winner_key(const Problem& problem, const std::string& model_key) {
  return {problem.key(), model_key, generator_version(), problem.precision};
}

// The job for one problem on one GPU model: the space (plus the extra candidates) less what the
// DB already holds a trial of, unless retuning, and the strategy and trial count for what is left.
Job plan_job(const Problem& problem, const DeviceSlot& slot, const TuneRequest& settings,
             const db::TuningDb& db) {
  Job job;
  job.problem = problem;
  job.model_key = slot.record.key();
  std::vector<Config> space;
  if (!settings.extra_candidates_only) space = enumerate_space(problem, slot.limits);
  for (const Config& extra : settings.extra_candidates) {
    if (std::none_of(space.begin(), space.end(), [&](const Config& c) { return c == extra; })) {
      space.push_back(extra);
    }
  }
  std::set<std::string> measured;
  if (!settings.retune) {
    for (std::string& name : db.measured_configs(winner_key(problem, job.model_key))) {
      measured.insert(std::move(name));
    }
  }
  for (const Config& config : space) {
    if (measured.count(config.name())) {
      ++job.report.skipped_already_measured;
    } else {
      job.pending.push_back(config);
    }
  }
  job.strategy = settings.pick_strategy ? pick_strategy(job.pending.size(), settings.budget_seconds,
                                                        settings.max_trials)
                                        : settings.strategy;
  job.planned =
      planned_trials(job.strategy, job.pending.size(), settings.trial, settings.max_trials);
  job.report.problem_key = problem.key();
  job.report.device_key = job.model_key;
  job.report.strategy = job.strategy;
  job.report.space_size = static_cast<int>(space.size());
  return job;
}

// One job per (problem, GPU model), problem by problem; devices of one model share the jobs.
std::vector<Job> plan_jobs(const std::vector<Problem>& problems,
                           const std::vector<std::unique_ptr<DeviceSlot>>& slots,
                           const TuneRequest& settings, const db::TuningDb& db) {
  std::vector<const DeviceSlot*> one_per_model;
  for (const auto& slot : slots) {
    if (std::none_of(one_per_model.begin(), one_per_model.end(),
                     [&](const DeviceSlot* s) { return s->record.key() == slot->record.key(); })) {
      one_per_model.push_back(slot.get());
    }
  }
  std::vector<Job> jobs;
  for (const Problem& problem : problems) {
    for (const DeviceSlot* slot : one_per_model) {
      jobs.push_back(plan_job(problem, *slot, settings, db));
    }
  }
  return jobs;
}

// The shared queue: each device takes the next job for its model until none is left, the run is
// stopped, or another device failed (whose error is rethrown). Returns which jobs were taken.
std::vector<bool> run_jobs(std::vector<Job>& jobs,
                           const std::vector<std::unique_ptr<DeviceSlot>>& slots,
                           BatchState& batch) {
  const TuneRequest& settings = *batch.request;
  std::mutex queue_mutex;
  std::vector<bool> taken(jobs.size(), false);
  std::exception_ptr error;
  auto next_job = [&](const DeviceSlot& slot) -> Job* {
    std::lock_guard<std::mutex> lock(queue_mutex);
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (!taken[i] && jobs[i].model_key == slot.record.key()) {
        taken[i] = true;
        if (settings.budget_seconds > 0) {
          size_t jobs_left = 1;  // this one, and those not started that have candidates to measure
          for (size_t j = i + 1; j < jobs.size(); ++j)
            jobs_left += !taken[j] && !jobs[j].pending.empty();
          jobs[i].deadline = fair_share_deadline(batch.start, settings.budget_seconds, Clock::now(),
                                                 jobs_left, slots.size());
        }
        return &jobs[i];
      }
    }
    return nullptr;
  };
  auto device_loop = [&](DeviceSlot& slot) {
    try {
      while (!batch.abort && !stop_requested(settings)) {
        Job* job = next_job(slot);
        if (!job) break;
        if (job->pending.empty()) {
          job->report.winner = batch.db->winner(winner_key(job->problem, job->model_key));
          continue;
        }
        try {
          JobRunner(batch, slot, *job).run();
        } catch (const ProblemSetupError& e) {
          job->report.error = e.what();
          job->report.winner = batch.db->winner(winner_key(job->problem, job->model_key));
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(queue_mutex);
      if (!error) error = std::current_exception();
      batch.abort = true;
    }
    slot.worker.reset();
  };
  std::vector<std::thread> threads;
  for (const auto& slot : slots) threads.emplace_back(device_loop, std::ref(*slot));
  for (std::thread& thread : threads) thread.join();
  if (error) std::rethrow_exception(error);
  return taken;
}

// The first problem's winner, launched once on the first device, or why it is not.
void launch_first_winner(TuneReport& first, const Problem& problem, DeviceSlot& slot,
                         const BatchState& batch) {
  const TuneRequest& settings = *batch.request;
  if (stop_requested(settings)) {
    first.first_launch_skipped = "the run was interrupted";
  } else if (settings.simulation) {  // TEST SEAM
    first.first_launch_skipped = "simulated run: there is no GPU to launch on";
  } else if (!settings.launch_winner) {
    first.first_launch_skipped = "not asked for";
  } else if (!first.winner) {
    first.first_launch_skipped = "no config verified, so there is no winner";
  } else if (first.winner->imported) {
    first.first_launch_skipped = "the winner was imported and no trial here has replaced it";
  } else {
    try {
      first.first_launch = launch_winner(slot, *batch.db, problem, *first.winner, batch.start);
    } catch (const std::exception& e) {
      first.first_launch_skipped = fmt::format("the launch failed: {}", e.what());
    }
  }
}

}  // namespace

std::string_view to_string(Strategy strategy) {
  switch (strategy) {
    case Strategy::kExhaustive:
      return "exhaustive";
    case Strategy::kRandom:
      return "random";
    case Strategy::kSuccessiveHalving:
      return "halving";
  }
  return "?";
}

Strategy parse_strategy(std::string_view text) {
  for (Strategy s : {Strategy::kExhaustive, Strategy::kRandom, Strategy::kSuccessiveHalving}) {
    if (to_string(s) == text) return s;
  }
  throw std::invalid_argument(
      fmt::format("strategy '{}' is not one of exhaustive, random, halving", text));
}

Strategy pick_strategy(size_t candidates, double budget_seconds, int max_trials) {
  if (candidates <= kSmallSpace) return Strategy::kExhaustive;
  if (budget_seconds > 0 || max_trials > 0) return Strategy::kRandom;
  return Strategy::kSuccessiveHalving;
}

TuneReport autotune(const TuneRequest& request, const ProgressFn& progress) {
  std::vector<TuneReport> reports = autotune_batch({request.problem}, request, progress);
  if (reports.size() != 1) {
    throw TuneError(
        "autotune: one problem gives one report; use autotune_batch for devices of "
        "different models");
  }
  return std::move(reports.front());
}

std::vector<TuneReport> autotune_batch(const std::vector<Problem>& problems,
                                       const TuneRequest& settings, const ProgressFn& progress) {
  BatchState batch;
  batch.request = &settings;
  batch.start = settings.start ? *settings.start : Clock::now();
  batch.progress = progress;
  check_request(settings);
  db::TuningDb db(settings.db_path.empty() ? db::TuningDb::default_path() : settings.db_path);
  batch.db = &db;
  std::vector<std::unique_ptr<DeviceSlot>> slots = open_devices(settings);
  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  const unsigned threads = settings.compile_threads ? settings.compile_threads : hardware;
  batch.compile_threads = std::max<unsigned>(1, threads / static_cast<unsigned>(slots.size()));

  std::vector<Job> jobs = plan_jobs(problems, slots, settings, db);
  for (const Job& job : jobs) batch.total += job.planned;
  const std::vector<bool> taken = run_jobs(jobs, slots, batch);

  std::vector<TuneReport> reports;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!taken[i] && stop_requested(settings)) jobs[i].report.interrupted = true;
    reports.push_back(std::move(jobs[i].report));
  }
  if (!reports.empty())
    launch_first_winner(reports.front(), problems.front(), *slots.front(), batch);
  return reports;
}

}  // namespace deconvtune::tuner

#include "tuner/job_runner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <thread>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "tuner/heuristic.hpp"

namespace deconvtune::tuner {
namespace {

// A reason is kept whole up to this size (compile logs can be long); the DB takes 64 KiB.
constexpr size_t kMaxReason = 16384;

std::string clip_reason(std::string reason) {
  if (reason.size() > kMaxReason) reason = reason.substr(0, kMaxReason) + "\n[... cut]";
  // The DB takes UTF-8 only; compile logs and CUDA messages are ASCII, anything else is replaced.
  for (char& c : reason) {
    if (static_cast<unsigned char>(c) >= 0x80 || (c < 0x20 && c != '\n' && c != '\t')) c = '?';
  }
  return reason;
}

bool plausible_timing(const TrialReply& reply) {
  return std::isfinite(reply.median_ms) && reply.min_ms > 0 && reply.min_ms <= reply.median_ms &&
         reply.median_ms <= reply.max_ms && std::isfinite(reply.max_ms) &&
         std::isfinite(reply.max_error) && reply.max_error >= 0;
}

}  // namespace

void JobRunner::run() {
  TuneReport& report = job_.report;
  const Clock::time_point start = Clock::now();
  // Written only when there is something to record: a run with nothing left to measure (the
  // second run) writes nothing and gets to its first launch sooner.
  know_copy_bandwidth();
  batch_.db->upsert_device(slot_.record);
  batch_.db->upsert_problem(job_.problem);
  const bool budgeted = request_.budget_seconds > 0 || request_.max_trials > 0;
  const std::vector<Config> order = measuring_order(
      job_.pending, untuned_choices(), budgeted || job_.strategy == Strategy::kRandom,
      order_seed(request_.random_seed, job_.problem.key()));
  const std::vector<HalvingRound> rounds = job_.strategy == Strategy::kSuccessiveHalving
                                               ? halving_rounds(order.size(), request_.trial)
                                               : std::vector<HalvingRound>{};
  try {
    std::vector<Candidate> survivors;
    Ranking ranking;
    first_round(order, rounds, survivors, ranking);
    later_rounds(rounds, survivors, std::move(ranking));
  } catch (const Interrupted&) {
  }
  report.interrupted = stop_requested(request_);
  report.worker_restarts = measurer_.restarts();
  report.retried_after_kill = measurer_.retries_after_kill();
  report.wall_seconds = seconds_since(start);
  report.winner = batch_.db->winner(key());
}

// Round one (every strategy's only round but halving's): compile and measure in order; for
// halving, the candidates that verified and their times go on to the later rounds.
void JobRunner::first_round(const std::vector<Config>& order,
                            const std::vector<HalvingRound>& rounds,
                            std::vector<Candidate>& survivors, Ranking& ranking) {
  const CompileSettings settings{batch_.db, slot_.arch, slot_.limits, batch_.compile_threads,
                                 request_.simulation && !request_.simulation->compile_for_real};
  const TrialOptions& options = rounds.empty() ? request_.trial : rounds.front().options;
  CompilePipeline pipeline(job_.problem, order, settings);
  try {
    while (std::optional<Candidate> candidate = pipeline.next(request_.stop)) {
      if (should_stop()) {
        pipeline.stop();
        break;
      }
      if (!candidate->ok) {
        record(*candidate,
               failed_reply(candidate->name, Disposition::kCompileFailed, candidate->failure));
        continue;
      }
      const TrialReply reply = measure(*candidate, options);
      if (reply.status == Disposition::kOk && !rounds.empty()) {
        ranking.emplace_back(reply.median_ms, survivors.size());
        survivors.push_back(std::move(*candidate));
      }
    }
  } catch (const Interrupted&) {
  }
  pipeline.finish();
  job_.report.compile_seconds = pipeline.busy_seconds();
  job_.report.compiled = pipeline.compiled();
  job_.report.cubin_cache_hits = pipeline.cache_hits();
}

// Successive halving: the better half goes on with more timed runs, until the full count.
void JobRunner::later_rounds(const std::vector<HalvingRound>& rounds,
                             const std::vector<Candidate>& survivors, Ranking ranking) {
  for (size_t r = 1; r < rounds.size() && !should_stop(); ++r) {
    std::sort(ranking.begin(), ranking.end());
    const size_t keep = std::min(ranking.size(), rounds[r].candidates);
    batch_.total -= static_cast<int>(rounds[r].candidates - keep);
    Ranking next_ranking;
    for (size_t i = 0; i < keep && !should_stop(); ++i) {
      const Candidate& candidate = survivors[ranking[i].second];
      const TrialReply reply = measure(candidate, rounds[r].options);
      if (reply.status == Disposition::kOk) {
        next_ranking.emplace_back(reply.median_ms, ranking[i].second);
      }
    }
    ranking = std::move(next_ranking);
  }
}

// The device's copy bandwidth, once per device: from the DB when it holds a measurement, else
// measured now in the tuner's own context, before this job measures any candidate on the GPU.
void JobRunner::know_copy_bandwidth() {
  if (slot_.record.copy_gbps > 0 || !slot_.context) return;  // known, or simulated
  const std::optional<db::DeviceRecord> stored = batch_.db->device(slot_.record.key());
  if (stored && stored->copy_gbps > 0) {
    slot_.record.copy_gbps = stored->copy_gbps;
    return;
  }
  try {
    slot_.context->make_current();
    slot_.record.copy_gbps = measure_copy_gbps(*slot_.context);
  } catch (const CudaError&) {
    // Too little memory for the copy, say: the bandwidth stays unmeasured; tuning goes on.
  }
}

// What the runtime would run for this problem untuned: the rule's default, then the nearest tuned
// neighbour's winner on this GPU model.
std::vector<Config> JobRunner::untuned_choices() const {
  std::vector<Config> choices{default_config(job_.problem, slot_.limits)};
  try {
    choices.push_back(choose_untuned_config(job_.problem, slot_.limits, *batch_.db,
                                            slot_.record.key(), generator_version())
                          .config);
  } catch (const db::DbError&) {
    // An unreadable neighbour only costs the order; recording will report a DB that is broken.
  }
  return choices;
}

db::WinnerKey JobRunner::key() const {
  return {job_.problem.key(), slot_.record.key(), generator_version(), job_.problem.precision};
}

Clock::time_point fair_share_deadline(Clock::time_point start, double budget_seconds,
                                      Clock::time_point now, size_t jobs_left, size_t devices) {
  const Clock::time_point end = start + std::chrono::duration_cast<Clock::duration>(
                                            std::chrono::duration<double>(budget_seconds));
  if (now >= end || jobs_left == 0) return end;
  const double share =
      static_cast<double>(std::min(devices, jobs_left)) / static_cast<double>(jobs_left);
  return now + std::chrono::duration_cast<Clock::duration>((end - now) * share);
}

bool JobRunner::should_stop() {
  TuneReport& report = job_.report;
  if (batch_.abort || stop_requested(request_)) return true;
  if (request_.max_trials > 0 && static_cast<int>(report.trials.size()) >= request_.max_trials) {
    report.stopped_by_budget = true;
    return true;
  }
  // Under a budget each problem still gets its first candidate (the rule's default) measured:
  // otherwise a budget spent on the problems before it, or on compiling its first candidates
  // (the H200: 13 s for a streamed kernel's), would leave it without any winner.
  if (request_.budget_seconds > 0 && !report.trials.empty() &&
      (seconds_since(batch_.start) >= request_.budget_seconds ||
       (job_.deadline && Clock::now() >= *job_.deadline))) {
    report.stopped_by_budget = true;
    return true;
  }
  return false;
}

TrialReply JobRunner::measure(const Candidate& candidate, const TrialOptions& options) {
  if (request_.on_candidate_start) {
    std::lock_guard<std::mutex> lock(batch_.progress_mutex);
    request_.on_candidate_start(job_.problem.key(), candidate.name);
  }
  const Clock::time_point start = Clock::now();
  TrialReply reply = measurer_.measure(job_.problem, candidate, options);
  job_.report.measure_seconds += seconds_since(start);
  if (reply.config_name != candidate.name) {
    reply = failed_reply(candidate.name, Disposition::kLaunchFailed,
                         "the worker answered for another config");
  }
  if (reply.status == Disposition::kOk && !plausible_timing(reply)) {
    reply.reason = fmt::format(
        "the worker reported an implausible timing (median {} ms, min {}, "
        "max {}, error {})",
        reply.median_ms, reply.min_ms, reply.max_ms, reply.max_error);
    reply.status = Disposition::kLaunchFailed;
  }
  if (reply.status == Disposition::kOk) {
    try {  // the DB's own rule, so that record_trial never refuses a reply
      db::validate_verified(job_.problem, reply.median_ms, reply.min_ms, reply.max_error);
    } catch (const db::FieldError& e) {
      reply.reason = fmt::format("the worker reported an implausible result: {}", e.what());
      reply.status = Disposition::kLaunchFailed;
    }
  }
  record(candidate, reply);
  return reply;
}

void JobRunner::record(const Candidate& candidate, const TrialReply& reply) {
  db::TrialRecord trial;
  static_cast<TrialMeasurement&>(trial) = reply;  // the measurement as the worker reported it
  trial.config_name = candidate.name;
  const bool ok = reply.status == Disposition::kOk;
  trial.reason = ok ? "" : clip_reason(reply.reason);
  if (!ok)
    trial.median_ms = trial.min_ms = trial.max_ms = 0;  // a failed trial's times mean nothing
  if (ok && !(trial.max_error >= 0)) trial.max_error = 0;
  // The compile's count (ptxas's, or the cached cubin's own), else the loaded function's.
  if (candidate.registers >= 0) trial.registers = candidate.registers;
  if (trial.registers > 255) trial.registers = -1;
  trial.problem_key = job_.problem.key();
  trial.device_key = slot_.record.key();
  trial.generator_version = generator_version();
  trial.precision = job_.problem.precision;
  trial.shared_bytes = candidate.shared_bytes;
  trial.spill_bytes = candidate.spill_bytes;
  trial.compile_ms = candidate.compile_ms;
  // A trial's identity includes measured_at, and a tuner of the same problem in another process
  // can stamp the same instant (the clock may be coarser than its microseconds): the DB keeps the
  // first row of an identity, so a stamp already taken is taken again until this trial is stored.
  auto stamp = [this] {
    if (request_.simulation && request_.simulation->stamp_clock) {  // TEST SEAM
      return request_.simulation->stamp_clock();
    }
    return db::utc_timestamp();
  };
  for (int attempt = 0;; ++attempt) {
    trial.measured_at = stamp();
    if (batch_.db->record_trial(trial)) break;
    if (attempt == kStampAttempts) {
      throw TuneError(fmt::format("the tuning DB kept refusing trial {} of {} as already there",
                                  trial.config_name, trial.problem_key));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  job_.report.trials.push_back(trial);
  std::lock_guard<std::mutex> lock(batch_.progress_mutex);
  const int done = ++batch_.done;
  if (batch_.progress) batch_.progress(done, std::max(done, batch_.total.load()), trial);
}

}  // namespace deconvtune::tuner

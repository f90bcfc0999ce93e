#include "tuner/measurer.hpp"

#include <fmt/format.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <nlohmann/json.hpp>
#include <thread>

#include "tuner/executable.hpp"
#include "tuner/run_control.hpp"
#include "tuner/simulate.hpp"

namespace deconvtune::tuner {

TrialReply Measurer::measure(const Problem& problem, const Candidate& candidate,
                             const TrialOptions& options) {
  TrialReply reply = measure_once(problem, candidate, options);
  if (!killed_from_outside_) return reply;
  killed_from_outside_ = false;
  ++retries_after_kill_;
  reply = measure_once(problem, candidate, options);
  if (killed_from_outside_) {
    killed_from_outside_ = false;
    reply.reason += "; killed from outside twice in a row (out of memory?), so marked faulted";
  }
  return reply;
}

TrialReply Measurer::measure_once(const Problem& problem, const Candidate& candidate,
                                  const TrialOptions& options) {
  TrialRequest message;
  message.problem = problem;
  message.config_name = candidate.name;
  message.cubin = candidate.cubin;
  message.options = options;
  message.input_seed = request_.input_seed;
  const std::string line = to_json(message).dump();
  send_request(line);
  // Verification: one launch, bounded by the kernel deadline.
  std::string reply_line;
  double deadline = request_.kernel_deadline_seconds;
  const char* phase = "the verification launch";
  const Clock::time_point verification_start = Clock::now();
  for (int step = 0; step < 2; ++step) {
    WorkerProcess::Read read = slot_.worker->read_line(reply_line, deadline, request_.stop);
    abandon_if_interrupted(read);
    if (read == WorkerProcess::Read::kTimedOut) {
      slot_.worker->kill();
      drop_worker();
      return failed_reply(
          candidate.name, Disposition::kTimedOut,
          fmt::format("{} did not finish within {:.1f} s; the worker was killed", phase, deadline));
    }
    if (read == WorkerProcess::Read::kClosed) {
      killed_from_outside_ = slot_.worker->wait_exit(5.0) && slot_.worker->term_signal() == SIGKILL;
      std::string exit = finish_worker();
      return failed_reply(candidate.name, Disposition::kFaulted,
                          fmt::format("the worker died during {} ({})", phase, exit));
    }
    nlohmann::json message;
    try {
      message = parse_message(reply_line);
      if (message["type"] == "verified") {
        // Timing: warm-up and timed runs, each bounded by a multiple of the verified run.
        // The worker's own figure, bounded by the time it really took (our clock): a broken
        // worker saying 1e300 ms (or NaN) must not stretch the next deadline to forever.
        const double said_seconds = message.contains("ms") && message["ms"].is_number()
                                        ? message["ms"].get<double>() / 1e3
                                        : 0.0;
        const double verify_seconds =
            std::isfinite(said_seconds)
                ? std::clamp(said_seconds, 0.0, seconds_since(verification_start))
                : 0.0;
        deadline = request_.kernel_deadline_seconds +
                   10.0 * (options.warmup_runs + options.timed_runs + 1) * verify_seconds;
        phase = "the timed runs";
        continue;
      }
      TrialReply reply = trial_reply_from_json(message);
      if (reply.context_lost) {
        finish_worker();
      }
      return reply;
    } catch (const ProtocolError& e) {
      slot_.worker->kill();
      drop_worker();
      return failed_reply(candidate.name, Disposition::kLaunchFailed,
                          fmt::format("the worker's reply was unreadable: {}", e.what()));
    }
  }
  slot_.worker->kill();
  drop_worker();
  return failed_reply(candidate.name, Disposition::kLaunchFailed, "the worker sent no result");
}

void Measurer::ensure_worker() {
  if (slot_.worker) return;
  std::vector<std::string> argv = {worker_executable(request_.worker_binary), "worker", "--device",
                                   std::to_string(slot_.ordinal)};
  if (request_.simulation) {  // TEST SEAM
    for (std::string& arg : simulated_worker_args(*request_.simulation)) argv.push_back(arg);
  }
  if (slot_.worker_started) ++restarts_;
  slot_.worker = std::make_unique<WorkerProcess>(argv);
  slot_.worker_started = true;
}

// Sends the request and waits for the worker's "ready" (its setup of the problem).
void Measurer::send_request(const std::string& line) {
  // A worker that died between trials (or never started) gets one fresh start.
  for (int attempt = 0;; ++attempt) {
    if (stop_requested(request_)) throw Interrupted{};
    ensure_worker();
    if (!slot_.worker->send_line(line)) {
      drop_worker();
      if (attempt == 0) continue;
      throw TuneError(
          fmt::format("the worker for device {} does not accept requests", slot_.ordinal));
    }
    std::string reply_line;
    WorkerProcess::Read read =
        slot_.worker->read_line(reply_line, request_.setup_deadline_seconds, request_.stop);
    abandon_if_interrupted(read);
    if (read == WorkerProcess::Read::kLine) {
      nlohmann::json first;
      try {
        first = parse_message(reply_line);
      } catch (const ProtocolError& e) {
        drop_worker();
        throw TuneError(fmt::format("the worker for device {} answered with garbage: {}",
                                    slot_.ordinal, e.what()));
      }
      if (first["type"] == "ready") return;
      // A result before "ready": the worker could not set itself up; no candidate is to blame.
      std::string why = first.value("reason", first.value("message", reply_line));
      drop_worker();
      throw ProblemSetupError(fmt::format(
          "the worker for device {} could not set up the problem: {}", slot_.ordinal, why));
    }
    const bool timed_out = read == WorkerProcess::Read::kTimedOut;
    std::string exit = finish_worker();
    if (attempt == 0 && !timed_out) continue;
    throw TuneError(fmt::format(
        "the worker for device {} {} before it was ready ({})", slot_.ordinal,
        timed_out ? fmt::format("took more than {} s", request_.setup_deadline_seconds) : "ended",
        exit));
  }
}

// A stopped run (the read was cancelled) or a worker ended by SIGINT or SIGTERM: no candidate is
// to blame. Ctrl-C on a terminal signals the workers too, and the tuner's own handler may set the
// stop flag a moment later: it is waited for briefly; a worker signalled alone is an error.
void Measurer::abandon_if_interrupted(WorkerProcess::Read read) {
  if (read == WorkerProcess::Read::kCancelled) {
    slot_.worker->kill();
    drop_worker();
    throw Interrupted{};
  }
  if (read != WorkerProcess::Read::kClosed || !slot_.worker->wait_exit(5.0)) return;
  const int signal = slot_.worker->term_signal();
  if (signal != SIGINT && signal != SIGTERM) return;
  const std::string exit = slot_.worker->exit_description();
  drop_worker();
  for (int i = 0; i < 200 && request_.stop && !stop_requested(request_); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (stop_requested(request_)) throw Interrupted{};
  throw TuneError(
      fmt::format("the worker for device {} was stopped from outside ({})", slot_.ordinal, exit));
}

// Waits for a worker that is ending on its own (a lost context), then says how it ended.
std::string Measurer::finish_worker() {
  if (!slot_.worker->wait_exit(5.0)) slot_.worker->kill();
  std::string exit = slot_.worker->exit_description();
  drop_worker();
  return exit;
}

}  // namespace deconvtune::tuner

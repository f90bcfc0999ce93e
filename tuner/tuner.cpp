#include "tuner/tuner.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/driver_api.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tuner/cubin_cache.hpp"
#include "tuner/executable.hpp"
#include "tuner/heuristic.hpp"
#include "tuner/schedule.hpp"
#include "tuner/simulate.hpp"
#include "tuner/worker_process.hpp"
#include "tuner/worker_protocol.hpp"

namespace deconvtune::tuner {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}
double ms_since(Clock::time_point start) { return 1000.0 * seconds_since(start); }

bool stop_requested(const TuneRequest& request) { return request.stop && request.stop->load(); }

// Thrown out of measuring when the run is stopped (TuneRequest::stop): the candidate in flight is
// abandoned, not recorded.
struct Interrupted {};

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

// ---------------------------------------------------------------------------------------------
// Devices

struct DeviceSlot {
  int ordinal = 0;
  db::DeviceRecord record;
  DeviceLimits limits;
  std::string arch = kDefaultArch;
  std::unique_ptr<Context> context;  // GPU mode: the tuner's own, for the winner's first launch
  double context_ms = 0;
  std::unique_ptr<WorkerProcess> worker;
  bool worker_started = false;  // a later start is a restart
};

std::vector<std::unique_ptr<DeviceSlot>> open_devices(const TuneRequest& request) {
  std::vector<int> ordinals = request.devices;
  if (ordinals.empty()) ordinals.push_back(request.device);
  std::set<int> seen;
  std::vector<std::unique_ptr<DeviceSlot>> slots;
  for (int ordinal : ordinals) {
    if (!seen.insert(ordinal).second) {
      throw TuneError(fmt::format("device {} is listed twice", ordinal));
    }
    auto slot = std::make_unique<DeviceSlot>();
    slot->ordinal = ordinal;
    if (request.simulate) {
      slot->record = simulated_device();
    } else {
      const Clock::time_point start = Clock::now();
      int count = 0;
      DT_CU(cuDeviceGetCount(&count));
      if (ordinal < 0 || ordinal >= count) {
        throw TuneError(fmt::format("device {} does not exist (this machine has {} GPU{})", ordinal,
                                    count, count == 1 ? "" : "s"));
      }
      slot->context = std::make_unique<Context>(ordinal);
      slot->context_ms = ms_since(start);
      const DeviceInfo& info = slot->context->info();
      slot->record.name = info.name;
      slot->record.arch = info.arch();
      slot->record.sm_count = info.sm_count;
      slot->record.driver_version = info.driver_version;
      slot->record.nvrtc_version = nvrtc_version();
      slot->arch = info.arch();
      slot->limits = info.limits();
    }
    slots.push_back(std::move(slot));
  }
  return slots;
}

// ---------------------------------------------------------------------------------------------
// Compilation: a producer thread compiles candidates chunk by chunk, ahead of the measuring loop,
// through the DB's cubin cache.

struct Candidate {
  Config config;
  std::string name;
  GeneratedKernel kernel;
  bool ok = false;
  std::string failure;  // why it did not compile
  std::vector<char> cubin;
  bool from_cache = false;
  double compile_ms = 0;
  int registers = -1, shared_bytes = -1, spill_bytes = -1;
};

struct CompileSettings {
  db::TuningDb* db = nullptr;
  std::string arch;
  DeviceLimits limits;  // the launch geometry's device
  unsigned threads = 1;
  bool simulate = false;
};

std::string cache_key_of(const std::string& source, const std::string& arch) {
  CompileOptions options;
  options.arch = arch;
  return cubin_cache_key(source, options);
}

class CompilePipeline {
 public:
  CompilePipeline(const Problem& problem, std::vector<Config> order, CompileSettings settings)
      : problem_(problem), order_(std::move(order)), settings_(settings) {
    thread_ = std::thread([this] { run(); });
  }
  ~CompilePipeline() { finish(); }

  // Stops and waits for the producer; the counters below are final afterwards.
  void finish() {
    stop();
    if (thread_.joinable()) thread_.join();
  }

  // The next candidate in order; nullopt when all are done or the pipeline was stopped. Throws
  // Interrupted when `*stop` becomes true while it waits (polled: a signal handler sets it).
  std::optional<Candidate> next(const std::atomic<bool>* stop) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!ready_.wait_for(lock, std::chrono::milliseconds(100),
                            [&] { return !queue_.empty() || finished_ || error_; })) {
      if (stop && stop->load()) throw Interrupted{};
    }
    if (error_) std::rethrow_exception(error_);
    if (queue_.empty()) return std::nullopt;
    Candidate candidate = std::move(queue_.front());
    queue_.pop_front();
    space_.notify_all();
    return candidate;
  }

  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    space_.notify_all();
  }

  double busy_seconds() const { return busy_seconds_; }
  int compiled() const { return compiled_; }
  int cache_hits() const { return cache_hits_; }

 private:
  size_t chunk_size() const { return std::max<size_t>(4, 2 * settings_.threads); }

  void run() {
    try {
      for (size_t begin = 0; begin < order_.size(); begin += chunk_size()) {
        {
          std::unique_lock<std::mutex> lock(mutex_);
          // At most two chunks ahead of the measuring loop: a stopped run wastes little.
          space_.wait(lock, [&] { return stopped_ || queue_.size() < chunk_size(); });
          if (stopped_) break;
        }
        const size_t end = std::min(order_.size(), begin + chunk_size());
        std::vector<Candidate> chunk = compile_chunk(begin, end);
        std::lock_guard<std::mutex> lock(mutex_);
        for (Candidate& candidate : chunk) queue_.push_back(std::move(candidate));
        ready_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
    ready_.notify_all();
  }

  // A compiled module's resources (ptxas's report, else what its cubin says; any may be unknown,
  // -1, spills beside a stack frame in particular) onto its candidate, whose shared memory so far
  // is the launch's dynamic part.
  static void take_resources(Candidate& candidate, const ResourceUsage& r) {
    candidate.registers = r.registers;
    candidate.shared_bytes = r.shared_bytes >= 0 ? candidate.shared_bytes + r.shared_bytes : -1;
    candidate.spill_bytes = r.spill_bytes();
  }

  std::vector<Candidate> compile_chunk(size_t begin, size_t end) {
    const Clock::time_point start = Clock::now();
    std::vector<Candidate> chunk;
    std::vector<size_t> misses;
    std::vector<std::string> sources, keys;
    for (size_t i = begin; i < end; ++i) {
      Candidate candidate;
      candidate.config = order_[i];
      candidate.name = order_[i].name();
      try {
        candidate.kernel = generate_kernel(problem_, candidate.config, settings_.limits);
        candidate.shared_bytes = static_cast<int>(candidate.kernel.launch.shared_bytes);
      } catch (const std::exception& e) {
        candidate.failure = fmt::format("generation failed: {}", e.what());
        chunk.push_back(std::move(candidate));
        continue;
      }
      if (settings_.simulate) {
        SimulatedCompile compiled = simulated_compile(candidate.config, problem_);
        candidate.ok = compiled.ok;
        candidate.failure = compiled.log;
        candidate.registers = compiled.registers;
      } else {
        const std::string key = cache_key_of(candidate.kernel.source, settings_.arch);
        if (std::optional<std::vector<char>> cubin = settings_.db->cached_cubin(key)) {
          candidate.ok = true;
          candidate.from_cache = true;
          candidate.cubin = std::move(*cubin);
          take_resources(candidate, cubin_resources(candidate.cubin, ""));
          ++cache_hits_;
        } else {
          misses.push_back(chunk.size());
          sources.push_back(candidate.kernel.source);
          keys.push_back(key);
        }
      }
      chunk.push_back(std::move(candidate));
    }
    if (!sources.empty()) {
      CompileOptions options;
      options.arch = settings_.arch;
      std::vector<CompileResult> results =
          compile_cuda_parallel(sources, options, settings_.threads);
      for (size_t j = 0; j < misses.size(); ++j) {
        Candidate& candidate = chunk[misses[j]];
        CompileResult& result = results[j];
        candidate.compile_ms = result.milliseconds;
        candidate.ok = result.ok;
        ++compiled_;
        if (!result.ok) {
          candidate.failure = result.log;
          continue;
        }
        take_resources(candidate, result.resources);
        candidate.cubin = std::move(result.cubin);
        settings_.db->store_cubin(keys[j], candidate.cubin);
      }
    }
    busy_seconds_ += seconds_since(start);
    return chunk;
  }

  Problem problem_;
  std::vector<Config> order_;
  CompileSettings settings_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::deque<Candidate> queue_;
  bool stopped_ = false, finished_ = false;
  std::exception_ptr error_;
  // Written by the producer only, read after finish().
  double busy_seconds_ = 0;
  int compiled_ = 0, cache_hits_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Measuring in the worker subprocess

class Measurer {
 public:
  Measurer(const TuneRequest& request, DeviceSlot& slot) : request_(request), slot_(slot) {}

  int restarts() const { return restarts_; }

  // A worker killed from outside mid-trial (SIGKILL: the OOM killer, a scheduler, a user) says
  // nothing about the candidate: it is measured once more on a fresh worker, and only a second such
  // death marks it faulted.
  TrialReply measure(const Problem& problem, const Candidate& candidate,
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

  int retries_after_kill() const { return retries_after_kill_; }

 private:
  TrialReply measure_once(const Problem& problem, const Candidate& candidate,
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
        return failure(candidate, Disposition::kTimedOut,
                       fmt::format("{} did not finish within {:.1f} s; the worker was killed",
                                   phase, deadline));
      }
      if (read == WorkerProcess::Read::kClosed) {
        killed_from_outside_ =
            slot_.worker->wait_exit(5.0) && slot_.worker->term_signal() == SIGKILL;
        std::string exit = finish_worker();
        return failure(candidate, Disposition::kFaulted,
                       fmt::format("the worker died during {} ({})", phase, exit));
      }
      json_t message;
      try {
        message = parse(reply_line);
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
        return failure(candidate, Disposition::kLaunchFailed,
                       fmt::format("the worker's reply was unreadable: {}", e.what()));
      }
    }
    slot_.worker->kill();
    drop_worker();
    return failure(candidate, Disposition::kLaunchFailed, "the worker sent no result");
  }

  using json_t = nlohmann::json;

  static json_t parse(const std::string& line) { return parse_message(line); }

  static TrialReply failure(const Candidate& candidate, Disposition status, std::string reason) {
    TrialReply reply;
    reply.config_name = candidate.name;
    reply.status = status;
    reply.reason = std::move(reason);
    return reply;
  }

  void ensure_worker() {
    if (slot_.worker) return;
    std::vector<std::string> argv = {worker_executable(request_.worker_binary), "worker",
                                     "--device", std::to_string(slot_.ordinal)};
    if (request_.simulate) {
      argv.push_back("--simulate");
      argv.push_back("--simulate-trial-ms");
      argv.push_back(fmt::format("{}", request_.simulate_trial_ms));
    }
    if (slot_.worker_started) ++restarts_;
    slot_.worker = std::make_unique<WorkerProcess>(argv);
    slot_.worker_started = true;
  }

  // Sends the request and waits for the worker's "ready" (its setup of the problem).
  void send_request(const std::string& line) {
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
        json_t first;
        try {
          first = parse(reply_line);
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
  void abandon_if_interrupted(WorkerProcess::Read read) {
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
  std::string finish_worker() {
    if (!slot_.worker->wait_exit(5.0)) slot_.worker->kill();
    std::string exit = slot_.worker->exit_description();
    drop_worker();
    return exit;
  }

  void drop_worker() { slot_.worker.reset(); }

  const TuneRequest& request_;
  DeviceSlot& slot_;
  int restarts_ = 0;
  bool killed_from_outside_ = false;  // the last measure_once lost its worker to SIGKILL
  int retries_after_kill_ = 0;
};

// ---------------------------------------------------------------------------------------------
// One problem on one device

struct Shared {
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
};

bool plausible_timing(const TrialReply& reply) {
  return std::isfinite(reply.median_ms) && reply.min_ms > 0 && reply.min_ms <= reply.median_ms &&
         reply.median_ms <= reply.max_ms && std::isfinite(reply.max_ms) &&
         std::isfinite(reply.max_error) && reply.max_error >= 0;
}

class JobRunner {
 public:
  JobRunner(Shared& shared, DeviceSlot& slot, Job& job)
      : shared_(shared),
        request_(*shared.request),
        slot_(slot),
        job_(job),
        measurer_(request_, slot) {}

  void run() {
    TuneReport& report = job_.report;
    const Clock::time_point start = Clock::now();
    // Written only when there is something to record: a run with nothing left to measure (the
    // second run) writes nothing and gets to its first launch sooner.
    know_copy_bandwidth();
    shared_.db->upsert_device(slot_.record);
    shared_.db->upsert_problem(job_.problem);
    CompileSettings settings{shared_.db, slot_.arch, slot_.limits, shared_.compile_threads,
                             request_.simulate && !request_.simulate_compiles};
    const bool budgeted = request_.budget_seconds > 0 || request_.max_trials > 0;
    const std::vector<Config> order = measuring_order(
        job_.pending, untuned_choices(), budgeted || job_.strategy == Strategy::kRandom,
        order_seed(request_.random_seed, job_.problem.key()));
    std::vector<HalvingRound> rounds = job_.strategy == Strategy::kSuccessiveHalving
                                           ? halving_rounds(order.size(), request_.trial)
                                           : std::vector<HalvingRound>{};
    TrialOptions first_options = rounds.empty() ? request_.trial : rounds.front().options;
    // Round one (every strategy's only round but halving's): compile and measure in order.
    std::vector<Candidate> survivors;
    std::vector<std::pair<double, size_t>> ranking;
    try {
      CompilePipeline pipeline(job_.problem, order, settings);
      try {
        while (std::optional<Candidate> candidate = pipeline.next(request_.stop)) {
          if (should_stop()) {
            pipeline.stop();
            break;
          }
          if (!candidate->ok) {
            record(*candidate, failure_reply(*candidate));
            continue;
          }
          const TrialReply reply = measure(*candidate, first_options);
          if (reply.status == Disposition::kOk && !rounds.empty()) {
            ranking.emplace_back(reply.median_ms, survivors.size());
            survivors.push_back(std::move(*candidate));
          }
        }
      } catch (const Interrupted&) {
      }
      pipeline.finish();
      report.compile_seconds = pipeline.busy_seconds();
      report.compiled = pipeline.compiled();
      report.cubin_cache_hits = pipeline.cache_hits();
      later_rounds(rounds, survivors, std::move(ranking));
    } catch (const Interrupted&) {
    }
    report.interrupted = stop_requested(request_);
    report.worker_restarts = measurer_.restarts();
    report.retried_after_kill = measurer_.retries_after_kill();
    report.wall_seconds = seconds_since(start);
    report.winner = shared_.db->winner(key());
  }

 private:
  // Successive halving: the better half goes on with more timed runs, until the full count.
  void later_rounds(const std::vector<HalvingRound>& rounds,
                    const std::vector<Candidate>& survivors,
                    std::vector<std::pair<double, size_t>> ranking) {
    for (size_t r = 1; r < rounds.size() && !should_stop(); ++r) {
      std::sort(ranking.begin(), ranking.end());
      const size_t keep = std::min(ranking.size(), rounds[r].candidates);
      shared_.total -= static_cast<int>(rounds[r].candidates - keep);
      std::vector<std::pair<double, size_t>> next_ranking;
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
  void know_copy_bandwidth() {
    if (slot_.record.copy_gbps > 0 || !slot_.context) return;  // known, or simulated
    const std::optional<db::DeviceRecord> stored = shared_.db->device(slot_.record.key());
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
  std::vector<Config> untuned_choices() const {
    std::vector<Config> choices{default_config(job_.problem, slot_.limits)};
    try {
      choices.push_back(choose_untuned_config(job_.problem, slot_.limits, *shared_.db,
                                              slot_.record.key(), generator_version())
                            .config);
    } catch (const db::DbError&) {
      // An unreadable neighbour only costs the order; recording will report a DB that is broken.
    }
    return choices;
  }

  db::WinnerKey key() const {
    return {job_.problem.key(), slot_.record.key(), generator_version(), job_.problem.precision};
  }

  bool should_stop() {
    TuneReport& report = job_.report;
    if (shared_.abort || stop_requested(request_)) return true;
    if (request_.max_trials > 0 && static_cast<int>(report.trials.size()) >= request_.max_trials) {
      report.stopped_by_budget = true;
      return true;
    }
    if (request_.budget_seconds > 0 && seconds_since(shared_.start) >= request_.budget_seconds) {
      report.stopped_by_budget = true;
      return true;
    }
    return false;
  }

  static TrialReply failure_reply(const Candidate& candidate) {
    TrialReply reply;
    reply.config_name = candidate.name;
    reply.status = Disposition::kCompileFailed;
    reply.reason = candidate.failure;
    return reply;
  }

  TrialReply measure(const Candidate& candidate, const TrialOptions& options) {
    if (request_.on_candidate_start) {
      std::lock_guard<std::mutex> lock(shared_.progress_mutex);
      request_.on_candidate_start(job_.problem.key(), candidate.name);
    }
    const Clock::time_point start = Clock::now();
    TrialReply reply = measurer_.measure(job_.problem, candidate, options);
    job_.report.measure_seconds += seconds_since(start);
    if (reply.config_name != candidate.name) {
      reply = TrialReply{};
      reply.config_name = candidate.name;
      reply.status = Disposition::kLaunchFailed;
      reply.reason = "the worker answered for another config";
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

  void record(const Candidate& candidate, const TrialReply& reply) {
    db::TrialRecord trial;
    trial.problem_key = job_.problem.key();
    trial.device_key = slot_.record.key();
    trial.generator_version = generator_version();
    trial.precision = job_.problem.precision;
    trial.config_name = candidate.name;
    trial.status = reply.status;
    trial.reason = reply.status == Disposition::kOk ? "" : clip_reason(reply.reason);
    if (reply.status == Disposition::kOk) {
      trial.median_ms = reply.median_ms;
      trial.min_ms = reply.min_ms;
      trial.max_ms = reply.max_ms;
    }
    trial.max_error = reply.max_error;
    if (!(trial.max_error >= 0) && reply.status == Disposition::kOk) trial.max_error = 0;
    trial.registers = candidate.registers >= 0 ? candidate.registers : reply.registers;
    if (trial.registers > 255) trial.registers = -1;
    trial.shared_bytes = candidate.shared_bytes;
    trial.spill_bytes = candidate.spill_bytes;
    trial.compile_ms = candidate.compile_ms;
    trial.measured_at = db::utc_timestamp();
    shared_.db->record_trial(trial);
    job_.report.trials.push_back(trial);
    std::lock_guard<std::mutex> lock(shared_.progress_mutex);
    const int done = ++shared_.done;
    if (shared_.progress) shared_.progress(done, std::max(done, shared_.total.load()), trial);
  }

  Shared& shared_;
  const TuneRequest& request_;
  DeviceSlot& slot_;
  Job& job_;
  Measurer measurer_;
};

// ---------------------------------------------------------------------------------------------
// The winner's first launch, from the cubin cache, in this process

FirstLaunch launch_winner(DeviceSlot& slot, db::TuningDb& db, const Problem& problem,
                          const db::WinnerRecord& winner, Clock::time_point run_start) {
  FirstLaunch launch;
  launch.config_name = winner.config_name;
  launch.context_ms = slot.context_ms;
  slot.context->make_current();
  Clock::time_point step = Clock::now();
  const GeneratedKernel kernel =
      generate_kernel(problem, Config::from_name(winner.config_name), slot.limits);
  CubinLookup lookup = cached_or_compiled(db, kernel.source, slot.arch, /*store=*/true);
  if (!lookup.ok) {
    throw TuneError(fmt::format("the winner {} no longer compiles", winner.config_name));
  }
  std::vector<char> cubin = std::move(lookup.cubin);
  launch.cubin_from_cache = lookup.from_cache;
  launch.cubin_ms = ms_since(step);
  step = Clock::now();
  LoadedKernel loaded(kernel, cubin);
  const int64_t element = problem.element_bytes();
  DeviceBuffer x(problem.x_elements() * element), w(problem.w_elements() * element),
      bias(problem.out_channels * element), y(problem.y_elements() * element);
  x.fill_words(0x3f000000u);  // 0.5f: defined inputs
  w.fill_words(0x3c23d70au);  // 0.01f
  bias.fill_words(0);
  launch.load_ms = ms_since(step);
  step = Clock::now();
  loaded.launch(x.get(), w.get(), bias.get(), y.get());
  slot.context->synchronize();
  launch.launch_ms = ms_since(step);
  launch.since_start_ms = ms_since(run_start);
  return launch;
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

db::DeviceRecord simulated_device() {
  db::DeviceRecord record;
  record.name = "Simulated GPU (deconvtune --simulate)";
  record.arch = kDefaultArch;
  record.sm_count = 132;
  record.driver_version = 0;
  record.nvrtc_version = "simulated";
  record.copy_gbps = kSimulatedCopyGbps;
  return record;
}

// The longest budget or deadline a request may name (a week): past it a duration is a mistake,
// and converting it to clock ticks could overflow.
constexpr double kMaxSeconds = 7 * 24 * 3600.0;

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
  Shared shared;
  shared.request = &settings;
  shared.start = settings.start ? *settings.start : Clock::now();
  shared.progress = progress;
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
  db::TuningDb db(settings.db_path.empty() ? db::TuningDb::default_path() : settings.db_path);
  shared.db = &db;
  std::vector<std::unique_ptr<DeviceSlot>> slots = open_devices(settings);
  const unsigned hardware = std::max(1u, std::thread::hardware_concurrency());
  const unsigned threads = settings.compile_threads ? settings.compile_threads : hardware;
  shared.compile_threads = std::max<unsigned>(1, threads / static_cast<unsigned>(slots.size()));

  // One job per (problem, GPU model); devices of one model share the jobs.
  std::vector<std::string> models;
  for (const auto& slot : slots) {
    if (std::find(models.begin(), models.end(), slot->record.key()) == models.end()) {
      models.push_back(slot->record.key());
    }
  }
  std::vector<Job> jobs;
  for (const Problem& problem : problems) {
    for (const std::string& model : models) {
      const DeviceSlot& slot = **std::find_if(
          slots.begin(), slots.end(), [&](const auto& s) { return s->record.key() == model; });
      Job job;
      job.problem = problem;
      job.model_key = model;
      std::vector<Config> space;
      if (!settings.extra_candidates_only) space = enumerate_space(problem, slot.limits);
      for (const Config& extra : settings.extra_candidates) {
        if (std::none_of(space.begin(), space.end(), [&](const Config& c) { return c == extra; })) {
          space.push_back(extra);
        }
      }
      std::set<std::string> measured;
      if (!settings.retune) {
        const db::WinnerKey key{problem.key(), model, generator_version(), problem.precision};
        for (std::string& name : db.measured_configs(key)) measured.insert(std::move(name));
      }
      for (const Config& config : space) {
        if (measured.count(config.name())) {
          ++job.report.skipped_already_measured;
        } else {
          job.pending.push_back(config);
        }
      }
      job.strategy =
          settings.pick_strategy
              ? pick_strategy(job.pending.size(), settings.budget_seconds, settings.max_trials)
              : settings.strategy;
      job.planned =
          planned_trials(job.strategy, job.pending.size(), settings.trial, settings.max_trials);
      job.report.problem_key = problem.key();
      job.report.device_key = model;
      job.report.strategy = job.strategy;
      job.report.space_size = static_cast<int>(space.size());
      shared.total += job.planned;
      jobs.push_back(std::move(job));
    }
  }

  // The shared queue: each device takes the next job for its model.
  std::mutex queue_mutex;
  std::vector<bool> taken(jobs.size(), false);
  std::exception_ptr error;
  auto device_loop = [&](DeviceSlot& slot) {
    try {
      while (!shared.abort && !stop_requested(settings)) {
        Job* job = nullptr;
        {
          std::lock_guard<std::mutex> lock(queue_mutex);
          for (size_t i = 0; i < jobs.size() && !job; ++i) {
            if (!taken[i] && jobs[i].model_key == slot.record.key()) {
              taken[i] = true;
              job = &jobs[i];
            }
          }
        }
        if (!job) break;
        if (job->pending.empty()) {
          job->report.winner = db.winner(
              {job->problem.key(), job->model_key, generator_version(), job->problem.precision});
          continue;
        }
        try {
          JobRunner(shared, slot, *job).run();
        } catch (const ProblemSetupError& e) {
          job->report.error = e.what();
          job->report.winner = db.winner(
              {job->problem.key(), job->model_key, generator_version(), job->problem.precision});
        }
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(queue_mutex);
      if (!error) error = std::current_exception();
      shared.abort = true;
    }
    slot.worker.reset();
  };
  std::vector<std::thread> threads_running;
  for (auto& slot : slots) threads_running.emplace_back(device_loop, std::ref(*slot));
  for (std::thread& thread : threads_running) thread.join();
  if (error) std::rethrow_exception(error);

  std::vector<TuneReport> reports;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (!taken[i] && stop_requested(settings)) jobs[i].report.interrupted = true;
    reports.push_back(std::move(jobs[i].report));
  }
  if (!reports.empty()) {
    TuneReport& first = reports.front();
    if (stop_requested(settings)) {
      first.first_launch_skipped = "the run was interrupted";
    } else if (settings.simulate) {
      first.first_launch_skipped = "simulated run: there is no GPU to launch on";
    } else if (!settings.launch_winner) {
      first.first_launch_skipped = "not asked for";
    } else if (!first.winner) {
      first.first_launch_skipped = "no config verified, so there is no winner";
    } else if (first.winner->imported) {
      first.first_launch_skipped = "the winner was imported and no trial here has replaced it";
    } else {
      DeviceSlot& slot = *slots.front();
      try {
        first.first_launch = launch_winner(slot, db, problems.front(), *first.winner, shared.start);
      } catch (const std::exception& e) {
        first.first_launch_skipped = fmt::format("the launch failed: {}", e.what());
      }
    }
  }
  return reports;
}

}  // namespace deconvtune::tuner

#include "tuner/worker.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "trial/benchmark.hpp"
#include "trial/verifier.hpp"
#include "tuner/simulate.hpp"
#include "tuner/worker_protocol.hpp"

namespace deconvtune::tuner {
namespace {

using nlohmann::json;

// The protocol owns the real stdout; fd 1 is pointed at stderr so a library that prints cannot
// corrupt a message.
class Channel {
 public:
  Channel() : out_(fdopen(dup(STDOUT_FILENO), "w")) { dup2(STDERR_FILENO, STDOUT_FILENO); }
  ~Channel() {
    if (out_) std::fclose(out_);
  }
  void send(const json& message) {
    const std::string line = message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), out_);
    std::fflush(out_);
  }

 private:
  FILE* out_;
};

TrialReply reply_from(const TrialResult& result) {
  TrialReply reply;
  static_cast<TrialMeasurement&>(reply) = measurement_of(result);
  reply.runs = result.timing.runs;
  reply.error_bound = result.verification.bound;
  reply.context_lost = result.disposition == Disposition::kFaulted;
  return reply;
}

// The worker could not set itself up for the problem: says why (before "ready", so the tuner
// blames no candidate) and returns false, as the process must end.
bool refuse_setup(const TrialRequest& request, const std::string& why, Channel& channel) {
  TrialReply reply = failed_reply(request.config_name, Disposition::kLaunchFailed, why);
  reply.context_lost = true;
  channel.send(to_json(reply));
  return false;
}

// Set up: says "ready" and reads the config's name; a name that is not a config is answered as
// its trial's failure (nullopt), and the worker goes on.
std::optional<Config> ready_for(const TrialRequest& request, Channel& channel) {
  channel.send({{"type", "ready"}});
  try {
    return Config::from_name(request.config_name);
  } catch (const std::invalid_argument& e) {
    channel.send(to_json(failed_reply(request.config_name, Disposition::kLaunchFailed, e.what())));
    return std::nullopt;
  }
}

// The GPU side: one context for the process, one verifier per problem (rebuilt when it changes).
class GpuMeasurer {
 public:
  explicit GpuMeasurer(int device) : device_(device) {}

  // Sends ready, verified and result; returns false when the process must exit.
  bool measure(const TrialRequest& request, Channel& channel) {
    try {
      if (!context_) context_.emplace(device_);
      if (!verifier_ || verifier_key_ != request.problem.key() || seed_ != request.input_seed) {
        verifier_.reset();
        verifier_ = std::make_unique<Verifier>(*context_, request.problem);
        verifier_->randomize_inputs(request.input_seed);
        verifier_key_ = request.problem.key();
        seed_ = request.input_seed;
      }
    } catch (const std::exception& e) {
      // No GPU, a CUDA failure, or the problem does not fit: nothing this worker can measure, and
      // no candidate is to blame (the tuner reports the problem, not a trial).
      return refuse_setup(request, fmt::format("worker setup: {}", e.what()), channel);
    }
    const std::optional<Config> config = ready_for(request, channel);
    if (!config) return true;
    CompileResult compiled;
    compiled.ok = true;
    compiled.cubin = request.cubin;
    TrialOptions verify_only = request.options;
    verify_only.time_it = false;
    const auto start = std::chrono::steady_clock::now();
    TrialResult verified = run_trial(*context_, *verifier_, *config, verify_only, &compiled);
    const double verify_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (verified.disposition != Disposition::kOk || !request.options.time_it) {
      TrialReply reply = reply_from(verified);
      if (!reply.context_lost) reply.registers = registers(*config, request);
      channel.send(to_json(reply));
      return !reply.context_lost;
    }
    channel.send({{"type", "verified"}, {"ms", verify_ms}});
    TrialReply reply =
        reply_from(run_trial(*context_, *verifier_, *config, request.options, &compiled));
    if (!reply.context_lost) reply.registers = registers(*config, request);
    channel.send(to_json(reply));
    return !reply.context_lost;
  }

 private:
  // The loaded function's register count: the truth for a cubin that came from the cache.
  int registers(const Config& config, const TrialRequest& request) {
    try {
      Module module(request.cubin);
      CUfunction function = module.function(family_spec(config.family).kernel_name);
      int value = -1;
      DT_CU(cuFuncGetAttribute(&value, CU_FUNC_ATTRIBUTE_NUM_REGS, function));
      return value;
    } catch (const std::exception&) {
      return -1;
    }
  }

  int device_;
  std::optional<Context> context_;
  std::unique_ptr<Verifier> verifier_;
  std::string verifier_key_;
  uint64_t seed_ = 0;
};

// TEST SEAM: one trial as tuner/simulate.hpp says, told through the protocol as a GPU worker tells
// it (a fault ends the worker, a hang never answers).
bool serve_simulated_trial(const TrialRequest& request, double trial_ms, Channel& channel) {
  // As the GPU worker's Verifier does: a problem that does not fit is refused before "ready".
  constexpr size_t kSimulatedMemory = size_t{80} << 30;
  if (verification_bytes(request.problem) > kSimulatedMemory) {
    return refuse_setup(
        request,
        fmt::format(
            "worker setup: simulated: the problem needs {:.1f} GiB, the simulated GPU has 80",
            verification_bytes(request.problem) / 1073741824.0),
        channel);
  }
  const std::optional<Config> config = ready_for(request, channel);
  if (!config) return true;
  SimulatedBehaviour behaviour;
  TrialReply reply = simulated_trial(*config, request.problem, &behaviour);
  if (trial_ms > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(trial_ms));
  }
  if (behaviour == SimulatedBehaviour::kHang) {
    // As an endless kernel does: the verification launch never returns.
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
  }
  if (reply.status == Disposition::kOk) {
    reply.runs = request.options.timed_runs;
    channel.send({{"type", "verified"}, {"ms", trial_ms}});
  }
  channel.send(to_json(reply));
  return behaviour != SimulatedBehaviour::kFaultAndExit;
}

}  // namespace

WorkerEnd serve_as_worker(const WorkerOptions& options, int lost_context_exit_code) {
  // A worker never outlives its tuner: killed with it, even mid-kernel (the tuner may be kill
  // -9ed).
  const pid_t parent = getppid();
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) return WorkerEnd::kFailed;  // the tuner died before prctl took effect
  Channel channel;
  GpuMeasurer gpu(options.device);
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    TrialRequest request;
    try {
      request = trial_request_from_json(parse_message(line));
    } catch (const std::exception& e) {
      // The tuner sent something this worker cannot read: say so and stop, rather than guess.
      channel.send({{"type", "error"}, {"message", e.what()}});
      return WorkerEnd::kUnreadable;
    }
    const bool go_on = options.simulation
                           ? serve_simulated_trial(request, options.simulation->trial_ms, channel)
                           : gpu.measure(request, channel);
    // The context is lost (or the worker could not set up): exit at once, since destructors that
    // touch the GPU could fail or block on a lost context.
    if (!go_on) _exit(lost_context_exit_code);
  }
  return WorkerEnd::kInputClosed;
}

}  // namespace deconvtune::tuner

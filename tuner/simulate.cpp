#include "tuner/simulate.hpp"

#include <fmt/format.h>

#include "codegen/sha256.hpp"

namespace deconvtune::tuner {
namespace {

int fault_kind(const Config& config) {
  return config.family == Family::kFault ? config.param("kind") : 0;
}

}  // namespace

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

std::vector<std::string> simulated_worker_args(const Simulation& simulation) {
  return {"--simulate", "--simulate-trial-ms", fmt::format("{}", simulation.trial_ms)};
}

uint64_t simulation_hash(const std::string& config_name, const std::string& problem_key) {
  return sha256_prefix64(config_name + "|" + problem_key);
}

SimulatedCompile simulated_compile(const Config& config, const Problem& problem) {
  SimulatedCompile result;
  if (fault_kind(config) == 1) {
    result.ok = false;
    result.log = "simulated: fault_injection.cuh: DT_FAULT_KIND 1 is a deliberate compile error";
    return result;
  }
  result.registers = 32 + static_cast<int>(simulation_hash(config.name(), problem.key()) % 97);
  return result;
}

TrialReply simulated_trial(const Config& config, const Problem& problem,
                           SimulatedBehaviour* behaviour) {
  *behaviour = SimulatedBehaviour::kReply;
  TrialReply reply;
  reply.config_name = config.name();
  const uint64_t hash = simulation_hash(config.name(), problem.key());
  reply.registers = 32 + static_cast<int>(hash % 97);
  reply.error_bound = problem.precision == Precision::kFp32 ? 2e-6 : 1e-3;
  switch (fault_kind(config)) {
    case 1:
      reply.status = Disposition::kCompileFailed;
      reply.reason = "simulated: a deliberate compile error";
      return reply;
    case 2:
      *behaviour = SimulatedBehaviour::kFaultAndExit;
      reply.status = Disposition::kFaulted;
      reply.reason = "simulated: CUDA_ERROR_ILLEGAL_ADDRESS (the context is lost)";
      reply.context_lost = true;
      return reply;
    case 3:
      *behaviour = SimulatedBehaviour::kHang;
      return reply;
    case 4:
      reply.status = Disposition::kWrong;
      reply.max_error = 1.0;
      reply.reason = fmt::format("simulated: max |err| 1 exceeds the bound {}", reply.error_bound);
      return reply;
    case 5:
      reply.status = Disposition::kWrong;
      reply.reason = "simulated: max |err| 0, WROTE PAST THE END OF y (the guard band)";
      return reply;
    default:
      break;
  }
  if (config.family != Family::kFault) {
    if (hash % 23 == 0) {
      reply.status = Disposition::kWrong;
      reply.max_error = 0.25;
      reply.reason =
          fmt::format("simulated: max |err| 0.25 exceeds the bound {}", reply.error_bound);
      return reply;
    }
    if (hash % 23 == 1) {
      reply.status = Disposition::kLaunchFailed;
      reply.reason = "simulated: CUDA_ERROR_INVALID_VALUE: too many resources requested";
      return reply;
    }
  }
  reply.median_ms = 0.5 + static_cast<double>((hash >> 8) % 100000) / 10000.0;
  reply.min_ms = reply.median_ms * 0.98;
  reply.max_ms = reply.median_ms * 1.05;
  reply.runs = 20;
  reply.max_error = reply.error_bound * static_cast<double>((hash >> 40) % 100) / 200.0;
  return reply;
}

}  // namespace deconvtune::tuner

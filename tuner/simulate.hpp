#pragma once
// TEST SEAM (docs/architecture.md): a deterministic stand-in for the GPU, for compiling and
// measuring, so the tuner, the DB recording path, sharding and kill tests run on a machine without
// a GPU. The production code reaches it only where TuneRequest::simulation or
// WorkerOptions::simulation is set, at the places marked "TEST SEAM". Everything is derived from a
// hash of (config name, problem key): the same inputs give the same result in every process.
//
// Normal configs: about 1 in 23 is kWrong, 1 in 23 kLaunchFailed, the rest kOk with a median
// between 0.5 and 10.5 ms. The fault family (templates/fault_injection.cuh) behaves as on a GPU:
// kind1 fails to compile, kind2 faults (the worker exits), kind3 hangs, kind4 and kind5 are kWrong.
#include <cstdint>
#include <string>
#include <vector>

#include "codegen/config.hpp"
#include "codegen/problem.hpp"
#include "tuner/tuner.hpp"
#include "tuner/worker_protocol.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

// The device a simulated run keys its results by, whose copy bandwidth is kSimulatedCopyGbps (as
// fictitious as its times).
inline constexpr double kSimulatedCopyGbps = 10000;
db::DeviceRecord simulated_device();

// The arguments that make `deconvtune worker` simulate as well.
std::vector<std::string> simulated_worker_args(const Simulation& simulation);

// What a simulated worker should do for this candidate.
enum class SimulatedBehaviour { kReply, kFaultAndExit, kHang };

struct SimulatedCompile {
  bool ok = true;
  std::string log;
  int registers = -1;
};

// The first 8 bytes of sha256(config name + "|" + problem key).
uint64_t simulation_hash(const std::string& config_name, const std::string& problem_key);

SimulatedCompile simulated_compile(const Config& config, const Problem& problem);

// The reply a simulated worker sends, and whether it must then exit (a lost context) or hang.
TrialReply simulated_trial(const Config& config, const Problem& problem,
                           SimulatedBehaviour* behaviour);

}  // namespace deconvtune::tuner

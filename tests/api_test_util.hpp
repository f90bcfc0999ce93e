#pragma once
// Helpers of the API tests: a device record and winners written into a tuning DB as the tuner
// would write them.
#include <string>

#include "codegen/generator.hpp"
#include "codegen/problem.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::testing_api {

inline db::DeviceRecord test_device() {
  db::DeviceRecord device;
  device.name = "Test GPU";
  device.arch = "sm_90";
  device.sm_count = 132;
  device.driver_version = 13000;
  device.nvrtc_version = "13.0";
  return device;
}

// Records a verified trial of `config` that becomes the problem's winner on `device`.
inline void record_winner(db::TuningDb& db, const Problem& problem, const std::string& config,
                          double median_ms, const db::DeviceRecord& device = test_device()) {
  db.upsert_device(device);
  db.upsert_problem(problem);
  db::TrialRecord trial;
  trial.problem_key = problem.key();
  trial.device_key = device.key();
  trial.generator_version = generator_version();
  trial.precision = problem.precision;
  trial.config_name = config;
  trial.median_ms = trial.min_ms = trial.max_ms = median_ms;
  trial.max_error = 1e-7;
  db.record_trial(trial);
}

}  // namespace deconvtune::testing_api

#pragma once
// Internal to tuning_db/: the state behind a TuningDb, shared by tuning_db.cpp and exchange.cpp.
#include <memory>
#include <mutex>
#include <string>

#include "tuning_db/sqlite.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::db {

struct TuningDb::Impl {
  std::string path;
  bool read_only = false;
  int schema_version = 0;
  std::unique_ptr<sqlite::Connection> connection;
  // One statement sequence at a time per object: SQLite's connection mutex guards single calls,
  // this guards transactions made of several.
  mutable std::recursive_mutex mutex;
};

// The columns of `trials`, in the order read_trial expects.
inline constexpr const char* kTrialColumns =
    "problem_key, device_key, generator_version, precision, config_name, status, reason, "
    "median_ms, min_ms, max_ms, max_error, registers, shared_bytes, spill_bytes, compile_ms, "
    "measured_at";
inline constexpr const char* kWinnerColumns =
    "problem_key, device_key, generator_version, precision, config_name, median_ms, max_error, "
    "updated_at";
inline constexpr const char* kDeviceColumns = "name, arch, sm_count, driver_version, nvrtc_version";

}  // namespace deconvtune::db

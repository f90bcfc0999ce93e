#pragma once
// Internal to tuning_db/: the state behind a TuningDb and the writers shared by tuning_db.cpp and
// exchange.cpp (their bodies are in rows.cpp).
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

// The longest reason a trial keeps (record_trial cuts a longer one; validate_trial refuses it).
inline constexpr size_t kMaxReasonBytes = 65536;

// The columns of `trials`, in the order read_trial expects.
inline constexpr const char* kTrialColumns =
    "problem_key, device_key, generator_version, precision, config_name, status, reason, "
    "median_ms, min_ms, max_ms, max_error, registers, shared_bytes, spill_bytes, compile_ms, "
    "measured_at";
inline constexpr const char* kWinnerColumns =
    "problem_key, device_key, generator_version, precision, config_name, median_ms, max_error, "
    "updated_at";
inline constexpr const char* kDeviceColumns =
    "name, arch, sm_count, driver_version, nvrtc_version, copy_gbps";

namespace detail {

// Throws FieldError("generator_version") unless `version` is a token (what every row holds).
void validate_generator_version(const std::string& version);

// Where a row came from: measured by this DB's tuner, or merged in by import.
enum class Origin { kLocal, kImported };

// Inside an open write transaction. The trial (validated) is inserted unless its identity is
// already there; a kOk one is offered as the winner when `offer`. Returns whether it was inserted.
bool insert_trial(const sqlite::Connection& connection, const TrialRecord& trial, Origin origin,
                  bool offer = true);

// The winner a kOk trial makes: its config, median time and error, its measured_at.
WinnerRecord winner_of(const TrialRecord& trial);

// Inside an open transaction: whether the winner is backed by a kOk trial of the same key and
// config with the same time and error, both plausible for the problem, and its config may win.
bool is_supported(const sqlite::Connection& connection, const WinnerRecord& winner);

enum class WinnerOutcome { kAdded, kReplaced, kKept, kUnsupported };
// Inside an open write transaction: the winner (validated), when supported, replaces the key's
// current one when it is faster, when the current one is unsupported, or when the current one is
// imported and this one is local. kUnsupported: nothing changed.
WinnerOutcome offer_winner(const sqlite::Connection& connection, const WinnerRecord& winner,
                           Origin origin);

}  // namespace detail

}  // namespace deconvtune::db

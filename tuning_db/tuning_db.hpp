#pragma once
// The tuning database: every trial the tuner measured, the winner per (problem, device, generator
// version, precision), and a cache of compiled cubins, in one SQLite file.
//
// Promises:
// - Values reach SQL only as bound parameters.
// - WAL journal, busy_timeout, and one `BEGIN IMMEDIATE` transaction per write, so several
//   processes may tune into one file and a killed writer loses at most its open transaction.
// - A file that is not a deconvtune DB (or is corrupt) raises DbError naming the path and SQLite's
//   reason; it is never overwritten. A DB of an older schema version is migrated on open.
// - The winner of a key is only ever replaced by a faster verified (kOk) trial, in the same
//   transaction that records that trial: a reader never sees a half-written winner.
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "codegen/problem.hpp"
#include "runtime/benchmark.hpp"

namespace deconvtune::db {

class DbError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Identifies a GPU model for tuning purposes: results carry across machines with the same one.
struct DeviceRecord {
  std::string name;  // "NVIDIA H100 80GB HBM3"
  std::string arch;  // "sm_90"
  int sm_count = 0;
  int driver_version = 0;     // cuDriverGetVersion
  std::string nvrtc_version;  // "13.0"
  // The part of the record that winners are keyed by: name, arch and SM count.
  std::string key() const;
};

// One measured (or failed) candidate.
struct TrialRecord {
  std::string problem_key;
  std::string device_key;
  std::string generator_version;
  Precision precision = Precision::kFp32;
  std::string config_name;
  Disposition status = Disposition::kOk;
  std::string reason;  // empty for kOk
  double median_ms = 0, min_ms = 0, max_ms = 0;
  double max_error = 0;
  int registers = -1, shared_bytes = -1, spill_bytes = -1;
  double compile_ms = 0;
  std::string measured_at;  // ISO 8601 UTC; filled by record_trial when empty
};

struct WinnerRecord {
  std::string problem_key;
  std::string device_key;
  std::string generator_version;
  Precision precision = Precision::kFp32;
  std::string config_name;
  double median_ms = 0;
  double max_error = 0;
  std::string updated_at;
};

struct WinnerKey {
  std::string problem_key;
  std::string device_key;
  std::string generator_version;
  Precision precision = Precision::kFp32;
};

class TuningDb {
 public:
  static constexpr int kSchemaVersion = 1;

  // $DECONVTUNE_DB, else $XDG_CACHE_HOME/deconvtune/tuning.db, else ~/.cache/deconvtune/tuning.db.
  static std::string default_path();

  // Opens (creating parent folders and the file when absent, unless read_only) and migrates.
  explicit TuningDb(const std::string& path, bool read_only = false);
  ~TuningDb();
  TuningDb(const TuningDb&) = delete;
  TuningDb& operator=(const TuningDb&) = delete;

  const std::string& path() const;
  int schema_version() const;

  void upsert_device(const DeviceRecord& device);
  void upsert_problem(const Problem& problem);  // keyed by problem.key(), stores to_json()

  // One transaction: the trial row, and the winner row when the trial is kOk and faster.
  void record_trial(const TrialRecord& trial);

  // Configs already measured (any status) for this key: what a resumed tuner skips.
  std::vector<std::string> measured_configs(const WinnerKey& key) const;
  std::vector<TrialRecord> trials(const WinnerKey& key) const;
  std::vector<TrialRecord> all_trials() const;

  std::optional<WinnerRecord> winner(const WinnerKey& key) const;
  std::vector<WinnerRecord> winners() const;

  // The cubin cache, keyed by cubin_cache_key().
  std::optional<std::vector<char>> cached_cubin(const std::string& cache_key) const;
  void store_cubin(const std::string& cache_key, const std::vector<char>& cubin);
  // sha256 over source, options, arch and NVRTC version, as hex.
  static std::string cubin_cache_key(const std::string& source,
                                     const std::vector<std::string>& options,
                                     const std::string& arch, const std::string& nvrtc_version);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace deconvtune::db

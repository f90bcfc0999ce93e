#pragma once
// The tuning database: every trial the tuner measured, the winner per (problem, device, generator
// version, precision), and a cache of compiled cubins, in one SQLite file.
//
// Promises:
// - Values reach SQL only as bound parameters.
// - WAL journal, busy_timeout, and one `BEGIN IMMEDIATE` transaction per write, retried while
//   another process holds the lock, so several processes may tune into one file (SQLITE_BUSY never
//   reaches the caller) and a killed writer loses at most its open transaction.
// - A file that is not a deconvtune DB (or is corrupt) raises DbError naming the path and the
//   reason; it is never modified or overwritten. A DB of an older schema version is migrated on a
//   read-write open, one transaction per step; a DB of a newer schema is refused, never downgraded.
// - The file is untrusted. Its sqlite_schema must be exactly what this build's migrations make
//   for its user_version (type, name, table and SQL, whitespace aside): any other trigger, view,
//   index, table or virtual table, or a changed definition, is refused on every open, read-only
//   too, with a DbError naming the object ("trigger 'evil' is not part of a deconvtune DB").
//   Connections run with SQLITE_DBCONFIG_DEFENSIVE on, TRUSTED_SCHEMA off and triggers and views
//   disabled, so no SQL of the file's own ever runs.
// - No query hangs: a statement running longer than the query limit (60 s, or
//   $DECONVTUNE_DB_QUERY_SECONDS) is stopped with a DbError saying the query took too long.
// - Before the first write into a file that this process did not create, a full integrity_check
//   (cubin cache included) must pass; a file that fails it is never written ("corrupt ... left as
//   it is"), and every later write on that object raises the same error. Read-only opens do not
//   check (they stay cheap); a corrupt page met by a read is a DbError, never a crash.
// - Read-only files: a read-only open reads a DB in a folder, or on a mount, where SQLite cannot
//   create the -shm (opening it immutable), or a read-only file. A read-write open of such a DB
//   raises DbError saying it is read-only here and why (folder not writable, read-only file
//   system, file not writable), never "corrupt".
// - Every record is validated before it is written (DbError naming the field); a kOk trial or a
//   winner always has a finite time no faster than time_floor_ms and an error within
//   verified_error_ceiling (codegen/problem.hpp), whoever wrote it (the tuner or import).
// - A winner is supported: a kOk trial of the same key and config with the same time and error,
//   and a config that may_win (codegen/config.hpp: never a test-only fault kernel). winner() and
//   winners() return only supported winners, whatever the file holds.
// - The winner of a key is replaced only by a supported one, in the same transaction that records
//   its trial (a reader never sees a half-written winner), and only when it is faster, when the
//   current one is no longer supported (a retune replaces a winner no trial backs), or when the
//   current one was imported and the new one measured here.
// - Origin: a winner merged in by import is marked imported (not exported: it describes this DB).
//   The runtime treats an imported winner as a hint, never as a fact, until a trial measured here
//   replaces it (tuner/heuristic.hpp, serves_as_tuned); measured_configs counts only trials
//   measured here, so a resumed autotune measures imported configs on this GPU.
// - Every cached cubin carries the SHA-256 of its bytes; cached_cubin checks it on every load and
//   treats a mismatch as absent (dropping the entry when writable, saying so once per process).
//   This catches damage, not a writer who rewrites both: the DB file is as trusted as its folder.
// - A TuningDb object may be shared between threads (calls are serialized).
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/problem.hpp"
#include "trial/disposition.hpp"
#include "trial/measurement.hpp"

namespace deconvtune::db {

class DbError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A record that breaks a rule; field() names it ("median_ms", "device.arch").
class FieldError : public DbError {
 public:
  FieldError(std::string field, const std::string& rule);
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// Identifies a GPU model for tuning purposes: results carry across machines with the same one.
struct DeviceRecord {
  std::string name;  // "NVIDIA H100 80GB HBM3"
  std::string arch;  // "sm_90"
  int sm_count = 0;
  int driver_version = 0;     // cuDriverGetVersion
  std::string nvrtc_version;  // "13.0"
  // Device-to-device copy bandwidth (bytes read plus bytes written per second, in GB/s), measured
  // once per device by the tuner: what a memory-bound kernel's GB/s is held against. 0: not
  // measured (a DB of schema version 3 or older, an import of such a device).
  double copy_gbps = 0;
  // The part of the record that winners are keyed by: "name|arch|sm_count".
  std::string key() const;
};

// The "arch|sm_count" part of a device key: GPUs of one class (an H100 and an H200: sm_90, 132
// SMs) run the same kernels with the same legality, so one's winners are the other's best guess.
// Empty for a key not of DeviceRecord::key()'s form.
std::string device_class(std::string_view device_key);

struct ProblemRecord {
  std::string key;   // Problem::key()
  std::string spec;  // Problem::to_json(), compact
};

// One measured (or failed) candidate: its measurement (reason empty for kOk) under its key. Its
// identity (what import de-duplicates on) is the key, the config name and measured_at.
struct TrialRecord : TrialMeasurement {
  std::string problem_key;
  std::string device_key;
  std::string generator_version;
  Precision precision = Precision::kFp32;
  int shared_bytes = -1, spill_bytes = -1;  // -1: unknown
  double compile_ms = 0;
  std::string measured_at;  // ISO 8601 UTC with microseconds; filled by record_trial when empty
};

struct WinnerRecord {
  std::string problem_key;
  std::string device_key;
  std::string generator_version;
  Precision precision = Precision::kFp32;
  std::string config_name;
  double median_ms = 0;
  double max_error = 0;
  std::string updated_at;  // measured_at of the winning trial
  bool imported = false;   // merged in by import: not (yet) measured by this DB's tuner
};

struct WinnerKey {
  std::string problem_key;
  std::string device_key;
  std::string generator_version;
  Precision precision = Precision::kFp32;
};

// Which trials `TuningDb::trials_matching` returns; an empty field matches everything.
struct TrialFilter {
  std::string problem_key;
  std::string device_key;
  std::string generator_version;
  std::optional<Precision> precision;
};

// What `prune` drops: rows of other generator versions than `keep_generator_version`, or, when
// older_than_days is set, rows measured (cubins stored) more than that many days ago.
struct PruneOptions {
  std::string keep_generator_version;  // required unless older_than_days is set
  std::optional<double> older_than_days;
  bool dry_run = false;  // count only
};

struct PruneReport {
  int64_t trials = 0;
  int64_t winners = 0;
  int64_t cubins = 0;
  int64_t cubin_bytes = 0;
  std::vector<WinnerRecord> removed_winners;
  std::vector<std::string> generator_versions;  // those whose rows were (or would be) dropped
};

struct CubinCacheStats {
  int64_t entries = 0;
  int64_t bytes = 0;
};

class TuningDb {
 public:
  static constexpr int kSchemaVersion = 4;
  // PRAGMA application_id of every deconvtune DB ("DTDB"): tells ours from other SQLite files.
  static constexpr int32_t kApplicationId = 0x44544442;

  // $DECONVTUNE_DB, else $XDG_CACHE_HOME/deconvtune/tuning.db, else ~/.cache/deconvtune/tuning.db.
  static std::string default_path();

  // Opens (creating parent folders and the file when absent, unless read_only) and migrates.
  // ":memory:" is a private in-memory DB. A read-only open of a missing file, or of a DB that
  // needs migrating, raises DbError; so does a read-write open where this process may not write
  // (see the promises above).
  explicit TuningDb(const std::string& path, bool read_only = false);
  ~TuningDb();
  TuningDb(const TuningDb&) = delete;
  TuningDb& operator=(const TuningDb&) = delete;

  const std::string& path() const;
  int schema_version() const;
  bool read_only() const;

  // Keyed by key(): the versions are updated, and copy_gbps when the record has one (a record
  // without a measurement keeps the stored one).
  void upsert_device(const DeviceRecord& device);
  void upsert_problem(const Problem& problem);  // keyed by problem.key(), stores to_json()
  std::vector<DeviceRecord> devices() const;
  std::optional<DeviceRecord> device(const std::string& device_key) const;
  std::vector<ProblemRecord> problems() const;

  // One transaction: the trial row, and the winner row when the trial is kOk and faster. The
  // problem and device must have been upserted. Returns false when a trial with the same identity
  // (key, config, measured_at) was already there (nothing changes then).
  bool record_trial(const TrialRecord& trial);

  // Configs already measured here (any status) for this key: what a resumed tuner skips. Imported
  // trials do not count: they were measured elsewhere.
  std::vector<std::string> measured_configs(const WinnerKey& key) const;
  std::vector<TrialRecord> trials(const WinnerKey& key) const;  // in the order recorded
  std::vector<TrialRecord> all_trials() const;                  // in the order recorded
  // Best first: kOk trials by median time, then the failed ones by status and config.
  std::vector<TrialRecord> trials_matching(const TrialFilter& filter) const;
  int64_t trial_count() const;

  std::optional<WinnerRecord> winner(const WinnerKey& key) const;
  std::vector<WinnerRecord> winners() const;  // ordered by key

  // The cubin cache, keyed by gpu/nvrtc_compiler's cubin_cache_key(). A cubin whose bytes do not
  // match their stored SHA-256 is absent (and dropped, when writable): the caller compiles again.
  // A cubin is stored with the generator version of its source, which prune goes by.
  std::optional<std::vector<char>> cached_cubin(const std::string& cache_key) const;
  void store_cubin(const std::string& cache_key, const std::vector<char>& cubin,
                   const std::string& generator_version);
  CubinCacheStats cubin_cache_stats() const;

  PruneReport prune(const PruneOptions& options);

  // PRAGMA integrity_check's verdict: "ok", or what is wrong.
  std::string integrity_check() const;

  // For tuning_db/exchange.cpp (raw rows in, raw rows out); see tuning_db/detail.hpp.
  struct Impl;
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Validation shared by the writers and by import; each throws FieldError naming the field.
void validate_device(const DeviceRecord& device);
void validate_trial(const TrialRecord& trial);
void validate_winner(const WinnerRecord& winner);
// The fastest time a kernel of `problem` could take: reading x and writing y at 20 TB/s, about
// four times any GPU memory's bandwidth today (HBM3e: 4.8 TB/s on the H200, 8 TB/s on the B200)
// and above the H100/H200 L2's. A verified time below it is a measuring fault or a forgery.
double time_floor_ms(const Problem& problem);
// What a verified (kOk) result of `problem` must satisfy: its times no faster than time_floor_ms
// and max_error within verified_error_ceiling. Throws FieldError naming "median_ms", "min_ms" or
// "max_error".
void validate_verified(const Problem& problem, double median_ms, double min_ms, double max_error);
// A problem key back into its Problem; throws FieldError("problem_key", ...) when it does not
// parse or is not canonical (Problem::key() of the result must equal it).
Problem parse_problem_key(std::string_view key);

// Now, as ISO 8601 UTC with microseconds: "2026-11-24T18:37:05.123456Z".
std::string utc_timestamp();

}  // namespace deconvtune::db

// The TuningDb itself: opening a file (tuning_db/db_file.hpp, tuning_db/schema.hpp), its readers
// and writers (rows through tuning_db/rows.hpp, checked by validation.cpp first), the cubin cache
// and prune; and the problem key's parser.
#include "tuning_db/tuning_db.hpp"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "codegen/config.hpp"
#include "codegen/sha256.hpp"
#include "tuning_db/db_file.hpp"
#include "tuning_db/detail.hpp"
#include "tuning_db/rows.hpp"
#include "tuning_db/schema.hpp"
#include "tuning_db/text.hpp"

namespace deconvtune::db {

using sqlite::Connection;
using sqlite::Statement;
using namespace detail;  // this file's internals: rows, schema, the file's checks

Problem parse_problem_key(std::string_view key) {
  auto bad = [&](const std::string& why) {
    return FieldError("problem_key",
                      fmt::format("'{}' is not a problem key: {}", text::printable(key), why));
  };
  if (key.size() > 1024) throw bad("longer than 1024 characters");
  size_t bar = key.find('|');
  if (bar == std::string_view::npos) throw bad("no '|' before the epilogue");
  std::vector<std::string_view> parts;
  std::string_view head = key.substr(0, bar);
  for (size_t start = 0;;) {
    size_t colon = head.find(':', start);
    parts.push_back(head.substr(start, colon - start));
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  // convT2d, kProblemFields in order, then bias, dtype, layout and precision.
  constexpr size_t kFields = std::size(kProblemFields);
  if (parts.size() != kFields + 5 || parts[0] != "convT2d") {
    throw bad(
        fmt::format("expected convT2d and {} ':'-separated fields before the '|'", kFields + 4));
  }
  auto number = [&](std::string_view text, size_t field) -> int64_t {
    int64_t value = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
      throw bad(fmt::format("field {} is not an integer", field));
    }
    return value;
  };
  nlohmann::json spec = nlohmann::json::object();
  for (size_t i = 0; i < kFields; ++i) {
    const ProblemField& field = kProblemFields[i];
    const size_t at = i + 1;
    std::string_view part = parts[at];
    if (part.substr(0, field.prefix.size()) != field.prefix) {
      throw bad(fmt::format("field {} does not start with '{}'", at, field.prefix));
    }
    part = part.substr(field.prefix.size());
    if (field.scalar) {
      spec[std::string(field.name)] = number(part, at);
      continue;
    }
    size_t x = part.find('x');
    if (x == std::string_view::npos) throw bad(fmt::format("field {} is not HxW", at));
    spec[std::string(field.name)] =
        nlohmann::json::array({number(part.substr(0, x), at), number(part.substr(x + 1), at)});
  }
  const size_t bias = kFields + 1;
  if (parts[bias] != "bias" && parts[bias] != "nobias") {
    throw bad(fmt::format("field {} is not bias or nobias", bias));
  }
  spec["bias"] = parts[bias] == "bias";
  spec["dtype"] = std::string(parts[bias + 1]);
  spec["layout"] = std::string(parts[bias + 2]);
  spec["precision"] = std::string(parts[bias + 3]);
  spec["epilogue"] = std::string(key.substr(bar + 1));
  Problem problem;
  try {
    problem = Problem::from_json(spec);
  } catch (const std::invalid_argument& e) {
    throw bad(e.what());
  }
  if (problem.key() != key) throw bad(fmt::format("not canonical (expected '{}')", problem.key()));
  return problem;
}

namespace {

// An ISO 8601 UTC time with microseconds, as measured_at, updated_at and created_at hold it.
std::string utc_timestamp_at(std::chrono::system_clock::time_point when) {
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(when.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     micros % 1000000);
}

}  // namespace

std::string utc_timestamp() { return utc_timestamp_at(std::chrono::system_clock::now()); }

namespace {

bool is_hex_digest(std::string_view key) {
  if (key.size() != 64) return false;
  for (char c : key) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string cubin_digest(const std::vector<char>& cubin) {
  return Sha256().add(cubin.data(), cubin.size()).hex();
}

}  // namespace
// ---------------------------------------------------------------------------------------------
// TuningDb

std::string TuningDb::default_path() {
  const char* explicit_path = std::getenv("DECONVTUNE_DB");
  if (explicit_path && *explicit_path) return explicit_path;
  // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
  const char* cache = std::getenv("XDG_CACHE_HOME");
  if (cache && cache[0] == '/') return std::string(cache) + "/deconvtune/tuning.db";
  const char* home = std::getenv("HOME");
  if (!home || !*home) {
    const passwd* entry = getpwuid(getuid());
    home = entry ? entry->pw_dir : nullptr;
  }
  if (!home || !*home) {
    throw DbError("no tuning DB path: set DECONVTUNE_DB, XDG_CACHE_HOME or HOME, or pass --db");
  }
  return std::string(home) + "/.cache/deconvtune/tuning.db";
}

TuningDb::TuningDb(const std::string& path, bool read_only) : impl_(std::make_unique<Impl>()) {
  Impl& impl = *impl_;
  impl.path = path;
  impl.read_only = read_only;
  const bool in_memory = path == ":memory:";
  if (path.empty()) throw DbError("the tuning DB path is empty");
  // SQLite would take "file:..." as a plain path here (a "file:" folder tree in the working
  // folder), or as a URI with options of its own where URIs are on: neither is what the caller
  // meant.
  if (path.rfind("file:", 0) == 0) {
    throw DbError(fmt::format("{}: a SQLite URI, not a file's path; name the DB file itself",
                              text::printable(path)));
  }
  const bool existing = !in_memory && check_file(path, read_only);
  impl.connection = open_connection(path, read_only);
  Connection& connection = *impl.connection;
  sqlite3_busy_timeout(connection.handle(), 10000);

  // Reads only until we know the file is ours, table for table.
  Inspection inspection;
  try {
    connection.read([&] { inspection = inspect(connection); });
  } catch (const sqlite::NeedsWriterError&) {
    throw;  // sound, but cut short: says so itself
  } catch (const DbError& e) {
    throw DbError(fmt::format("{}: corrupt, or not a tuning DB: {}; it was left as it is", path,
                              without_path(e.what(), path)));
  }
  check_is_ours(path, inspection);
  if (read_only) {
    if (is_fresh(inspection))
      throw DbError(fmt::format("{}: an empty file, not a tuning DB yet", path));
    if (inspection.user_version < kSchemaVersion) {
      throw DbError(
          fmt::format("{}: the tuning DB has schema version {} and needs migrating to {}; "
                      "open it read-write once (any `deconvtune db` command or autotune "
                      "does)",
                      path, inspection.user_version, kSchemaVersion));
    }
    impl.schema_version = static_cast<int>(inspection.user_version);
    return;
  }
  if (existing) {
    connection.guard_writes([&connection, path] { verify_before_writing(connection, path); });
  }
  if (!in_memory) use_wal(connection, path);
  // WAL + NORMAL: a killed process never loses a committed transaction (only power loss could
  // lose the last few, never consistency), and a commit costs no fsync.
  connection.exec("PRAGMA synchronous = NORMAL");
  connection.exec("PRAGMA foreign_keys = ON");
  migrate(connection, path, inspection.user_version);
  impl.schema_version = static_cast<int>(connection.query_int("PRAGMA user_version"));
}

TuningDb::~TuningDb() = default;

const std::string& TuningDb::path() const { return impl_->path; }
int TuningDb::schema_version() const { return impl_->schema_version; }
bool TuningDb::read_only() const { return impl_->read_only; }

void TuningDb::upsert_device(const DeviceRecord& device) {
  validate_device(device);
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  connection.write([&] {
    Statement(connection,
              "INSERT INTO devices (key, name, arch, sm_count, driver_version, nvrtc_version, "
              "copy_gbps) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
              "driver_version = excluded.driver_version, nvrtc_version = excluded.nvrtc_version, "
              "copy_gbps = CASE WHEN excluded.copy_gbps > 0 THEN excluded.copy_gbps "
              "ELSE devices.copy_gbps END")
        .bind_all(device.key(), device.name, device.arch, device.sm_count, device.driver_version,
                  device.nvrtc_version, device.copy_gbps)
        .run();
  });
}

void TuningDb::upsert_problem(const Problem& problem) {
  std::string key = problem.key();
  std::string spec = problem.to_json().dump();
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  connection.write([&] {
    Statement(connection, "INSERT OR IGNORE INTO problems (key, spec) VALUES (?, ?)")
        .bind_all(key, spec)
        .run();
  });
}

std::vector<DeviceRecord> TuningDb::devices() const {
  return select_rows<DeviceRecord>(
      *impl_, fmt::format("SELECT {} FROM devices ORDER BY key", kDeviceColumns), kNoParameters,
      read_device);
}

std::optional<DeviceRecord> TuningDb::device(const std::string& device_key) const {
  std::vector<DeviceRecord> rows = select_rows<DeviceRecord>(
      *impl_, fmt::format("SELECT {} FROM devices WHERE key = ?", kDeviceColumns),
      [&](Statement& statement) { statement.bind(1, device_key); }, read_device);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::vector<ProblemRecord> TuningDb::problems() const {
  return select_rows<ProblemRecord>(
      *impl_, "SELECT key, spec FROM problems ORDER BY key", kNoParameters,
      [](Statement& statement) {
        return ProblemRecord{statement.column_text(0), statement.column_text(1)};
      });
}

bool TuningDb::record_trial(const TrialRecord& input) {
  TrialRecord trial = input;
  if (trial.measured_at.empty()) trial.measured_at = utc_timestamp();
  // A reason is text for people (often a compiler log): keep it, minus bytes that are not UTF-8,
  // and cut to the size import accepts rather than lose the trial.
  trial.reason = text::truncate_utf8(text::sanitize_utf8(trial.reason), kMaxReasonBytes);
  if (trial.status != Disposition::kOk) {
    // A failed trial's times mean nothing (a hang, a fault); keep the record, not a NaN.
    for (double* time : {&trial.median_ms, &trial.min_ms, &trial.max_ms}) {
      if (!std::isfinite(*time) || *time < 0) *time = 0;
    }
  }
  validate_trial(trial);
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  bool inserted = false;
  connection.write([&] {
    Statement problem(connection, "SELECT 1 FROM problems WHERE key = ?");
    if (!problem.bind(1, trial.problem_key).step()) {
      throw FieldError("problem_key", fmt::format("'{}' is not in the DB (upsert_problem first)",
                                                  trial.problem_key));
    }
    Statement device(connection, "SELECT 1 FROM devices WHERE key = ?");
    if (!device.bind(1, trial.device_key).step()) {
      throw FieldError("device_key", fmt::format("'{}' is not in the DB (upsert_device first)",
                                                 trial.device_key));
    }
    inserted = detail::insert_trial(connection, trial, detail::Origin::kLocal);
  });
  return inserted;
}

std::vector<std::string> TuningDb::measured_configs(const WinnerKey& key) const {
  return select_rows<std::string>(
      *impl_,
      "SELECT DISTINCT config_name FROM trials WHERE problem_key = ? AND device_key = ? AND "
      "generator_version = ? AND precision = ? AND origin = 'local' ORDER BY config_name",
      [&](Statement& statement) { bind_key(statement, 1, key); },
      [](Statement& statement) { return statement.column_text(0); });
}

std::vector<TrialRecord> TuningDb::trials(const WinnerKey& key) const {
  return select_rows<TrialRecord>(
      *impl_,
      fmt::format("SELECT {} FROM trials WHERE problem_key = ? AND device_key = ? AND "
                  "generator_version = ? AND precision = ? ORDER BY id",
                  kTrialColumns),
      [&](Statement& statement) { bind_key(statement, 1, key); }, read_trial);
}

std::vector<TrialRecord> TuningDb::all_trials() const {
  return select_rows<TrialRecord>(*impl_,
                                  fmt::format("SELECT {} FROM trials ORDER BY id", kTrialColumns),
                                  kNoParameters, read_trial);
}

std::vector<TrialRecord> TuningDb::trials_matching(const TrialFilter& filter) const {
  // An empty parameter matches everything: (? = '' OR column = ?).
  return select_rows<TrialRecord>(
      *impl_,
      fmt::format("SELECT {} FROM trials WHERE (?1 = '' OR problem_key = ?1) AND "
                  "(?2 = '' OR device_key = ?2) AND (?3 = '' OR generator_version = ?3) AND "
                  "(?4 = '' OR precision = ?4) ORDER BY "
                  "problem_key, device_key, generator_version, precision, "
                  "status <> 'ok', CASE WHEN status = 'ok' THEN median_ms END, status, "
                  "config_name, id",
                  kTrialColumns),
      [&](Statement& statement) {
        statement.bind(1, filter.problem_key)
            .bind(2, filter.device_key)
            .bind(3, filter.generator_version)
            .bind(4, filter.precision ? std::string(to_string(*filter.precision)) : std::string());
      },
      read_trial);
}

int64_t TuningDb::trial_count() const {
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  int64_t count = 0;
  connection.read([&] { count = connection.query_int("SELECT count(*) FROM trials"); });
  return count;
}

namespace {

// The supported winners that `where` (binding from ?1) selects, in one read transaction.
std::vector<WinnerRecord> supported_winners(const TuningDb::Impl& impl, const std::string& where,
                                            const std::function<void(Statement&)>& bind) {
  std::lock_guard lock(impl.mutex);
  const Connection& connection = *impl.connection;
  std::vector<WinnerRecord> rows;
  connection.read([&] {
    rows.clear();
    Statement statement(connection,
                        fmt::format("SELECT {}, origin FROM winners {} ORDER BY problem_key, "
                                    "device_key, generator_version, precision",
                                    kWinnerColumns, where));
    bind(statement);
    while (statement.step()) {
      WinnerRecord winner = read_winner(statement);
      if (detail::is_supported(connection, winner)) rows.push_back(std::move(winner));
    }
  });
  return rows;
}

}  // namespace

std::optional<WinnerRecord> TuningDb::winner(const WinnerKey& key) const {
  std::vector<WinnerRecord> rows = supported_winners(
      *impl_,
      "WHERE problem_key = ? AND device_key = ? AND generator_version = ? AND precision = ?",
      [&](Statement& statement) { bind_key(statement, 1, key); });
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::vector<WinnerRecord> TuningDb::winners() const {
  return supported_winners(*impl_, "", kNoParameters);
}

std::optional<std::vector<char>> TuningDb::cached_cubin(const std::string& cache_key) const {
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  std::optional<std::vector<char>> result;
  std::string stored_digest;
  connection.read([&] {
    result.reset();
    Statement statement(connection, "SELECT cubin, sha256 FROM cubin_cache WHERE key = ?");
    statement.bind(1, cache_key);
    if (statement.step()) {
      result = statement.column_blob(0);
      stored_digest = statement.column_text(1);
    }
  });
  if (!result || cubin_digest(*result) == stored_digest) return result;
  // Damaged bytes must never be loaded: the caller compiles again (and stores a sound entry).
  if (!impl_->read_only) {
    try {
      connection.write([&] {
        // Only the entry we read: another process may have stored a sound one since.
        Statement(connection, "DELETE FROM cubin_cache WHERE key = ? AND sha256 = ?")
            .bind_all(cache_key, stored_digest)
            .run();
      });
    } catch (const DbError&) {
      // Dropping it is a courtesy: it is refused on every load all the same.
    }
  }
  static std::atomic<bool> said{false};
  if (!said.exchange(true)) {
    std::cerr << fmt::format(
        "deconvtune: {}: a cached cubin does not match its SHA-256 (key {}); it is ignored{} and "
        "compiled again (said once per process)\n",
        impl_->path, cache_key.substr(0, 16), impl_->read_only ? "" : ", dropped");
  }
  return std::nullopt;
}

void TuningDb::store_cubin(const std::string& cache_key, const std::vector<char>& cubin,
                           const std::string& generator_version) {
  if (!is_hex_digest(cache_key)) {
    throw FieldError("cache_key", fmt::format("'{}' is not a cubin_cache_key() (64 hex digits)",
                                              text::printable(cache_key.substr(0, 100))));
  }
  if (cubin.empty()) throw FieldError("cubin", "is empty");
  if (cubin.size() > (size_t{1} << 30)) throw FieldError("cubin", "is larger than 1 GiB");
  validate_generator_version(generator_version);
  std::string now = utc_timestamp();
  std::string digest = cubin_digest(cubin);
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  connection.write([&] {
    Statement(connection,
              "INSERT OR REPLACE INTO cubin_cache (key, cubin, sha256, generator_version, "
              "created_at) VALUES (?, ?, ?, ?, ?)")
        .bind(1, cache_key)
        .bind_blob(2, cubin.data(), cubin.size())
        .bind(3, digest)
        .bind(4, generator_version)
        .bind(5, now)
        .run();
  });
}

CubinCacheStats TuningDb::cubin_cache_stats() const {
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  CubinCacheStats stats;
  connection.read([&] {
    Statement statement(connection,
                        "SELECT count(*), coalesce(sum(length(cubin)), 0) FROM cubin_cache");
    statement.step();
    stats.entries = statement.column_int(0);
    stats.bytes = statement.column_int(1);
  });
  return stats;
}

namespace {

// What prune selects, one predicate per table, with ?1 = the kept generator version and ?2 = the
// cutoff time.
struct PruneSelection {
  std::string trials, winners, cubins;
  std::string keep, cutoff;

  explicit PruneSelection(const PruneOptions& options) : keep(options.keep_generator_version) {
    const bool by_age = options.older_than_days.has_value();
    if (!by_age) validate_generator_version(keep);
    trials = by_age ? "measured_at < ?2" : "generator_version <> ?1";
    winners = by_age ? "updated_at < ?2" : "generator_version <> ?1";
    cubins = by_age ? "created_at < ?2" : "generator_version <> ?1";
    if (!by_age) return;
    const double days = *options.older_than_days;
    if (!std::isfinite(days) || days < 0 || days > 1e6) {
      throw FieldError("older_than_days", fmt::format("{} is not a number of days", days));
    }
    cutoff = utc_timestamp_at(std::chrono::system_clock::now() -
                              std::chrono::duration_cast<std::chrono::system_clock::duration>(
                                  std::chrono::duration<double>(days * 86400.0)));
  }

  Statement& bind(Statement& statement) const {
    // A statement's predicates use ?1 or ?2 (SQLite numbers parameters up to the highest used).
    statement.bind(1, keep);
    if (statement.parameter_count() >= 2) statement.bind(2, cutoff);
    return statement;
  }
};

// Inside an open transaction: what the selection holds, as prune reports it.
PruneReport count_prunable(const Connection& connection, const PruneSelection& selection) {
  PruneReport report;
  Statement versions(connection,
                     fmt::format("SELECT DISTINCT generator_version FROM ("
                                 "SELECT generator_version FROM trials WHERE {} UNION "
                                 "SELECT generator_version FROM winners WHERE {} UNION "
                                 "SELECT generator_version FROM cubin_cache WHERE {}) "
                                 "ORDER BY 1",
                                 selection.trials, selection.winners, selection.cubins));
  selection.bind(versions);
  while (versions.step()) report.generator_versions.push_back(versions.column_text(0));
  Statement winners(connection, fmt::format("SELECT {} FROM winners WHERE {} ORDER BY problem_key, "
                                            "device_key, generator_version, precision",
                                            kWinnerColumns, selection.winners));
  selection.bind(winners);
  while (winners.step()) report.removed_winners.push_back(read_winner(winners));
  report.winners = static_cast<int64_t>(report.removed_winners.size());
  Statement trials(connection, "SELECT count(*) FROM trials WHERE " + selection.trials);
  selection.bind(trials).step();
  report.trials = trials.column_int(0);
  Statement cubins(connection,
                   "SELECT count(*), coalesce(sum(length(cubin)), 0) FROM cubin_cache WHERE " +
                       selection.cubins);
  selection.bind(cubins).step();
  report.cubins = cubins.column_int(0);
  report.cubin_bytes = cubins.column_int(1);
  return report;
}

}  // namespace

PruneReport TuningDb::prune(const PruneOptions& options) {
  const PruneSelection selection(options);
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  PruneReport report;
  // The same statements for a dry run and a real one; a dry run only reads.
  auto body = [&] {
    report = count_prunable(connection, selection);
    if (options.dry_run) return;
    for (const std::string& where : {"DELETE FROM trials WHERE " + selection.trials,
                                     "DELETE FROM winners WHERE " + selection.winners,
                                     "DELETE FROM cubin_cache WHERE " + selection.cubins}) {
      Statement statement(connection, where);
      selection.bind(statement).run();
    }
  };
  if (options.dry_run) {
    connection.read(body);
  } else {
    connection.write(body);
  }
  return report;
}

std::string TuningDb::integrity_check() const {
  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  std::string verdict;
  connection.read([&] { verdict = integrity_verdict(connection); });
  return verdict;
}

}  // namespace deconvtune::db

#include "tuning_db/tuning_db.hpp"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "codegen/config.hpp"
#include "codegen/generator.hpp"
#include "codegen/sha256.hpp"
#include "tuning_db/detail.hpp"
#include "tuning_db/text.hpp"

namespace deconvtune::db {

using sqlite::Connection;
using sqlite::Statement;

FieldError::FieldError(std::string field, const std::string& rule)
    : DbError(fmt::format("{}: {}", field, rule)), field_(std::move(field)) {}

std::string DeviceRecord::key() const { return fmt::format("{}|{}|{}", name, arch, sm_count); }

std::string device_class(std::string_view device_key) {
  // Names hold no '|' (validate_device), so the class is what follows the first one.
  const size_t bar = device_key.find('|');
  if (bar == std::string_view::npos || device_key.find('|', bar + 1) == std::string_view::npos) {
    return {};
  }
  return std::string(device_key.substr(bar + 1));
}

// ---------------------------------------------------------------------------------------------
// Validation

namespace {

constexpr double kMaxMilliseconds = 1e7;  // ~2.8 hours: no kernel or compile takes longer
constexpr size_t kMaxReasonBytes = 65536;

void require_token(std::string_view field, std::string_view value, size_t max_length) {
  if (value.empty()) throw FieldError(std::string(field), "must not be empty");
  if (value.size() > max_length) {
    throw FieldError(std::string(field),
                     fmt::format("is {} characters long, more than {}", value.size(), max_length));
  }
  for (char c : value) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      throw FieldError(std::string(field),
                       fmt::format("'{}' may hold only letters, digits, '_', '-' and '.'",
                                   text::printable(value)));
    }
  }
}

void require_printable(std::string_view field, std::string_view value, size_t max_length,
                       bool allow_empty) {
  if (value.empty() && !allow_empty) throw FieldError(std::string(field), "must not be empty");
  if (value.size() > max_length) {
    throw FieldError(std::string(field),
                     fmt::format("is {} characters long, more than {}", value.size(), max_length));
  }
  if (!text::is_printable_ascii(value)) {
    throw FieldError(std::string(field), fmt::format("'{}' holds characters other than printable "
                                                     "ASCII",
                                                     text::printable(value)));
  }
}

void require_range(std::string_view field, double value, double low, double high) {
  if (!std::isfinite(value) || value < low || value > high) {
    throw FieldError(std::string(field),
                     fmt::format("{} is not a finite number in [{}, {}]", value, low, high));
  }
}

void require_int_range(std::string_view field, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high) {
    throw FieldError(std::string(field), fmt::format("{} is not in [{}, {}]", value, low, high));
  }
}

}  // namespace

void validate_device(const DeviceRecord& device) {
  require_printable("name", device.name, 256, false);
  if (device.name.find('|') != std::string::npos) {
    throw FieldError("name", "must not contain '|' (it separates the parts of a device key)");
  }
  // "sm_90", "sm_90a", "sm_100": what NVRTC's --gpu-architecture takes.
  const std::string& arch = device.arch;
  bool arch_ok = arch.size() >= 5 && arch.size() <= 8 && arch.compare(0, 3, "sm_") == 0;
  size_t digits = 0;
  for (size_t i = 3; arch_ok && i < arch.size(); ++i) {
    if (arch[i] >= '0' && arch[i] <= '9' && i == 3 + digits) {
      ++digits;
    } else if (!(arch[i] >= 'a' && arch[i] <= 'z' && i == arch.size() - 1)) {
      arch_ok = false;
    }
  }
  if (!arch_ok || digits < 2) {
    throw FieldError("arch",
                     fmt::format("'{}' is not an sm_XY architecture name", text::printable(arch)));
  }
  require_int_range("sm_count", device.sm_count, 1, 100000);
  require_int_range("driver_version", device.driver_version, 0, 100000000);
  require_printable("nvrtc_version", device.nvrtc_version, 32, true);
  // 0 (not measured) up to 100 TB/s, twenty times any GPU memory's bandwidth today.
  if (!(device.copy_gbps >= 0 && device.copy_gbps <= 100000)) {
    throw FieldError("copy_gbps", fmt::format("{} is not a bandwidth in GB/s from 0 (not measured) "
                                              "to 100000",
                                              device.copy_gbps));
  }
}

namespace {

Problem validate_key(const std::string& problem_key, const std::string& device_key,
                     const std::string& generator_version, Precision precision,
                     const std::string& config_name) {
  Problem problem = parse_problem_key(problem_key);
  if (problem.precision != precision) {
    throw FieldError("precision", fmt::format("is {} but the problem key says {}",
                                              to_string(precision), to_string(problem.precision)));
  }
  require_printable("device_key", device_key, 300, false);
  require_token("generator_version", generator_version, 64);
  require_token("config_name", config_name, 256);
  return problem;
}

}  // namespace

double time_floor_ms(const Problem& problem) {
  constexpr double kFastestBytesPerMs = 20e12 / 1e3;  // 20 TB/s: see tuning_db.hpp
  return static_cast<double>(problem.io_bytes()) / kFastestBytesPerMs;
}

void validate_verified(const Problem& problem, double median_ms, double min_ms, double max_error) {
  const double floor = time_floor_ms(problem);
  for (auto [field, time] : {std::pair{"median_ms", median_ms}, std::pair{"min_ms", min_ms}}) {
    if (!(time >= floor)) {
      throw FieldError(field, fmt::format("{} ms is faster than moving x and y at 20 TB/s ({} ms "
                                          "for this problem): not a real measurement",
                                          time, floor));
    }
  }
  const double ceiling = verified_error_ceiling(problem);
  if (!(max_error <= ceiling)) {
    throw FieldError("max_error", fmt::format("{} is above {}, the most a verified {} result of "
                                              "this problem can be off by",
                                              max_error, ceiling, to_string(problem.precision)));
  }
}

void validate_trial(const TrialRecord& trial) {
  const Problem problem = validate_key(trial.problem_key, trial.device_key, trial.generator_version,
                                       trial.precision, trial.config_name);
  parse_disposition(to_string(trial.status));  // an out-of-range enum value
  if (trial.reason.size() > kMaxReasonBytes) {
    throw FieldError("reason", fmt::format("is {} bytes long, more than {}", trial.reason.size(),
                                           kMaxReasonBytes));
  }
  if (!text::is_valid_utf8(trial.reason)) throw FieldError("reason", "is not valid UTF-8");
  bool ok = trial.status == Disposition::kOk;
  // A verified trial has a real time; a failed one may have none (zeros).
  double low = ok ? 1e-9 : 0;
  require_range("median_ms", trial.median_ms, low, kMaxMilliseconds);
  require_range("min_ms", trial.min_ms, low, kMaxMilliseconds);
  require_range("max_ms", trial.max_ms, low, kMaxMilliseconds);
  if (ok && !(trial.min_ms <= trial.median_ms && trial.median_ms <= trial.max_ms)) {
    throw FieldError("median_ms", fmt::format("{} is not between min_ms {} and max_ms {}",
                                              trial.median_ms, trial.min_ms, trial.max_ms));
  }
  if (ok || !std::isnan(trial.max_error)) {
    // A wrong kernel's error may be NaN (its output was); anything else is a real number.
    if (!(trial.max_error >= 0) || (ok && !std::isfinite(trial.max_error))) {
      throw FieldError("max_error", fmt::format("{} is not a {}non-negative number",
                                                trial.max_error, ok ? "finite " : ""));
    }
  }
  if (ok) validate_verified(problem, trial.median_ms, trial.min_ms, trial.max_error);
  require_int_range("registers", trial.registers, -1, 255);
  require_int_range("shared_bytes", trial.shared_bytes, -1, 1 << 24);
  require_int_range("spill_bytes", trial.spill_bytes, -1, 1 << 30);
  require_range("compile_ms", trial.compile_ms, 0, kMaxMilliseconds);
  if (!text::is_utc_timestamp(trial.measured_at)) {
    throw FieldError(
        "measured_at",
        fmt::format("'{}' is not an ISO 8601 UTC time like 2026-11-24T18:37:05.123456Z",
                    text::printable(trial.measured_at)));
  }
}

void validate_winner(const WinnerRecord& winner) {
  const Problem problem =
      validate_key(winner.problem_key, winner.device_key, winner.generator_version,
                   winner.precision, winner.config_name);
  if (!may_win(winner.config_name)) {
    throw FieldError("config_name", fmt::format("'{}' is a test-only kernel, which never wins",
                                                text::printable(winner.config_name)));
  }
  require_range("median_ms", winner.median_ms, 1e-9, kMaxMilliseconds);
  require_range("max_error", winner.max_error, 0, 1e30);
  validate_verified(problem, winner.median_ms, winner.median_ms, winner.max_error);
  if (!text::is_utc_timestamp(winner.updated_at)) {
    throw FieldError(
        "updated_at",
        fmt::format("'{}' is not an ISO 8601 UTC time like 2026-11-24T18:37:05.123456Z",
                    text::printable(winner.updated_at)));
  }
}

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

std::string utc_timestamp() {
  auto now = std::chrono::system_clock::now();
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                     micros % 1000000);
}

// ---------------------------------------------------------------------------------------------
// Schema

namespace {

// migrations[v] takes a DB from schema version v to v + 1. Each runs in its own transaction, and a
// new DB runs them all, so the upgrade path is exercised by every fresh DB too.
// Version 1 had no NVRTC version per device, no spill or compile time per trial, no cubin cache and
// no uniqueness of a trial's identity (which import de-duplicates on).
// Version 2 had no digest per cubin (its cubins are dropped: nothing vouches for their bytes, and
// each is rebuilt on its next use) and no origin per row (a v2 row counts as measured here, as
// which rows were imported was not recorded; the support rule still applies to its winners).
// Version 3 had no copy bandwidth per device (0: not measured; the tuner measures it on its next
// run on that GPU).
const char* const kMigrations[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE devices (
  key TEXT PRIMARY KEY NOT NULL,
  name TEXT NOT NULL,
  arch TEXT NOT NULL,
  sm_count INTEGER NOT NULL,
  driver_version INTEGER NOT NULL);
CREATE TABLE problems (
  key TEXT PRIMARY KEY NOT NULL,
  spec TEXT NOT NULL);
CREATE TABLE trials (
  id INTEGER PRIMARY KEY,
  problem_key TEXT NOT NULL REFERENCES problems(key),
  device_key TEXT NOT NULL REFERENCES devices(key),
  generator_version TEXT NOT NULL,
  precision TEXT NOT NULL,
  config_name TEXT NOT NULL,
  status TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  median_ms REAL NOT NULL,
  min_ms REAL NOT NULL,
  max_ms REAL NOT NULL,
  max_error REAL,
  registers INTEGER NOT NULL,
  shared_bytes INTEGER NOT NULL,
  measured_at TEXT NOT NULL);
CREATE INDEX trials_by_key ON trials (problem_key, device_key, generator_version, precision);
CREATE TABLE winners (
  problem_key TEXT NOT NULL REFERENCES problems(key),
  device_key TEXT NOT NULL REFERENCES devices(key),
  generator_version TEXT NOT NULL,
  precision TEXT NOT NULL,
  config_name TEXT NOT NULL,
  median_ms REAL NOT NULL,
  max_error REAL NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (problem_key, device_key, generator_version, precision));
)sql",
    // 1 -> 2
    R"sql(
ALTER TABLE devices ADD COLUMN nvrtc_version TEXT NOT NULL DEFAULT '';
ALTER TABLE trials ADD COLUMN spill_bytes INTEGER NOT NULL DEFAULT -1;
ALTER TABLE trials ADD COLUMN compile_ms REAL NOT NULL DEFAULT 0;
DELETE FROM trials WHERE id NOT IN (
  SELECT min(id) FROM trials
  GROUP BY problem_key, device_key, generator_version, precision, config_name, measured_at);
CREATE UNIQUE INDEX trials_identity ON trials
  (problem_key, device_key, generator_version, precision, config_name, measured_at);
DROP INDEX trials_by_key;
CREATE TABLE cubin_cache (
  key TEXT PRIMARY KEY NOT NULL,
  cubin BLOB NOT NULL,
  generator_version TEXT NOT NULL,
  created_at TEXT NOT NULL);
)sql",
    // 2 -> 3
    R"sql(
ALTER TABLE trials ADD COLUMN origin TEXT NOT NULL DEFAULT 'local'
  CHECK (origin IN ('local', 'imported'));
ALTER TABLE winners ADD COLUMN origin TEXT NOT NULL DEFAULT 'local'
  CHECK (origin IN ('local', 'imported'));
DROP TABLE cubin_cache;
CREATE TABLE cubin_cache (
  key TEXT PRIMARY KEY NOT NULL,
  cubin BLOB NOT NULL,
  sha256 TEXT NOT NULL,
  generator_version TEXT NOT NULL,
  created_at TEXT NOT NULL);
)sql",
    // 3 -> 4
    R"sql(
ALTER TABLE devices ADD COLUMN copy_gbps REAL NOT NULL DEFAULT 0;
)sql",
};
static_assert(std::size(kMigrations) == TuningDb::kSchemaVersion);

// One entry of sqlite_schema. `sql` is SQLite's stored text with runs of whitespace outside quotes
// made one space (whitespace cannot change what a statement means; everything else can).
struct SchemaObject {
  std::string type, name, table, sql;
  bool operator==(const SchemaObject& other) const {
    return type == other.type && name == other.name && table == other.table && sql == other.sql;
  }
};
using Schema = std::vector<SchemaObject>;  // ordered by type, then name

std::string normalized_sql(std::string_view sql) {
  std::string result;
  char quote = 0;  // the quote character we are inside of, if any
  bool space = false;
  for (char c : sql) {
    if (quote == 0 && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f')) {
      space = true;
      continue;
    }
    if (space && !result.empty()) result += ' ';
    space = false;
    result += c;
    if (quote == 0 && (c == '\'' || c == '"' || c == '`' || c == '[')) {
      quote = c == '[' ? ']' : c;
    } else if (quote != 0 && c == quote) {
      quote = 0;  // a doubled quote closes and reopens: the same state either way
    }
  }
  return result;
}

Schema read_schema(const Connection& connection) {
  Schema schema;
  Statement statement(connection,
                      "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name");
  while (statement.step()) {
    schema.push_back({statement.column_text(0), statement.column_text(1), statement.column_text(2),
                      normalized_sql(statement.column_text(3))});
  }
  return schema;
}

// What this build's migrations make, per schema version (index 0: version 1): the scripts
// themselves, run once into a private in-memory DB, so there is no second copy of the DDL.
const Schema& expected_schema(int version) {
  static const std::vector<Schema> schemas = [] {
    std::vector<Schema> result;
    Connection memory(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    for (const char* migration : kMigrations) {
      memory.exec_script(migration, "deriving the schema");
      result.push_back(read_schema(memory));
    }
    return result;
  }();
  return schemas.at(static_cast<size_t>(version - 1));
}

std::string describe(const SchemaObject& object) {
  return fmt::format("{} '{}'", object.type, text::printable(object.name.substr(0, 100)));
}

// The ways `actual` differs from `expected`, as phrases; empty when it is exactly ours.
std::vector<std::string> schema_differences(const Schema& actual, const Schema& expected) {
  auto find = [](const Schema& schema, const SchemaObject& like) -> const SchemaObject* {
    for (const SchemaObject& object : schema) {
      if (object.type == like.type && object.name == like.name) return &object;
    }
    return nullptr;
  };
  std::vector<std::string> differences;
  for (const SchemaObject& object : actual) {
    const SchemaObject* ours = find(expected, object);
    if (ours == nullptr) {
      differences.push_back(describe(object) + " is not part of a deconvtune DB");
    } else if (!(*ours == object)) {
      differences.push_back(fmt::format("{} is not defined as in a deconvtune DB (it is `{}`)",
                                        describe(object),
                                        text::printable(object.sql.substr(0, 300))));
    }
  }
  for (const SchemaObject& object : expected) {
    if (find(actual, object) == nullptr) differences.push_back(describe(object) + " is missing");
  }
  return differences;
}

// Refuses a file whose tables, indexes, triggers or views are not exactly those that this build's
// migrations make for its version: its own SQL (a trigger, a view named like a table) would run
// inside our statements, or hang them.
void check_schema(const std::string& path, const Schema& actual, int64_t version) {
  std::vector<std::string> differences =
      schema_differences(actual, expected_schema(static_cast<int>(version)));
  if (differences.empty()) return;
  std::string list;
  for (size_t i = 0; i < differences.size() && i < 8; ++i) {
    list += (i ? "; " : "") + differences[i];
  }
  if (differences.size() > 8) list += fmt::format("; and {} more", differences.size() - 8);
  throw DbError(
      fmt::format("{}: not a deconvtune tuning DB of schema version {}: {}; it was left "
                  "as it is",
                  path, version, list));
}

// What the file holds before we touch it.
struct Inspection {
  int64_t application_id = 0;
  int64_t user_version = 0;
  Schema schema;
  std::string tables;  // their names, for the message about a foreign file
};

Inspection inspect(const Connection& connection) {
  Inspection result;
  result.application_id = connection.query_int("PRAGMA application_id");
  result.user_version = connection.query_int("PRAGMA user_version");
  result.schema = read_schema(connection);
  for (const SchemaObject& object : result.schema) {
    if (object.type == "table" && result.tables.size() < 200) {
      result.tables += (result.tables.empty() ? "" : ", ") + object.name;
    }
  }
  return result;
}

bool is_fresh(const Inspection& inspection) {
  return inspection.application_id == 0 && inspection.user_version == 0 &&
         inspection.schema.empty();
}

void check_is_ours(const std::string& path, const Inspection& inspection) {
  if (inspection.application_id == TuningDb::kApplicationId) {
    if (inspection.user_version > TuningDb::kSchemaVersion) {
      throw DbError(fmt::format(
          "{}: this tuning DB has schema version {}, written by a newer deconvtune; this build "
          "reads versions up to {} and will not downgrade it (update deconvtune, or use --db to "
          "pick another file)",
          path, inspection.user_version, TuningDb::kSchemaVersion));
    }
    if (inspection.user_version < 1) {
      throw DbError(fmt::format("{}: the tuning DB has schema version {}, which never existed",
                                path, inspection.user_version));
    }
    check_schema(path, inspection.schema, inspection.user_version);
    return;
  }
  if (is_fresh(inspection)) return;
  throw DbError(fmt::format(
      "{}: not a deconvtune tuning DB (an SQLite file with application id {} and tables [{}]); "
      "it was left as it is",
      path, inspection.application_id, text::printable(inspection.tables)));
}

// A Connection's messages start with the path; a message that names it already drops that.
std::string without_path(const std::string& message, const std::string& path) {
  std::string prefix = path + ": ";
  return message.compare(0, prefix.size(), prefix) == 0 ? message.substr(prefix.size()) : message;
}

// The SQLite header's magic, checked before SQLite opens the file, so that a file of another kind
// is refused without SQLite ever touching it.
constexpr std::string_view kSqliteMagic{"SQLite format 3\0", 16};

// Returns whether there is a file with content: one that this process did not create.
bool check_file(const std::string& path, bool read_only) {
  namespace fs = std::filesystem;
  std::error_code error;
  fs::file_status status = fs::status(path, error);
  if (!fs::exists(status)) {
    if (read_only) throw DbError(fmt::format("{}: no tuning DB here (nothing tuned yet?)", path));
    fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) {
      fs::create_directories(parent, error);
      if (error) {
        throw DbError(fmt::format("{}: cannot create the folder {}: {}", path, parent.string(),
                                  error.message()));
      }
    }
    return false;
  }
  if (!fs::is_regular_file(status)) throw DbError(fmt::format("{}: not a regular file", path));
  std::ifstream file(path, std::ios::binary);
  if (!file) throw DbError(fmt::format("{}: cannot read the file", path));
  std::array<char, 100> header{};
  file.read(header.data(), header.size());
  std::streamsize got = file.gcount();
  if (got == 0) return false;  // an empty file becomes a new DB (SQLite's own rule)
  if (got < static_cast<std::streamsize>(header.size()) ||
      std::string_view(header.data(), kSqliteMagic.size()) != kSqliteMagic) {
    throw DbError(fmt::format(
        "{}: not a tuning DB: the file is not an SQLite database (it does not start with the "
        "SQLite header); it was left as it is",
        path));
  }
  return true;
}

Precision read_precision(const Statement& statement, int column) {
  std::string text = statement.column_text(column);
  try {
    return parse_precision(text);
  } catch (const std::invalid_argument& e) {
    throw DbError(
        fmt::format("a stored row has precision '{}': {}", text::printable(text), e.what()));
  }
}

double read_error(const Statement& statement, int column) {
  return statement.is_null(column) ? std::nan("") : statement.column_double(column);
}

TrialRecord read_trial(const Statement& statement) {
  TrialRecord trial;
  trial.problem_key = statement.column_text(0);
  trial.device_key = statement.column_text(1);
  trial.generator_version = statement.column_text(2);
  trial.precision = read_precision(statement, 3);
  trial.config_name = statement.column_text(4);
  std::string status = statement.column_text(5);
  try {
    trial.status = parse_disposition(status);
  } catch (const std::invalid_argument& e) {
    throw DbError(fmt::format("a stored trial of {}: {}", trial.config_name, e.what()));
  }
  trial.reason = statement.column_text(6);
  trial.median_ms = statement.column_double(7);
  trial.min_ms = statement.column_double(8);
  trial.max_ms = statement.column_double(9);
  trial.max_error = read_error(statement, 10);
  trial.registers = static_cast<int>(statement.column_int(11));
  trial.shared_bytes = static_cast<int>(statement.column_int(12));
  trial.spill_bytes = static_cast<int>(statement.column_int(13));
  trial.compile_ms = statement.column_double(14);
  trial.measured_at = statement.column_text(15);
  return trial;
}

WinnerRecord read_winner(const Statement& statement) {
  WinnerRecord winner;
  winner.problem_key = statement.column_text(0);
  winner.device_key = statement.column_text(1);
  winner.generator_version = statement.column_text(2);
  winner.precision = read_precision(statement, 3);
  winner.config_name = statement.column_text(4);
  winner.median_ms = statement.column_double(5);
  winner.max_error = statement.column_double(6);
  winner.updated_at = statement.column_text(7);
  // Queries that select it put the origin after kWinnerColumns.
  if (statement.column_count() > 8) winner.imported = statement.column_text(8) == "imported";
  return winner;
}

DeviceRecord read_device(const Statement& statement) {
  DeviceRecord device;
  device.name = statement.column_text(0);
  device.arch = statement.column_text(1);
  device.sm_count = static_cast<int>(statement.column_int(2));
  device.driver_version = static_cast<int>(statement.column_int(3));
  device.nvrtc_version = statement.column_text(4);
  device.copy_gbps = statement.column_double(5);
  return device;
}

Statement& bind_key(Statement& statement, int first, const WinnerKey& key) {
  return statement.bind(first, key.problem_key)
      .bind(first + 1, key.device_key)
      .bind(first + 2, key.generator_version)
      .bind(first + 3, to_string(key.precision));
}

bool is_hex_digest(std::string_view key) {
  if (key.size() != 64) return false;
  for (char c : key) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// One read transaction (retried whole when SQLite is busy): prepares `sql`, lets `bind` set its
// parameters and returns `read` of every row.
template <typename Row, typename Bind, typename Read>
std::vector<Row> select_rows(const TuningDb::Impl& impl, const std::string& sql, const Bind& bind,
                             const Read& read) {
  std::lock_guard lock(impl.mutex);
  const Connection& connection = *impl.connection;
  std::vector<Row> rows;
  connection.read([&] {
    rows.clear();
    Statement statement(connection, sql);
    bind(statement);
    while (statement.step()) rows.push_back(read(statement));
  });
  return rows;
}

constexpr auto kNoParameters = [](Statement&) {};

const char* origin_text(detail::Origin origin) {
  return origin == detail::Origin::kLocal ? "local" : "imported";
}

std::string cubin_digest(const std::vector<char>& cubin) {
  return Sha256().add(cubin.data(), cubin.size()).hex();
}

}  // namespace

namespace detail {

bool is_supported(const Connection& connection, const WinnerRecord& winner) {
  if (!may_win(winner.config_name)) return false;
  Problem problem;
  try {
    problem = parse_problem_key(winner.problem_key);
  } catch (const DbError&) {
    return false;  // a hostile or stale row: nothing can back it
  }
  // The trial's own numbers are checked again: rows of an older build (or a foreign writer) were
  // not held to these rules when they were written.
  Statement trial(connection,
                  "SELECT 1 FROM trials WHERE problem_key = ? AND device_key = ? AND "
                  "generator_version = ? AND precision = ? AND config_name = ? AND status = 'ok' "
                  "AND median_ms = ? AND max_error = ? AND min_ms >= ? AND min_ms <= median_ms "
                  "AND max_error >= 0 AND max_error <= ? LIMIT 1");
  bind_key(trial, 1,
           {winner.problem_key, winner.device_key, winner.generator_version, winner.precision})
      .bind(5, winner.config_name)
      .bind(6, winner.median_ms)
      .bind(7, winner.max_error)
      .bind(8, time_floor_ms(problem))
      .bind(9, verified_error_ceiling(problem));
  return trial.step();
}

WinnerOutcome offer_winner(const Connection& connection, const WinnerRecord& winner,
                           Origin origin) {
  if (!is_supported(connection, winner)) return WinnerOutcome::kUnsupported;
  WinnerKey key{winner.problem_key, winner.device_key, winner.generator_version, winner.precision};
  Statement current(connection, fmt::format("SELECT {}, origin FROM winners WHERE problem_key = ? "
                                            "AND device_key = ? AND generator_version = ? AND "
                                            "precision = ?",
                                            kWinnerColumns));
  bind_key(current, 1, key);
  const bool had_one = current.step();
  if (had_one) {
    const WinnerRecord held = read_winner(current);
    // A measurement here outranks one made elsewhere; an unbacked winner outranks nothing.
    const bool replace = winner.median_ms < held.median_ms ||
                         (held.imported && origin == Origin::kLocal) ||
                         !is_supported(connection, held);
    if (!replace) return WinnerOutcome::kKept;
  }
  Statement replace(connection, fmt::format("INSERT OR REPLACE INTO winners ({}, origin) VALUES "
                                            "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                            kWinnerColumns));
  bind_key(replace, 1, key)
      .bind(5, winner.config_name)
      .bind(6, winner.median_ms)
      .bind(7, winner.max_error)
      .bind(8, winner.updated_at)
      .bind(9, origin_text(origin))
      .run();
  return had_one ? WinnerOutcome::kReplaced : WinnerOutcome::kAdded;
}

WinnerRecord winner_of(const TrialRecord& trial) {
  return {trial.problem_key, trial.device_key, trial.generator_version, trial.precision,
          trial.config_name, trial.median_ms,  trial.max_error,         trial.measured_at};
}

bool insert_trial(const Connection& connection, const TrialRecord& trial, Origin origin,
                  bool offer) {
  Statement insert(connection, fmt::format("INSERT OR IGNORE INTO trials ({}, origin) VALUES "
                                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                           kTrialColumns));
  insert.bind_all(trial.problem_key, trial.device_key, trial.generator_version,
                  to_string(trial.precision), trial.config_name, to_string(trial.status),
                  trial.reason, trial.median_ms, trial.min_ms, trial.max_ms);
  if (std::isfinite(trial.max_error)) {
    insert.bind(11, trial.max_error);
  } else {
    insert.bind_null(11);
  }
  insert.bind(12, trial.registers)
      .bind(13, trial.shared_bytes)
      .bind(14, trial.spill_bytes)
      .bind(15, trial.compile_ms)
      .bind(16, trial.measured_at)
      .bind(17, origin_text(origin))
      .run();
  bool inserted = sqlite3_changes(connection.handle()) == 1;
  if (inserted && offer && trial.status == Disposition::kOk) {
    offer_winner(connection, winner_of(trial), origin);
  }
  return inserted;
}

}  // namespace detail

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

namespace {

// PRAGMA integrity_check's rows, joined: "ok", or what is wrong.
std::string integrity_verdict(const Connection& connection) {
  std::string verdict;
  Statement statement(connection, "PRAGMA integrity_check");
  while (statement.step()) verdict += (verdict.empty() ? "" : "; ") + statement.column_text(0);
  return verdict;
}

// The whole file, cubin cache included, before the first write into a file we did not create:
// SQLite would otherwise build on a damaged page and spread the damage. A corrupt page that a
// read meets later is reported as corrupt by Connection::fail.
void verify_before_writing(const Connection& connection, const std::string& path) {
  std::string verdict;
  try {
    connection.read([&] { verdict = integrity_verdict(connection); });
  } catch (const sqlite::BusyError&) {
    throw;
  } catch (const DbError& e) {
    verdict = without_path(e.what(), path);
  }
  if (verdict != "ok") {
    throw DbError(fmt::format(
        "{}: the tuning DB is corrupt (integrity_check: {}); nothing was written to it, it was "
        "left as it is",
        path, text::printable(verdict.substr(0, 500))));
  }
}

std::unique_ptr<Connection> open_connection(const std::string& path, bool read_only) {
  if (read_only) return sqlite::open_read_only(path);
  if (path != ":memory:") {
    if (std::optional<std::string> why = sqlite::why_not_writable(path)) {
      throw DbError(
          fmt::format("{}: the tuning DB is read-only here: {}; nothing was written", path, *why));
    }
  }
  return std::make_unique<Connection>(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
}

void use_wal(const Connection& connection, const std::string& path) {
  if (connection.query_text("PRAGMA journal_mode") == "wal") return;
  connection.check_writes();
  // Changing the journal mode needs a moment alone with the file: retry while others hold it.
  for (int attempt = 0;; ++attempt) {
    try {
      std::string mode = connection.query_text("PRAGMA journal_mode = WAL");
      if (mode != "wal") {
        throw DbError(fmt::format("{}: cannot use the WAL journal (SQLite says '{}')", path, mode));
      }
      return;
    } catch (const sqlite::BusyError&) {
      if (attempt > 200) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
}

void migrate(const Connection& connection, const std::string& path, int64_t from_version) {
  for (int version = static_cast<int>(from_version); version < TuningDb::kSchemaVersion;) {
    connection.write([&] {
      // Another process may have migrated since we looked.
      Inspection now = inspect(connection);
      check_is_ours(path, now);
      version = static_cast<int>(now.user_version);
      if (version >= TuningDb::kSchemaVersion) return;
      if (version == 0) {
        connection.exec(fmt::format("PRAGMA application_id = {}", TuningDb::kApplicationId));
      }
      connection.exec_script(kMigrations[version], "migrating");
      // PRAGMA takes no bound parameters; the value is this build's own constant.
      connection.exec(fmt::format("PRAGMA user_version = {}", version + 1));
      ++version;
    });
  }
}

}  // namespace

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

void TuningDb::store_cubin(const std::string& cache_key, const std::vector<char>& cubin) {
  if (!is_hex_digest(cache_key)) {
    throw FieldError("cache_key", fmt::format("'{}' is not a cubin_cache_key() (64 hex digits)",
                                              text::printable(cache_key.substr(0, 100))));
  }
  if (cubin.empty()) throw FieldError("cubin", "is empty");
  if (cubin.size() > (size_t{1} << 30)) throw FieldError("cubin", "is larger than 1 GiB");
  std::string generator = generator_version();
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
        .bind(4, generator)
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

PruneReport TuningDb::prune(const PruneOptions& options) {
  std::string keep =
      options.keep_generator_version.empty() ? generator_version() : options.keep_generator_version;
  std::string cutoff;
  if (options.older_than_days) {
    double days = *options.older_than_days;
    if (!std::isfinite(days) || days < 0 || days > 1e6) {
      throw FieldError("older_than_days", fmt::format("{} is not a number of days", days));
    }
    auto then = std::chrono::system_clock::now() -
                std::chrono::duration_cast<std::chrono::system_clock::duration>(
                    std::chrono::duration<double>(days * 86400.0));
    auto micros =
        std::chrono::duration_cast<std::chrono::microseconds>(then.time_since_epoch()).count();
    std::time_t seconds = static_cast<std::time_t>(micros / 1000000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    cutoff = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", utc.tm_year + 1900,
                         utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                         micros % 1000000);
  }
  // One predicate per table, with ?1 = the kept generator version, ?2 = the cutoff time.
  const bool by_age = options.older_than_days.has_value();
  std::string trial_rows = by_age ? "measured_at < ?2" : "generator_version <> ?1";
  std::string winner_rows = by_age ? "updated_at < ?2" : "generator_version <> ?1";
  std::string cubin_rows = by_age ? "created_at < ?2" : "generator_version <> ?1";
  auto bind = [&](Statement& statement) {
    // A statement's predicates use ?1 or ?2 (SQLite numbers parameters up to the highest used).
    statement.bind(1, keep);
    if (statement.parameter_count() >= 2) statement.bind(2, cutoff);
    return &statement;
  };

  std::lock_guard lock(impl_->mutex);
  const Connection& connection = *impl_->connection;
  PruneReport report;
  // The same statements for a dry run and a real one; a dry run rolls back.
  auto body = [&] {
    report = PruneReport();
    {
      Statement statement(connection,
                          fmt::format("SELECT DISTINCT generator_version FROM ("
                                      "SELECT generator_version FROM trials WHERE {} UNION "
                                      "SELECT generator_version FROM winners WHERE {} UNION "
                                      "SELECT generator_version FROM cubin_cache WHERE {}) "
                                      "ORDER BY 1",
                                      trial_rows, winner_rows, cubin_rows));
      bind(statement);
      while (statement.step()) report.generator_versions.push_back(statement.column_text(0));
    }
    {
      Statement statement(connection,
                          fmt::format("SELECT {} FROM winners WHERE {} ORDER BY problem_key, "
                                      "device_key, generator_version, precision",
                                      kWinnerColumns, winner_rows));
      bind(statement);
      while (statement.step()) report.removed_winners.push_back(read_winner(statement));
      report.winners = static_cast<int64_t>(report.removed_winners.size());
    }
    {
      Statement statement(connection, "SELECT count(*) FROM trials WHERE " + trial_rows);
      bind(statement)->step();
      report.trials = statement.column_int(0);
    }
    {
      Statement statement(connection,
                          "SELECT count(*), coalesce(sum(length(cubin)), 0) FROM cubin_cache "
                          "WHERE " +
                              cubin_rows);
      bind(statement)->step();
      report.cubins = statement.column_int(0);
      report.cubin_bytes = statement.column_int(1);
    }
    if (options.dry_run) return;
    for (const std::string& where :
         {"DELETE FROM trials WHERE " + trial_rows, "DELETE FROM winners WHERE " + winner_rows,
          "DELETE FROM cubin_cache WHERE " + cubin_rows}) {
      Statement statement(connection, where);
      bind(statement)->run();
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

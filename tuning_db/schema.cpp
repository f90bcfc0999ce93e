#include "tuning_db/schema.hpp"

#include <fmt/format.h>

#include <chrono>
#include <iterator>
#include <string_view>
#include <thread>

#include "tuning_db/text.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::db::detail {

using sqlite::Connection;
using sqlite::Statement;

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

}  // namespace

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

}  // namespace deconvtune::db::detail

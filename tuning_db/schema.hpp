#pragma once
// Internal to tuning_db/: the schema and its migrations. A file is ours only when its application
// id is ours and its tables, indexes, triggers and views are exactly those this build's migrations
// make for its version (anything else is refused and left as it is); a fresh file is migrated
// from version 0, so every new DB runs the upgrade path too.
#include <cstdint>
#include <string>
#include <vector>

#include "tuning_db/sqlite.hpp"

namespace deconvtune::db::detail {

// One entry of sqlite_schema. `sql` is SQLite's stored text with runs of whitespace outside quotes
// made one space (whitespace cannot change what a statement means; everything else can).
struct SchemaObject {
  std::string type, name, table, sql;
  bool operator==(const SchemaObject& other) const {
    return type == other.type && name == other.name && table == other.table && sql == other.sql;
  }
};
using Schema = std::vector<SchemaObject>;  // ordered by type, then name

// What the file holds before we touch it.
struct Inspection {
  int64_t application_id = 0;
  int64_t user_version = 0;
  Schema schema;
  std::string tables;  // their names, for the message about a foreign file
};

Inspection inspect(const sqlite::Connection& connection);

// A file with no application id, no version and no schema: SQLite's empty database.
bool is_fresh(const Inspection& inspection);

// Throws DbError unless the file is ours (of a version this build reads) or fresh.
void check_is_ours(const std::string& path, const Inspection& inspection);

// Switches the file to the WAL journal, waiting while other processes hold it.
void use_wal(const sqlite::Connection& connection, const std::string& path);

// Runs the migrations from `from_version` up to TuningDb::kSchemaVersion, one transaction each,
// looking again inside each (another process may have migrated since).
void migrate(const sqlite::Connection& connection, const std::string& path, int64_t from_version);

}  // namespace deconvtune::db::detail

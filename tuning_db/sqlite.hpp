#pragma once
// Internal to tuning_db/: a thin RAII layer over SQLite's C API. A Connection owns the handle, a
// Statement owns a prepared statement and takes values only as bound parameters. Every SQLite
// error becomes a DbError naming the DB's path and SQLite's reason; SQLITE_BUSY and SQLITE_LOCKED
// become BusyError so that callers can retry the whole transaction (see Connection::write).
#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tuning_db/tuning_db.hpp"

namespace deconvtune::db::sqlite {

// The database was locked by another connection for longer than busy_timeout: retry.
class BusyError : public DbError {
 public:
  using DbError::DbError;
};

class Connection;

class Statement {
 public:
  Statement(const Connection& connection, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are numbered from 1, as in SQLite.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, double value);  // NaN is stored as NULL (SQLite's rule)
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const std::string& value) {
    return bind(index, std::string_view(value));
  }
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind_blob(int index, const void* data, size_t size);
  Statement& bind_null(int index);
  template <typename... Values>
  Statement& bind_all(const Values&... values) {
    int index = 0;
    (bind(++index, values), ...);
    return *this;
  }

  // true: a row is ready; false: done. Throws BusyError / DbError.
  bool step();
  // Steps to completion, ignoring rows.
  void run();
  void reset();

  int column_type(int column) const;  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, ...
  bool is_null(int column) const { return column_type(column) == SQLITE_NULL; }
  int64_t column_int(int column) const;
  double column_double(int column) const;
  std::string column_text(int column) const;
  std::vector<char> column_blob(int column) const;
  std::string column_name(int column) const;
  int column_count() const;
  int parameter_count() const;

 private:
  const Connection& connection_;
  sqlite3_stmt* statement_ = nullptr;
};

class Connection {
 public:
  // Opens without touching the file's content. `flags` as sqlite3_open_v2 takes them.
  Connection(const std::string& path, int flags);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

  // Runs SQL that takes no parameters (pragmas, DDL, BEGIN/COMMIT).
  void exec(std::string_view sql) const;
  // The first column of the first row of a parameterless query, as text ("" when no row).
  std::string query_text(std::string_view sql) const;
  int64_t query_int(std::string_view sql) const;

  // Throws BusyError or DbError for `code`, with SQLite's message for this connection.
  [[noreturn]] void fail(int code, std::string_view what) const;

  // `body` in one BEGIN IMMEDIATE transaction, retried from the start while another connection
  // holds the lock (busy_timeout waits first), up to `retry_seconds` in all. Any other error rolls
  // back and propagates.
  void write(const std::function<void()>& body, double retry_seconds = 120) const;
  // `body` in one read transaction (a consistent snapshot), retried likewise.
  void read(const std::function<void()>& body, double retry_seconds = 120) const;

 private:
  void transaction(const char* begin, const std::function<void()>& body,
                   double retry_seconds) const;

  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace deconvtune::db::sqlite

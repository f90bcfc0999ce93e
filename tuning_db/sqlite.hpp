#pragma once
// Internal to tuning_db/: a thin RAII layer over SQLite's C API. A Connection owns the handle, a
// Statement owns a prepared statement and takes values only as bound parameters. Every SQLite
// error becomes a DbError naming the DB's path and SQLite's reason; SQLITE_BUSY and SQLITE_LOCKED
// become BusyError so that callers can retry the whole transaction (see Connection::write).
//
// Every connection treats its file as untrusted: SQLITE_DBCONFIG_DEFENSIVE on, TRUSTED_SCHEMA off,
// triggers and views disabled (a deconvtune DB has none; TuningDb also refuses a file that holds
// any), and each statement is stopped, as a DbError, when it runs longer than the query limit.
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
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

// A read-only connection met a DB that a crash or a power loss left in the middle of a transaction
// (a hot -journal to roll back, a -wal index to rebuild): only a connection that may write can
// repair it. Not a sign of damage.
class NeedsWriterError : public DbError {
 public:
  using DbError::DbError;
};

// How long one statement may run, from its first step to its last, before it is stopped: 60 s,
// or $DECONVTUNE_DB_QUERY_SECONDS (for tests; a value that is not a number of seconds in
// (0, 604800] raises DbError naming the variable). Generous for any real DB: a full
// integrity_check of a 20 MB DB takes well under a second (docs/reliability.md).
double query_limit_seconds();

// Why this process cannot write the DB file at `path` or create the -wal, -shm and -journal files
// that SQLite puts beside it: "the folder X is not writable", "X is on a read-only file system",
// "the file is not writable"; nullopt when it can.
std::optional<std::string> why_not_writable(const std::string& path);

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
  void finished();

  const Connection& connection_;
  sqlite3_stmt* statement_ = nullptr;
  bool running_ = false;  // between the first step and done / reset: the query clock runs
};

class Connection {
 public:
  // Opens without touching the file's content. `flags` as sqlite3_open_v2 takes them. `immutable`:
  // read-only, through a URI with immutable=1 (no locks, no -wal or -shm: for a file that nobody
  // can change, on a read-only mount or in a folder nobody may write).
  Connection(const std::string& path, int flags, bool immutable = false);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }

  // Runs SQL that takes no parameters (pragmas, DDL, BEGIN/COMMIT).
  void exec(std::string_view sql) const;
  // Runs a script of several statements (the migrations), under one query limit.
  void exec_script(const char* sql, std::string_view what) const;
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

  // `check` must pass before this connection writes for the first time (TuningDb: integrity_check
  // of a file it did not create). Until it has, a leftover -wal is not checkpointed on close. When
  // it throws DbError, every write throws that error again and never starts.
  void guard_writes(std::function<void()> check);
  // Runs the pending guard, or throws its refusal; write() calls it, so do other writes (PRAGMA
  // journal_mode) before they start.
  void check_writes() const;

  void set_query_limit(double seconds) { query_limit_ = seconds; }

  // While one of these lives, the query clock runs (the first one starts it): what a statement or
  // script holds while it runs, so that statements nested in another share its deadline.
  class Running {
   public:
    explicit Running(const Connection& connection) : connection_(connection) {
      acquire(connection);
    }
    ~Running() { release(connection_); }
    // The same by hand, for a statement, whose run spans several calls.
    static void acquire(const Connection& connection);
    static void release(const Connection& connection);
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;

   private:
    const Connection& connection_;
  };

 private:
  void transaction(const char* begin, const std::function<void()>& body,
                   double retry_seconds) const;
  static int on_progress(void* connection);

  sqlite3* db_ = nullptr;
  std::string path_;
  double query_limit_ = 60;
  mutable int running_ = 0;
  mutable std::chrono::steady_clock::time_point deadline_;
  mutable bool timed_out_ = false;
  mutable std::function<void()> write_guard_;
  mutable std::optional<std::string> write_refusal_;
};

// Opens an existing DB file for reading only. SQLite reads a WAL-mode file through its -shm, which
// it creates beside the file when absent; where it cannot (why_not_writable), the file is opened
// immutable instead, unless a -wal holds transactions that only that -shm could index (DbError
// saying so: reading without them would give stale rows).
std::unique_ptr<Connection> open_read_only(const std::string& path);

}  // namespace deconvtune::db::sqlite

#include "tuning_db/sqlite.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

namespace deconvtune::db::sqlite {

namespace {

bool is_busy(int code) {
  int primary = code & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

// The progress handler runs every this many virtual-machine steps: ~10 us apart, far finer than
// any limit and too rare to cost anything measurable.
constexpr int kProgressSteps = 1000;

// A file URI for `path` (https://www.sqlite.org/uri.html): absolute, every byte outside the
// unreserved set %-escaped, so that '?', '#' and '%' in a name stay part of the name.
std::string file_uri(const std::string& path) {
  std::string absolute = std::filesystem::absolute(path).string();
  std::string uri = "file:";
  for (unsigned char c : absolute) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '/' || c == '-' || c == '.' || c == '_' || c == '~';
    uri += plain ? std::string(1, static_cast<char>(c)) : fmt::format("%{:02X}", c);
  }
  return uri;
}

bool is_writable(const std::string& path) {
  // The effective ids decide what this process may do (root may write a 0555 folder).
  return faccessat(AT_FDCWD, path.c_str(), W_OK, AT_EACCESS) == 0;
}

// Bytes 18 and 19 of the header are 2 for a WAL-mode file (https://www.sqlite.org/fileformat.html).
bool is_wal_mode(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::array<char, 20> header{};
  file.read(header.data(), header.size());
  return file.gcount() == 20 && (header[18] == 2 || header[19] == 2);
}

}  // namespace

double query_limit_seconds() {
  const char* text = std::getenv("DECONVTUNE_DB_QUERY_SECONDS");
  if (text == nullptr || *text == '\0') return 60;
  char* end = nullptr;
  errno = 0;
  double seconds = std::strtod(text, &end);
  if (errno != 0 || *end != '\0' || !(seconds > 0) || seconds > 604800) {
    throw DbError(fmt::format(
        "DECONVTUNE_DB_QUERY_SECONDS='{}' is not a number of seconds in (0, 604800]", text));
  }
  return seconds;
}

std::optional<std::string> why_not_writable(const std::string& path) {
  namespace fs = std::filesystem;
  std::string folder = fs::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  struct statvfs info {};
  if (statvfs(folder.c_str(), &info) == 0 && (info.f_flag & ST_RDONLY)) {
    return fmt::format("{} is on a read-only file system", folder);
  }
  std::error_code ignored;
  if (fs::exists(path, ignored) && !is_writable(path)) {
    return std::string("the file is not writable (its permissions)");
  }
  if (!is_writable(folder)) {
    return fmt::format(
        "the folder {} is not writable (SQLite creates the -wal and -shm files beside the DB)",
        folder);
  }
  return std::nullopt;
}

std::unique_ptr<Connection> open_read_only(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ignored;
  bool immutable = false;
  if (is_wal_mode(path) && !fs::exists(path + "-shm", ignored)) {
    if (std::optional<std::string> why = why_not_writable(path)) {
      std::error_code size_error;
      auto wal_size = fs::file_size(path + "-wal", size_error);
      if (!size_error && wal_size > 0) {
        throw DbError(fmt::format(
            "{}: cannot read the tuning DB: {}-wal holds transactions that are not in the file "
            "yet, its -shm index is missing and cannot be made ({}); open it once where it can "
            "be written (any deconvtune db command does)",
            path, path, *why));
      }
      // Nothing to index: the file alone is the whole DB.
      immutable = true;
    }
  }
  return std::make_unique<Connection>(path, SQLITE_OPEN_READONLY, immutable);
}

Connection::Connection(const std::string& path, int flags, bool immutable) : path_(path) {
  std::string name = immutable ? file_uri(path) + "?mode=ro&immutable=1" : path;
  if (immutable) flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI;
  query_limit_ = query_limit_seconds();
  int code = sqlite3_open_v2(name.c_str(), &db_, flags | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (code != SQLITE_OK) {
    std::string reason = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw DbError(fmt::format("{}: cannot open the tuning DB: {}", path, reason));
  }
  sqlite3_extended_result_codes(db_, 1);
  // The file may come from anyone (https://www.sqlite.org/security.html): no SQL of its own runs,
  // no function it names has side effects, and it cannot make SQLite corrupt it further.
  const std::pair<int, int> settings[] = {{SQLITE_DBCONFIG_DEFENSIVE, 1},
                                          {SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0},
                                          {SQLITE_DBCONFIG_ENABLE_TRIGGER, 0},
                                          {SQLITE_DBCONFIG_ENABLE_VIEW, 0}};
  for (auto [option, value] : settings) {
    int now = -1;
    if (sqlite3_db_config(db_, option, value, &now) != SQLITE_OK || now != value) {
      sqlite3_close_v2(db_);
      db_ = nullptr;
      throw DbError(
          fmt::format("{}: this SQLite ({}) lacks option {} that guards against hostile "
                      "files",
                      path, sqlite3_libversion(), option));
    }
  }
  sqlite3_progress_handler(db_, kProgressSteps, &Connection::on_progress, this);
}

Connection::~Connection() { sqlite3_close_v2(db_); }

void Connection::fail(int code, std::string_view what) const {
  std::string detail = sqlite3_errmsg(db_);
  std::string generic = sqlite3_errstr(code);
  if (detail != generic) detail += " (" + generic + ")";
  int primary = code & 0xff;
  if (primary == SQLITE_INTERRUPT && timed_out_) {
    timed_out_ = false;
    throw DbError(fmt::format(
        "{}: the query took too long: {} ran past the limit of {} s (a damaged or hostile DB "
        "file?); it was stopped",
        path_, what, query_limit_));
  }
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    // Found while reading: the file is damaged. Say so plainly; SQLite never repairs or rewrites.
    throw DbError(fmt::format("{}: the tuning DB is corrupt ({}, while {}); it was left as it is",
                              path_, detail, what));
  }
  if (code == SQLITE_READONLY_ROLLBACK || code == SQLITE_READONLY_RECOVERY) {
    throw NeedsWriterError(fmt::format(
        "{}: the tuning DB cannot be read as it is: a transaction was cut short (a crash or a "
        "power loss) and only a process that may write the DB can {}; open it read-write "
        "once where it can be written (any `deconvtune db` command does); nothing was changed",
        path_, code == SQLITE_READONLY_ROLLBACK ? "roll it back" : "recover it"));
  }
  if (primary == SQLITE_IOERR || primary == SQLITE_FULL) {
    // SQLite keeps a transaction whole or not at all whatever the disk does (tests/
    // test_db_faults.cpp fails every write, sync, truncate and delete of one in turn).
    throw DbError(fmt::format(
        "{}: the disk failed while {} ({}); the DB stays consistent (a transaction is kept "
        "whole or not at all): fix the disk or free space, then run again",
        path_, what, detail));
  }
  std::string message = fmt::format("{}: {}: {}", path_, what, detail);
  if (is_busy(code)) throw BusyError(message);
  throw DbError(message);
}

void Connection::exec(std::string_view sql) const { Statement(*this, sql).run(); }

void Connection::exec_script(const char* sql, std::string_view what) const {
  Running running(*this);
  char* message = nullptr;
  int code = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (code != SQLITE_OK) {
    std::string reason = message ? message : sqlite3_errstr(code);
    sqlite3_free(message);
    fail(code, fmt::format("{}: {}", what, reason));
  }
}

int Connection::on_progress(void* context) {
  const Connection& connection = *static_cast<const Connection*>(context);
  if (connection.running_ > 0 && std::chrono::steady_clock::now() > connection.deadline_) {
    connection.timed_out_ = true;
    return 1;  // SQLite stops the statement with SQLITE_INTERRUPT
  }
  return 0;
}

void Connection::Running::acquire(const Connection& connection) {
  if (connection.running_++ == 0) {
    connection.timed_out_ = false;
    connection.deadline_ = std::chrono::steady_clock::now() +
                           std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                               std::chrono::duration<double>(connection.query_limit_));
  }
}

void Connection::Running::release(const Connection& connection) { --connection.running_; }

void Connection::guard_writes(std::function<void()> check) {
  write_guard_ = std::move(check);
  write_refusal_.reset();
  // A -wal left by a writer that died is copied into the file when the last connection closes:
  // not before the file has passed the check.
  sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
}

void Connection::check_writes() const {
  if (write_guard_) {
    std::function<void()> check = write_guard_;
    try {
      check();
    } catch (const BusyError&) {
      throw;  // not a verdict: the next write checks again
    } catch (const DbError& e) {
      write_refusal_ = e.what();
    }
    write_guard_ = nullptr;
    if (!write_refusal_) sqlite3_db_config(db_, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
  }
  if (write_refusal_) throw DbError(*write_refusal_);
}

std::string Connection::query_text(std::string_view sql) const {
  Statement statement(*this, sql);
  return statement.step() ? statement.column_text(0) : std::string();
}

int64_t Connection::query_int(std::string_view sql) const {
  Statement statement(*this, sql);
  return statement.step() ? statement.column_int(0) : 0;
}

void Connection::transaction(const char* begin, const std::function<void()>& body,
                             double retry_seconds) const {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(retry_seconds);
  std::minstd_rand jitter(static_cast<unsigned>(Clock::now().time_since_epoch().count()));
  for (int attempt = 0;; ++attempt) {
    try {
      exec(begin);
      try {
        body();
        // COMMIT may itself be refused as busy; the transaction then stays open, so retry it
        // a few times before giving the whole attempt up.
        for (int commit_try = 0;; ++commit_try) {
          try {
            exec("COMMIT");
            break;
          } catch (const BusyError&) {
            if (commit_try >= 20) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(5 + commit_try * 5));
          }
        }
      } catch (...) {
        if (!sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
      return;
    } catch (const BusyError& busy) {
      if (Clock::now() >= deadline) {
        throw DbError(fmt::format("{} (still locked by another process after {:.0f} s)",
                                  busy.what(), retry_seconds));
      }
      // Back off with jitter so competing writers do not retry in lockstep.
      int ceiling_ms = std::min(200, 2 << std::min(attempt, 7));
      std::this_thread::sleep_for(std::chrono::milliseconds(1 + jitter() % ceiling_ms));
    }
  }
}

void Connection::write(const std::function<void()>& body, double retry_seconds) const {
  check_writes();
  transaction("BEGIN IMMEDIATE", body, retry_seconds);
}

void Connection::read(const std::function<void()>& body, double retry_seconds) const {
  transaction("BEGIN", body, retry_seconds);
}

Statement::Statement(const Connection& connection, std::string_view sql) : connection_(connection) {
  int code = sqlite3_prepare_v2(connection.handle(), sql.data(), static_cast<int>(sql.size()),
                                &statement_, nullptr);
  if (code != SQLITE_OK) connection.fail(code, fmt::format("preparing `{}`", sql.substr(0, 60)));
}

Statement::~Statement() {
  finished();
  sqlite3_finalize(statement_);
}

void Statement::finished() {
  if (running_) {
    running_ = false;
    Connection::Running::release(connection_);
  }
}

Statement& Statement::bind(int index, int64_t value) {
  int code = sqlite3_bind_int64(statement_, index, value);
  if (code != SQLITE_OK) connection_.fail(code, "binding a parameter");
  return *this;
}

Statement& Statement::bind(int index, double value) {
  int code = sqlite3_bind_double(statement_, index, value);
  if (code != SQLITE_OK) connection_.fail(code, "binding a parameter");
  return *this;
}

Statement& Statement::bind(int index, std::string_view value) {
  int code = sqlite3_bind_text64(statement_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
  if (code != SQLITE_OK) connection_.fail(code, "binding a parameter");
  return *this;
}

Statement& Statement::bind_blob(int index, const void* data, size_t size) {
  int code = sqlite3_bind_blob64(statement_, index, size ? data : "", size, SQLITE_TRANSIENT);
  if (code != SQLITE_OK) connection_.fail(code, "binding a parameter");
  return *this;
}

Statement& Statement::bind_null(int index) {
  int code = sqlite3_bind_null(statement_, index);
  if (code != SQLITE_OK) connection_.fail(code, "binding a parameter");
  return *this;
}

bool Statement::step() {
  if (!running_) {
    Connection::Running::acquire(connection_);
    running_ = true;
  }
  int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  finished();
  if (code == SQLITE_DONE) return false;
  connection_.fail(
      code, fmt::format("running `{}`", std::string_view(sqlite3_sql(statement_)).substr(0, 60)));
}

void Statement::run() {
  while (step()) {
  }
}

void Statement::reset() {
  finished();
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

int Statement::column_type(int column) const { return sqlite3_column_type(statement_, column); }

int64_t Statement::column_int(int column) const { return sqlite3_column_int64(statement_, column); }

double Statement::column_double(int column) const {
  return sqlite3_column_double(statement_, column);
}

std::string Statement::column_text(int column) const {
  const unsigned char* text = sqlite3_column_text(statement_, column);
  int size = sqlite3_column_bytes(statement_, column);
  return text ? std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size))
              : std::string();
}

std::vector<char> Statement::column_blob(int column) const {
  const char* data = static_cast<const char*>(sqlite3_column_blob(statement_, column));
  int size = sqlite3_column_bytes(statement_, column);
  return data ? std::vector<char>(data, data + size) : std::vector<char>();
}

std::string Statement::column_name(int column) const {
  const char* name = sqlite3_column_name(statement_, column);
  return name ? name : "";
}

int Statement::column_count() const { return sqlite3_column_count(statement_); }

int Statement::parameter_count() const { return sqlite3_bind_parameter_count(statement_); }

}  // namespace deconvtune::db::sqlite

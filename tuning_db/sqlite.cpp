#include "tuning_db/sqlite.hpp"

#include <fmt/format.h>

#include <chrono>
#include <random>
#include <thread>

namespace deconvtune::db::sqlite {

namespace {

bool is_busy(int code) {
  int primary = code & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

}  // namespace

Connection::Connection(const std::string& path, int flags) : path_(path) {
  int code = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (code != SQLITE_OK) {
    std::string reason = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(code);
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw DbError(fmt::format("{}: cannot open the tuning DB: {}", path, reason));
  }
  sqlite3_extended_result_codes(db_, 1);
}

Connection::~Connection() { sqlite3_close_v2(db_); }

void Connection::fail(int code, std::string_view what) const {
  std::string detail = sqlite3_errmsg(db_);
  std::string generic = sqlite3_errstr(code);
  if (detail != generic) detail += " (" + generic + ")";
  int primary = code & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) {
    // Found while reading: the file is damaged. Say so plainly; SQLite never repairs or rewrites.
    throw DbError(fmt::format("{}: the tuning DB is corrupt ({}, while {}); it was left as it is",
                              path_, detail, what));
  }
  std::string message = fmt::format("{}: {}: {}", path_, what, detail);
  if (is_busy(code)) throw BusyError(message);
  throw DbError(message);
}

void Connection::exec(std::string_view sql) const { Statement(*this, sql).run(); }

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

Statement::~Statement() { sqlite3_finalize(statement_); }

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
  int code = sqlite3_step(statement_);
  if (code == SQLITE_ROW) return true;
  if (code == SQLITE_DONE) return false;
  connection_.fail(
      code, fmt::format("running `{}`", std::string_view(sqlite3_sql(statement_)).substr(0, 60)));
}

void Statement::run() {
  while (step()) {
  }
}

void Statement::reset() {
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

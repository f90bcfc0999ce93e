#include "tuning_db/db_file.hpp"

#include <fmt/format.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>

#include "tuning_db/text.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::db::detail {

using sqlite::Connection;
using sqlite::Statement;

namespace {

// The SQLite header's magic, checked before SQLite opens the file, so that a file of another kind
// is refused without SQLite ever touching it.
constexpr std::string_view kSqliteMagic{"SQLite format 3\0", 16};

}  // namespace

std::string without_path(const std::string& message, const std::string& path) {
  std::string prefix = path + ": ";
  return message.compare(0, prefix.size(), prefix) == 0 ? message.substr(prefix.size()) : message;
}

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

}  // namespace deconvtune::db::detail

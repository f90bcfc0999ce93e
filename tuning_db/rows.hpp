#pragma once
// Internal to tuning_db/: how the records of tuning_db.hpp are read from rows (in the column order
// of kTrialColumns, kWinnerColumns and kDeviceColumns) and how queries bind a key. A stored value
// this build cannot read (an unknown precision or disposition) is a DbError, never a guess.
#include <mutex>
#include <string>
#include <vector>

#include "tuning_db/detail.hpp"
#include "tuning_db/sqlite.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::db::detail {

TrialRecord read_trial(const sqlite::Statement& statement);
// Queries that select it put the origin after kWinnerColumns (WinnerRecord::imported).
WinnerRecord read_winner(const sqlite::Statement& statement);
DeviceRecord read_device(const sqlite::Statement& statement);

// Binds the key's four parts to parameters first .. first + 3.
sqlite::Statement& bind_key(sqlite::Statement& statement, int first, const WinnerKey& key);

// One read transaction (retried whole when SQLite is busy): prepares `sql`, lets `bind` set its
// parameters and returns `read` of every row.
template <typename Row, typename Bind, typename Read>
std::vector<Row> select_rows(const TuningDb::Impl& impl, const std::string& sql, const Bind& bind,
                             const Read& read) {
  std::lock_guard lock(impl.mutex);
  const sqlite::Connection& connection = *impl.connection;
  std::vector<Row> rows;
  connection.read([&] {
    rows.clear();
    sqlite::Statement statement(connection, sql);
    bind(statement);
    while (statement.step()) rows.push_back(read(statement));
  });
  return rows;
}

// The Bind of select_rows for a query without parameters.
inline constexpr auto kNoParameters = [](sqlite::Statement&) {};

}  // namespace deconvtune::db::detail

// The rows of tuning_db/rows.hpp read back into records, and the writers of detail.hpp that
// tuning_db.cpp and exchange.cpp share: a trial inserted once, a winner offered under the support
// rule.
#include "tuning_db/rows.hpp"

#include <fmt/format.h>

#include <cmath>

#include "codegen/config.hpp"
#include "tuning_db/text.hpp"

namespace deconvtune::db::detail {

using sqlite::Connection;
using sqlite::Statement;

namespace {

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

// The five columns every trial and winner query selects first: the winner key and the config.
template <typename Record>
void read_key_columns(const Statement& statement, Record& record) {
  record.problem_key = statement.column_text(0);
  record.device_key = statement.column_text(1);
  record.generator_version = statement.column_text(2);
  record.precision = read_precision(statement, 3);
  record.config_name = statement.column_text(4);
}

}  // namespace

TrialRecord read_trial(const Statement& statement) {
  TrialRecord trial;
  read_key_columns(statement, trial);
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
  read_key_columns(statement, winner);
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

namespace {

const char* origin_text(detail::Origin origin) {
  return origin == detail::Origin::kLocal ? "local" : "imported";
}

}  // namespace

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

}  // namespace deconvtune::db::detail

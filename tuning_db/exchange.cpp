#include "tuning_db/exchange.hpp"

#include <fmt/format.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "codegen/problem.hpp"
#include "codegen/untrusted.hpp"
#include "tuning_db/detail.hpp"
#include "tuning_db/text.hpp"

namespace deconvtune::db {

using json = nlohmann::json;
using sqlite::Connection;
using sqlite::Statement;

ImportError::ImportError(std::string where, std::string rule)
    : DbError(fmt::format("{}: {}", where, rule)),
      where_(std::move(where)),
      rule_(std::move(rule)) {}

ExportFormat parse_export_format(std::string_view text) {
  if (text == "json") return ExportFormat::kJson;
  if (text == "csv") return ExportFormat::kCsv;
  throw std::invalid_argument(
      fmt::format("'{}' is not an export format (json or csv)", text::printable(text)));
}

namespace {

constexpr size_t kMaxRows = 5'000'000;  // per section: far beyond any real tuning DB
constexpr int kMaxNesting = 16;         // an export nests 5 deep

// ---------------------------------------------------------------------------------------------
// Export: raw rows to JSON, keeping SQLite's value types, so that a hostile DB file's wrong types
// reach the validator as wrong types.

json value_of(const Statement& statement, int column) {
  switch (statement.column_type(column)) {
    case SQLITE_INTEGER:
      return statement.column_int(column);
    case SQLITE_FLOAT:
      return statement.column_double(column);
    case SQLITE_TEXT:
      return statement.column_text(column);
    case SQLITE_NULL:
      return nullptr;
    default:
      return json::binary(std::vector<std::uint8_t>());  // a blob: the validator refuses it
  }
}

json rows(const Connection& connection, const std::string& sql) {
  json result = json::array();
  Statement statement(connection, sql);
  while (statement.step()) {
    json row = json::object();
    for (int column = 0; column < statement.column_count(); ++column) {
      row[statement.column_name(column)] = value_of(statement, column);
    }
    result.push_back(std::move(row));
  }
  return result;
}

json export_json(const TuningDb& db, bool all) {
  std::lock_guard lock(db.impl().mutex);
  const Connection& connection = *db.impl().connection;
  json document;
  connection.read([&] {
    document = json::object();
    document["format"] = kExchangeFormat;
    document["version"] = kExchangeVersion;
    document["content"] = all ? "all" : "winners";
    std::string device_filter = all ? "" : " WHERE key IN (SELECT device_key FROM winners)";
    std::string problem_filter = all ? "" : " WHERE key IN (SELECT problem_key FROM winners)";
    document["devices"] = rows(connection, fmt::format("SELECT key, {} FROM devices{} ORDER BY key",
                                                       kDeviceColumns, device_filter));
    json problems =
        rows(connection, "SELECT key, spec FROM problems" + problem_filter + " ORDER BY key");
    for (json& problem : problems) {
      // Stored as compact JSON text; exported as the object itself.
      if (problem["spec"].is_string()) {
        try {
          problem["spec"] =
              parse_untrusted_json(problem["spec"].get<std::string>(), kMaxProblemNesting);
        } catch (const UntrustedJsonError&) {
          // A damaged row is exported as the text it holds; import then refuses it by name.
        }
      }
    }
    document["problems"] = std::move(problems);
    document["winners"] =
        rows(connection, fmt::format("SELECT {} FROM winners ORDER BY problem_key, device_key, "
                                     "generator_version, precision",
                                     kWinnerColumns));
    // A winner travels with the trials that back it: import accepts no winner without one.
    std::string trial_filter =
        all ? ""
            : " WHERE status = 'ok' AND EXISTS (SELECT 1 FROM winners w WHERE "
              "w.problem_key = trials.problem_key AND w.device_key = trials.device_key AND "
              "w.generator_version = trials.generator_version AND w.precision = trials.precision "
              "AND w.config_name = trials.config_name AND w.median_ms = trials.median_ms)";
    document["trials"] =
        rows(connection, fmt::format("SELECT {} FROM trials{} ORDER BY problem_key, device_key, "
                                     "generator_version, precision, config_name, measured_at, id",
                                     kTrialColumns, trial_filter));
  });
  return document;
}

std::string csv_field(const json& value) {
  if (value.is_null()) return "";
  if (value.is_number_float()) return fmt::format("{}", value.get<double>());
  if (value.is_number()) return value.dump();
  std::string text = value.is_string() ? value.get<std::string>() : value.dump();
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    quoted += c;
    if (c == '"') quoted += '"';
  }
  return quoted + "\"";
}

std::string csv_table(const json& table, const char* columns) {
  std::vector<std::string> names;
  std::string_view rest = columns;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view name = rest.substr(0, comma);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    names.emplace_back(name);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? "," : "") + names[i];
  out += "\n";
  for (const json& row : table) {
    for (size_t i = 0; i < names.size(); ++i) {
      out += (i ? "," : "") + csv_field(row.contains(names[i]) ? row[names[i]] : json());
    }
    out += "\n";
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Validation of a document

std::string rule_of(const FieldError& error) {
  std::string what = error.what();
  std::string prefix = error.field() + ": ";
  return what.compare(0, prefix.size(), prefix) == 0 ? what.substr(prefix.size()) : what;
}

std::string shown(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return text::printable(text);
}

// Reads the fields of one JSON object, naming each fault by its path in the document.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {
    if (!object_.is_object()) {
      throw ImportError(where_, fmt::format("must be an object, got {}", object_.type_name()));
    }
  }

  std::string at(const std::string& name) const { return where_ + "." + name; }

  const json& field(const std::string& name) {
    auto found = object_.find(name);
    if (found == object_.end()) throw ImportError(at(name), "is missing");
    seen_.insert(name);
    return *found;
  }
  bool has(const std::string& name) const { return object_.contains(name); }

  std::string string(const std::string& name) {
    const json& value = field(name);
    if (!value.is_string()) {
      throw ImportError(
          at(name), fmt::format("must be a string, got {} {}", value.type_name(), shown(value)));
    }
    return value.get<std::string>();
  }

  int64_t integer(const std::string& name) {
    const json& value = field(name);
    if (value.is_number_unsigned() &&
        value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      throw ImportError(at(name), fmt::format("{} is out of range", shown(value)));
    }
    if (!value.is_number_integer()) {
      throw ImportError(
          at(name), fmt::format("must be an integer, got {} {}", value.type_name(), shown(value)));
    }
    return value.get<int64_t>();
  }

  int int32(const std::string& name) {
    int64_t value = integer(name);
    if (value < std::numeric_limits<int>::min() || value > std::numeric_limits<int>::max()) {
      throw ImportError(at(name), fmt::format("{} is out of range", value));
    }
    return static_cast<int>(value);
  }

  // A number; null reads as NaN only where `null_is_nan` (a failed trial's unknown error).
  double number(const std::string& name, bool null_is_nan = false) {
    const json& value = field(name);
    if (null_is_nan && value.is_null()) return std::nan("");
    if (!value.is_number()) {
      throw ImportError(
          at(name), fmt::format("must be a number, got {} {}", value.type_name(), shown(value)));
    }
    return value.get<double>();
  }

  Precision precision(const std::string& name) {
    std::string text = string(name);
    try {
      return parse_precision(text);
    } catch (const std::invalid_argument& e) {
      throw ImportError(at(name), e.what());
    }
  }

  // Every field must have been read: an unknown one is a typo or a different format.
  void finish() const {
    for (const auto& item : object_.items()) {
      if (!seen_.count(item.key())) {
        throw ImportError(at(text::printable(item.key())), "is not a known field here");
      }
    }
  }

 private:
  const json& object_;
  std::string where_;
  std::set<std::string> seen_;
};

template <typename Validate>
void checked(const std::string& where, Validate validate) {
  try {
    validate();
  } catch (const FieldError& e) {
    throw ImportError(where + "." + e.field(), rule_of(e));
  }
}

const json& section(ObjectReader& document, const std::string& name) {
  const json& rows = document.field(name);
  if (!rows.is_array()) {
    throw ImportError(name, fmt::format("must be an array, got {}", rows.type_name()));
  }
  if (rows.size() > kMaxRows) {
    throw ImportError(name, fmt::format("has {} rows, more than {}", rows.size(), kMaxRows));
  }
  return rows;
}

// The document's format, version and content ("winners" or "all"), checked.
std::string read_preamble(ObjectReader& document) {
  std::string format = document.string("format");
  if (format != kExchangeFormat) {
    throw ImportError("format", fmt::format("'{}' is not '{}': not a deconvtune tuning DB export",
                                            text::printable(format), kExchangeFormat));
  }
  int64_t version = document.integer("version");
  if (version > kExchangeVersion) {
    throw ImportError("version", fmt::format("{} is newer than this build reads ({}); update "
                                             "deconvtune",
                                             version, kExchangeVersion));
  }
  if (version != kExchangeVersion) {
    throw ImportError("version", fmt::format("{} is not a version of the format", version));
  }
  std::string content = document.string("content");
  if (content != "winners" && content != "all") {
    throw ImportError("content",
                      fmt::format("'{}' is neither 'winners' nor 'all'", text::printable(content)));
  }
  return content;
}

void read_devices(ObjectReader& document, ExchangeDocument& result) {
  std::set<std::string> device_keys;
  const json& devices = section(document, "devices");
  for (size_t i = 0; i < devices.size(); ++i) {
    std::string where = fmt::format("devices[{}]", i);
    ObjectReader row(devices[i], where);
    DeviceRecord device;
    std::string key = row.string("key");
    device.name = row.string("name");
    device.arch = row.string("arch");
    device.sm_count = row.int32("sm_count");
    device.driver_version = row.int32("driver_version");
    device.nvrtc_version = row.string("nvrtc_version");
    // Exports of schema version 3 and older have none: not measured.
    if (row.has("copy_gbps")) device.copy_gbps = row.number("copy_gbps");
    row.finish();
    checked(where, [&] { validate_device(device); });
    if (key != device.key()) {
      throw ImportError(where + ".key", fmt::format("'{}' is not the key of this device ('{}')",
                                                    text::printable(key), device.key()));
    }
    if (!device_keys.insert(key).second) {
      throw ImportError(where + ".key", "appears twice among the devices");
    }
    result.devices.push_back(device);
  }
}

void read_problems(ObjectReader& document, ExchangeDocument& result) {
  std::set<std::string> problem_keys;
  const json& problems = section(document, "problems");
  for (size_t i = 0; i < problems.size(); ++i) {
    std::string where = fmt::format("problems[{}]", i);
    ObjectReader row(problems[i], where);
    std::string key = row.string("key");
    const json& spec = row.field("spec");
    row.finish();
    Problem problem;
    try {
      problem = Problem::from_json(spec);
    } catch (const ProblemError& e) {
      throw ImportError(where + ".spec." + e.field(), e.what());
    } catch (const std::exception& e) {
      throw ImportError(where + ".spec", e.what());
    }
    if (key != problem.key()) {
      throw ImportError(where + ".key", fmt::format("'{}' is not the key of its spec ('{}')",
                                                    text::printable(key), problem.key()));
    }
    if (!problem_keys.insert(key).second) {
      throw ImportError(where + ".key", "appears twice among the problems");
    }
    result.problems.push_back({key, problem.to_json().dump()});
  }
}

void read_winners(ObjectReader& document, ExchangeDocument& result) {
  std::set<std::string> winner_keys;
  const json& winners = section(document, "winners");
  for (size_t i = 0; i < winners.size(); ++i) {
    std::string where = fmt::format("winners[{}]", i);
    ObjectReader row(winners[i], where);
    WinnerRecord winner;
    winner.problem_key = row.string("problem_key");
    winner.device_key = row.string("device_key");
    winner.generator_version = row.string("generator_version");
    winner.precision = row.precision("precision");
    winner.config_name = row.string("config_name");
    winner.median_ms = row.number("median_ms");
    winner.max_error = row.number("max_error");
    winner.updated_at = row.string("updated_at");
    row.finish();
    checked(where, [&] { validate_winner(winner); });
    std::string identity = fmt::format("{}\n{}\n{}\n{}", winner.problem_key, winner.device_key,
                                       winner.generator_version, to_string(winner.precision));
    if (!winner_keys.insert(identity).second) {
      throw ImportError(where,
                        "a second winner for the same problem, device, generator version "
                        "and precision");
    }
    result.winners.push_back(winner);
  }
}

void read_trials(ObjectReader& document, ExchangeDocument& result) {
  std::set<std::string> identities;
  const json& trials = section(document, "trials");
  for (size_t i = 0; i < trials.size(); ++i) {
    std::string where = fmt::format("trials[{}]", i);
    ObjectReader row(trials[i], where);
    TrialRecord trial;
    trial.problem_key = row.string("problem_key");
    trial.device_key = row.string("device_key");
    trial.generator_version = row.string("generator_version");
    trial.precision = row.precision("precision");
    trial.config_name = row.string("config_name");
    std::string status = row.string("status");
    try {
      trial.status = parse_disposition(status);
    } catch (const std::invalid_argument& e) {
      throw ImportError(row.at("status"), e.what());
    }
    trial.reason = row.string("reason");
    trial.median_ms = row.number("median_ms");
    trial.min_ms = row.number("min_ms");
    trial.max_ms = row.number("max_ms");
    trial.max_error = row.number("max_error", /*null_is_nan=*/true);
    trial.registers = row.int32("registers");
    trial.shared_bytes = row.int32("shared_bytes");
    trial.spill_bytes = row.int32("spill_bytes");
    trial.compile_ms = row.number("compile_ms");
    trial.measured_at = row.string("measured_at");
    row.finish();
    checked(where, [&] { validate_trial(trial); });
    std::string identity = fmt::format(
        "{}\n{}\n{}\n{}\n{}\n{}", trial.problem_key, trial.device_key, trial.generator_version,
        to_string(trial.precision), trial.config_name, trial.measured_at);
    if (!identities.insert(identity).second) {
      throw ImportError(where, "the same trial (key, config, measured_at) appears twice");
    }
    result.trials.push_back(std::move(trial));
  }
}

ExchangeDocument validate_document(const json& root) {
  ObjectReader document(root, "(document)");
  const std::string content = read_preamble(document);
  ExchangeDocument result;
  read_devices(document, result);
  read_problems(document, result);
  read_winners(document, result);
  // A winners export carries the trials that back its winners; one without them (written before
  // that rule) reads as having none, and its winners are refused on import for want of them.
  if (content == "all" || document.has("trials")) read_trials(document, result);
  document.finish();
  return result;
}

// nlohmann's parser recurses per level: refuse deep nesting before parsing.
// A file SQLite may use for a while, removed (with its -wal and -shm) when done.
class TemporaryDbFile {
 public:
  TemporaryDbFile() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "deconvtune-import-XXXXXX").string();
    int fd = mkstemp(pattern.data());
    if (fd < 0) throw DbError("cannot create a temporary file for the import");
    close(fd);
    path_ = pattern;
  }
  ~TemporaryDbFile() {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
      std::error_code ignored;
      std::filesystem::remove(path_ + suffix, ignored);
    }
  }
  TemporaryDbFile(const TemporaryDbFile&) = delete;
  TemporaryDbFile& operator=(const TemporaryDbFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

bool has_sqlite_magic(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  char magic[16] = {};
  file.read(magic, sizeof(magic));
  return file.gcount() == 16 &&
         std::string_view(magic, 16) == std::string_view("SQLite format 3\0", 16);
}

}  // namespace

std::string export_db(const TuningDb& db, const ExportOptions& options) {
  json document = export_json(db, options.all);
  if (options.format == ExportFormat::kCsv) {
    return options.all ? csv_table(document["trials"], kTrialColumns)
                       : csv_table(document["winners"], kWinnerColumns);
  }
  // Text of a valid DB is valid UTF-8; `replace` keeps a damaged one from stopping the export.
  return document.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

ExchangeDocument parse_exchange_json(std::string_view text) {
  json root;
  try {
    root = parse_untrusted_json(text, kMaxNesting);
  } catch (const UntrustedJsonError& e) {
    throw ImportError("(document)", fmt::format("{}: not an export", e.what()));
  }
  return validate_document(root);
}

ExchangeDocument read_db_file(const std::string& path) {
  if (!has_sqlite_magic(path)) {
    throw ImportError(path, "not an SQLite database (it does not start with the SQLite header)");
  }
  TemporaryDbFile copy;
  try {
    // Read-only, so that a file in a folder we may not write (or on a read-only mount) imports.
    std::unique_ptr<Connection> source = sqlite::open_read_only(path);
    sqlite3_busy_timeout(source->handle(), 10000);
    Connection target(copy.path(), SQLITE_OPEN_READWRITE);
    std::unique_ptr<sqlite3_backup, decltype(&sqlite3_backup_finish)> backup(
        sqlite3_backup_init(target.handle(), "main", source->handle(), "main"),
        sqlite3_backup_finish);
    if (!backup) target.fail(sqlite3_errcode(target.handle()), "copying the DB to import");
    // Backup errors are reported on the target handle; the code says what went wrong.
    int code = sqlite3_backup_step(backup.get(), -1);
    if (code == SQLITE_DONE) code = sqlite3_backup_finish(backup.release());
    if (code != SQLITE_OK) {
      const int primary = code & 0xff;
      if (primary == SQLITE_IOERR || primary == SQLITE_FULL) {
        throw ImportError(
            path, fmt::format("could not be copied for the import: the disk failed while reading "
                              "it or writing the copy {} ({}); nothing was imported",
                              copy.path(), sqlite3_errstr(code)));
      }
      throw ImportError(path, fmt::format("corrupt, or not a readable SQLite database ({})",
                                          sqlite3_errstr(code)));
    }
  } catch (const ImportError&) {
    throw;
  } catch (const DbError& e) {
    throw ImportError(path, replace_all(e.what(), path + ": ", ""));
  }
  try {
    TuningDb db(copy.path());  // checks it is ours, table for table, and migrates the copy
    // The copy is read whole: a damaged page or index would drop or garble rows unseen.
    std::string verdict = db.integrity_check();
    if (verdict != "ok") {
      throw ImportError(path, fmt::format("the tuning DB is corrupt (integrity_check: {})",
                                          text::printable(verdict.substr(0, 500))));
    }
    return validate_document(export_json(db, /*all=*/true));
  } catch (const ImportError& e) {
    throw ImportError(path + ": " + e.where(), e.rule());
  } catch (const DbError& e) {
    // Messages about the copy name the file the user gave.
    throw ImportError(
        path, replace_all(replace_all(e.what(), copy.path() + ": ", ""), copy.path(), path));
  }
}

namespace {

// A winner merged in must be backed (by a trial of the document or of the DB), like one the tuner
// writes; one that is not is refused naming it.
detail::WinnerOutcome offer_imported(const Connection& connection, const WinnerRecord& winner,
                                     size_t index) {
  detail::WinnerOutcome outcome =
      detail::offer_winner(connection, winner, detail::Origin::kImported);
  if (outcome == detail::WinnerOutcome::kUnsupported) {
    throw ImportError(
        fmt::format("winners[{}]", index),
        fmt::format("no verified (ok) trial of this key and config '{}' with median_ms {} and "
                    "max_error {}, within this problem's time floor and error bound, backs it",
                    text::printable(winner.config_name), winner.median_ms, winner.max_error));
  }
  return outcome;
}

// Inside the import's transaction: the document's devices and problems the DB lacks.
void insert_devices_and_problems(const Connection& connection, const ExchangeDocument& document,
                                 ImportReport& report) {
  for (const DeviceRecord& device : document.devices) {
    Statement(connection,
              "INSERT OR IGNORE INTO devices (key, name, arch, sm_count, driver_version, "
              "nvrtc_version, copy_gbps) VALUES (?, ?, ?, ?, ?, ?, ?)")
        .bind_all(device.key(), device.name, device.arch, device.sm_count, device.driver_version,
                  device.nvrtc_version, device.copy_gbps)
        .run();
    report.devices_added += sqlite3_changes(connection.handle());
  }
  for (const ProblemRecord& problem : document.problems) {
    Statement(connection, "INSERT OR IGNORE INTO problems (key, spec) VALUES (?, ?)")
        .bind_all(problem.key, problem.spec)
        .run();
    report.problems_added += sqlite3_changes(connection.handle());
  }
}

void count(ImportReport& report, detail::WinnerOutcome outcome) {
  switch (outcome) {
    case detail::WinnerOutcome::kAdded:
      ++report.winners_added;
      break;
    case detail::WinnerOutcome::kReplaced:
      ++report.winners_replaced;
      break;
    case detail::WinnerOutcome::kKept:
    case detail::WinnerOutcome::kUnsupported:
      ++report.winners_kept;
      break;
  }
}

}  // namespace

ImportReport import_document(TuningDb& db, const ExchangeDocument& document,
                             const std::string& source) {
  if (!source.empty()) {
    try {
      return import_document(db, document);
    } catch (const ImportError& e) {
      throw ImportError(source + ": " + e.where(), e.rule());
    }
  }
  std::lock_guard lock(db.impl().mutex);
  const Connection& connection = *db.impl().connection;
  ImportReport report;
  connection.write([&] {
    report = ImportReport();
    // References first: every problem and device a row names is in the document or the DB.
    std::set<std::string> problems, devices;
    for (const ProblemRecord& problem : document.problems) problems.insert(problem.key);
    for (const DeviceRecord& device : document.devices) devices.insert(device.key());
    auto known = [&](std::set<std::string>& keys, const char* table, const std::string& key) {
      if (keys.count(key)) return true;
      Statement statement(connection, fmt::format("SELECT 1 FROM {} WHERE key = ?", table));
      if (!statement.bind(1, key).step()) return false;
      keys.insert(key);
      return true;
    };
    auto check = [&](const std::string& where, const std::string& problem_key,
                     const std::string& device_key) {
      if (!known(problems, "problems", problem_key)) {
        throw ImportError(where + ".problem_key",
                          fmt::format("'{}' is neither among the document's problems nor in the DB",
                                      text::printable(problem_key)));
      }
      if (!known(devices, "devices", device_key)) {
        throw ImportError(where + ".device_key",
                          fmt::format("'{}' is neither among the document's devices nor in the DB",
                                      text::printable(device_key)));
      }
    };
    for (size_t i = 0; i < document.winners.size(); ++i) {
      check(fmt::format("winners[{}]", i), document.winners[i].problem_key,
            document.winners[i].device_key);
    }
    for (size_t i = 0; i < document.trials.size(); ++i) {
      check(fmt::format("trials[{}]", i), document.trials[i].problem_key,
            document.trials[i].device_key);
    }

    insert_devices_and_problems(connection, document, report);
    std::vector<const TrialRecord*> added;
    for (const TrialRecord& trial : document.trials) {
      if (detail::insert_trial(connection, trial, detail::Origin::kImported, /*offer=*/false)) {
        ++report.trials_added;
        added.push_back(&trial);
      } else {
        ++report.trials_already_present;
      }
    }
    // Winners before their trials are offered: a trial displaces only a slower winner, so on a
    // tie the exported winner stays and a round trip reproduces the DB it came from.
    for (size_t i = 0; i < document.winners.size(); ++i) {
      count(report, offer_imported(connection, document.winners[i], i));
    }
    for (const TrialRecord* trial : added) {
      if (trial->status == Disposition::kOk) {
        detail::offer_winner(connection, detail::winner_of(*trial), detail::Origin::kImported);
      }
    }
  });
  return report;
}

ExchangeDocument read_exchange_file(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    throw ImportError(path, "no such file (or not a regular file)");
  }
  if (has_sqlite_magic(path)) return read_db_file(path);  // its errors name the file already
  std::ifstream file(path, std::ios::binary);
  if (!file) throw ImportError(path, "cannot read the file");
  std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  try {
    return parse_exchange_json(text);
  } catch (const ImportError& e) {
    throw ImportError(path + ": " + e.where(), e.rule());
  }
}

ImportReport import_file(TuningDb& db, const std::string& path) {
  return import_document(db, read_exchange_file(path), path);
}

}  // namespace deconvtune::db

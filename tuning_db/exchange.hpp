#pragma once
// Moving tuning results between DBs and machines: export to JSON (or CSV for spreadsheets), and
// import of a JSON export or of another tuning DB file.
//
// Promises:
// - Export is deterministic (rows ordered by key, numbers in shortest round-trip form), so
//   export -> import into an empty DB -> export gives the same bytes.
// - Import treats its input as hostile: the whole document is parsed and validated first (types,
//   ranges, lengths, problem keys that parse, statuses, references), then written in one
//   transaction. Any fault raises ImportError naming the field ("trials[3].median_ms") and the DB
//   is left exactly as it was.
// - Imported rows follow the rules of the tuner's own (tuning_db.hpp): a kOk trial's time is no
//   faster than time_floor_ms and its error within verified_error_ceiling; a winner names a config
//   that may_win and is backed by a kOk trial (of the document or the DB) of the same key and
//   config with the same median_ms and max_error. Anything else is refused naming the field.
// - Merge rule: per (problem, device, generator version, precision) the faster winner stays
//   (an imported kOk trial counts as a candidate too, like record_trial; an unbacked winner in the
//   DB is replaced); trials are merged on their identity (key, config, measured_at), so importing
//   the same file twice adds nothing. Merged rows are marked imported (TuningDb's origin): the
//   engine treats an imported winner as a hint until a trial measured here replaces it.
// - A winners export carries the trials that back its winners, so it imports on its own.
// - The cubin cache is not exchanged: an entry is cheap to rebuild and only valid for the exact
//   NVRTC and architecture that made it.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tuning_db/tuning_db.hpp"

namespace deconvtune::db {

// The JSON document's "format" and "version" fields.
inline constexpr std::string_view kExchangeFormat = "deconvtune-tuning-db";
inline constexpr int kExchangeVersion = 1;

enum class ExportFormat { kJson, kCsv };
ExportFormat parse_export_format(std::string_view text);  // "json" | "csv"; std::invalid_argument

struct ExportOptions {
  ExportFormat format = ExportFormat::kJson;
  // false: the winners (JSON: with the devices and problems they name); true: also every trial,
  // device and problem. CSV holds one table: the winners, or with `all` the trials.
  bool all = false;
};

std::string export_db(const TuningDb& db, const ExportOptions& options = {});

// Bad import input. where() is the path to the fault in the document ("winners[2].device_key",
// "(document)") or the file.
class ImportError : public DbError {
 public:
  ImportError(std::string where, std::string rule);
  const std::string& where() const { return where_; }
  const std::string& rule() const { return rule_; }

 private:
  std::string where_;
  std::string rule_;
};

// A validated export.
struct ExchangeDocument {
  std::vector<DeviceRecord> devices;
  std::vector<ProblemRecord> problems;  // spec in canonical form (Problem::to_json().dump())
  std::vector<WinnerRecord> winners;
  std::vector<TrialRecord> trials;
};

// Parses and validates a JSON export without touching any DB (what the fuzzer drives).
ExchangeDocument parse_exchange_json(std::string_view text);

// Reads another tuning DB file (any schema version this build knows) into a validated document.
// The file is not modified: it is copied with SQLite's backup API (read-only, so a file in a
// read-only folder imports) and the copy is checked like any TuningDb (schema exactly ours) and
// must pass integrity_check before it is read, then migrated.
ExchangeDocument read_db_file(const std::string& path);

struct ImportReport {
  int64_t devices_added = 0;
  int64_t problems_added = 0;
  int64_t trials_added = 0;
  int64_t trials_already_present = 0;
  int64_t winners_added = 0;     // keys the DB had no winner for
  int64_t winners_replaced = 0;  // the imported one was faster
  int64_t winners_kept = 0;      // the DB's own was at least as fast
};

// Merges a document in one transaction; references to problems and devices must resolve to the
// document or the DB (else ImportError, nothing written). `source`, when given, prefixes where().
ImportReport import_document(TuningDb& db, const ExchangeDocument& document,
                             const std::string& source = "");

// A JSON export or a tuning DB file, told apart by the SQLite header magic, read and validated.
ExchangeDocument read_exchange_file(const std::string& path);

// read_exchange_file, then import_document.
ImportReport import_file(TuningDb& db, const std::string& path);

}  // namespace deconvtune::db

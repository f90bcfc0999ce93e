#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "codegen/config.hpp"
#include "fuzz/fuzz_support.hpp"
#include "tuning_db/exchange.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::fuzz {
namespace {

std::string full_export(const db::TuningDb& db) {
  db::ExportOptions options;
  options.all = true;
  return db::export_db(db, options);
}

}  // namespace

void db_import_target(std::string_view data) {
  static ScratchFile scratch("import");
  // What `db import FILE` reads: a JSON export or a DB file, told apart by the SQLite magic.
  db::ExchangeDocument document;
  try {
    document = db::read_exchange_file(scratch.write(data));
  } catch (const db::DbError&) {
    return;  // refused with a message (ImportError or DbError naming the file): the promise
  }
  // Accepted: it merges into an empty DB (or is refused leaving it empty), and merging it again
  // adds nothing.
  db::TuningDb target(":memory:");
  const std::string empty = full_export(target);
  try {
    db::import_document(target, document);
  } catch (const db::ImportError&) {
    // E.g. a reference to a device that neither the document nor the DB holds: nothing written.
    require(full_export(target) == empty, "a refused import changed the DB");
    return;
  }
  require(target.integrity_check() == "ok", "integrity_check after an import");
  const std::string merged = full_export(target);
  // Every winner written is backed by a verified trial and may win, and is marked imported: what
  // the engine and the heuristic rely on. winners() keeps only backed ones, the export holds all.
  const std::vector<db::WinnerRecord> winners = target.winners();
  require(winners.size() == nlohmann::json::parse(merged)["winners"].size(),
          "an import wrote a winner no verified trial backs");
  for (const db::WinnerRecord& winner : winners) {
    require(may_win(winner.config_name), "an import wrote a test-only winner");
    require(winner.imported, "an imported winner is not marked imported");
  }
  const db::ImportReport again = db::import_document(target, document);
  require(again.trials_added == 0 && again.winners_added == 0 && again.winners_replaced == 0 &&
              again.devices_added == 0 && again.problems_added == 0,
          "importing the same document twice changed the DB");
  require(full_export(target) == merged, "a repeated import changed the export");
  // Export -> import into an empty DB -> export gives the same bytes (the round-trip promise).
  db::TuningDb copy(":memory:");
  db::import_document(copy, db::parse_exchange_json(merged));
  require(full_export(copy) == merged, "export -> import -> export is not the identity");
}

}  // namespace deconvtune::fuzz

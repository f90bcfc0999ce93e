#include "tools/db_command.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "codegen/generator.hpp"
#include "codegen/problem.hpp"
#include "tools/cli_checks.hpp"
#include "tools/commands.hpp"
#include "tuning_db/exchange.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tools {
namespace {

using db::DbError;
using db::TuningDb;

struct BadInput {
  std::string message;
};

std::string db_path(const DbArgs& args) {
  return args.db_path.empty() ? TuningDb::default_path() : args.db_path;
}

// For commands that only read: no file is created, and a file is opened read-only unless it
// needs migrating first. nullptr when there is no DB yet.
std::unique_ptr<TuningDb> open_for_reading(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    std::fprintf(stderr, "deconvtune: no tuning DB at %s yet (nothing tuned)\n", path.c_str());
    return nullptr;
  }
  try {
    return std::make_unique<TuningDb>(path, /*read_only=*/true);
  } catch (const DbError& read_error) {
    // An older schema needs a read-write open to migrate. When that fails too (a read-only
    // folder, a damaged or hostile file), the read-only open's reason is the one that matters.
    std::string reason = read_error.what();
    try {
      return std::make_unique<TuningDb>(path);
    } catch (const DbError&) {
      throw DbError(reason);
    }
  }
}

// Columns padded to their widest cell; the first row is the header.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return;
  std::vector<size_t> widths(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      bool last = i + 1 == row.size();
      line += last ? row[i] : fmt::format("{:<{}}  ", row[i], widths[i]);
    }
    fmt::print("{}\n", line);
  }
}

std::string ms(double value) { return fmt::format("{:.4f}", value); }

std::string error_text(double value) {
  return std::isnan(value) ? "nan" : fmt::format("{:.2e}", value);
}

std::string one_line(std::string text, size_t limit) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  std::replace(text.begin(), text.end(), '\t', ' ');
  return text.size() > limit ? text.substr(0, limit) + "..." : text;
}

std::string resource(int value) { return value < 0 ? "?" : std::to_string(value); }

int list(const DbArgs& args) {
  std::string path = db_path(args);
  std::unique_ptr<TuningDb> db = open_for_reading(path);
  std::vector<db::WinnerRecord> winners = db ? db->winners() : std::vector<db::WinnerRecord>();
  const std::string current = generator_version();
  if (winners.empty()) {
    fmt::print("no winners in {}\n", path);
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"problem", "device", "precision", "config", "ms", "max_err", "generator"}};
  int stale = 0;
  for (const db::WinnerRecord& w : winners) {
    bool is_current = w.generator_version == current;
    stale += !is_current;
    rows.push_back({w.problem_key, w.device_key, std::string(to_string(w.precision)), w.config_name,
                    ms(w.median_ms), error_text(w.max_error),
                    w.generator_version + (is_current ? "" : " (stale)")});
  }
  print_table(rows);
  fmt::print("{} winners in {}; this build's generator is {}", winners.size(), path, current);
  if (stale) fmt::print(" ({} from other generator versions: `db prune` drops them)", stale);
  fmt::print("\n");
  return kExitOk;
}

std::string problem_key_of(const DbArgs& args) {
  if (args.problem.empty()) return "";
  try {
    Problem problem = args.problem.rfind("convT2d:", 0) == 0 ? db::parse_problem_key(args.problem)
                                                             : Problem::from_argument(args.problem);
    if (!args.precision.empty()) problem.precision = parse_precision(args.precision);
    return problem.key();
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  } catch (const db::FieldError& e) {
    throw BadInput{e.what()};
  }
}

int show(const DbArgs& args) {
  std::string path = db_path(args);
  db::TrialFilter filter;
  filter.problem_key = problem_key_of(args);
  if (!args.precision.empty()) filter.precision = parse_precision(args.precision);
  std::unique_ptr<TuningDb> db = open_for_reading(path);
  std::vector<db::TrialRecord> trials =
      db ? db->trials_matching(filter) : std::vector<db::TrialRecord>();
  if (trials.empty()) {
    fmt::print("no trials{} in {}\n",
               filter.problem_key.empty() ? "" : " for " + filter.problem_key, path);
    return kExitOk;
  }
  // Grouped by key, best first within each (the order trials_matching gives).
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<Key, std::vector<const db::TrialRecord*>> groups;
  std::vector<Key> order;
  for (const db::TrialRecord& trial : trials) {
    Key key{trial.problem_key, trial.device_key, trial.generator_version,
            std::string(to_string(trial.precision))};
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(&trial);
  }
  for (const Key& key : order) {
    const auto& [problem, device, generator, precision] = key;
    std::optional<db::WinnerRecord> winner =
        db->winner({problem, device, generator, parse_precision(precision)});
    fmt::print(
        "{}\n  device {}, generator {}{}, precision {}, winner {}\n", problem, device, generator,
        generator == generator_version() ? "" : " (stale)", precision,
        winner ? fmt::format("{} ({} ms)", winner->config_name, ms(winner->median_ms)) : "none");
    std::vector<std::vector<std::string>> rows = {{"#", "config", "status", "median_ms", "min_ms",
                                                   "max_ms", "max_err", "regs", "smem", "spill",
                                                   "compile_ms", "measured_at", "reason"}};
    int rank = 0;
    for (const db::TrialRecord* t : groups[key]) {
      bool ok = t->status == Disposition::kOk;
      rows.push_back({std::to_string(++rank), t->config_name, std::string(to_string(t->status)),
                      ok ? ms(t->median_ms) : "-", ok ? ms(t->min_ms) : "-",
                      ok ? ms(t->max_ms) : "-", error_text(t->max_error), resource(t->registers),
                      resource(t->shared_bytes), resource(t->spill_bytes),
                      fmt::format("{:.0f}", t->compile_ms), t->measured_at,
                      one_line(t->reason, 100)});
    }
    print_table(rows);
    fmt::print("\n");
  }
  fmt::print("{} trials in {}\n", trials.size(), path);
  return kExitOk;
}

int export_(const DbArgs& args) {
  db::ExportOptions options;
  try {
    options.format = db::parse_export_format(args.format);
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
  options.all = args.all;
  std::string path = db_path(args);
  std::unique_ptr<TuningDb> db = open_for_reading(path);
  // No DB: the export of an empty one, so that scripts get a valid document.
  if (!db) db = std::make_unique<TuningDb>(":memory:");
  std::string text = db::export_db(*db, options);
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (std::fflush(stdout) != 0) throw DbError("cannot write the export to stdout");
  return kExitOk;
}

int import_into(const DbArgs& args) {
  std::string path = db_path(args);
  // Read and validate the input before the target DB is opened (or created).
  db::ExchangeDocument document = db::read_exchange_file(args.file);
  TuningDb db(path);
  db::ImportReport report = db::import_document(db, document, args.file);
  fmt::print(
      "imported {} into {}:\n  trials: {} added, {} already present\n  winners: {} added, {} "
      "replaced by faster ones, {} kept (at least as fast)\n  devices: {} added; problems: {} "
      "added\n",
      args.file, path, report.trials_added, report.trials_already_present, report.winners_added,
      report.winners_replaced, report.winners_kept, report.devices_added, report.problems_added);
  return kExitOk;
}

int prune(const DbArgs& args) {
  std::string path = db_path(args);
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    fmt::print("no tuning DB at {}: nothing to prune\n", path);
    return kExitOk;
  }
  db::PruneOptions options;
  options.older_than_days = args.older_than_days;
  options.dry_run = args.dry_run;
  TuningDb db(path);
  db::PruneReport report = db.prune(options);
  const char* verb = args.dry_run ? "would remove" : "removed";
  std::string what =
      args.older_than_days
          ? fmt::format("rows older than {} days", *args.older_than_days)
          : fmt::format("rows of generator versions other than {}", generator_version());
  fmt::print("{}: {} {}\n", path, verb, what);
  if (!report.generator_versions.empty()) {
    std::string versions;
    for (const std::string& v : report.generator_versions)
      versions += (versions.empty() ? "" : ", ") + v;
    fmt::print("  generator versions: {}\n", versions);
  }
  fmt::print("  trials: {}\n  winners: {}\n", report.trials, report.winners);
  for (const db::WinnerRecord& w : report.removed_winners) {
    fmt::print("    {} | {} | {} | {} | {} ({} ms)\n", w.problem_key, w.device_key,
               w.generator_version, to_string(w.precision), w.config_name, ms(w.median_ms));
  }
  fmt::print("  cubin cache entries: {} ({:.1f} KiB)\n", report.cubins,
             static_cast<double>(report.cubin_bytes) / 1024.0);
  if (args.dry_run) fmt::print("(dry run: nothing was removed)\n");
  return kExitOk;
}

}  // namespace

CLI::App* add_db_command(CLI::App& app, DbArgs& args) {
  CLI::App* db = app.add_subcommand(
      "db",
      "Look into, export, import (merge) and prune the tuning DB (default: $DECONVTUNE_DB, "
      "else $XDG_CACHE_HOME/deconvtune/tuning.db, else ~/.cache/deconvtune/tuning.db).");
  db->require_subcommand(1);
  db->fallthrough();  // `db list --db PATH` as well as `db --db PATH list`
  db->add_option("--db", args.db_path, "the tuning DB file")->check(tuning_db_path());

  auto action = [&args](CLI::App* command, const char* name) {
    command->callback([&args, name] { args.action = name; });
    return command;
  };
  action(db->add_subcommand("list", "The winners: problem, device, precision, config, time."),
         "list");
  CLI::App* show =
      action(db->add_subcommand("show", "Trials, best first, with status and reason, per problem."),
             "show");
  show->add_option("--problem", args.problem,
                   "'seed', inline JSON, a JSON file or a problem key (default: every problem)");
  show->add_option("--precision", args.precision, "fp32 or tf32 (default: both)")
      ->check(CLI::IsMember({"fp32", "tf32"}));
  CLI::App* export_cmd =
      action(db->add_subcommand("export",
                                "Write the winners (with --all: every trial, device and "
                                "problem) to stdout."),
             "export");
  export_cmd->add_option("--format", args.format, "json or csv")
      ->check(CLI::IsMember({"json", "csv"}))
      ->capture_default_str();
  export_cmd->add_flag("--all", args.all, "every trial, device and problem, not just the winners");
  CLI::App* import_cmd =
      action(db->add_subcommand("import",
                                "Merge a JSON export or another tuning DB file (per key the "
                                "faster winner stays). A bad file changes nothing."),
             "import");
  import_cmd->add_option("FILE", args.file, "a `db export` JSON file or a tuning DB file")
      ->required();
  CLI::App* prune_cmd =
      action(db->add_subcommand("prune",
                                "Drop trials, winners and cached cubins of other generator "
                                "versions than this build's (or, with --older-than, old ones)."),
             "prune");
  prune_cmd->add_option("--older-than", args.older_than_days, "days")->check(CLI::Range(0.0, 1e6));
  prune_cmd->add_flag("--dry-run", args.dry_run, "say what would be removed, remove nothing");
  return db;
}

int db_command(const DbArgs& args) {
  try {
    if (args.action == "list") return list(args);
    if (args.action == "show") return show(args);
    if (args.action == "export") return export_(args);
    if (args.action == "import") return import_into(args);
    if (args.action == "prune") return prune(args);
    std::fprintf(stderr, "deconvtune: db: no subcommand\n");
    return kExitBadInput;
  } catch (const BadInput& e) {
    std::fprintf(stderr, "deconvtune: db %s: %s\n", args.action.c_str(), e.message.c_str());
    return kExitBadInput;
  } catch (const db::ImportError& e) {
    std::fprintf(stderr, "deconvtune: db import: refused, nothing was imported: %s\n", e.what());
    return kExitBadInput;
  } catch (const db::FieldError& e) {
    std::fprintf(stderr, "deconvtune: db %s: %s\n", args.action.c_str(), e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deconvtune: db %s: %s\n", args.action.c_str(), e.what());
    return kExitFailure;
  }
}

}  // namespace deconvtune::tools

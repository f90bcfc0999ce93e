#include "tools/db_command.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <vector>

#include "codegen/generator.hpp"
#include "codegen/problem.hpp"
#include "gpu/driver_api.hpp"
#include "tools/cli_checks.hpp"
#include "tools/commands.hpp"
#include "tools/table.hpp"
#include "tools/trial_report.hpp"
#include "tuner/problem_set.hpp"
#include "tuning_db/exchange.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tools {
namespace {

using db::DbError;
using db::TuningDb;

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

// The device whose point of view `db list` states origins from: --device-key, else GPU 0's, else
// none (no GPU here: a winner is "measured" by this DB's tuner or "imported").
std::string this_device_key(const DbArgs& args) {
  if (!args.device_key.empty()) {
    if (db::device_class(args.device_key).empty()) {
      throw BadInput{
          fmt::format("--device-key '{}': expected NAME|ARCH|SM_COUNT, as `db list "
                      "--wide` shows device keys",
                      args.device_key)};
    }
    return args.device_key;
  }
  if (!DriverApi::available()) return "";
  const Context context(0);
  db::DeviceRecord device;
  device.name = context.info().name;
  device.arch = context.info().arch();
  device.sm_count = context.info().sm_count;
  return device.key();
}

// Where a winner came from, in the engine's terms (runtime/heuristic.hpp): a winner of this GPU
// is served as tuned, one of another GPU of its class is the nearest-neighbour guess, one of
// another class is never used here, and an imported one is a hint until measured here.
std::string origin(const db::WinnerRecord& winner, const std::string& here) {
  if (winner.imported) return "imported";
  if (here.empty()) return "measured";
  if (winner.device_key == here) return "this GPU";
  if (db::device_class(winner.device_key) == db::device_class(here)) return "same class";
  return "other GPU";
}

const std::map<std::string, std::string>& origin_legend() {
  static const std::map<std::string, std::string> legend = {
      {"imported", "merged in by `db import`: a hint until a trial measured here replaces it"},
      {"measured", "measured by this DB's tuner (no GPU here to compare with)"},
      {"this GPU", "tuned on this GPU: the engine serves it as tuned"},
      {"same class", "tuned on another GPU of this one's arch and SM count: the engine's guess"},
      {"other GPU", "tuned on a GPU of another arch or SM count: never used here"}};
  return legend;
}

std::string device_text(const std::string& device_key, const Output& out) {
  return out.wide() ? device_key : device_key.substr(0, device_key.find('|'));
}

// Problem names by key, from --problems; empty without it.
std::map<std::string, std::string> problem_names(const DbArgs& args) {
  std::map<std::string, std::string> names;
  if (args.problems.empty()) return names;
  std::optional<Precision> precision;
  try {
    if (!args.precision.empty()) precision = parse_precision(args.precision);
    for (const Problem& problem : tuner::read_problems_file(args.problems, precision)) {
      names.emplace(problem.key(), problem.name);
    }
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
  return names;
}

std::string name_of(const std::map<std::string, std::string>& names, const std::string& key) {
  auto found = names.find(key);
  return found == names.end() ? "" : found->second;
}

int list(const DbArgs& args) {
  const Output out(args.json, args.wide);
  std::string path = db_path(args);
  const std::map<std::string, std::string> names = problem_names(args);
  const std::string here = this_device_key(args);
  std::unique_ptr<TuningDb> db = open_for_reading(path);
  std::vector<db::WinnerRecord> winners = db ? db->winners() : std::vector<db::WinnerRecord>();
  const std::string current = generator_version();
  Table table({{"problem"},
               {"precision"},
               {"config"},
               {"ms", Align::kRight},
               {"max |err|", Align::kRight, 4},
               {"origin"},
               {"device", Align::kLeft, 3},
               {"generator", Align::kLeft, 5}});
  nlohmann::json rows = nlohmann::json::array();
  std::set<std::string> origins;
  int stale = 0;
  for (const db::WinnerRecord& w : winners) {
    const bool is_current = w.generator_version == current;
    stale += !is_current;
    const std::string name = name_of(names, w.problem_key);
    const std::string from = origin(w, here);
    origins.insert(from);
    table.add_row({out.problem_text(w.problem_key, name), std::string(to_string(w.precision)),
                   w.config_name, cell::ms(w.median_ms), cell::error(w.max_error), from,
                   device_text(w.device_key, out),
                   w.generator_version + (is_current ? "" : " (stale)")});
    rows.push_back({{"problem_key", w.problem_key},
                    {"name", name},
                    {"label", problem_text(w.problem_key, "", /*wide=*/false)},
                    {"device_key", w.device_key},
                    {"precision", to_string(w.precision)},
                    {"config", w.config_name},
                    {"median_ms", w.median_ms},
                    {"max_error", json_number(w.max_error)},
                    {"generator_version", w.generator_version},
                    {"stale", !is_current},
                    {"origin", from},
                    {"imported", w.imported},
                    {"updated_at", w.updated_at}});
  }
  if (winners.empty()) {
    out.say("no winners in {}\n", path);
  } else {
    out.print(table);
    out.say("{} winners in {}; this build's generator is {}", winners.size(), path, current);
    if (stale) out.say(" ({} from other generator versions: `db prune` drops them)", stale);
    out.say("\n");
    for (const std::string& from : origins) out.say("  {}: {}\n", from, origin_legend().at(from));
  }
  if (out.json()) {
    out.emit({{"db", path},
              {"generator_version", current},
              {"this_device", here.empty() ? nlohmann::json(nullptr) : nlohmann::json(here)},
              {"winners", rows}});
  }
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
  const Output out(args.json, args.wide);
  std::string path = db_path(args);
  db::TrialFilter filter;
  filter.problem_key = problem_key_of(args);
  if (!args.precision.empty()) filter.precision = parse_precision(args.precision);
  const std::map<std::string, std::string> names = problem_names(args);
  std::unique_ptr<TuningDb> db = open_for_reading(path);
  std::vector<db::TrialRecord> trials;
  for (db::TrialRecord& trial : db ? db->trials_matching(filter) : std::vector<db::TrialRecord>()) {
    // --problems alone: only its problems.
    if (filter.problem_key.empty() && !names.empty() && !names.count(trial.problem_key)) continue;
    trials.push_back(std::move(trial));
  }
  // Grouped by key, best first within each (the order trials_matching gives).
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  std::map<Key, std::vector<db::TrialRecord>> groups;
  std::vector<Key> order;
  for (const db::TrialRecord& trial : trials) {
    Key key{trial.problem_key, trial.device_key, trial.generator_version,
            std::string(to_string(trial.precision))};
    if (!groups.count(key)) order.push_back(key);
    groups[key].push_back(trial);
  }
  nlohmann::json documents = nlohmann::json::array();
  for (const Key& key : order) {
    const auto& [problem_key, device, generator, precision] = key;
    const std::vector<db::TrialRecord>& group = groups[key];
    std::optional<db::WinnerRecord> winner =
        db->winner({problem_key, device, generator, parse_precision(precision)});
    Problem problem = db::parse_problem_key(problem_key);
    problem.name = name_of(names, problem_key);
    const KeyFigures figures = key_figures(problem, db->device(device), group);
    out.say("{}\n  device {}, generator {}{}, precision {}\n  winner {}\n  rule default {}\n",
            out.problem_text(problem), device, generator,
            generator == generator_version() ? "" : " (stale)", precision,
            winner ? fmt::format("{} {} ms, {}", winner->config_name, cell::ms(winner->median_ms),
                                 bandwidth_text(figures, winner->median_ms))
                   : "none",
            rule_default_text(figures));
    out.print(trial_table(group, figures, TrialColumns::kEvery));
    for (const db::TrialRecord& trial : group) {
      if (trial.status != Disposition::kOk) out.say("{}\n", failure_line(trial));
    }
    out.say("\n");
    nlohmann::json rows = nlohmann::json::array();
    for (const db::TrialRecord& trial : group) rows.push_back(trial_json(trial, figures));
    documents.push_back({{"problem_key", problem_key},
                         {"name", problem.name},
                         {"label", compact_label(problem)},
                         {"device_key", device},
                         {"generator_version", generator},
                         {"stale", generator != generator_version()},
                         {"precision", precision},
                         {"winner", winner ? nlohmann::json{{"config", winner->config_name},
                                                            {"median_ms", winner->median_ms},
                                                            {"imported", winner->imported}}
                                           : nlohmann::json(nullptr)},
                         {"figures", figures_json(figures)},
                         {"trials", rows}});
  }
  if (trials.empty()) {
    out.say("no trials{} in {}\n", filter.problem_key.empty() ? "" : " for " + filter.problem_key,
            path);
  } else {
    out.say("{} trials in {}\n", trials.size(), path);
  }
  if (out.json()) out.emit({{"db", path}, {"problems", documents}});
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
  const Output out(args.json, /*wide=*/false);
  std::string path = db_path(args);
  // Read and validate the input before the target DB is opened (or created).
  db::ExchangeDocument document = db::read_exchange_file(args.file);
  TuningDb db(path);
  db::ImportReport report = db::import_document(db, document, args.file);
  out.say(
      "imported {} into {}:\n  trials: {} added, {} already present\n  winners: {} added, {} "
      "replaced by faster ones, {} kept (at least as fast)\n  devices: {} added; problems: {} "
      "added\n",
      args.file, path, report.trials_added, report.trials_already_present, report.winners_added,
      report.winners_replaced, report.winners_kept, report.devices_added, report.problems_added);
  if (out.json()) {
    out.emit({{"file", args.file},
              {"db", path},
              {"trials_added", report.trials_added},
              {"trials_already_present", report.trials_already_present},
              {"winners_added", report.winners_added},
              {"winners_replaced", report.winners_replaced},
              {"winners_kept", report.winners_kept},
              {"devices_added", report.devices_added},
              {"problems_added", report.problems_added}});
  }
  return kExitOk;
}

int prune(const DbArgs& args) {
  const Output out(args.json, args.wide);
  std::string path = db_path(args);
  nlohmann::json document = {{"db", path}, {"dry_run", args.dry_run}};
  std::error_code error;
  if (!std::filesystem::exists(path, error)) {
    out.say("no tuning DB at {}: nothing to prune\n", path);
    if (out.json()) out.emit(document);
    return kExitOk;
  }
  db::PruneOptions options;
  options.keep_generator_version = generator_version();
  options.older_than_days = args.older_than_days;
  options.dry_run = args.dry_run;
  TuningDb db(path);
  db::PruneReport report = db.prune(options);
  const char* verb = args.dry_run ? "would remove" : "removed";
  std::string what =
      args.older_than_days
          ? fmt::format("rows older than {} days", *args.older_than_days)
          : fmt::format("rows of generator versions other than {}", generator_version());
  out.say("{}: {} {}\n", path, verb, what);
  if (!report.generator_versions.empty()) {
    out.say("  generator versions: {}\n", fmt::join(report.generator_versions, ", "));
  }
  out.say("  trials: {}\n  winners: {}\n", report.trials, report.winners);
  Table table({{"problem"},
               {"precision"},
               {"config"},
               {"ms", Align::kRight},
               {"device", Align::kLeft, 1},
               {"generator", Align::kLeft, 2}});
  nlohmann::json removed = nlohmann::json::array();
  for (const db::WinnerRecord& w : report.removed_winners) {
    table.add_row({out.problem_text(w.problem_key), std::string(to_string(w.precision)),
                   w.config_name, cell::ms(w.median_ms), device_text(w.device_key, out),
                   w.generator_version});
    removed.push_back({{"problem_key", w.problem_key},
                       {"device_key", w.device_key},
                       {"generator_version", w.generator_version},
                       {"precision", to_string(w.precision)},
                       {"config", w.config_name},
                       {"median_ms", w.median_ms}});
  }
  if (!table.empty()) out.print(table);
  out.say("  cubin cache entries: {} ({:.1f} KiB)\n", report.cubins,
          static_cast<double>(report.cubin_bytes) / 1024.0);
  if (args.dry_run) out.say("(dry run: nothing was removed)\n");
  if (out.json()) {
    document["older_than_days"] =
        args.older_than_days ? nlohmann::json(*args.older_than_days) : nlohmann::json(nullptr);
    document["generator_versions"] = report.generator_versions;
    document["trials"] = report.trials;
    document["winners"] = report.winners;
    document["removed_winners"] = removed;
    document["cubins"] = report.cubins;
    document["cubin_bytes"] = report.cubin_bytes;
    out.emit(document);
  }
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
  auto add_view_options = [&args](CLI::App* command) {
    command->add_flag("--json", args.json, kJsonHelp);
    command->add_flag("--wide", args.wide, kWideHelp);
    command->add_option("--problems", args.problems,
                        "a problems file (as autotune takes): name its problems");
  };
  CLI::App* list = action(
      db->add_subcommand("list",
                         "The winners: problem, precision, config, time, and where each came "
                         "from (this GPU, another GPU of its class, another class, or imported)."),
      "list");
  add_view_options(list);
  list->add_option("--device-key", args.device_key,
                   "state origins as seen from this device key, NAME|ARCH|SM_COUNT (default: GPU "
                   "0's, if there is one)");
  CLI::App* show = action(
      db->add_subcommand("show",
                         "Trials, best first, per problem: status and reason, % of the best, "
                         "speedup over the rule default, GB/s."),
      "show");
  add_view_options(show);
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
  import_cmd->add_flag("--json", args.json, kJsonHelp);
  CLI::App* prune_cmd =
      action(db->add_subcommand("prune",
                                "Drop trials, winners and cached cubins of other generator "
                                "versions than this build's (or, with --older-than, old ones)."),
             "prune");
  prune_cmd->add_option("--older-than", args.older_than_days, "days")->check(CLI::Range(0.0, 1e6));
  prune_cmd->add_flag("--dry-run", args.dry_run, "say what would be removed, remove nothing");
  prune_cmd->add_flag("--json", args.json, kJsonHelp);
  prune_cmd->add_flag("--wide", args.wide, kWideHelp);
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

#pragma once
// `deconvtune db list | show | export | import | prune`: look into, move and tidy the tuning DB.
// Exit codes as tools/commands.hpp says: 2 for bad input (a garbled import, a bad --problem),
// 1 when the DB cannot be used (corrupt, not a tuning DB, newer schema).
#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace deconvtune::tools {

struct DbArgs {
  std::string action;   // list, show, export, import, prune: set by the parser
  std::string db_path;  // empty: TuningDb::default_path()
  // list, show, prune and import (import: --json only)
  bool json = false;  // stdout: one JSON document; the human text to stderr
  bool wide = false;  // full problem and device keys, every column
  // list, show
  std::string problems;  // a problems file: its problems' names (show: only its problems)
  // list
  std::string device_key;  // the GPU whose view origins are stated from; empty: GPU 0's, if any
  // show
  std::string problem;    // 'seed', JSON, a JSON file or a problem key; empty: every problem
  std::string precision;  // fp32 | tf32; empty: both
  // export
  std::string format = "json";
  bool all = false;
  // import
  std::string file;
  // prune
  std::optional<double> older_than_days;
  bool dry_run = false;
};

// Adds `db` and its subcommands to `app`, parsing into `args`; returns the `db` command.
CLI::App* add_db_command(CLI::App& app, DbArgs& args);
int db_command(const DbArgs& args);

}  // namespace deconvtune::tools

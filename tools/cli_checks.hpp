#pragma once
// Checks of command-line values shared by every subcommand, so that one kind of value has one rule
// and one message wherever it is taken (each failure is bad input: exit 2), and the one error type
// the commands throw for input they refuse.
#include <CLI/CLI.hpp>
#include <string>

namespace deconvtune::tools {

// Input a command refuses: reported with its own message, exit kExitBadInput (2).
struct BadInput {
  std::string message;
};

// A duration from 0 to a week. CLI11's number checks let "nan" and "inf" through, and a NaN budget
// or deadline compares false against every clock reading (no limit, or a wait that never ends).
// The message names the option itself: CLI11 leaves the name out for hidden options.
CLI::Validator finite_seconds(const std::string& option);

// `--db`: a file's path. Empty would silently mean the default DB; ":memory:" keeps nothing; a
// SQLite URI ("file:...") would be opened as a plain path, making a "file:" folder tree.
CLI::Validator tuning_db_path();

}  // namespace deconvtune::tools

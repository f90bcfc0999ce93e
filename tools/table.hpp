#pragma once
// The one table printer of the command line, and the one place that decides where a command's
// output goes.
//
// A table's column widths come from its cells. Fitted to a width (the terminal's), it first leaves
// out the optional columns, highest drop_order first, then cuts the truncatable ones (free text
// such as a failure's reason) with "..."; identifiers (config names) are never cut, so a table
// whose fixed columns are wider than the window overflows rather than lie. Width 0 means no limit.
#include <fmt/format.h>

#include <cstddef>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "codegen/problem.hpp"

namespace deconvtune::tools {

// The one word, in every table and line, for a value that is not known (an unmeasured time, an
// unread register count). JSON says null instead.
inline constexpr std::string_view kUnknown = "-";

// The help of --json and --wide, for every command that takes them.
inline constexpr const char* kJsonHelp =
    "stdout holds one JSON document and nothing else; the human text goes to stderr";
inline constexpr const char* kWideHelp =
    "full problem keys and every column, whatever the terminal's width";

enum class Align { kLeft, kRight };

struct Column {
  std::string header;
  Align align = Align::kLeft;
  int drop_order = 0;        // 0: always shown; else left out to fit, the highest first
  bool truncatable = false;  // may be cut to fit, down to its header's width
};

class Table {
 public:
  explicit Table(std::vector<Column> columns);
  // Throws std::logic_error when the row does not have one cell per column.
  void add_row(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }

  struct Rendered {
    std::vector<std::string> lines;            // the header first; no line ends in spaces
    std::vector<std::string> omitted_columns;  // headers of the columns left out to fit
  };
  Rendered render(size_t width) const;
  // As a markdown table, every column whole (for files: `default-report --out`).
  std::string markdown() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// A problem as a table or a summary names it: its file's name and the compact label
// `n128 64->64 128x128 k3x3 s2x2 g1` (" nobias" when it has none), or, under --wide, the full
// key (the label leaves out padding, dilation, epilogue and precision).
std::string compact_label(const Problem& problem);
// compact_label, or the full key when `wide`; with the problem's name first when it has one.
std::string problem_text(const Problem& problem, bool wide);
// The same for a stored key; a key that does not parse is shown as it is.
std::string problem_text(const std::string& problem_key, const std::string& name, bool wide);

// The command's output. Under --json stdout holds exactly one JSON document (emit) and every human
// line goes to stderr; otherwise the human text is stdout. Tables are fitted to the width of the
// terminal the human text goes to ($COLUMNS, else 80, when it is not one), unless --wide.
class Output {
 public:
  Output(bool json, bool wide);
  bool json() const { return json_; }
  bool wide() const { return wide_; }
  FILE* human() const { return json_ ? stderr : stdout; }

  template <typename... Args>
  void say(fmt::format_string<Args...> format, Args&&... args) const {
    fmt::print(human(), format, std::forward<Args>(args)...);
  }
  // The table, fitted; then a line naming the columns left out, when any were.
  void print(const Table& table) const;
  // The JSON document, on one line of stdout; only under --json (a logic error otherwise).
  void emit(const nlohmann::json& document) const;

  // tools::problem_text under this command's --wide.
  std::string problem_text(const Problem& problem) const;
  std::string problem_text(const std::string& problem_key, const std::string& name = "") const;

 private:
  bool json_;
  bool wide_;
};

// Cells: an unknown value (NaN, a negative count) is kUnknown.
namespace cell {
std::string ms(double milliseconds);  // 1.2346
std::string error(double max_error);  // 1.23e-06; "nan": the output was not finite
std::string count(int value);         // -1: unknown
std::string ratio(double value);      // 1.23x
std::string percent(double value);    // 81%
std::string whole(double value);      // 812 (compile ms)
std::string gbps(double value);       // 812, 81.2, 0.81: three digits where it is small
}  // namespace cell

// NaN as JSON null, for values JSON must not carry as numbers.
nlohmann::json json_number(double value);
// A count, -1 meaning unknown (TrialRecord's resources), as JSON: null for unknown.
nlohmann::json json_count(int value);

}  // namespace deconvtune::tools

#include "tools/table.hpp"

#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tuner/progress.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tools {
namespace {

constexpr size_t kGap = 2;  // spaces between columns
constexpr std::string_view kCut = "...";

size_t total_width(const std::vector<size_t>& widths, const std::vector<bool>& shown) {
  size_t total = 0, columns = 0;
  for (size_t i = 0; i < widths.size(); ++i) {
    if (!shown[i]) continue;
    total += widths[i];
    ++columns;
  }
  return columns ? total + kGap * (columns - 1) : 0;
}

std::string fitted(const std::string& text, size_t width, Align align, bool last) {
  if (text.size() > width) return text.substr(0, width - kCut.size()) + std::string(kCut);
  const std::string padding(width - text.size(), ' ');
  if (align == Align::kRight) return padding + text;
  return last ? text : text + padding;
}

}  // namespace

Table::Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

void Table::add_row(std::vector<std::string> cells) {
  if (cells.size() != columns_.size()) {
    throw std::logic_error(
        fmt::format("Table::add_row: {} cells for {} columns", cells.size(), columns_.size()));
  }
  rows_.push_back(std::move(cells));
}

Table::Rendered Table::render(size_t width) const {
  const size_t n = columns_.size();
  std::vector<size_t> widths(n);
  for (size_t i = 0; i < n; ++i) {
    widths[i] = columns_[i].header.size();
    for (const auto& row : rows_) widths[i] = std::max(widths[i], row[i].size());
  }
  std::vector<bool> shown(n, true);
  Rendered rendered;
  if (width > 0) {
    // Optional columns, highest drop_order first (the rightmost of equals first).
    std::vector<size_t> droppable;
    for (size_t i = 0; i < n; ++i) {
      if (columns_[i].drop_order > 0) droppable.push_back(i);
    }
    std::stable_sort(droppable.begin(), droppable.end(), [&](size_t a, size_t b) {
      return columns_[a].drop_order != columns_[b].drop_order
                 ? columns_[a].drop_order > columns_[b].drop_order
                 : a > b;
    });
    for (size_t i : droppable) {
      if (total_width(widths, shown) <= width) break;
      shown[i] = false;
      rendered.omitted_columns.push_back(columns_[i].header);
    }
    for (size_t i = 0; i < n && total_width(widths, shown) > width; ++i) {
      if (!shown[i] || !columns_[i].truncatable) continue;
      const size_t floor = std::max(columns_[i].header.size(), kCut.size() + 1);
      const size_t excess = total_width(widths, shown) - width;
      widths[i] = std::max(std::min(floor, widths[i]), widths[i] > excess ? widths[i] - excess : 0);
    }
  }
  size_t first = n, last = n;
  for (size_t i = 0; i < n; ++i) {
    if (!shown[i]) continue;
    first = std::min(first, i);
    last = i;
  }
  auto line_of = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t i = 0; i < n; ++i) {
      if (!shown[i]) continue;
      if (i != first) line += std::string(kGap, ' ');
      line += fitted(cells[i], widths[i], columns_[i].align, i == last);
    }
    line.erase(line.find_last_not_of(' ') + 1);  // an empty last cell
    return line;
  };
  std::vector<std::string> headers;
  for (const Column& column : columns_) headers.push_back(column.header);
  rendered.lines.push_back(line_of(headers));
  for (const auto& row : rows_) rendered.lines.push_back(line_of(row));
  return rendered;
}

std::string Table::markdown() const {
  auto line_of = [](const std::vector<std::string>& cells) {
    return "| " + fmt::format("{}", fmt::join(cells, " | ")) + " |\n";
  };
  std::vector<std::string> headers, rules;
  for (const Column& column : columns_) {
    headers.push_back(column.header);
    rules.push_back(column.align == Align::kRight ? "---:" : "---");
  }
  std::string text = line_of(headers) + line_of(rules);
  for (const auto& row : rows_) text += line_of(row);
  return text;
}

std::string compact_label(const Problem& p) {
  // The data type and layout only where they are not the defaults (float32, NCHW), which every
  // label before them implied.
  const std::string dtype =
      p.dtype == DType::kFloat32 ? "" : fmt::format(" {}", to_string(p.dtype));
  const std::string layout =
      p.layout == Layout::kNchw ? "" : fmt::format(" {}", to_string(p.layout));
  return fmt::format("n{} {}->{} {}x{} k{}x{} s{}x{} g{}{}{}{}", p.batch, p.in_channels,
                     p.out_channels, p.height, p.width, p.kernel.h, p.kernel.w, p.stride.h,
                     p.stride.w, p.groups, p.bias ? "" : " nobias", dtype, layout);
}

Output::Output(bool json, bool wide) : json_(json), wide_(wide) {}

void Output::print(const Table& table) const {
  const size_t width = wide_ ? 0 : static_cast<size_t>(tuner::terminal_width(fileno(human())));
  const Table::Rendered rendered = table.render(width);
  for (const std::string& line : rendered.lines) say("{}\n", line);
  if (!rendered.omitted_columns.empty()) {
    say("({} columns left out to fit {} columns; --wide shows them)\n",
        rendered.omitted_columns.size(), width);
  }
}

void Output::emit(const nlohmann::json& document) const {
  if (!json_) throw std::logic_error("Output::emit without --json");
  fmt::print("{}\n", document.dump());
  std::fflush(stdout);
}

std::string problem_text(const Problem& problem, bool wide) {
  const std::string shape = wide ? problem.key() : compact_label(problem);
  return problem.name.empty() ? shape : problem.name + ": " + shape;
}

std::string Output::problem_text(const Problem& problem) const {
  return tools::problem_text(problem, wide_);
}

std::string problem_text(const std::string& problem_key, const std::string& name, bool wide) {
  Problem problem;
  try {
    problem = db::parse_problem_key(problem_key);
  } catch (const db::FieldError&) {
    return name.empty() ? problem_key : name + ": " + problem_key;
  }
  problem.name = name;
  return problem_text(problem, wide);
}

std::string Output::problem_text(const std::string& problem_key, const std::string& name) const {
  return tools::problem_text(problem_key, name, wide_);
}
namespace cell {

std::string ms(double milliseconds) {
  return std::isfinite(milliseconds) ? fmt::format("{:.4f}", milliseconds) : std::string(kUnknown);
}

std::string error(double max_error) {
  return std::isnan(max_error) ? "nan" : fmt::format("{:.2e}", max_error);
}

std::string count(int value) { return value < 0 ? std::string(kUnknown) : std::to_string(value); }

std::string ratio(double value) {
  return std::isfinite(value) ? fmt::format("{:.2f}x", value) : std::string(kUnknown);
}

std::string percent(double value) {
  return std::isfinite(value) ? fmt::format("{:.0f}%", value) : std::string(kUnknown);
}

std::string whole(double value) {
  return std::isfinite(value) ? fmt::format("{:.0f}", value) : std::string(kUnknown);
}

std::string gbps(double value) {
  if (!std::isfinite(value)) return std::string(kUnknown);
  return fmt::format(value >= 100 ? "{:.0f}" : value >= 10 ? "{:.1f}" : "{:.2f}", value);
}

}  // namespace cell

nlohmann::json json_number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

nlohmann::json json_count(int value) {
  return value < 0 ? nlohmann::json(nullptr) : nlohmann::json(value);
}

}  // namespace deconvtune::tools

#include "tuner/progress.hpp"

#include <fmt/format.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>

namespace deconvtune::tuner {

int terminal_width(int fd) {
  winsize size{};
  if (ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  if (const char* columns = std::getenv("COLUMNS")) {
    char* end = nullptr;
    const long value = std::strtol(columns, &end, 10);
    if (end != columns && *end == '\0' && value > 0 && value < 100000)
      return static_cast<int>(value);
  }
  return 80;
}

std::string reason_line(const std::string& reason, size_t limit) {
  std::string line = reason.substr(0, reason.find('\n'));
  return line.size() > limit ? line.substr(0, limit) + "..." : line;
}

std::string rate_text(int done, double elapsed_seconds) {
  if (done <= 0 || !(elapsed_seconds > 0)) return "";
  const double per_second = done / elapsed_seconds;
  if (per_second >= 1) return fmt::format("{:.1f} trials/s", per_second);
  return fmt::format("{:.1f} s/trial", elapsed_seconds / done);
}

namespace {

// The bar's fields in display order.
enum Field { kBarField, kCount, kPercent, kElapsed, kRate, kEta, kBest, kCandidate, kFields };

constexpr int kMaxCells = 30, kMinCells = 8;
constexpr size_t kMinCandidate = 12;  // "now " and a few characters of the name, with "..."

std::string bar_cells(int done, int total, int cells) {
  // 64-bit: done * cells overflows an int for a few hundred million trials.
  const long long filled =
      total > 0 ? std::clamp(static_cast<long long>(done) * cells / total, 0LL, 0LL + cells) : 0;
  return "[" + std::string(static_cast<size_t>(filled), '#') +
         std::string(static_cast<size_t>(cells - filled), '.') + "]";
}

size_t joined_length(const std::array<std::string, kFields>& text) {
  size_t length = 0, parts = 0;
  for (const std::string& part : text) {
    if (part.empty()) continue;
    length += part.size();
    ++parts;
  }
  return length + (parts > 0 ? parts - 1 : 0);
}

}  // namespace

std::string format_bar(const BarStatus& status, int width) {
  const size_t budget = width > 1 ? static_cast<size_t>(width - 1) : 0;
  std::array<std::string, kFields> text;
  // Before the first trial the total is not known yet.
  text[kCount] = status.total > 0 ? fmt::format("{}/{}", status.done, status.total)
                                  : fmt::format("{}/?", status.done);
  text[kPercent] = fmt::format(
      "{}%", status.total > 0
                 ? std::clamp(static_cast<long long>(status.done) * 100 / status.total, 0LL, 100LL)
                 : 0LL);
  text[kElapsed] = "elapsed " + ProgressPrinter::clock_text(status.elapsed_seconds);
  text[kRate] = rate_text(status.done, status.elapsed_seconds);
  text[kEta] = "ETA " + ProgressPrinter::clock_text(status.eta_seconds);
  if (status.best_ms >= 0) text[kBest] = fmt::format("best {:.4f} ms", status.best_ms);
  if (!status.candidate.empty()) text[kCandidate] = "now " + status.candidate;
  int cells = kMaxCells;
  text[kBarField] = bar_cells(status.done, status.total, cells);
  auto excess = [&] {
    const size_t length = joined_length(text);
    return length > budget ? length - budget : 0;
  };
  if (excess() > 0) {
    cells = std::max(kMinCells, kMaxCells - static_cast<int>(std::min<size_t>(excess(), 1000)));
    text[kBarField] = bar_cells(status.done, status.total, cells);
  }
  if (const size_t cut = excess(); cut > 0 && !text[kCandidate].empty()) {
    const size_t keep = text[kCandidate].size() > cut ? text[kCandidate].size() - cut : 0;
    text[kCandidate] = keep >= kMinCandidate ? text[kCandidate].substr(0, keep - 3) + "..." : "";
  }
  for (Field field : {kCandidate, kRate, kElapsed, kPercent, kBest, kEta, kBarField}) {
    if (excess() == 0) break;
    text[field].clear();
  }
  // What dropping a field freed goes back to the bar.
  if (!text[kBarField].empty() && excess() == 0) {
    const size_t room = budget - joined_length(text);
    cells = std::min(kMaxCells, cells + static_cast<int>(std::min<size_t>(room, kMaxCells)));
    text[kBarField] = bar_cells(status.done, status.total, cells);
  }
  std::string line;
  for (const std::string& part : text) {
    if (part.empty()) continue;
    if (!line.empty()) line += ' ';
    line += part;
  }
  if (line.size() > budget) line.resize(budget);
  return line;
}

ProgressPrinter::ProgressPrinter(std::function<void(const std::string&)> write, ProgressStyle style,
                                 Clock::time_point start, double budget_seconds, int problems,
                                 std::function<int()> width)
    : write_(std::move(write)),
      style_(style),
      start_(start),
      budget_seconds_(budget_seconds),
      problems_(problems),
      width_(std::move(width)) {}

double ProgressPrinter::eta_seconds(int done, int total, double elapsed, double budget_seconds) {
  if (done <= 0) return -1;
  double eta = elapsed / done * std::max(0, total - done);
  if (budget_seconds > 0) eta = std::min(eta, std::max(0.0, budget_seconds - elapsed));
  return eta;
}

std::string ProgressPrinter::clock_text(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "?";
  const long total = std::lround(seconds);
  if (total >= 3600)
    return fmt::format("{}:{:02}:{:02}", total / 3600, total / 60 % 60, total % 60);
  return fmt::format("{}:{:02}", total / 60, total % 60);
}

double ProgressPrinter::elapsed() const {
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

std::string ProgressPrinter::best_so_far() const {
  std::string text = "no verified config yet";
  if (auto found = best_.find(last_problem_); found != best_.end()) {
    text = fmt::format("{} {:.4f} ms", found->second.second, found->second.first);
  }
  if (problems_ > 1 && labels_.count(last_problem_)) {
    text = fmt::format("problem {}: {}", labels_.at(last_problem_), text);
  }
  return text;
}

void ProgressPrinter::redraw() {
  BarStatus status;
  status.done = done_;
  status.total = total_;
  status.elapsed_seconds = elapsed();
  status.eta_seconds = eta_seconds(done_, total_, status.elapsed_seconds, budget_seconds_);
  if (auto found = best_.find(last_problem_); found != best_.end()) {
    status.best_ms = found->second.first;
  }
  status.candidate = in_flight_;
  const int width = width_ ? width_() : 80;
  // Erase to the end of the line: a shorter redraw (after a resize) leaves nothing behind.
  write_("\r" + format_bar(status, width) + "\x1b[K");
  drawn_ = true;
}

void ProgressPrinter::started(const std::string& problem_key, const std::string& config_name) {
  in_flight_ = config_name;
  if (last_problem_.empty()) last_problem_ = problem_key;
  if (style_ == ProgressStyle::kBar) redraw();
}

void ProgressPrinter::update(int done, int total, const db::TrialRecord& trial) {
  done_ = done;
  total_ = total;
  last_problem_ = trial.problem_key;
  in_flight_.clear();
  const int label =
      labels_.try_emplace(trial.problem_key, static_cast<int>(labels_.size()) + 1).first->second;
  if (trial.status == Disposition::kOk) {
    auto [it, inserted] = best_.try_emplace(trial.problem_key, trial.median_ms, trial.config_name);
    if (!inserted && trial.median_ms < it->second.first) {
      it->second = {trial.median_ms, trial.config_name};
    }
  }
  if (style_ == ProgressStyle::kBar) redraw();
  if (style_ == ProgressStyle::kBar || style_ == ProgressStyle::kQuiet) return;
  const double seconds = elapsed();
  const std::string eta = clock_text(eta_seconds(done, total, seconds, budget_seconds_));
  std::string best = "no verified config yet";
  if (auto found = best_.find(trial.problem_key); found != best_.end()) {
    best = fmt::format("best {:.4f} ms {}", found->second.first, found->second.second);
  }
  std::string outcome = std::string(to_string(trial.status));
  if (trial.status == Disposition::kOk) outcome = fmt::format("ok {:.4f} ms", trial.median_ms);
  // Several problems (a problems file): each line says which, by its order of appearance.
  std::string problem;
  if (problems_ > 1) problem = fmt::format("problem {} ", label);
  std::string rate = rate_text(done, seconds);
  if (!rate.empty()) rate = ", " + rate;
  write_(fmt::format("[{}/{}] {}{} {} | {} | elapsed {}{}, eta {}\n", done, total, problem,
                     trial.config_name, outcome, best, clock_text(seconds), rate, eta));
  if (style_ == ProgressStyle::kVerboseLines && trial.status != Disposition::kOk) {
    write_(fmt::format("    reason: {}\n", reason_line(trial.reason, 300)));
  }
}

void ProgressPrinter::finish() {
  if (style_ == ProgressStyle::kBar && drawn_) write_("\n");
  drawn_ = false;
}

}  // namespace deconvtune::tuner

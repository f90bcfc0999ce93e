#include "tuner/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace deconvtune::tuner {

ProgressPrinter::ProgressPrinter(std::function<void(const std::string&)> write, bool terminal,
                                 Clock::time_point start, double budget_seconds, int problems)
    : write_(std::move(write)),
      terminal_(terminal),
      start_(start),
      budget_seconds_(budget_seconds),
      problems_(problems) {}

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

void ProgressPrinter::update(int done, int total, const db::TrialRecord& trial) {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const int label =
      labels_.try_emplace(trial.problem_key, static_cast<int>(labels_.size()) + 1).first->second;
  if (trial.status == Disposition::kOk) {
    auto [it, inserted] = best_.try_emplace(trial.problem_key, trial.median_ms, trial.config_name);
    if (!inserted && trial.median_ms < it->second.first) {
      it->second = {trial.median_ms, trial.config_name};
    }
  }
  const std::string eta = clock_text(eta_seconds(done, total, elapsed, budget_seconds_));
  std::string best = "no verified config yet";
  if (auto found = best_.find(trial.problem_key); found != best_.end()) {
    best = fmt::format("best {:.4f} ms {}", found->second.first, found->second.second);
  }
  if (terminal_) {
    constexpr int kWidth = 30;
    const int filled = total > 0 ? std::min(kWidth, done * kWidth / total) : 0;
    write_(fmt::format("\r[{}{}] {}/{} {:3}% ETA {}  {}\x1b[K", std::string(filled, '#'),
                       std::string(kWidth - filled, '.'), done, total,
                       total > 0 ? done * 100 / total : 0, eta, best));
    drawn_ = true;
    return;
  }
  std::string outcome = std::string(to_string(trial.status));
  if (trial.status == Disposition::kOk) outcome = fmt::format("ok {:.4f} ms", trial.median_ms);
  // Several problems (a problems file): each line says which, by its order of appearance.
  std::string problem;
  if (problems_ > 1) problem = fmt::format("problem {} ", label);
  write_(fmt::format("[{}/{}] {}{} {} | {} | elapsed {} eta {}\n", done, total, problem,
                     trial.config_name, outcome, best, clock_text(elapsed), eta));
}

void ProgressPrinter::finish() {
  if (terminal_ && drawn_) write_("\n");
  drawn_ = false;
}

}  // namespace deconvtune::tuner

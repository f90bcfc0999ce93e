#pragma once
// Progress of a tuning run, one view for every problem and GPU: on a terminal, one bar redrawn in
// place with the ETA and the best time so far; otherwise (a log, a pipe) one plain line per
// finished trial, naming the problem by its order of appearance when there are several.
#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

class ProgressPrinter {
 public:
  using Clock = std::chrono::steady_clock;
  // `write` receives text exactly as it should appear (bar redraws start with '\r').
  ProgressPrinter(std::function<void(const std::string&)> write, bool terminal,
                  Clock::time_point start, double budget_seconds = 0, int problems = 1);

  // A ProgressFn: called after each recorded trial.
  void update(int done, int total, const db::TrialRecord& trial);
  // Ends the bar's line (terminal mode).
  void finish();

  // Seconds left at `done` of `total` after `elapsed` seconds (the average pace so far), capped by
  // what is left of a positive budget. Negative when unknown (nothing done yet).
  static double eta_seconds(int done, int total, double elapsed, double budget_seconds);
  static std::string clock_text(double seconds);  // "1:05", "1:02:03", "?" when negative

 private:
  std::function<void(const std::string&)> write_;
  bool terminal_;
  Clock::time_point start_;
  double budget_seconds_;
  int problems_;
  bool drawn_ = false;
  // The best verified time per problem key, for the status text.
  std::map<std::string, std::pair<double, std::string>> best_;
  std::map<std::string, int> labels_;  // problem key -> 1, 2, ... in order of first appearance
};

}  // namespace deconvtune::tuner

#pragma once
// Progress of a tuning run, one view for every problem and GPU: on a terminal, one bar redrawn in
// place (elapsed time, rate, ETA, best time so far, the candidate in flight), never wider than the
// terminal; otherwise (a log, a pipe, or -v) one plain line per finished trial, naming the problem
// by its order of appearance when there are several.
#include <chrono>
#include <functional>
#include <map>
#include <string>

#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

// The columns of the terminal on `fd` (TIOCGWINSZ), else $COLUMNS, else 80.
int terminal_width(int fd);

// A failure's reason in one line: its first line, cut to `limit` characters.
std::string reason_line(const std::string& reason, size_t limit = 150);

// What one bar redraw shows.
struct BarStatus {
  int done = 0, total = 0;
  double elapsed_seconds = 0;
  double eta_seconds = -1;  // negative: unknown
  double best_ms = -1;      // negative: nothing verified yet
  std::string candidate;    // the config in flight; empty: none
};

// One bar line of at most width - 1 columns (the last column would wrap on some terminals), plain
// ASCII. As the width shrinks, the bar narrows first (to 8 cells), then the candidate's name is
// cut, then fields are dropped in this order: candidate, rate, elapsed, percent, best, ETA, bar;
// the count "done/total" goes last, cut.
std::string format_bar(const BarStatus& status, int width);

// "3.2 trials/s" at one trial a second or faster, else "2.5 s/trial"; empty when nothing is done.
std::string rate_text(int done, double elapsed_seconds);

enum class ProgressStyle {
  kQuiet,         // prints nothing (-q), still counts for done(), total() and best_so_far()
  kBar,           // redrawn in place ('\r'), for a terminal
  kLines,         // a line per trial
  kVerboseLines,  // a line per trial, and a failure's reason under it
};

class ProgressPrinter {
 public:
  using Clock = std::chrono::steady_clock;
  // `write` receives text exactly as it should appear (bar redraws start with '\r'). `width` is
  // asked for the terminal's columns at each redraw, so a resize takes effect at the next one;
  // empty: 80.
  ProgressPrinter(std::function<void(const std::string&)> write, ProgressStyle style,
                  Clock::time_point start, double budget_seconds = 0, int problems = 1,
                  std::function<int()> width = {});

  // A ProgressFn: called after each recorded trial.
  void update(int done, int total, const db::TrialRecord& trial);
  // TuneRequest::on_candidate_start: the bar shows the candidate in flight.
  void started(const std::string& problem_key, const std::string& config_name);
  // Ends the bar's line (terminal mode).
  void finish();

  int done() const { return done_; }
  int total() const { return total_; }
  // "<config> <ms> ms" of the last trial's problem, prefixed "problem K: " when there are several;
  // "no verified config yet" when it has none.
  std::string best_so_far() const;

  // Seconds left at `done` of `total` after `elapsed` seconds (the average pace so far), capped by
  // what is left of a positive budget. Negative when unknown (nothing done yet).
  static double eta_seconds(int done, int total, double elapsed, double budget_seconds);
  static std::string clock_text(double seconds);  // "1:05", "1:02:03", "?" when negative

 private:
  double elapsed() const;
  void redraw();

  std::function<void(const std::string&)> write_;
  ProgressStyle style_;
  Clock::time_point start_;
  double budget_seconds_;
  int problems_;
  std::function<int()> width_;
  bool drawn_ = false;
  int done_ = 0, total_ = 0;
  std::string last_problem_;
  std::string in_flight_;
  // The best verified time per problem key, for the status text.
  std::map<std::string, std::pair<double, std::string>> best_;
  std::map<std::string, int> labels_;  // problem key -> 1, 2, ... in order of first appearance
};

}  // namespace deconvtune::tuner

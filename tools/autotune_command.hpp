#pragma once
// `deconvtune autotune`: tune one problem (--problem) or many (--problems FILE.jsonl, optionally
// one shard of them) on one GPU or several, into the tuning DB; report progress, the best
// candidates, compile and measuring time, and the winner's first launch. SIGINT or SIGTERM stops
// it: the trials recorded so far stay in the DB, a last line on stderr says how far it got and
// that rerunning resumes, exit kExitInterrupted; a second signal ends it at once.
#include <chrono>
#include <string>

namespace deconvtune::tools {

struct AutotuneArgs {
  std::string problem;   // empty: --problems must be given
  std::string problems;  // a problems file
  std::string precision;
  std::string dtype;   // empty: each problem's own
  std::string layout;  // likewise
  std::string db;
  std::string strategy = "auto";
  double budget_seconds = 0;
  int max_trials = 0;
  bool retune = false;
  int device = 0;
  std::string devices;  // "all" or "0,1,..."; empty: --device
  std::string shard;    // "i/n"
  int reps = 20;
  int warmup = 3;
  int top = 8;
  bool json = false;  // stdout: one JSON document; the summary goes to stderr
  bool wide = false;  // full problem keys, every column whatever the terminal's width
  bool no_launch = false;
  bool quiet = false;    // -q: no progress, only the summary and errors
  bool verbose = false;  // -v: a line per trial even on a terminal, with the failures' reasons
  // TEST ONLY (hidden): a fake measurer, its pace, a short kernel deadline, fault candidates.
  bool simulate = false;
  double simulate_trial_ms = 0;
  double kernel_deadline = 10;
  std::string inject_faults;  // "1,2,3,4,5": fault_ffma_kind<k>_mishexact extra candidates
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

int autotune_command(const AutotuneArgs& args);

}  // namespace deconvtune::tools

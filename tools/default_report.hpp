#pragma once
// `deconvtune default-report`: how far the untuned default (the runtime's heuristic: the nearest
// tuned problem's winner when legal, else the rule) is from the tuned winner, problem by problem.
// Each problem's own winner is left out of the heuristic's choice (leave-one-out), as if it had
// never been tuned. On a GPU every config is verified against the float64 reference and timed in
// the same run; without one the picks are listed with the DB's recorded winner times.
#include <string>

namespace deconvtune::tools {

struct DefaultReportArgs {
  std::string problems;  // a problems file (tuner/problem_set.hpp's format)
  std::string precisions = "fp32,tf32";
  std::string db;   // empty: $DECONVTUNE_DB, else the default path
  std::string out;  // also write the markdown here
  int reps = 10;
  int device = 0;
  bool json = false;  // stdout: one JSON document ({"rows": [...]}); the markdown to stderr
};

int default_report_command(const DefaultReportArgs& args);

}  // namespace deconvtune::tools

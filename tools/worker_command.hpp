#pragma once
// The hidden `deconvtune worker` subcommand: the tuner's measuring subprocess. It reads trial
// requests from stdin and answers on stdout (tuner/worker_protocol.hpp), verifying each candidate
// against the float64 GPU reference before timing it. A candidate that loses the CUDA context ends
// the process after its reply; the tuner starts a new worker.
#include <string>

namespace deconvtune::tools {

struct WorkerArgs {
  int device = 0;
  bool simulate = false;         // TEST ONLY: tuner/simulate.hpp instead of the GPU
  double simulate_trial_ms = 0;  // TEST ONLY: how long each simulated trial takes
};

int worker_command(const WorkerArgs& args);

}  // namespace deconvtune::tools

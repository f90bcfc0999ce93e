#pragma once
// The tuner's measuring subprocess (`deconvtune worker`): it reads trial requests from stdin and
// answers on stdout (tuner/worker_protocol.hpp), verifying each candidate against the float64 GPU
// reference before timing it. A candidate that loses the CUDA context ends the process after its
// reply; the tuner starts a new worker. The worker half of the protocol lives here, beside the
// tuner's half, so that any program that links the tuner can serve as its worker.
#include <optional>

#include "tuner/tuner.hpp"

namespace deconvtune::tuner {

struct WorkerOptions {
  int device = 0;
  std::optional<Simulation> simulation;  // TEST SEAM: set, tuner/simulate.hpp instead of the GPU
};

enum class WorkerEnd {
  kInputClosed,  // the tuner closed stdin: every request was answered
  kUnreadable,   // a request this worker cannot read (answered with an error message)
  kFailed,       // the tuner went away first, or the context was lost or could not be set up
};

// Serves requests until stdin closes. Where the context is lost it ends the process at once
// (_exit with `lost_context_exit_code`): destructors that touch a lost context could fail or block.
WorkerEnd serve_as_worker(const WorkerOptions& options, int lost_context_exit_code);

}  // namespace deconvtune::tuner

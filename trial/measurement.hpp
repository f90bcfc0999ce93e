#pragma once
// What one trial measured: the one record of a trial that travels from the worker's reply
// (tuner/worker_protocol.hpp's TrialReply) into the tuning DB's row (db::TrialRecord). Both are
// this record plus what their stage adds: the reply its protocol's fields, the row its key, the
// compile's resources and the time it was measured. A leaf: it needs nothing of the GPU.
#include <string>

#include "trial/disposition.hpp"

namespace deconvtune {

struct TrialMeasurement {
  std::string config_name;
  Disposition status = Disposition::kOk;
  std::string reason;                            // why it failed (the DB keeps none for kOk)
  double median_ms = 0, min_ms = 0, max_ms = 0;  // the timed runs; 0 when it failed
  double max_error = 0;  // NaN: not finite (a wrong kernel's output); only for failed trials
  int registers = -1;    // -1: unknown
};

}  // namespace deconvtune

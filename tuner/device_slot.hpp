#pragma once
// Internal to tuner/: one GPU of a tuning run (or the simulated one) and what the run keeps for it:
// the device record its results are keyed by, its limits and architecture, the tuner's own context
// (for the copy bandwidth and the winner's first launch) and its worker subprocess.
#include <memory>
#include <string>
#include <vector>

#include "codegen/config.hpp"
#include "gpu/driver_api.hpp"
#include "tuner/tuner.hpp"
#include "tuner/worker_process.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

struct DeviceSlot {
  int ordinal = 0;
  db::DeviceRecord record;
  DeviceLimits limits;
  std::string arch = kDefaultArch;
  std::unique_ptr<Context> context;  // GPU mode: the tuner's own, for the winner's first launch
  double context_ms = 0;
  std::unique_ptr<WorkerProcess> worker;
  bool worker_started = false;  // a later start is a restart
};

// One slot per device the request names (TuneRequest::devices, else ::device), in that order.
// Throws TuneError for a device listed twice or one this machine does not have; opens a context
// on each GPU (none when simulating).
std::vector<std::unique_ptr<DeviceSlot>> open_devices(const TuneRequest& request);

}  // namespace deconvtune::tuner

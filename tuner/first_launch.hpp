#pragma once
// Internal to tuner/: the winner's first launch, in the tuner's own context, with its cubin from
// the cache (compiled and stored when it is not there): how long a user's first call would take,
// split into context, cubin, load and launch. Throws TuneError when the winner no longer compiles,
// CudaError when the launch fails.
#include "codegen/problem.hpp"
#include "tuner/device_slot.hpp"
#include "tuner/run_control.hpp"
#include "tuner/tuner.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

FirstLaunch launch_winner(DeviceSlot& slot, db::TuningDb& db, const Problem& problem,
                          const db::WinnerRecord& winner, Clock::time_point run_start);

}  // namespace deconvtune::tuner

#pragma once
// Internal to tuner/: the clock every part of a tuning run measures with, and how a stopped run
// (TuneRequest::stop) unwinds: the part that sees the flag throws Interrupted, and the job runner
// catches it, so the candidate in flight is abandoned, not recorded.
#include <chrono>

#include "tuner/tuner.hpp"

namespace deconvtune::tuner {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}
inline double ms_since(Clock::time_point start) { return 1000.0 * seconds_since(start); }

inline bool stop_requested(const TuneRequest& request) {
  return request.stop && request.stop->load();
}

// Thrown out of compiling or measuring when the run is stopped (TuneRequest::stop).
struct Interrupted {};

}  // namespace deconvtune::tuner

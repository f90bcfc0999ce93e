#pragma once
// Internal to tuner/: the tuner's half of the worker protocol for one device. It sends a candidate
// to the device's worker subprocess (starting one when there is none, restarting it when it died
// between trials) and reads the verification, then the timing, each within its deadline. A worker
// that hangs is killed (kTimedOut), one that dies is reported (kFaulted), one that answers garbage
// is replaced (kLaunchFailed); a stopped run throws Interrupted, and a worker that cannot set up
// the problem throws ProblemSetupError (no candidate is to blame).
#include <string>

#include "codegen/problem.hpp"
#include "trial/benchmark.hpp"
#include "tuner/compile_pipeline.hpp"
#include "tuner/device_slot.hpp"
#include "tuner/tuner.hpp"
#include "tuner/worker_protocol.hpp"

namespace deconvtune::tuner {

class Measurer {
 public:
  Measurer(const TuneRequest& request, DeviceSlot& slot) : request_(request), slot_(slot) {}

  // A worker killed from outside mid-trial (SIGKILL: the OOM killer, a scheduler, a user) says
  // nothing about the candidate: it is measured once more on a fresh worker, and only a second such
  // death marks it faulted.
  TrialReply measure(const Problem& problem, const Candidate& candidate,
                     const TrialOptions& options);

  int restarts() const { return restarts_; }
  int retries_after_kill() const { return retries_after_kill_; }

 private:
  TrialReply measure_once(const Problem& problem, const Candidate& candidate,
                          const TrialOptions& options);
  void ensure_worker();
  void send_request(const std::string& line);
  void abandon_if_interrupted(WorkerProcess::Read read);
  std::string finish_worker();
  void drop_worker() { slot_.worker.reset(); }

  const TuneRequest& request_;
  DeviceSlot& slot_;
  int restarts_ = 0;
  bool killed_from_outside_ = false;  // the last measure_once lost its worker to SIGKILL
  int retries_after_kill_ = 0;
};

}  // namespace deconvtune::tuner

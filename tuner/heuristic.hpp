#pragma once
// The kernel config to run for a problem the tuning database has no winner for: the winner of the
// nearest tuned problem (same device, generator version and precision) when that config is legal
// for this problem, else the rule-based default_config(). Legal configs are correct by the variant
// space's promise, so the pick is always correct; only its speed is a guess.
#include <string>

#include "codegen/config.hpp"
#include "codegen/problem.hpp"
#include "codegen/search_space.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune {

struct UntunedChoice {
  Config config;
  std::string nearest_key;     // the tuned problem whose winner this is; empty: the rule's pick
  double distance = 0;         // problem_distance to it, plus kOtherGpuStep for another GPU's
  std::string nearest_device;  // the GPU it was tuned on when not this one (same device_class)
  // "nearest:<key>", "nearest:<key> (tuned on <GPU name>, same arch and SM count)" or "rule"
  std::string source() const;
};

// What a winner tuned on another GPU of the same class adds to the distance: less than a factor of
// two in any size (distance 1), so the problem's own winner on an H100 is the H200's first guess,
// and a winner of this very GPU wins at equal problem distance.
constexpr double kOtherGpuStep = 0.5;

// Whether the engine may launch `winner` as its problem's tuned kernel, without checking it first:
// its config may win (never a test-only fault kernel) and it was measured through this DB's tuner.
// An imported winner was verified only on the machine that exported it, so it is a hint here
// (choice (b) of issue 14): the engine plans the problem as untuned (on_miss) until a trial
// measured here replaces it (an autotune does; TuningDb's offer rule prefers a local trial).
// Not (a), verifying it in the engine: that would run a kernel nobody here has run in the caller's
// CUDA context, where a fault loses the context; the tuner judges kernels in a worker process.
bool serves_as_tuned(const db::WinnerRecord& winner);

// How unlike two problems are for kernel selection: |log2| ratios of the sizes, plus a large
// step for each geometry difference (kernel, stride, dilation, groups), smaller ones for padding,
// bias and epilogue; infinite between problems of another dtype or layout (no neighbours).
double problem_distance(const Problem& a, const Problem& b);

// Among the DB's winners of `generator_version` and the problem's precision, dtype and layout,
// tuned on `device_key` or on another GPU of its db::device_class (the problem's own winner
// included there), never the problem itself on this GPU (the tuned path's business) nor
// `exclude_key` (a leave-one-out report), the nearest whose config is legal for the problem on
// `device` and may win; else default_config(). Only supported winners count
// (TuningDb::winners()), so no config a forged or unbacked row names is served. Throws db::DbError
// when the DB cannot be read.
UntunedChoice choose_untuned_config(const Problem& problem, const DeviceLimits& device,
                                    const db::TuningDb& db, const std::string& device_key,
                                    const std::string& generator_version,
                                    const std::string& exclude_key = {});

}  // namespace deconvtune

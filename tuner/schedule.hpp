#pragma once
// How many trials a strategy runs, and successive halving's rounds: every candidate first gets a
// few timed runs; the better half of the verified ones goes on to twice as many, and so on, until a
// round reaches the full count of timed runs (TrialOptions::timed_runs, >= 20 by default). Every
// round's measurement is recorded as a trial, so a killed run keeps what it measured.
#include <cstddef>
#include <vector>

#include "runtime/benchmark.hpp"
#include "tuner/tuner.hpp"

namespace deconvtune::tuner {

struct HalvingRound {
  size_t candidates = 0;  // how many are measured in this round (at most)
  TrialOptions options;   // with this many warm-up and timed runs
};

// The rounds for `candidates` pending configs; the last round uses `full` unchanged. Two or fewer
// candidates get one round at the full count.
std::vector<HalvingRound> halving_rounds(size_t candidates, const TrialOptions& full);

// Trials a strategy plans for `candidates` configs (halving: all rounds, assuming every candidate
// verifies), capped by max_trials when it is positive.
int planned_trials(Strategy strategy, size_t candidates, const TrialOptions& full, int max_trials);

}  // namespace deconvtune::tuner

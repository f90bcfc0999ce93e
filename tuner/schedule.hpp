#pragma once
// How many trials a strategy runs, and successive halving's rounds: every candidate first gets a
// few timed runs; the better half of the verified ones goes on to twice as many, and so on, until a
// round reaches the full count of timed runs (TrialOptions::timed_runs, >= 20 by default). Every
// round's measurement is recorded as a trial, so a killed run keeps what it measured. And the order
// candidates are measured in: what a budget cuts short must never lose to the untuned choice.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "codegen/config.hpp"
#include "trial/benchmark.hpp"
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

// The order `pending` is measured in: the configs of `first` that are pending, in their order (the
// rule's default and the nearest tuned neighbour's winner: what the runtime would run untuned, so a
// winner found under any budget is never slower than it), then the rest, shuffled by `seed` when
// `shuffled` (a random strategy, or a budget that may stop before the end: lexical order would
// spend it all on one corner of the space), else in their enumeration order.
std::vector<Config> measuring_order(std::vector<Config> pending, const std::vector<Config>& first,
                                    bool shuffled, uint64_t seed);

// A seed for measuring_order: the request's seed mixed with the problem key (FNV-1a), so problems
// of one batch get different orders and the same request the same order in every process (a resumed
// run goes on where the killed one stopped).
uint64_t order_seed(uint64_t request_seed, std::string_view problem_key);

}  // namespace deconvtune::tuner

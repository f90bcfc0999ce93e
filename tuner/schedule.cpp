#include "tuner/schedule.hpp"

#include <algorithm>

namespace deconvtune::tuner {

std::vector<HalvingRound> halving_rounds(size_t candidates, const TrialOptions& full) {
  std::vector<HalvingRound> rounds;
  if (candidates == 0) return rounds;
  // The first round's timed runs: an eighth of the full count, at least 2.
  int runs = std::max(2, full.timed_runs / 8);
  size_t count = candidates;
  while (true) {
    HalvingRound round;
    round.candidates = count;
    round.options = full;
    if (count <= 2 || runs >= full.timed_runs) {
      rounds.push_back(round);
      break;
    }
    round.options.timed_runs = runs;
    round.options.warmup_runs = std::min(full.warmup_runs, 1);
    rounds.push_back(round);
    count = (count + 1) / 2;
    runs *= 2;
  }
  return rounds;
}

int planned_trials(Strategy strategy, size_t candidates, const TrialOptions& full, int max_trials) {
  size_t planned = candidates;
  if (strategy == Strategy::kSuccessiveHalving) {
    planned = 0;
    for (const HalvingRound& round : halving_rounds(candidates, full)) planned += round.candidates;
  }
  if (max_trials > 0) planned = std::min(planned, static_cast<size_t>(max_trials));
  return static_cast<int>(planned);
}

}  // namespace deconvtune::tuner

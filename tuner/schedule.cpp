#include "tuner/schedule.hpp"

#include <algorithm>
#include <random>

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

std::vector<Config> measuring_order(std::vector<Config> pending, const std::vector<Config>& first,
                                    bool shuffled, uint64_t seed) {
  std::vector<Config> order;
  for (const Config& config : first) {
    auto found = std::find(pending.begin(), pending.end(), config);
    if (found == pending.end()) continue;  // measured already, or a duplicate of the one before
    order.push_back(*found);
    pending.erase(found);
  }
  if (shuffled) {
    std::mt19937_64 random(seed);
    std::shuffle(pending.begin(), pending.end(), random);
  }
  order.insert(order.end(), pending.begin(), pending.end());
  return order;
}

uint64_t order_seed(uint64_t request_seed, std::string_view problem_key) {
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : problem_key) hash = (hash ^ c) * 1099511628211ull;
  return request_seed ^ hash;
}

}  // namespace deconvtune::tuner

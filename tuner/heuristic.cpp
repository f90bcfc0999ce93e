#include "tuner/heuristic.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "codegen/untrusted.hpp"

namespace deconvtune {

bool serves_as_tuned(const db::WinnerRecord& winner) {
  return !winner.imported && may_win(winner.config_name);
}

double problem_distance(const Problem& a, const Problem& b) {
  // A config verified on float32 NCHW data is another instantiation for 16-bit or NHWC data
  // (DT_DTYPE, DT_NHWC): its verification says nothing there.
  if (a.dtype != b.dtype || a.layout != b.layout) return std::numeric_limits<double>::infinity();
  auto size_term = [](int64_t x, int64_t y) {
    return std::fabs(std::log2(static_cast<double>(x) / static_cast<double>(y)));
  };
  // A geometry difference changes which tiles fit and how the phases split: it outweighs any size
  // difference in practice.
  constexpr double kGeometryStep = 16;
  double distance = size_term(a.batch, b.batch) + size_term(a.in_channels, b.in_channels) +
                    size_term(a.out_channels, b.out_channels) + size_term(a.height, b.height) +
                    size_term(a.width, b.width);
  distance += kGeometryStep * (!(a.kernel == b.kernel) + !(a.stride == b.stride) +
                               !(a.dilation == b.dilation) + (a.groups != b.groups));
  distance += 2 * (!(a.padding == b.padding) + !(a.output_padding == b.output_padding));
  distance += 1 * (a.bias != b.bias) + 1 * !(a.epilogue == b.epilogue);
  return distance;
}

std::string UntunedChoice::source() const {
  if (nearest_key.empty()) return "rule";
  if (nearest_device.empty()) return "nearest:" + nearest_key;
  return "nearest:" + nearest_key + " (tuned on " +
         nearest_device.substr(0, nearest_device.find('|')) + ", same arch and SM count)";
}

UntunedChoice choose_untuned_config(const Problem& problem, const DeviceLimits& device,
                                    const db::TuningDb& db, const std::string& device_key,
                                    const std::string& generator_version,
                                    const std::string& exclude_key) {
  const std::string own_key = problem.key();
  std::map<std::string, std::string> specs;  // problem key -> its JSON, as the DB stores it
  for (db::ProblemRecord& record : db.problems()) specs.emplace(record.key, std::move(record.spec));
  const std::string own_class = db::device_class(device_key);
  std::optional<UntunedChoice> best;
  for (const db::WinnerRecord& winner : db.winners()) {
    const bool this_gpu = winner.device_key == device_key;
    const bool same_class = !own_class.empty() && db::device_class(winner.device_key) == own_class;
    if (!(this_gpu || same_class) || winner.generator_version != generator_version ||
        winner.precision != problem.precision || (this_gpu && winner.problem_key == own_key) ||
        winner.problem_key == exclude_key || !may_win(winner.config_name)) {
      continue;
    }
    auto spec = specs.find(winner.problem_key);
    if (spec == specs.end()) continue;
    Problem tuned;
    try {
      // A DB is untrusted input (codegen/untrusted.hpp).
      tuned = Problem::from_json(parse_untrusted_json(spec->second, kMaxProblemNesting));
    } catch (const std::exception&) {
      continue;  // a damaged spec, or one this build no longer accepts
    }
    const double distance = problem_distance(problem, tuned) + (this_gpu ? 0 : kOtherGpuStep);
    if (!std::isfinite(distance)) continue;  // not a neighbour at all
    // Equal distances: the first wins, and winners() is ordered by key.
    if (best && distance >= best->distance) continue;
    Config config;
    try {
      config = Config::from_name(winner.config_name);
    } catch (const std::invalid_argument&) {
      continue;  // a config of an older space
    }
    if (!why_illegal(problem, config, device).empty()) continue;
    best = UntunedChoice{std::move(config), winner.problem_key, distance,
                         this_gpu ? std::string() : winner.device_key};
  }
  if (best) return *best;
  return UntunedChoice{default_config(problem, device), {}, 0, {}};
}

}  // namespace deconvtune

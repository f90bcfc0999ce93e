#include "codegen/search_space.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace deconvtune {
namespace {

unsigned ceil_div(int64_t a, int64_t b) { return static_cast<unsigned>((a + b - 1) / b); }

FamilySpec direct_family() {
  FamilySpec spec;
  spec.family = Family::kDirect;
  spec.template_file = "direct.cuh";
  spec.kernel_name = "deconv_direct";
  spec.maths = {MathMode::kFfma};
  spec.params = {
      {"t", "DT_THREADS", {128, 256}, "threads per block"},
      {"c", "DT_CO_PER_THREAD", {1, 2, 4, 8}, "output channels per thread"},
  };
  spec.why_illegal = [](const Problem& problem, const Config& config,
                        const DeviceLimits&) -> std::string {
    const int64_t co_per_group = problem.out_channels / problem.groups;
    const int c = config.param("c");
    // Wider than the group only repeats work; keep the one width that covers it.
    if (c > 1 && c / 2 >= co_per_group) {
      return fmt::format("c{} exceeds the {} output channels per group", c, co_per_group);
    }
    return {};
  };
  spec.launch = [](const Problem& problem, const Config& config) {
    const int threads = config.param("t");
    const int c = config.param("c");
    const int64_t co_tiles = (problem.out_channels / problem.groups + c - 1) / c;
    const int64_t items =
        problem.batch * problem.groups * co_tiles * problem.out_height() * problem.out_width();
    LaunchGeometry geometry;
    // The kernel strides over its work, so the grid may stop short of covering it in one pass.
    geometry.grid[0] = std::min<unsigned>(ceil_div(items, threads), 1u << 30);
    geometry.block[0] = static_cast<unsigned>(threads);
    return geometry;
  };
  return spec;
}

}  // namespace

const std::vector<FamilySpec>& families() {
  static const std::vector<FamilySpec> all = {direct_family()};
  return all;
}

const FamilySpec& family_spec(Family family) {
  for (const FamilySpec& spec : families()) {
    if (spec.family == family) return spec;
  }
  throw std::out_of_range(fmt::format("no family '{}'", to_string(family)));
}

bool math_meets(MathMode math, Precision precision) {
  return precision == Precision::kTf32 || math != MathMode::kTf32;
}

std::string why_illegal(const Problem& problem, const Config& config, const DeviceLimits& device) {
  if (!math_meets(config.math, problem.precision)) {
    return fmt::format("math {} cannot meet precision {}", to_string(config.math),
                       to_string(problem.precision));
  }
  if (config.mish == MishVariant::kFast) {
    if (!problem.epilogue.contains(EpilogueKind::kMish)) return "mishfast without mish";
    // The fast form's few-ulp error is inside the tf32 bound, not the fp32 one.
    if (problem.precision == Precision::kFp32) return "mishfast is outside the fp32 error bound";
  }
  return family_spec(config.family).why_illegal(problem, config, device);
}

std::vector<Config> enumerate_space(const Problem& problem, const DeviceLimits& device) {
  std::vector<Config> space;
  for (const FamilySpec& spec : families()) {
    // The cartesian product of the declared values, first parameter slowest.
    std::vector<size_t> position(spec.params.size(), 0);
    for (MathMode math : spec.maths) {
      for (MishVariant mish : {MishVariant::kExact, MishVariant::kFast}) {
        std::fill(position.begin(), position.end(), 0);
        while (true) {
          Config config{spec.family, math, {}, mish};
          for (size_t i = 0; i < spec.params.size(); ++i) {
            config.params.emplace_back(spec.params[i].name, spec.params[i].values[position[i]]);
          }
          if (why_illegal(problem, config, device).empty()) space.push_back(std::move(config));
          size_t i = spec.params.size();
          while (i > 0 && ++position[i - 1] == spec.params[i - 1].values.size()) {
            position[--i] = 0;
          }
          if (i == 0) break;
        }
      }
    }
  }
  return space;
}

Config default_config(const Problem& problem, const DeviceLimits& device) {
  std::vector<Config> space = enumerate_space(problem, device);
  // Until a tuned winner exists: the general kernel with 256 threads and the widest channel block.
  Config best = Config::from_name("direct_ffma_t256_c1_mishexact");
  for (const Config& config : space) {
    if (config.family == Family::kDirect && config.mish == MishVariant::kExact &&
        config.param("t") == 256 && config.param("c") > best.param("c")) {
      best = config;
    }
  }
  return best;
}

}  // namespace deconvtune

#pragma once
// Problem + Config -> self-contained CUDA source. The source opens with #defines that bake the
// problem's shape, the epilogue chain and the config's parameters in as compile-time constants,
// followed by the family's template with its #includes of other templates inlined, so the text
// compiles on its own (NVRTC needs no include paths, and `inspect` prints something you can paste).
#include <string>

#include "codegen/config.hpp"
#include "codegen/problem.hpp"
#include "codegen/search_space.hpp"

namespace deconvtune {

struct GeneratedKernel {
  std::string source;
  std::string kernel_name;
  LaunchGeometry launch;
  std::string config_name;
};

// For the device (its launch geometry, and the legality rules checked against it). Throws
// std::invalid_argument when the config is illegal for the problem there (saying why).
GeneratedKernel generate_kernel(const Problem& problem, const Config& config,
                                const DeviceLimits& device = {});

// The float64 reference and the fill/compare kernels for `problem`, in one source.
std::string generate_reference_source(const Problem& problem);

// The template `file` with its #includes of other templates inlined (each file once).
std::string expand_template(const std::string& file);

// A hash of every template and of the generator's own revision: a changed generator never reuses
// a stale tuning result.
std::string generator_version();

}  // namespace deconvtune

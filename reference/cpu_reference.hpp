#pragma once
// The float64 CPU reference of the whole block, in scatter form (each input pixel adds into every
// output its taps reach: the definition of a transposed convolution), so it shares no index
// arithmetic with the gather-form GPU reference and kernels. For small problems only.
#include <vector>

#include "codegen/problem.hpp"

namespace deconvtune {

// x: [N, CI, H, W]; w: [CI, CO / groups, KH, KW]; bias: [CO] or empty. Returns y: [N, CO, OH, OW].
std::vector<double> cpu_reference(const Problem& problem, const std::vector<double>& x,
                                  const std::vector<double>& w, const std::vector<double>& bias);

}  // namespace deconvtune

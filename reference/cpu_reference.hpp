#pragma once
// The float64 CPU reference of the whole block, in scatter form (each input pixel adds into every
// output its taps reach: the definition of a transposed convolution), so it shares no index
// arithmetic with the gather-form GPU reference and kernels. For small problems only.
#include <vector>

#include "codegen/problem.hpp"

namespace deconvtune {

// x: [N, CI, H, W] (NCHW) or [N, H, W, CI] (NHWC, the problem's layout); w: [CI, CO / groups, KH,
// KW]; bias: [CO] or empty. Returns y: [N, CO, OH, OW] or [N, OH, OW, CO]. For a 16-bit dtype the
// inputs are first rounded (through float) to it, as the kernels read them; float32 inputs are
// taken as given.
std::vector<double> cpu_reference(const Problem& problem, const std::vector<double>& x,
                                  const std::vector<double>& w, const std::vector<double>& bias);

}  // namespace deconvtune

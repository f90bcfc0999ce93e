// How the tensor-core kernels write y: a thread that computes every column phase of two
// neighbouring phase pixels holds 2 * SW consecutive outputs of one row, and stores them with the
// widest aligned vector the row allows. Streaming stores (st.global.cs): y is written once and
// never read back, so it should not push x's rows out of L2.
#pragma once
#include "problem.cuh"

namespace dt {
constexpr int RUN = 2 * SW;
constexpr int VEC = (RUN % 4 == 0 && OW % 4 == 0) ? 4 : (RUN % 2 == 0 && OW % 2 == 0) ? 2 : 1;

// 2 * SW consecutive outputs of one row, from ow on (ow a multiple of RUN).
__device__ __forceinline__ void store_run(float* __restrict__ row, int ow, const float (&v)[RUN]) {
  if (ow + RUN <= OW) {
#pragma unroll
    for (int k = 0; k < RUN; k += VEC) {
      if (VEC == 4) {
        __stcs(reinterpret_cast<float4*>(row + ow + k),
               make_float4(v[k], v[k + 1], v[k + 2], v[k + 3]));
      } else if (VEC == 2) {
        __stcs(reinterpret_cast<float2*>(row + ow + k), make_float2(v[k], v[k + 1]));
      } else {
        __stcs(row + ow + k, v[k]);
      }
    }
  } else {
#pragma unroll
    for (int k = 0; k < RUN; ++k)
      if (ow + k < OW) __stcs(row + ow + k, v[k]);
  }
}
}  // namespace dt

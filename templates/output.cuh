// How the tensor-core kernels write y: a thread that computes every column phase of two
// neighbouring phase pixels holds 2 * SW consecutive outputs of one row, and stores them with the
// widest aligned vector the row allows. Streaming stores (st.global.cs): y is written once and
// never read back, so it should not push x's rows out of L2.
#pragma once
#include "problem.cuh"

namespace dt {
constexpr int RUN = 2 * SW;
// Consecutive outputs of a row lie OW_STRIDE elements apart: in NHWC (channels_last) y a
// pixel's channels come between them, so each is stored alone (the lanes of a warp that hold
// consecutive channels still fill whole 32-byte sectors).
constexpr i64 OW_STRIDE = DT_NHWC ? CO : 1;
constexpr int VEC = DT_NHWC                         ? 1
                    : (RUN % 4 == 0 && OW % 4 == 0) ? 4
                    : (RUN % 2 == 0 && OW % 2 == 0) ? 2
                                                    : 1;

// One streaming store of VEC outputs (a vector of VEC elements), rounded to y's type.
template <int COUNT>
__device__ __forceinline__ void store_vector(float* __restrict__ at, const float* v) {
  if constexpr (COUNT == 4) {
    __stcs(reinterpret_cast<float4*>(at), make_float4(v[0], v[1], v[2], v[3]));
  } else if constexpr (COUNT == 2) {
    __stcs(reinterpret_cast<float2*>(at), make_float2(v[0], v[1]));
  } else {
    __stcs(at, v[0]);
  }
}
#if DT_DTYPE != 0
template <int COUNT>
__device__ __forceinline__ void store_vector(unsigned short* __restrict__ at, const float* v) {
  // Two 16-bit outputs per 32-bit word, the lower address in the low half (little-endian).
  auto pair = [&](int k) {
    return (unsigned)from_f32(v[k]) | ((unsigned)from_f32(v[k + 1]) << 16);
  };
  if constexpr (COUNT == 4) {
    __stcs(reinterpret_cast<uint2*>(at), make_uint2(pair(0), pair(2)));
  } else if constexpr (COUNT == 2) {
    __stcs(reinterpret_cast<unsigned*>(at), pair(0));
  } else {
    asm volatile("st.global.cs.b16 [%0], %1;" ::"l"(at), "h"(from_f32(v[0])) : "memory");
  }
}
#endif

// 2 * SW consecutive outputs of one row (`row`: its output 0), from ow on (ow a multiple of RUN).
__device__ __forceinline__ void store_run(elem* __restrict__ row, int ow, const float (&v)[RUN]) {
  if (ow + RUN <= OW) {
#pragma unroll
    for (int k = 0; k < RUN; k += VEC) store_vector<VEC>(row + (ow + k) * OW_STRIDE, v + k);
  } else {
#pragma unroll
    for (int k = 0; k < RUN; ++k)
      if (ow + k < OW) store_vector<1>(row + (ow + k) * OW_STRIDE, v + k);
  }
}
}  // namespace dt

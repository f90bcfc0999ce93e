// TEST ONLY: the `fault` family, which the tuner's fault-isolation tests inject as extra candidates.
// It is never part of an enumerated space (codegen/search_space.cpp keeps it out of families()).
// The kernel computes the correct output (a plain fp32 gather, one thread per output element), then
// misbehaves as DT_FAULT_KIND says:
//   0 none (the default, so the template compiles on its own)
//   1 compile error          2 out-of-bounds write (illegal address: the context is lost)
//   3 endless loop           4 wrong answer (one element off by 1)
//   5 a silent write one element past the end of y (only the guard band can see it)
#pragma once
#include "problem.cuh"
#include "epilogue.cuh"

#ifndef DT_FAULT_KIND
#define DT_FAULT_KIND 0
#endif

#if DT_FAULT_KIND == 1
#error "fault_injection.cuh: DT_FAULT_KIND 1 is a deliberate compile error"
#endif

extern "C" __device__ const int dt_shared_bytes = 0;

extern "C" __global__ void __launch_bounds__(256)
    deconv_fault(const float* __restrict__ x, const float* __restrict__ w,
                 const float* __restrict__ bias, float* __restrict__ y) {
  using namespace dt;
  const i64 total = (i64)N * CO * OH * OW;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total;
       i += (i64)gridDim.x * blockDim.x) {
    const int ow = (int)(i % OW);
    const int oh = (int)((i / OW) % OH);
    const int co = (int)((i / ((i64)OW * OH)) % CO);
    const i64 n = i / ((i64)OW * OH * CO);
    const int group = co / CO_PER_GROUP;
    float acc = 0.0f;
    for (int kh = 0; kh < KH; ++kh) {
      const int ih = (oh + PH - kh * DH + SH * H) / SH - H;
      if (ih < 0 || ih >= H || ih * SH - PH + kh * DH != oh) continue;
      for (int kw = 0; kw < KW; ++kw) {
        const int iw = (ow + PW - kw * DW + SW * W) / SW - W;
        if (iw < 0 || iw >= W || iw * SW - PW + kw * DW != ow) continue;
        for (int ci = group * CI_PER_GROUP; ci < (group + 1) * CI_PER_GROUP; ++ci)
          acc = fmaf(x[x_index(n, ci, ih, iw)], w[w_index(ci, co - group * CO_PER_GROUP, kh, kw)],
                     acc);
      }
    }
    float v = acc;
    if (HAS_BIAS) v += bias[co];
    DT_EPILOGUE(v)
#if DT_FAULT_KIND == 4
    if (i == total / 2) v += 1.0f;
#endif
    y[i] = v;
#if DT_FAULT_KIND == 2
    // Far outside any allocation: the launch faults with an illegal address.
    if (i == 0) y[(i64)1 << 40] = v;
#endif
#if DT_FAULT_KIND == 5
    if (i == 0) y[total] = v;
#endif
  }
#if DT_FAULT_KIND == 3
  // Spins forever; the asm keeps the compiler from removing the side-effect-free loop.
  for (;;) asm volatile("nanosleep.u32 1000;");
#endif
}

// The general kernel: a direct, gather-form transposed convolution with the epilogue fused. It
// serves every valid problem (any stride, padding, dilation, groups), so the runtime always has
// something correct to run. Each thread owns one output pixel and DT_CO_PER_THREAD output channels
// of one group, so every x value it loads feeds that many FFMAs; consecutive threads take
// consecutive output columns, so loads of x and stores of y coalesce (in NCHW; in NHWC they stride
// by the channel count, correct but not yet fast). FFMA in fp32: exact to fp32 rounding; 16-bit
// tensors are widened on load and y rounded once, on its store.
#pragma once
#include "epilogue.cuh"
#include "problem.cuh"

#ifndef DT_THREADS
#define DT_THREADS 256
#endif
#ifndef DT_CO_PER_THREAD
#define DT_CO_PER_THREAD 4
#endif

namespace dt {
constexpr int CO_PER_THREAD = DT_CO_PER_THREAD;
constexpr int SUM_BLOCK = 64;  // input channels per partial sum
constexpr int CO_TILES = (CO_PER_GROUP + CO_PER_THREAD - 1) / CO_PER_THREAD;  // per group
constexpr i64 DIRECT_WORK_ITEMS = (i64)N * GROUPS * CO_TILES * OH * OW;
}  // namespace dt

// No dynamic shared memory; stated so the loader's check finds the symbol in every family.
extern "C" __device__ const int dt_shared_bytes = 0;

extern "C" __global__ void __launch_bounds__(DT_THREADS)
    deconv_direct(const dt::elem* __restrict__ x, const dt::elem* __restrict__ w,
                  const dt::elem* __restrict__ bias, dt::elem* __restrict__ y) {
  using namespace dt;
  for (i64 item = blockIdx.x * (i64)DT_THREADS + threadIdx.x; item < DIRECT_WORK_ITEMS;
       item += (i64)gridDim.x * DT_THREADS) {
    i64 rest = item;
    const int ow = (int)(rest % OW);
    rest /= OW;
    const int oh = (int)(rest % OH);
    rest /= OH;
    const int tile = (int)(rest % (GROUPS * CO_TILES));
    const i64 n = rest / (GROUPS * CO_TILES);
    const int group = tile / CO_TILES;
    const int co_first = (tile % CO_TILES) * CO_PER_THREAD;  // within the group

    float acc[CO_PER_THREAD];
#pragma unroll
    for (int c = 0; c < CO_PER_THREAD; ++c) acc[c] = 0.0f;

    for (int kh = 0; kh < KH; ++kh) {
      const int ih_scaled = oh + PH - kh * DH;  // = ih * SH when tap kh reaches row oh
      if (ih_scaled < 0 || ih_scaled % SH != 0 || ih_scaled / SH >= H) continue;
      const int ih = ih_scaled / SH;
      for (int kw = 0; kw < KW; ++kw) {
        const int iw_scaled = ow + PW - kw * DW;
        if (iw_scaled < 0 || iw_scaled % SW != 0 || iw_scaled / SW >= W) continue;
        const int iw = iw_scaled / SW;
        // Blocks of SUM_BLOCK channels summed apart: a sequential fp32 sum's rounding error grows
        // with its length, and 512 channels x 6 taps in one sum drew 6.0e-6 against the fp32
        // bound's 5.7e-6 (H200, bench/results/2026-12-01-h200-stream/coop/gpu_tests.txt).
        for (int c0 = 0; c0 < CI_PER_GROUP; c0 += SUM_BLOCK) {
          float part[CO_PER_THREAD];
#pragma unroll
          for (int c = 0; c < CO_PER_THREAD; ++c) part[c] = 0.0f;
          const int c1 = min(c0 + SUM_BLOCK, CI_PER_GROUP);
          for (int ci_in_group = c0; ci_in_group < c1; ++ci_in_group) {
            const int ci = group * CI_PER_GROUP + ci_in_group;
            const float xv = to_f32(__ldg(&x[x_index(n, ci, ih, iw)]));
#pragma unroll
            for (int c = 0; c < CO_PER_THREAD; ++c) {
              // Past the group's last channel, read a valid weight and discard the result.
              const int co = min(co_first + c, CO_PER_GROUP - 1);
              part[c] = fmaf(xv, to_f32(__ldg(&w[w_index(ci, co, kh, kw)])), part[c]);
            }
          }
#pragma unroll
          for (int c = 0; c < CO_PER_THREAD; ++c) acc[c] += part[c];
        }
      }
    }
#pragma unroll
    for (int c = 0; c < CO_PER_THREAD; ++c) {
      if (co_first + c >= CO_PER_GROUP) break;
      const int co = group * CO_PER_GROUP + co_first + c;
      float v = acc[c];
      if (HAS_BIAS) v += to_f32(__ldg(&bias[co]));
      DT_EPILOGUE(v)
      y[y_index(n, co, oh, ow)] = from_f32(v);
    }
  }
}

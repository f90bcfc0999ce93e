// The fast path, second form: the phase-decomposed implicit GEMM with W as the A operand (output
// channels along M) and input pixels along N, storing y straight from registers.
//
// Why this shape: profiling igemm.cuh showed it issue-bound, with most instructions spent outside
// the mma (splitting W per use, per-element index arithmetic, staging y through shared memory).
// Here
// - the operand that is split into big + small TF32 parts is W, the A operand, so one split
//   serves NI pixel tiles;
// - a warp computes every column phase (rw) of its pixels, so each thread ends up holding 2 * SW
//   consecutive outputs of a row: y leaves as 16-byte stores with no staging and no barrier;
// - the input tile is filled row by row with the index arithmetic hoisted out of the inner loop,
//   and rounded to TF32 once, in place, 16 bytes at a time.
//
// A persistent CTA keeps the W slice of its BN output channels (all taps) in shared memory and
// walks output blocks of TH x TW pixels (TH = SH * RP, TW = SW * CP); with one stage it prefetches
// the next block's input into L2 while computing.
#pragma once
#include "problem.cuh"
#include "epilogue.cuh"
#include "tensor_core.cuh"

#ifndef DT_BN
#define DT_BN 64  // output channels per CTA (a multiple of 16)
#endif
#ifndef DT_RP
#define DT_RP 2  // output rows per phase in a block
#endif
#ifndef DT_CP
#define DT_CP 64  // output columns per phase in a block (a multiple of 8)
#endif
#ifndef DT_WM
#define DT_WM 4  // warps along the channels
#endif
#ifndef DT_WN
#define DT_WN 2  // warps along the pixels
#endif
#ifndef DT_KC
#define DT_KC 4  // 16-channel blocks summed on the tensor cores before an fp32 add
#endif
#ifndef DT_STAGES
#define DT_STAGES 1  // input tiles in shared memory (1 or 2)
#endif
#if !defined(DT_MATH_TF32) && !defined(DT_MATH_3XTF32)
#define DT_MATH_TF32 1
#endif

namespace dt {
constexpr int BN = DT_BN, RP = DT_RP, CP = DT_CP, WM = DT_WM, WN = DT_WN, KC = DT_KC;
constexpr int WARPS = WM * WN, THREADS = 32 * WARPS;
constexpr int TH = SH * RP, TW = SW * CP;
constexpr int KB = (CI_PER_GROUP + 15) / 16;  // 16-channel blocks of K
constexpr int MI = BN / 16 / WM;              // m16 channel tiles per warp
constexpr int NI = RP * CP / 8 / WN;          // n8 pixel tiles per warp
static_assert(BN % (16 * WM) == 0 && MI >= 1, "channel tiling");
static_assert(CP % 8 == 0 && (RP * CP) % (8 * WN) == 0 && NI >= 1, "pixel tiling");

constexpr int XR = RP + shift_bound(SH, PH, DH, KH, true) - SHIFT_H0;  // input tile rows
constexpr int XC = CP + shift_bound(SW, PW, DW, KW, true) - SHIFT_W0;  // input tile columns
constexpr int X_TILE = KB * XR * XC * 16;        // floats per input tile
constexpr int W_SLICE = KH * KW * KB * BN * 16;  // floats of the CTA's W slice
constexpr int SMEM_FLOATS = W_SLICE + DT_STAGES * X_TILE;

constexpr int BLOCKS_H = (OH + TH - 1) / TH, BLOCKS_W = (OW + TW - 1) / TW;
constexpr i64 BLOCKS = (i64)N * BLOCKS_H * BLOCKS_W;
constexpr int CO_BLOCKS = (CO_PER_GROUP + BN - 1) / BN;

// Each thread stores 2 * SW consecutive outputs of a row; the widest aligned vector that fits.
constexpr int RUN = 2 * SW;
constexpr int VEC = (RUN % 4 == 0 && OW % 4 == 0) ? 4 : (RUN % 2 == 0 && OW % 2 == 0) ? 2 : 1;

struct Block {
  i64 n;
  int oh0, ow0;
};
__device__ __forceinline__ Block block_of(i64 b) {
  Block out;
  out.ow0 = (int)(b % BLOCKS_W) * TW;
  b /= BLOCKS_W;
  out.oh0 = (int)(b % BLOCKS_H) * TH;
  out.n = b / BLOCKS_H;
  return out;
}

// Issues this thread's cp.async share of block b's input tile: a warp per (channel, row), lanes
// along the row so global reads coalesce. Out-of-range pixels and padding channels are zero.
__device__ __forceinline__ void fill_tile(float* tile, const float* __restrict__ x, i64 b,
                                          int group) {
  const Block blk = block_of(b);
  const int ih0 = blk.oh0 / SH + SHIFT_H0, iw0 = blk.ow0 / SW + SHIFT_W0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int row = warp; row < KB * 16 * XR; row += WARPS) {
    const int c = row / XR, xr = row % XR, ih = ih0 + xr;
    const bool row_in = c < CI_PER_GROUP && ih >= 0 && ih < H;
    const float* src = x + x_index(blk.n, group * CI_PER_GROUP + (row_in ? c : 0), row_in ? ih : 0, 0);
    float* dst = tile + ((c >> 4) * XR + xr) * XC * 16;
    for (int xc = lane; xc < XC; xc += 32) {
      const int iw = iw0 + xc;
      float* d = dst + swz(xc, c & 15);
      if (row_in && iw >= 0 && iw < W) {
        cp_async4(d, src + iw);
      } else {
        *d = 0.0f;
      }
    }
  }
}

// Asks L2 for block b's input rows, so the single-stage fill that follows the compute hits L2.
__device__ __forceinline__ void prefetch_tile(const float* __restrict__ x, i64 b, int group) {
  if (b >= BLOCKS) return;
  const Block blk = block_of(b);
  const int ih0 = blk.oh0 / SH + SHIFT_H0, iw0 = max(blk.ow0 / SW + SHIFT_W0, 0);
  constexpr int LINES = (XC + 31) / 32 + 1;  // 128-byte lines a row of the tile can touch
  for (int e = threadIdx.x; e < CI_PER_GROUP * XR * LINES; e += THREADS) {
    const int line = e % LINES, xr = (e / LINES) % XR, c = e / (LINES * XR);
    const int ih = ih0 + xr, iw = iw0 + 32 * line;
    if (ih < 0 || ih >= H || iw >= W) continue;
    const float* p = x + x_index(blk.n, group * CI_PER_GROUP + c, ih, iw);
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
  }
}

// Rounds a landed tile to TF32 once, so the inner loop feeds it to the tensor cores as is.
__device__ __forceinline__ void round_tile_to_tf32(float* tile) {
  float4* v = reinterpret_cast<float4*>(tile);
  for (int e = threadIdx.x; e < X_TILE / 4; e += THREADS) {
    float4 f = v[e];
    f.x = __uint_as_float(to_tf32(f.x));
    f.y = __uint_as_float(to_tf32(f.y));
    f.z = __uint_as_float(to_tf32(f.z));
    f.w = __uint_as_float(to_tf32(f.w));
    v[e] = f;
  }
}

// 2 * SW consecutive outputs of one row, from ow on; vector stores where the row allows.
__device__ __forceinline__ void store_run(float* __restrict__ row, int ow, const float (&v)[RUN]) {
  if (ow + RUN <= OW) {
#pragma unroll
    for (int k = 0; k < RUN; k += VEC) {
      if (VEC == 4) {
        *reinterpret_cast<float4*>(row + ow + k) = make_float4(v[k], v[k + 1], v[k + 2], v[k + 3]);
      } else if (VEC == 2) {
        *reinterpret_cast<float2*>(row + ow + k) = make_float2(v[k], v[k + 1]);
      } else {
        row[ow + k] = v[k];
      }
    }
  } else {
#pragma unroll
    for (int k = 0; k < RUN; ++k)
      if (ow + k < OW) row[ow + k] = v[k];
  }
}
}  // namespace dt

// The dynamic shared memory the kernel expects; the loader checks the host's figure against it.
extern "C" __device__ const int dt_shared_bytes = dt::SMEM_FLOATS * 4;

extern "C" __global__ void __launch_bounds__(dt::THREADS, 1)
    deconv_pgemm(const float* __restrict__ x, const float* __restrict__ w,
                 const float* __restrict__ bias, float* __restrict__ y) {
  using namespace dt;
  extern __shared__ __align__(16) float smem[];
  float* ws = smem;             // [KH*KW][KB][BN][16]
  float* xs = ws + W_SLICE;     // [STAGES][KB][XR][XC][16]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int warp_m = warp % WM, warp_n = warp / WM;
  const int group = blockIdx.y / CO_BLOCKS;
  const int co_base = (blockIdx.y % CO_BLOCKS) * BN;  // within the group

  // The W slice, once: ws[tap][kb][n][c] = W[ci = kb*16 + c][co_base + n][kh][kw].
  for (int e = threadIdx.x; e < W_SLICE; e += THREADS) {
    const int c = e % 16, n = (e / 16) % BN, kb = (e / (16 * BN)) % KB, tap = e / (16 * BN * KB);
    const int ci = kb * 16 + c, co = co_base + n;
    float v = 0.0f;
    if (ci < CI_PER_GROUP && co < CO_PER_GROUP)
      v = __ldg(&w[w_index(group * CI_PER_GROUP + ci, co, tap / KW, tap % KW)]);
    ws[((tap * KB + kb) * BN) * 16 + swz(n, c)] = v;
  }

  // This thread's output channels (two per m16 tile: rows g and g + 8) and their bias.
  float bias_v[MI][2];
#pragma unroll
  for (int mi = 0; mi < MI; ++mi)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int co = min(co_base + (warp_m * MI + mi) * 16 + g + 8 * half, CO_PER_GROUP - 1);
      bias_v[mi][half] = HAS_BIAS ? __ldg(&bias[group * CO_PER_GROUP + co]) : 0.0f;
    }

  i64 b = blockIdx.x;
  int stage = 0;
  if (b < BLOCKS) fill_tile(xs, x, b, group);
  cp_async_commit();
  for (; b < BLOCKS; b += gridDim.x) {
    const float* tile = xs + stage * X_TILE;
#if DT_STAGES == 2
    if (b + gridDim.x < BLOCKS) fill_tile(xs + (stage ^ 1) * X_TILE, x, b + gridDim.x, group);
    cp_async_commit();
    cp_async_wait<1>();
#else
    cp_async_wait<0>();
#endif
    __syncthreads();
#if DT_MATH_TF32
    round_tile_to_tf32(xs + stage * X_TILE);
    __syncthreads();
#endif
#if DT_STAGES == 1
    prefetch_tile(x, b + gridDim.x, group);
#endif
    const Block blk = block_of(b);

#pragma unroll
    for (int rh = 0; rh < SH; ++rh) {
      // Every column phase of this row phase, for the warp's channels and pixels.
      float acc[SW][MI][NI][4];
#pragma unroll
      for (int rw = 0; rw < SW; ++rw)
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
#pragma unroll
          for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[rw][mi][ni][q] = 0.0f;

#pragma unroll
      for (int kh = 0; kh < KH; ++kh) {
        if (!tap_h(rh, kh)) continue;
        const int dr = shift_h(rh, kh) - SHIFT_H0;
#pragma unroll
        for (int rw = 0; rw < SW; ++rw) {
#pragma unroll
          for (int kw = 0; kw < KW; ++kw) {
            if (!tap_w(rw, kw)) continue;
            const int dc = shift_w(rw, kw) - SHIFT_W0;
            const float* w_tap = ws + (kh * KW + kw) * KB * BN * 16;
#pragma unroll 1
            for (int kb0 = 0; kb0 < KB; kb0 += KC) {
              // Tensor cores add with less than fp32's rounding care, so each chunk of KC
              // 16-channel blocks is summed apart and joins the running sum in fp32.
              float part[MI][NI][4];
#pragma unroll
              for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                  for (int q = 0; q < 4; ++q) part[mi][ni][q] = 0.0f;
              // Not unrolled: unrolling lets the compiler hoist every k-block's fragments, and spill.
#pragma unroll 1
              for (int kb = kb0; kb < min(kb0 + KC, KB); ++kb) {
                // A = W^T: rows g and g + 8 of each m16 tile are output channels; a 16-byte load
                // holds channels {4t .. 4t+3} of K for two k-steps.
                float4 a_lo[MI], a_hi[MI], bx[NI];
#pragma unroll
                for (int mi = 0; mi < MI; ++mi) {
                  const int n = (warp_m * MI + mi) * 16 + g;
                  a_lo[mi] = *reinterpret_cast<const float4*>(w_tap + kb * BN * 16 + swz(n, 4 * t));
                  a_hi[mi] =
                      *reinterpret_cast<const float4*>(w_tap + kb * BN * 16 + swz(n + 8, 4 * t));
                }
                // B = x: column g of each n8 tile is a pixel of the phase.
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) {
                  const int p = (warp_n * NI + ni) * 8 + g;
                  const int i = p / CP, j = p % CP;
                  bx[ni] = *reinterpret_cast<const float4*>(
                      tile + (kb * XR + i + dr) * XC * 16 + swz(j + dc, 4 * t));
                }
#pragma unroll
                for (int step = 0; step < 2; ++step) {
                  unsigned b_big[NI][2];
#if DT_MATH_3XTF32
                  unsigned b_small[NI][2];
#endif
#pragma unroll
                  for (int ni = 0; ni < NI; ++ni) {
                    const float b0 = step ? bx[ni].z : bx[ni].x, b1 = step ? bx[ni].w : bx[ni].y;
#if DT_MATH_3XTF32
                    split_tf32(b0, b_big[ni][0], b_small[ni][0]);
                    split_tf32(b1, b_big[ni][1], b_small[ni][1]);
#else
                    b_big[ni][0] = __float_as_uint(b0);  // rounded to TF32 in shared memory
                    b_big[ni][1] = __float_as_uint(b1);
#endif
                  }
#pragma unroll
                  for (int mi = 0; mi < MI; ++mi) {
                    const float av[4] = {step ? a_lo[mi].z : a_lo[mi].x,
                                         step ? a_hi[mi].z : a_hi[mi].x,
                                         step ? a_lo[mi].w : a_lo[mi].y,
                                         step ? a_hi[mi].w : a_hi[mi].y};
                    unsigned a_big[4], a_small[4];
#pragma unroll
                    for (int q = 0; q < 4; ++q) split_tf32(av[q], a_big[q], a_small[q]);
#pragma unroll
                    for (int ni = 0; ni < NI; ++ni) {
                      mma_tf32(part[mi][ni], a_small, b_big[ni][0], b_big[ni][1]);
#if DT_MATH_3XTF32
                      // The small x small term is below fp32 rounding and is dropped.
                      mma_tf32(part[mi][ni], a_big, b_small[ni][0], b_small[ni][1]);
#endif
                      mma_tf32(part[mi][ni], a_big, b_big[ni][0], b_big[ni][1]);
                    }
                  }
                }
              }
#pragma unroll
              for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                  for (int q = 0; q < 4; ++q) acc[rw][mi][ni][q] += part[mi][ni][q];
            }
          }
        }
      }

      // Bias and epilogue in registers. Thread (g, t) holds pixels 2t and 2t + 1 of each n8
      // tile in every column phase: 2 * SW consecutive outputs of one row.
#pragma unroll
      for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int co = co_base + (warp_m * MI + mi) * 16 + g + 8 * half;
          if (co >= CO_PER_GROUP) continue;
          float* plane = y + y_index(blk.n, group * CO_PER_GROUP + co, 0, 0);
#pragma unroll
          for (int ni = 0; ni < NI; ++ni) {
            const int p = (warp_n * NI + ni) * 8 + 2 * t;
            const int oh = blk.oh0 + rh + SH * (p / CP), ow = blk.ow0 + SW * (p % CP);
            if (oh >= OH) continue;
            float run[RUN];
#pragma unroll
            for (int q = 0; q < 2; ++q)
#pragma unroll
              for (int rw = 0; rw < SW; ++rw) {
                float v = acc[rw][mi][ni][2 * half + q] + bias_v[mi][half];
                DT_EPILOGUE(v)
                run[SW * q + rw] = v;
              }
            store_run(plane + (i64)oh * OW, ow, run);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this tile before it is refilled
#if DT_STAGES == 1
    if (b + gridDim.x < BLOCKS) fill_tile(xs, x, b + gridDim.x, group);
    cp_async_commit();
#endif
    stage ^= (DT_STAGES - 1);
  }
  cp_async_wait<0>();
}

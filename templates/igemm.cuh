// The fast path: the transposed convolution split by output phase into dense implicit GEMMs on
// TF32 tensor cores (mma.sync.m16n8k8), the whole epilogue fused.
//
// Why phases: output rows with the same (oh mod SH) use the same kernel taps, so per phase the
// convolution is a dense GEMM (M = output pixels of the phase, N = output channels, K = input
// channels x the phase's taps) with no zero multiplies. Each tap reads the input at a fixed shift,
// so one input tile in shared memory serves every phase and tap of an output block.
//
// A persistent CTA keeps its slice of W (all taps, BN output channels) in shared memory and walks output blocks of TH x TW pixels (TH = SH * RP, TW = SW * CP). Input tiles
// arrive by cp.async, double-buffered. Phases run one after another; each phase's results pass the
// epilogue in registers and land in a shared staging tile, which leaves as coalesced row stores.
//
// Shared layouts keep 16 input channels of one pixel together (64 B) so a thread fetches the four
// channels it needs for two k-steps with one 16-byte load; 16-byte chunks are XOR-swizzled by pixel
// so those loads, and the tile fills, are free of bank conflicts. A k-step's 8 channels are
// {4t, 4t+1} of each thread quad t; A and B use the same assignment, so the sum is unchanged.
#pragma once
#include "problem.cuh"
#include "epilogue.cuh"
#include "tensor_core.cuh"

#ifndef DT_BN
#define DT_BN 64  // output channels per CTA
#endif
#ifndef DT_RP
#define DT_RP 1  // output rows per phase in a block
#endif
#ifndef DT_CP
#define DT_CP 32  // output columns per phase in a block (a multiple of 16)
#endif
#ifndef DT_WM
#define DT_WM 2  // warps along M (pixels)
#endif
#ifndef DT_WN
#define DT_WN 4  // warps along N (channels)
#endif
#ifndef DT_STAGES
#define DT_STAGES 2  // input tiles in flight (1 or 2)
#endif
#ifndef DT_VEC
#define DT_VEC 4  // floats per store of y
#endif
#if !defined(DT_MATH_TF32) && !defined(DT_MATH_3XTF32)
#define DT_MATH_TF32 1
#endif

namespace dt {
constexpr int BN = DT_BN, RP = DT_RP, CP = DT_CP, WM = DT_WM, WN = DT_WN, VEC = DT_VEC;
constexpr int THREADS = 32 * WM * WN;
constexpr int TH = SH * RP, TW = SW * CP;
constexpr int KB = (CI_PER_GROUP + 15) / 16;  // 16-channel blocks of K
constexpr int M_PHASE = RP * CP;
constexpr int MI = M_PHASE / 16 / WM;  // m16 tiles per warp
constexpr int NI = BN / 8 / WN;        // n8 tiles per warp
static_assert(CP % 16 == 0 && M_PHASE % (16 * WM) == 0 && MI >= 1, "pixel tiling");
static_assert(BN % (8 * WN) == 0 && NI >= 1, "channel tiling");

constexpr int XR = RP + shift_bound(SH, PH, DH, KH, true) - SHIFT_H0;  // input tile rows
constexpr int XC = CP + shift_bound(SW, PW, DW, KW, true) - SHIFT_W0;  // input tile columns
constexpr int X_TILE = KB * XR * XC * 16;          // floats per input tile
constexpr int W_SLICE = KH * KW * KB * BN * 16;    // floats of the CTA's W slice
constexpr int Y_STRIDE = TH * TW + 4;              // floats per channel of the staging tile
constexpr int Y_TILE = BN * Y_STRIDE;
constexpr int SMEM_FLOATS = W_SLICE + DT_STAGES * X_TILE + Y_TILE;

constexpr int BLOCKS_H = (OH + TH - 1) / TH, BLOCKS_W = (OW + TW - 1) / TW;
constexpr i64 BLOCKS = (i64)N * BLOCKS_H * BLOCKS_W;
constexpr int CO_BLOCKS = (CO_PER_GROUP + BN - 1) / BN;

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

// Issues (or, with CONVERT, rounds to TF32 in place once landed) this thread's share of the input
// tile of block `b`. Out-of-range pixels and padding channels are zero.
template <bool CONVERT>
__device__ __forceinline__ void input_tile(float* tile, const float* __restrict__ x, i64 b,
                                           int group) {
  const Block blk = block_of(b);
  const int ih0 = blk.oh0 / SH + SHIFT_H0, iw0 = blk.ow0 / SW + SHIFT_W0;
  for (int e = threadIdx.x; e < KB * 16 * XR * XC; e += THREADS) {
    const int xc = e % XC;
    const int xr = (e / XC) % XR;
    const int c = e / (XC * XR);  // channel within the group, padded to KB * 16
    float* dst = tile + ((c >> 4) * XR + xr) * XC * 16 + swz(xc, c & 15);
    if (CONVERT) {
#if DT_MATH_TF32
      *dst = __uint_as_float(to_tf32(*dst));
#endif
    } else {
      const int ih = ih0 + xr, iw = iw0 + xc;
      if (c < CI_PER_GROUP && ih >= 0 && ih < H && iw >= 0 && iw < W) {
        cp_async4(dst, x + x_index(blk.n, group * CI_PER_GROUP + c, ih, iw));
      } else {
        *dst = 0.0f;
      }
    }
  }
}
}  // namespace dt

// The dynamic shared memory the kernel expects; the loader checks the host's figure against it.
extern "C" __device__ const int dt_shared_bytes = dt::SMEM_FLOATS * 4;

extern "C" __global__ void __launch_bounds__(dt::THREADS, 1)
    deconv_igemm(const float* __restrict__ x, const float* __restrict__ w,
                 const float* __restrict__ bias, float* __restrict__ y) {
  using namespace dt;
  extern __shared__ __align__(16) float smem[];
  float* ws = smem;                           // [KH*KW][KB][BN][16]
  float* xs = ws + W_SLICE;                   // [STAGES][KB][XR][XC][16]
  float* ys = xs + DT_STAGES * X_TILE;        // [BN][TH][TW] (+pad)
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

  i64 b = blockIdx.x;
  int stage = 0;
  if (b < BLOCKS) input_tile<false>(xs, x, b, group);
  cp_async_commit();
  for (; b < BLOCKS; b += gridDim.x) {
    float* tile = xs + stage * X_TILE;
#if DT_STAGES == 2
    if (b + gridDim.x < BLOCKS) input_tile<false>(xs + (stage ^ 1) * X_TILE, x, b + gridDim.x, group);
    cp_async_commit();
    cp_async_wait<1>();
#else
    cp_async_wait<0>();
#endif
#if DT_MATH_TF32
    input_tile<true>(tile, x, b, group);
#endif
    __syncthreads();

    // Each phase (rh, rw): a dense GEMM over the phase's taps and K blocks.
#pragma unroll
    for (int rh = 0; rh < SH; ++rh) {
#pragma unroll
      for (int rw = 0; rw < SW; ++rw) {
        float acc[MI][NI][4];
#pragma unroll
        for (int mi = 0; mi < MI; ++mi)
#pragma unroll
          for (int ni = 0; ni < NI; ++ni)
#pragma unroll
            for (int q = 0; q < 4; ++q) acc[mi][ni][q] = 0.0f;
#pragma unroll
        for (int kh = 0; kh < KH; ++kh) {
          if (!tap_h(rh, kh)) continue;
#pragma unroll
          for (int kw = 0; kw < KW; ++kw) {
            if (!tap_w(rw, kw)) continue;
            const int dr = shift_h(rh, kh) - SHIFT_H0, dc = shift_w(rw, kw) - SHIFT_W0;
#pragma unroll 2
            for (int kb = 0; kb < KB; ++kb) {
              // Tensor cores add with less than fp32's rounding care, so each 16-channel partial
              // sum starts from zero and joins the running sum with an ordinary fp32 add.
              float part[MI][NI][4];
#pragma unroll
              for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                  for (int q = 0; q < 4; ++q) part[mi][ni][q] = 0.0f;
              float4 a_lo[MI], a_hi[MI], bf[NI];
#pragma unroll
              for (int mi = 0; mi < MI; ++mi) {
                const int m = (warp_m * MI + mi) * 16;  // first pixel of the m16 tile
                const int i = m / CP, j = m % CP;
                const float* row = tile + (kb * XR + i + dr) * XC * 16;
                a_lo[mi] = *reinterpret_cast<const float4*>(row + swz(j + g + dc, 4 * t));
                a_hi[mi] = *reinterpret_cast<const float4*>(row + swz(j + g + 8 + dc, 4 * t));
              }
#pragma unroll
              for (int ni = 0; ni < NI; ++ni) {
                const int n = (warp_n * NI + ni) * 8 + g;
                bf[ni] = *reinterpret_cast<const float4*>(
                    ws + ((kh * KW + kw) * KB + kb) * BN * 16 + swz(n, 4 * t));
              }
#pragma unroll
              for (int step = 0; step < 2; ++step) {
                // Split each operand once per k-step, not once per use: W (and, for 3xTF32, x)
                // as big + small TF32 parts. x is already TF32 in shared memory under DT_MATH_TF32.
                unsigned b_big[NI][2], b_small[NI][2];
#pragma unroll
                for (int ni = 0; ni < NI; ++ni) {
                  const float b0 = step ? bf[ni].z : bf[ni].x, b1 = step ? bf[ni].w : bf[ni].y;
                  b_big[ni][0] = to_tf32(b0);
                  b_big[ni][1] = to_tf32(b1);
                  b_small[ni][0] = to_tf32(b0 - __uint_as_float(b_big[ni][0]));
                  b_small[ni][1] = to_tf32(b1 - __uint_as_float(b_big[ni][1]));
                }
#pragma unroll
                for (int mi = 0; mi < MI; ++mi) {
                  const float av[4] = {step ? a_lo[mi].z : a_lo[mi].x, step ? a_hi[mi].z : a_hi[mi].x,
                                       step ? a_lo[mi].w : a_lo[mi].y, step ? a_hi[mi].w : a_hi[mi].y};
#if DT_MATH_TF32
                  const unsigned a_big[4] = {__float_as_uint(av[0]), __float_as_uint(av[1]),
                                             __float_as_uint(av[2]), __float_as_uint(av[3])};
#else
                  unsigned a_big[4], a_small[4];
#pragma unroll
                  for (int q = 0; q < 4; ++q) {
                    a_big[q] = to_tf32(av[q]);
                    a_small[q] = to_tf32(av[q] - __uint_as_float(a_big[q]));
                  }
#endif
#pragma unroll
                  for (int ni = 0; ni < NI; ++ni) {
#if !DT_MATH_TF32
                    // 3xTF32: the small x small term is below fp32 rounding and is dropped.
                    mma_tf32(part[mi][ni], a_small, b_big[ni][0], b_big[ni][1]);
#endif
                    mma_tf32(part[mi][ni], a_big, b_small[ni][0], b_small[ni][1]);
                    mma_tf32(part[mi][ni], a_big, b_big[ni][0], b_big[ni][1]);
                  }
                }
              }
#pragma unroll
              for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                  for (int q = 0; q < 4; ++q) acc[mi][ni][q] += part[mi][ni][q];
            }
          }
        }
        // Bias and epilogue in registers, then into the staging tile at the phase's positions.
#pragma unroll
        for (int ni = 0; ni < NI; ++ni) {
#pragma unroll
          for (int q = 0; q < 2; ++q) {
            const int n = (warp_n * NI + ni) * 8 + 2 * t + q;
            const int co = min(co_base + n, CO_PER_GROUP - 1);
            const float bias_v = HAS_BIAS ? __ldg(&bias[group * CO_PER_GROUP + co]) : 0.0f;
#pragma unroll
            for (int mi = 0; mi < MI; ++mi) {
#pragma unroll
              for (int half = 0; half < 2; ++half) {
                const int m = (warp_m * MI + mi) * 16 + g + 8 * half;
                const int r = rh + SH * (m / CP), c = rw + SW * (m % CP);
                float v = acc[mi][ni][2 * half + q] + bias_v;
                DT_EPILOGUE(v)
                ys[n * Y_STRIDE + r * TW + c] = v;
              }
            }
          }
        }
      }
    }
    __syncthreads();

    // The staging tile leaves as rows of TW floats, VEC at a time.
    const Block blk = block_of(b);
    constexpr int VECS_PER_ROW = TW / VEC;
    for (int e = threadIdx.x; e < BN * TH * VECS_PER_ROW; e += THREADS) {
      const int v = e % VECS_PER_ROW, r = (e / VECS_PER_ROW) % TH, n = e / (VECS_PER_ROW * TH);
      const int oh = blk.oh0 + r, ow = blk.ow0 + v * VEC, co = co_base + n;
      if (oh >= OH || ow >= OW || co >= CO_PER_GROUP) continue;
      const float* src = ys + n * Y_STRIDE + r * TW + v * VEC;
      float* dst = y + y_index(blk.n, group * CO_PER_GROUP + co, oh, ow);
#if DT_VEC == 4
      *reinterpret_cast<float4*>(dst) = *reinterpret_cast<const float4*>(src);
#elif DT_VEC == 2
      *reinterpret_cast<float2*>(dst) = *reinterpret_cast<const float2*>(src);
#else
      *dst = *src;
#endif
    }
    __syncthreads();
#if DT_STAGES == 1
    if (b + gridDim.x < BLOCKS) input_tile<false>(xs, x, b + gridDim.x, group);
    cp_async_commit();
#endif
    stage ^= (DT_STAGES - 1);
  }
  cp_async_wait<0>();
}

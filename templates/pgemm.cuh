// The fast path, second form: the phase-decomposed implicit GEMM with W as the A operand (output
// channels along M) and input pixels along N, storing y straight from registers.
//
// Why this shape: profiling the first form (A = x, y staged through shared memory; git history)
// showed it issue-bound, with most instructions spent outside the mma (splitting W per use,
// per-element index arithmetic, the staging). Here
// - the operand that is split into big + small TF32 parts is W, the A operand, so one split
//   serves NI pixel tiles;
// - a warp computes every column phase (rw) of its pixels, so each thread ends up holding 2 * SW
//   consecutive outputs of a row: y leaves as 16-byte stores with no staging and no barrier;
// - the input tile is filled row by row with the index arithmetic hoisted out of the inner loop;
// - W is rounded to TF32 once (tf32) or split per use (3xtf32); with XS (x split), each landed
//   tile is split once into big and small TF32 planes (a second product under tf32, the x side
//   of the corrections under 3xtf32); without XS, x is rounded in place (tf32: one product, both
//   operands rounded, as cuDNN computes TF32) or split per use (3xtf32);
// - every fragment address is a per-thread offset fixed at start plus a compile-time constant.
//
// A persistent CTA keeps the W slice of its BN output channels (all taps) in shared memory and
// walks output blocks of TH x TW pixels (TH = SH * RP, TW = SW * CP); with one stage it prefetches
// the next block's input into L2 while computing.
#pragma once
#include "epilogue.cuh"
#include "output.cuh"
#include "problem.cuh"
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
#ifndef DT_XS
#define DT_XS 1  // 1: x split into big + small TF32 planes in shared memory; 0: x rounded in place
#endif
#ifndef DT_WG
#define DT_WG 0  // 1: warpgroup MMA (wgmma, sm_90a), WN warpgroups of 4 warps; 0: mma.sync
#endif
#if !defined(DT_MATH_TF32) && !defined(DT_MATH_3XTF32)
#define DT_MATH_TF32 1
#endif
#if DT_WG
#include "wgmma.cuh"
#endif

namespace dt {
static_assert(!DT_NHWC, "pgemm reads and writes NCHW rows");
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
constexpr int X_PLANE = KB * XR * XC * 16;         // floats per plane of an input tile
constexpr int X_TILE = (DT_XS ? 2 : 1) * X_PLANE;  // big (+ small) planes
constexpr int W_SLICE = KH * KW * KB * BN * 16;    // floats of the CTA's W slice
constexpr int SMEM_FLOATS = W_SLICE + DT_STAGES * X_TILE;
constexpr int XPIX = XR * XC;  // pixels of an input tile

#if DT_WG
// A warpgroup's 64 rows are its 4 warps' m16 tiles; its NI n8 tiles are WG_SEGS wgmmas of WG_N
// pixels, each within one row of the phase block.
static_assert(WM == 4 && MI == 1, "a warpgroup spans BN = 64 channels");
#if DT_MATH_3XTF32 && !DT_XS
#error "3xtf32 under wgmma reads x's small part from shared memory: wg1 needs xs1"
#endif
constexpr int WG_N = NI * 8 < CP ? NI * 8 : CP;
constexpr int WG_SEGS = NI * 8 / WG_N;
static_assert(WG_SEGS * WG_N == NI * 8 && CP % WG_N == 0, "wgmma pixel segments");
#endif

// Float offset of channel c (0-15) of tile pixel (xr, xc) in a 16-channel block.
__device__ __forceinline__ int tile_offset(int xr, int xc, int c) {
#if DT_WG
  // The wgmma B layout: [c & 3][pixel][c >> 2], so k-step s's K columns t and t + 4 (16-byte core
  // matrices 2s and 2s + 1) hold channels 4t + 2s and 4t + 2s + 1, the order of the A fragments.
  return ((c & 3) * XPIX + xr * XC + xc) * 4 + (c >> 2);
#else
  return xr * XC * 16 + swz(xc, c);
#endif
}

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
    const float* src =
        x + x_index(blk.n, group * CI_PER_GROUP + (row_in ? c : 0), row_in ? ih : 0, 0);
    float* dst = tile + (c >> 4) * XPIX * 16;
    for (int xc = lane; xc < XC; xc += 32) {
      const int iw = iw0 + xc;
      float* d = dst + tile_offset(xr, xc, c & 15);
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

// Prepares a landed tile for the tensor cores, once: under XS, big = TF32(x) in place and small =
// TF32(x - big) in the second plane; otherwise (tf32 math) x rounded to TF32 in place.
__device__ __forceinline__ void prepare_tile(float* tile) {
  float4* big = reinterpret_cast<float4*>(tile);
  for (int e = threadIdx.x; e < X_PLANE / 4; e += THREADS) {
    float4 v = big[e];
#if DT_XS
    unsigned hi[4], lo[4];
    split_tf32(v.x, hi[0], lo[0]);
    split_tf32(v.y, hi[1], lo[1]);
    split_tf32(v.z, hi[2], lo[2]);
    split_tf32(v.w, hi[3], lo[3]);
    big[e] = make_float4(__uint_as_float(hi[0]), __uint_as_float(hi[1]), __uint_as_float(hi[2]),
                         __uint_as_float(hi[3]));
    big[e + X_PLANE / 4] = make_float4(__uint_as_float(lo[0]), __uint_as_float(lo[1]),
                                       __uint_as_float(lo[2]), __uint_as_float(lo[3]));
#else
    v.x = __uint_as_float(to_tf32(v.x));
    v.y = __uint_as_float(to_tf32(v.y));
    v.z = __uint_as_float(to_tf32(v.z));
    v.w = __uint_as_float(to_tf32(v.w));
    big[e] = v;
#endif
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
  float* ws = smem;          // [KH*KW][KB][BN][16]
  float* xs = ws + W_SLICE;  // [STAGES][KB][XR][XC][16]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int warp_m = warp % WM, warp_n = warp / WM;
  const int group = blockIdx.y / CO_BLOCKS;
  const int co_base = (blockIdx.y % CO_BLOCKS) * BN;  // within the group

  // The W slice, once, in mma fragment order: for each (tap, 16-channel block kb, m16 tile mt,
  // k-step s) the 32 lanes' A fragments {a0, a1, a2, a3} lie in lane order, so a fragment is one
  // conflict-free 16-byte load straight into the registers the mma reads. Lane (g, t) of step s
  // takes input channels 4t + 2s (a0, a1) and 4t + 2s + 1 (a2, a3), as the B side does, of
  // output channels g (a0, a2) and g + 8 (a1, a3). Under tf32 it is rounded here, once.
  for (int e = threadIdx.x; e < W_SLICE; e += THREADS) {
    const int q = e % 4, lane_e = (e / 4) % 32, step = (e / 128) % 2, mt = (e / 256) % (BN / 16);
    const int kb = (e / (BN * 16)) % KB, tap = e / (BN * 16 * KB);
    const int ci = kb * 16 + 4 * (lane_e % 4) + 2 * step + (q >> 1);
    const int co = co_base + mt * 16 + lane_e / 4 + 8 * (q & 1);
    float v = 0.0f;
    if (ci < CI_PER_GROUP && co < CO_PER_GROUP)
      v = __ldg(&w[w_index(group * CI_PER_GROUP + ci, co, tap / KW, tap % KW)]);
#if DT_MATH_TF32
    v = __uint_as_float(to_tf32(v));
#endif
    ws[e] = v;
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

  // Fragment offsets, fixed per thread. A: this lane's slot of the warp's m16 tiles. B: pixel g
  // (+ the tap's column shift dc) of each n8 tile; swz() XORs the 16-byte chunk with bits 1-2 of
  // the pixel, and n8 tiles start at multiples of 8 pixels, so that term depends on g + dc only.
  const int a_off = warp_m * MI * 256 + lane * 4;
#if DT_WG
  // The first tile pixel of each of this warpgroup's wgmma segments (before the tap's shift).
  int seg_pixel[WG_SEGS];
#pragma unroll
  for (int seg = 0; seg < WG_SEGS; ++seg) {
    const int p = warp_n * NI * 8 + seg * WG_N;
    seg_pixel[seg] = (p / CP) * XC + p % CP;
  }
#else
  constexpr int DC = XC - CP + 1;  // distinct column shifts of the taps within a tile
  int b_off[NI][DC];
#pragma unroll
  for (int ni = 0; ni < NI; ++ni) {
    const int p = (warp_n * NI + ni) * 8;  // first pixel of the n8 tile in the phase
    const int pixel_base = ((p / CP) * XC + p % CP) * 16;
#pragma unroll
    for (int dc = 0; dc < DC; ++dc)
      b_off[ni][dc] = pixel_base + (g + dc) * 16 + (((t ^ ((g + dc) >> 1)) & 3) << 2);
  }
#endif

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
#if DT_MATH_TF32 || DT_XS
    prepare_tile(xs + stage * X_TILE);
#if DT_WG
    fence_proxy_async();
#endif
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

#if DT_WG
      // Descriptor units are 16 bytes: one pixel of a core matrix. LBO: the next 4 channels.
      const unsigned long long tile_desc = wgmma_desc(tile, XPIX * 16, 128);
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
            const float* w_tap = ws + (kh * KW + kw) * KB * BN * 16 + a_off;
            const unsigned long long tap_desc = tile_desc + dr * XC + dc;
#pragma unroll 1
            for (int kb0 = 0; kb0 < KB; kb0 += KC) {
#if DT_MATH_3XTF32
              // As under mma.sync: each chunk of KC 16-channel blocks is summed apart, then
              // joins the running sum in fp32.
              // The corrections (small parts) are summed apart from the main products: where a
              // main sum is not finite it stands alone (an Inf big part times a zero small part
              // would make PyTorch's Inf a NaN).
              float part[NI][4], correction[NI][4];
#pragma unroll
              for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                for (int q = 0; q < 4; ++q) part[ni][q] = correction[ni][q] = 0.0f;
              float(*target)[4] = part;
#else
              float(*target)[4] = acc[rw][0];
#endif
              // Two register sets of A fragments: block j's set is reloaded only once the wgmmas
              // of block j - 2, which read it, are complete. (Waiting per chunk, not per row
              // phase, measured 4-6% faster on the H100: bench/results/2026-11-24-h100-wgmma.)
              unsigned a_big[2][2][4];
#if DT_MATH_3XTF32
              unsigned a_small[2][2][4];
#endif
#pragma unroll
              for (int j = 0; j < KC; ++j) {
                const int kb = kb0 + j;
                if (kb >= KB) break;
                const int set = j & 1;
                if (j >= 2) {
                  wgmma_wait<1>();
#pragma unroll
                  for (int step = 0; step < 2; ++step)
#pragma unroll
                    for (int q = 0; q < 4; ++q) {
                      keep_register(a_big[set][step][q]);
#if DT_MATH_3XTF32
                      keep_register(a_small[set][step][q]);
#endif
                    }
                }
#pragma unroll
                for (int step = 0; step < 2; ++step) {
                  const float4 af =
                      *reinterpret_cast<const float4*>(w_tap + kb * BN * 16 + step * 128);
                  const float av[4] = {af.x, af.y, af.z, af.w};
#pragma unroll
                  for (int q = 0; q < 4; ++q) {
#if DT_MATH_TF32
                    a_big[set][step][q] = __float_as_uint(av[q]);  // rounded once in shared memory
#else
                    split_tf32(av[q], a_big[set][step][q], a_small[set][step][q]);
                    // Opaque from here on, so the compiler cannot recompute the split later
                    // and reuse these registers while the wgmmas still read them.
                    keep_register(a_small[set][step][q]);
#endif
                    keep_register(a_big[set][step][q]);
                  }
                }
                wgmma_fence();
#pragma unroll
                for (int step = 0; step < 2; ++step)
#pragma unroll
                  for (int seg = 0; seg < WG_SEGS; ++seg) {
                    float(*d)[4] = target + seg * (WG_N / 8);
                    const unsigned long long big =
                        tap_desc + seg_pixel[seg] + kb * 4 * XPIX + 2 * step * XPIX;
#if DT_MATH_TF32 && DT_XS
                    // W was rounded once; x's small part carries the bits TF32 drops.
                    wgmma_tf32<WG_N>(d, a_big[set][step], big + X_PLANE / 4);
                    wgmma_tf32<WG_N>(d, a_big[set][step], big);
#elif DT_MATH_TF32
                    wgmma_tf32<WG_N>(d, a_big[set][step], big);  // one product, both rounded
#else
                    // The small x small term is below fp32 rounding and is dropped.
                    float(*c)[4] = correction + seg * (WG_N / 8);
                    wgmma_tf32<WG_N>(c, a_small[set][step], big);
                    wgmma_tf32<WG_N>(c, a_big[set][step], big + X_PLANE / 4);
                    wgmma_tf32<WG_N>(d, a_big[set][step], big);
#endif
                  }
                wgmma_commit();
              }
              wgmma_wait<0>();
#if DT_MATH_3XTF32
#pragma unroll
              for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                for (int q = 0; q < 4; ++q)
                  acc[rw][0][ni][q] +=
                      isfinite(part[ni][q]) ? part[ni][q] + correction[ni][q] : part[ni][q];
#endif
            }
          }
        }
      }
#else
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
            const float* w_tap = ws + (kh * KW + kw) * KB * BN * 16 + a_off;
            const float* x_tap = tile + dr * XC * 16;
#pragma unroll 1
            for (int kb0 = 0; kb0 < KB; kb0 += KC) {
              // Tensor cores add with less than fp32's rounding care, so each chunk of KC
              // 16-channel blocks is summed apart and joins the running sum in fp32.
              float part[MI][NI][4];
#if DT_MATH_3XTF32
              float correction[MI][NI][4];  // the small parts' products, summed apart
#endif
#pragma unroll
              for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                  for (int q = 0; q < 4; ++q) {
                    part[mi][ni][q] = 0.0f;
#if DT_MATH_3XTF32
                    correction[mi][ni][q] = 0.0f;
#endif
                  }
                  // Not unrolled: unrolling lets the compiler hoist every k-block's fragments,
                  // and spill.
#pragma unroll 1
              for (int kb = kb0; kb < min(kb0 + KC, KB); ++kb) {
                // A = W^T, one fragment per (m16 tile, k-step).
                float4 af[MI][2], bx[NI];
#pragma unroll
                for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                  for (int step = 0; step < 2; ++step)
                    af[mi][step] = *reinterpret_cast<const float4*>(w_tap + kb * BN * 16 +
                                                                    mi * 256 + step * 128);
                    // B = x: column g of each n8 tile is a pixel of the phase.
#pragma unroll
                for (int ni = 0; ni < NI; ++ni)
                  bx[ni] =
                      *reinterpret_cast<const float4*>(x_tap + kb * XR * XC * 16 + b_off[ni][dc]);
#if DT_XS
                float4 bs[NI];
#pragma unroll
                for (int ni = 0; ni < NI; ++ni)
                  bs[ni] = *reinterpret_cast<const float4*>(x_tap + X_PLANE + kb * XR * XC * 16 +
                                                            b_off[ni][dc]);
#endif
#pragma unroll
                for (int step = 0; step < 2; ++step) {
                  unsigned b_big[NI][2];
#if DT_XS || DT_MATH_3XTF32
                  unsigned b_small[NI][2];
#endif
#pragma unroll
                  for (int ni = 0; ni < NI; ++ni) {
                    const float b0 = step ? bx[ni].z : bx[ni].x, b1 = step ? bx[ni].w : bx[ni].y;
#if DT_XS
                    b_big[ni][0] = __float_as_uint(b0);
                    b_big[ni][1] = __float_as_uint(b1);
                    b_small[ni][0] = __float_as_uint(step ? bs[ni].z : bs[ni].x);
                    b_small[ni][1] = __float_as_uint(step ? bs[ni].w : bs[ni].y);
#elif DT_MATH_3XTF32
                    split_tf32(b0, b_big[ni][0], b_small[ni][0]);
                    split_tf32(b1, b_big[ni][1], b_small[ni][1]);
#else
                    b_big[ni][0] = __float_as_uint(b0);  // rounded to TF32 in shared memory
                    b_big[ni][1] = __float_as_uint(b1);
#endif
                  }
#pragma unroll
                  for (int mi = 0; mi < MI; ++mi) {
                    const float av[4] = {af[mi][step].x, af[mi][step].y, af[mi][step].z,
                                         af[mi][step].w};
#if DT_MATH_TF32
                    // W was rounded once: one product with both operands rounded, plus (XS)
                    // x's small part, which carries the bits TF32 drops.
                    const unsigned a[4] = {__float_as_uint(av[0]), __float_as_uint(av[1]),
                                           __float_as_uint(av[2]), __float_as_uint(av[3])};
#pragma unroll
                    for (int ni = 0; ni < NI; ++ni) {
#if DT_XS
                      mma_tf32(part[mi][ni], a, b_small[ni][0], b_small[ni][1]);
#endif
                      mma_tf32(part[mi][ni], a, b_big[ni][0], b_big[ni][1]);
                    }
#else
                    unsigned a_big[4], a_small[4];
#pragma unroll
                    for (int q = 0; q < 4; ++q) split_tf32(av[q], a_big[q], a_small[q]);
#pragma unroll
                    for (int ni = 0; ni < NI; ++ni) {
                      // The small x small term is below fp32 rounding and is dropped.
                      mma_tf32(correction[mi][ni], a_small, b_big[ni][0], b_big[ni][1]);
                      mma_tf32(correction[mi][ni], a_big, b_small[ni][0], b_small[ni][1]);
                      mma_tf32(part[mi][ni], a_big, b_big[ni][0], b_big[ni][1]);
                    }
#endif
                  }
                }
              }
              // A main sum that is not finite stands alone: an Inf big part times a zero small
              // part would make PyTorch's Inf a NaN.
#pragma unroll
              for (int mi = 0; mi < MI; ++mi)
#pragma unroll
                for (int ni = 0; ni < NI; ++ni)
#pragma unroll
                  for (int q = 0; q < 4; ++q) {
#if DT_MATH_3XTF32
                    if (isfinite(part[mi][ni][q])) part[mi][ni][q] += correction[mi][ni][q];
#endif
                    acc[rw][mi][ni][q] += part[mi][ni][q];
                  }
            }
          }
        }
      }

#endif  // DT_WG

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

// Problem constants baked into every generated kernel. The generator defines each DT_* macro for
// the problem at hand; the defaults (the seed shape) let this file compile on its own.
#pragma once

#ifndef DT_N
#define DT_N 128  // batch
#endif
#ifndef DT_CI
#define DT_CI 64  // input channels
#endif
#ifndef DT_CO
#define DT_CO 64  // output channels
#endif
#ifndef DT_H
#define DT_H 128
#endif
#ifndef DT_W
#define DT_W 128
#endif
#ifndef DT_KH
#define DT_KH 3
#endif
#ifndef DT_KW
#define DT_KW 3
#endif
#ifndef DT_SH
#define DT_SH 2
#endif
#ifndef DT_SW
#define DT_SW 2
#endif
#ifndef DT_PH
#define DT_PH 1
#endif
#ifndef DT_PW
#define DT_PW 1
#endif
#ifndef DT_DH
#define DT_DH 1
#endif
#ifndef DT_DW
#define DT_DW 1
#endif
#ifndef DT_OPH
#define DT_OPH 1  // output padding
#endif
#ifndef DT_OPW
#define DT_OPW 1
#endif
#ifndef DT_GROUPS
#define DT_GROUPS 1
#endif
#ifndef DT_HAS_BIAS
#define DT_HAS_BIAS 1
#endif
#ifndef DT_DTYPE
#define DT_DTYPE 0  // of x, w, bias and y: 0 float32, 1 bfloat16, 2 float16 (codegen/dtype.hpp)
#endif
#ifndef DT_NHWC
#define DT_NHWC 0  // 1: x and y channels_last; w is [CI, CO / GROUPS, KH, KW] either way
#endif

namespace dt {
// 64-bit where a product can pass 2^31 (the seed's y has 2^29 elements; larger batches pass it).
typedef long long i64;

constexpr int N = DT_N, CI = DT_CI, CO = DT_CO, H = DT_H, W = DT_W;
constexpr int KH = DT_KH, KW = DT_KW, SH = DT_SH, SW = DT_SW, PH = DT_PH, PW = DT_PW;
constexpr int DH = DT_DH, DW = DT_DW, GROUPS = DT_GROUPS;
constexpr int OH = (H - 1) * SH - 2 * PH + DH * (KH - 1) + DT_OPH + 1;
constexpr int OW = (W - 1) * SW - 2 * PW + DW * (KW - 1) + DT_OPW + 1;
constexpr int CI_PER_GROUP = CI / GROUPS, CO_PER_GROUP = CO / GROUPS;
constexpr bool HAS_BIAS = DT_HAS_BIAS != 0;

// The element type in memory and its conversions: arithmetic is fp32 whatever it is, so a value
// is widened on load (exact) and rounded to nearest even once, on the store of y.
#if DT_DTYPE == 0
typedef float elem;
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float from_f32(float v) { return v; }
#else
typedef unsigned short elem;  // the bits; no cuda_fp16.h / cuda_bf16.h needed under NVRTC
__device__ __forceinline__ float to_f32(unsigned short v) {
#if DT_DTYPE == 1
  return __uint_as_float((unsigned)v << 16);
#else
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v));
  return f;
#endif
}
__device__ __forceinline__ unsigned short from_f32(float v) {
#if DT_DTYPE == 1
  // In integers rather than cvt.rn.bf16.f32, which needs sm_80: nearest even on the 16 bits
  // dropped (a carry into the exponent is the right rounding), NaN kept quiet. The host's
  // codegen/dtype.cpp rounds the same way.
  const unsigned bits = __float_as_uint(v);
  if (v != v) return (unsigned short)((bits >> 16) | 0x40u);
  return (unsigned short)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
#else
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
  return h;
#endif
}
#endif

__device__ __forceinline__ i64 x_index(i64 n, int ci, int ih, int iw) {
#if DT_NHWC
  return ((n * H + ih) * W + iw) * (i64)CI + ci;
#else
  return ((n * CI + ci) * H + ih) * (i64)W + iw;
#endif
}
// ConvTranspose2d's weight layout: [CI, CO / GROUPS, KH, KW].
__device__ __forceinline__ int w_index(int ci, int co_in_group, int kh, int kw) {
  return ((ci * CO_PER_GROUP + co_in_group) * KH + kh) * KW + kw;
}
__device__ __forceinline__ i64 y_index(i64 n, int co, int oh, int ow) {
#if DT_NHWC
  return ((n * OH + oh) * OW + ow) * (i64)CO + co;
#else
  return ((n * CO + co) * OH + oh) * (i64)OW + ow;
#endif
}
}  // namespace dt

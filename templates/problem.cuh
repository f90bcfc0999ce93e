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

__device__ __forceinline__ i64 x_index(i64 n, int ci, int ih, int iw) {
  return ((n * CI + ci) * H + ih) * (i64)W + iw;
}
// ConvTranspose2d's weight layout: [CI, CO / GROUPS, KH, KW].
__device__ __forceinline__ int w_index(int ci, int co_in_group, int kh, int kw) {
  return ((ci * CO_PER_GROUP + co_in_group) * KH + kh) * KW + kw;
}
__device__ __forceinline__ i64 y_index(i64 n, int co, int oh, int ow) {
  return ((n * CO + co) * OH + oh) * (i64)OW + ow;
}
}  // namespace dt

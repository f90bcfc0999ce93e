// Building blocks of the tensor-core kernels (pgemm.cuh): the phase decomposition of
// the transposed convolution, the swizzled 16-channel shared layout, TF32 conversion and splitting,
// mma.sync and cp.async.
#pragma once
#include "problem.cuh"

namespace dt {
// Along one axis (stride S, padding P, dilation D, kernel K): tap k reaches the outputs of phase r
// when (r + P - k * D) is a multiple of S; the input row (column) is then the block's base + i +
// shift. The input tile spans the smallest to the largest shift over all phases and taps.
__host__ __device__ constexpr int mod(int a, int b) { return ((a % b) + b) % b; }
__host__ __device__ constexpr bool reaches(int r, int k, int S, int P, int D) {
  return mod(r + P - k * D, S) == 0;
}
__host__ __device__ constexpr int shift(int r, int k, int S, int P, int D) {
  return (r + P - k * D) / S;
}
// Every tap reaches exactly one phase, and its shift falls as k grows: the first tap has the
// largest shift, the last the smallest (closed form, so no loop over stride x kernel).
__host__ __device__ constexpr int floor_div(int a, int b) { return (a - mod(a, b)) / b; }
__host__ __device__ constexpr int shift_bound(int S, int P, int D, int K, bool largest) {
  return largest ? -floor_div(-P, S) : -floor_div((K - 1) * D - P, S);
}
__host__ __device__ constexpr bool tap_h(int r, int kh) { return reaches(r, kh, SH, PH, DH); }
__host__ __device__ constexpr bool tap_w(int r, int kw) { return reaches(r, kw, SW, PW, DW); }
__host__ __device__ constexpr int shift_h(int r, int kh) { return shift(r, kh, SH, PH, DH); }
__host__ __device__ constexpr int shift_w(int r, int kw) { return shift(r, kw, SW, PW, DW); }
constexpr int SHIFT_H0 = shift_bound(SH, PH, DH, KH, false);
constexpr int SHIFT_W0 = shift_bound(SW, PW, DW, KW, false);
// Float offset of channel c of "pixel" p (an input tile pixel, or an output channel of W) in a
// 16-channel block: 16-byte chunks swizzled by pixel.
__device__ __forceinline__ int swz(int p, int c) {
  return p * 16 + ((((c >> 2) ^ (p >> 1)) & 3) << 2) + (c & 3);
}

__device__ __forceinline__ unsigned to_tf32(float v) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(v));
  return r;
}

__device__ __forceinline__ void mma_tf32(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                         unsigned b1) {
  // Not volatile: a pure function of its operands, which the compiler may schedule freely.
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void cp_async4(float* smem, const float* gmem) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(s), "l"(gmem));
}
// As cp_async4, but writes zero without reading when !copy (src must still be a valid address).
__device__ __forceinline__ void cp_async4_zero_fill(float* smem, const float* gmem, bool copy) {
  const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(s), "l"(gmem),
               "r"(copy ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int PENDING>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(PENDING));
}

// v = big + small exactly: big is v rounded to TF32 (to nearest, ties away, on the magnitude
// bits: add half an ulp, clear the low 13 mantissa bits), small the remainder (at most 12
// significant bits, of which the tensor core reads the top 10). Three instructions where
// cvt.rna on both parts costs ten; what the split loses is 2^-22 of |v|, as with cvt.rna.
// An infinite v is its own big part, with small part 0 (Inf - Inf would make it NaN); NaN
// reaches both parts and propagates.
__device__ __forceinline__ void split_tf32(float v, unsigned& big, unsigned& small) {
  big = (__float_as_uint(v) + 0x1000u) & 0xffffe000u;
  const float rest = v - __uint_as_float(big);
  small = __float_as_uint(__uint_as_float(big) == v ? 0.0f : rest);
}
}  // namespace dt

// The epilogue ops, one device function each, named dt_<op> as in the chain text. Float versions
// run in the kernels; double versions serve the float64 reference. DT_EPILOGUE(v) is the chain the
// generator writes for the problem (the seed's by default). NaN propagates as in PyTorch: the
// clamps are written with comparisons, not fminf/fmaxf, which would drop it.
#pragma once

#ifndef DT_MISH_FAST
#define DT_MISH_FAST 0
#endif
#ifndef DT_EPILOGUE
#define DT_EPILOGUE(v)             \
  v = dt_mish(v);                  \
  v = dt_add(v, 0.5f);             \
  v = dt_hardtanh(v, -1.0f, 1.0f); \
  v = dt_mul(v, 2.0f);
#endif
#ifndef DT_EPILOGUE_F64
#define DT_EPILOGUE_F64(v)       \
  v = dt_mish(v);                \
  v = dt_add(v, 0.5);            \
  v = dt_hardtanh(v, -1.0, 1.0); \
  v = dt_mul(v, 2.0);
#endif

__device__ __forceinline__ float dt_softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }
__device__ __forceinline__ double dt_softplus(double v) { return v > 20.0 ? v : log1p(exp(v)); }

__device__ __forceinline__ float dt_mish(float v) {
#if DT_MISH_FAST
  // tanh(softplus(v)) = n / (n + 2) with n = e^v (e^v + 2), so mish(v) = v n / (n + 2): one exp
  // and one reciprocal, both the hardware approximations, and no cancellation for negative v (the
  // form v - 2v / (n + 2) loses every digit there). Past v = 20, tanh(softplus(v)) is 1 in fp32,
  // and n would overflow (Inf / Inf): mish(v) = v, so +Inf stays +Inf as in PyTorch; -Inf gives
  // -Inf * 0 = NaN, as PyTorch's does; NaN propagates (the comparison is false).
  float e, r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(v * 1.4426950408889634f));
  const float n = e * (e + 2.0f);
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(n + 2.0f));
  return v > 20.0f ? v : v * n * r;
#else
  return v * tanhf(log1pf(expf(v)));
#endif
}
__device__ __forceinline__ double dt_mish(double v) { return v * tanh(log1p(exp(v))); }

template <typename T>
__device__ __forceinline__ T dt_add(T v, T c) {
  return v + c;
}
template <typename T>
__device__ __forceinline__ T dt_mul(T v, T c) {
  return v * c;
}
// As torch.clamp: max first, then min (so hi wins when lo > hi); NaN propagates.
template <typename T>
__device__ __forceinline__ T dt_clamp(T v, T lo, T hi) {
  const T r = v < lo ? lo : v;
  return r > hi ? hi : r;
}
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// One instruction each: the .NaN forms of min and max return NaN when an operand is NaN.
template <>
__device__ __forceinline__ float dt_clamp(float v, float lo, float hi) {
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(v), "f"(lo));
  asm("min.NaN.f32 %0, %0, %1;" : "+f"(r) : "f"(hi));
  return r;
}
#endif
template <typename T>
__device__ __forceinline__ T dt_hardtanh(T v, T lo, T hi) {
  return dt_clamp(v, lo, hi);
}
template <typename T>
__device__ __forceinline__ T dt_relu(T v) {
  return v < T(0) ? T(0) : v;
}
template <typename T>
__device__ __forceinline__ T dt_leaky_relu(T v, T slope) {
  return v < T(0) ? v * slope : v;
}

__device__ __forceinline__ float dt_gelu(float v) {
  return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
}
__device__ __forceinline__ double dt_gelu(double v) {
  return 0.5 * v * (1.0 + erf(v * 0.70710678118654752440));
}
__device__ __forceinline__ float dt_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
__device__ __forceinline__ double dt_sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }
__device__ __forceinline__ float dt_silu(float v) { return v / (1.0f + expf(-v)); }
__device__ __forceinline__ double dt_silu(double v) { return v / (1.0 + exp(-v)); }
__device__ __forceinline__ float dt_tanh(float v) { return tanhf(v); }
__device__ __forceinline__ double dt_tanh(double v) { return tanh(v); }

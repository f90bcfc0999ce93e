// Probe (not part of the product): wgmma tf32 with A in registers and B from shared memory.
// 1. layouts: which descriptor settings reproduce D = W x X^T for B windows starting at any pixel.
// 2. accumulation: wgmma's fp32 accumulation error over K = 576 vs fp64.
// 3. throughput: m64nNk8 RS vs mma.sync m16n8k8.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wgmma_wrappers.cuh"

#define CK(x)                                                                  \
  do {                                                                         \
    cudaError_t err_ = (x);                                                       \
    if (err_ != cudaSuccess) {                                                  \
      printf("CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, __LINE__); \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wg_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ unsigned long long make_desc(const void* smem, int lbo, int sbo, int swz,
                                                        int base_off) {
  unsigned addr = (unsigned)__cvta_generic_to_shared(smem);
  unsigned long long d = 0;
  d |= (unsigned long long)((addr >> 4) & 0x3FFF);
  d |= (unsigned long long)((lbo >> 4) & 0x3FFF) << 16;
  d |= (unsigned long long)((sbo >> 4) & 0x3FFF) << 32;
  d |= (unsigned long long)(base_off & 7) << 49;
  d |= (unsigned long long)(swz & 3) << 62;
  return d;
}
__device__ __forceinline__ int swz64(int p, int c) {
  return p * 16 + ((((c >> 2) ^ (p >> 1)) & 3) << 2) + (c & 3);
}

constexpr int P = 96;  // pixels in the tile
constexpr int NN = 32;

// layout 0: [chunk][pixel][4], no swizzle. layout 1: [pixel][16] swizzled 64B.
// variant (layout 0): 0 LBO=K-dir SBO=N-dir, 1 swapped. (layout 1): 0 base_off 0, 1 base_off from
// address, 2 base_off = (p0>>1)&3 ... just try.
__global__ void layout_kernel(const float* W, const float* X, float* D, int layout, int p0,
                              int variant) {
  __shared__ __align__(1024) float xs[P * 16];
  const int tid = threadIdx.x;
  for (int e = tid; e < P * 16; e += 128) {
    int p = e / 16, c = e % 16;
    int off = layout == 0 ? ((c / 4) * P + p) * 4 + (c % 4) : swz64(p, c);
    xs[off] = X[p * 16 + c];
  }
  fence_proxy();
  __syncthreads();
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  float d[NN / 2];
  for (int i = 0; i < NN / 2; ++i) d[i] = 0.f;
  wg_fence();
  for (int ks = 0; ks < 2; ++ks) {
    unsigned a[4];
    a[0] = __float_as_uint(W[(16 * warp + g) * 16 + 8 * ks + t]);
    a[1] = __float_as_uint(W[(16 * warp + g + 8) * 16 + 8 * ks + t]);
    a[2] = __float_as_uint(W[(16 * warp + g) * 16 + 8 * ks + t + 4]);
    a[3] = __float_as_uint(W[(16 * warp + g + 8) * 16 + 8 * ks + t + 4]);
    unsigned long long desc;
    if (layout == 0) {
      const float* start = xs + ((2 * ks) * P + p0) * 4;
      desc = variant == 0 ? make_desc(start, P * 16, 128, 0, 0) : make_desc(start, 128, P * 16, 0, 0);
    } else {
      const float* start = xs + p0 * 16 + 8 * ks;
      unsigned addr = (unsigned)__cvta_generic_to_shared(start);
      int bo = variant == 0 ? 0 : variant == 1 ? (addr >> 7) & 7 : (p0 >> 1) & 3;
      desc = make_desc(start, 16, 512, 2, bo);
    }
    wgmma_rs_n32(d, a, desc, 1);
  }
  wg_commit();
  wg_wait<0>();
  for (int j = 0; j < NN / 8; ++j) {
    int col = 8 * j + 2 * t;
    int row = 16 * warp + g;
    D[row * NN + col] = d[4 * j + 0];
    D[row * NN + col + 1] = d[4 * j + 1];
    D[(row + 8) * NN + col] = d[4 * j + 2];
    D[(row + 8) * NN + col + 1] = d[4 * j + 3];
  }
}

// Accumulation: 72 k-steps (K = 576) into one accumulator; A differs per step (Wk [64][576]),
// B alternates between channel halves of the tile (layout 0, window at pixel 0).
__global__ void accum_kernel(const float* Wk, const float* X, float* D, float* Dmma) {
  __shared__ __align__(1024) float xs[P * 16];
  const int tid = threadIdx.x;
  for (int e = tid; e < P * 16; e += 128) {
    int p = e / 16, c = e % 16;
    xs[((c / 4) * P + p) * 4 + (c % 4)] = X[p * 16 + c];
  }
  fence_proxy();
  __syncthreads();
  const int warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  float d[NN / 2];
  float m[NN / 2];
  for (int i = 0; i < NN / 2; ++i) d[i] = m[i] = 0.f;
  for (int it = 0; it < 72; ++it) {
    const int ks = it % 2;
    unsigned a[4];
    a[0] = __float_as_uint(Wk[(16 * warp + g) * 576 + 8 * it + t]);
    a[1] = __float_as_uint(Wk[(16 * warp + g + 8) * 576 + 8 * it + t]);
    a[2] = __float_as_uint(Wk[(16 * warp + g) * 576 + 8 * it + t + 4]);
    a[3] = __float_as_uint(Wk[(16 * warp + g + 8) * 576 + 8 * it + t + 4]);
    wg_fence();
    wgmma_rs_n32(d, a, make_desc(xs + (2 * ks) * P * 4, P * 16, 128, 0, 0), 1);
    wg_commit();
    wg_wait<0>();
    for (int j = 0; j < NN / 8; ++j) {
      // mma.sync B fragment: b0 = B[k=t][n=g], b1 = B[k=t+4][n=g]; B[k][n] = X[n][8ks+k]
      unsigned b0 = __float_as_uint(xs[((2 * ks) * P + 8 * j + g) * 4 + t]);
      unsigned b1 = __float_as_uint(xs[((2 * ks + 1) * P + 8 * j + g) * 4 + t]);
      asm volatile(
          "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
          "{%8,%9}, {%0,%1,%2,%3};\n"
          : "+f"(m[4 * j]), "+f"(m[4 * j + 1]), "+f"(m[4 * j + 2]), "+f"(m[4 * j + 3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
  }
  for (int j = 0; j < NN / 8; ++j) {
    int col = 8 * j + 2 * t, row = 16 * warp + g;
    D[row * NN + col] = d[4 * j + 0];
    D[row * NN + col + 1] = d[4 * j + 1];
    D[(row + 8) * NN + col] = d[4 * j + 2];
    D[(row + 8) * NN + col + 1] = d[4 * j + 3];
    Dmma[row * NN + col] = m[4 * j + 0];
    Dmma[row * NN + col + 1] = m[4 * j + 1];
    Dmma[(row + 8) * NN + col] = m[4 * j + 2];
    Dmma[(row + 8) * NN + col + 1] = m[4 * j + 3];
  }
}

template <int N>
__device__ __forceinline__ void wgmma_rs(float (&d)[N / 2], const unsigned (&a)[4],
                                         unsigned long long desc) {
  if constexpr (N == 32) wgmma_rs_n32(d, a, desc, 1);
  if constexpr (N == 64) wgmma_rs_n64(d, a, desc, 1);
  if constexpr (N == 128) wgmma_rs_n128(d, a, desc, 1);
  if constexpr (N == 256) wgmma_rs_n256(d, a, desc, 1);
}

// Throughput: each warpgroup issues iters x 8 wgmma m64nNk8 (A regs, B smem, no swizzle).
template <int N>
__global__ void wg_throughput(int iters, float* sink) {
  extern __shared__ __align__(1024) float tile[];  // [4 chunks][256 pixels][4]
  for (int e = threadIdx.x; e < 4 * 256 * 4; e += blockDim.x) tile[e] = 0.001f * (e % 7);
  fence_proxy();
  __syncthreads();
  float d[N / 2];
  for (int i = 0; i < N / 2; ++i) d[i] = 0.f;
  unsigned a[4] = {__float_as_uint(1.f), __float_as_uint(0.5f), __float_as_uint(0.25f),
                   __float_as_uint(2.f)};
  for (int it = 0; it < iters; ++it) {
    wg_fence();
#pragma unroll
    for (int ks = 0; ks < 8; ++ks)
      wgmma_rs<N>(d, a, make_desc(tile + ((ks & 1) * 2) * 256 * 4, 256 * 16, 128, 0, 0));
    wg_commit();
    wg_wait<1>();
  }
  wg_wait<0>();
  float s = 0;
  for (int i = 0; i < N / 2; ++i) s += d[i];
  if (s == 12345.f) sink[0] = s;
}

__global__ void mma_throughput(int iters, float* sink) {
  float c[8][4] = {};
  unsigned a[4] = {__float_as_uint(1.f), __float_as_uint(0.5f), __float_as_uint(0.25f),
                   __float_as_uint(2.f)};
  unsigned b0 = __float_as_uint(0.1f * threadIdx.x), b1 = __float_as_uint(0.3f);
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int j = 0; j < 8; ++j)
      asm volatile(
          "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
          "{%8,%9}, {%0,%1,%2,%3};\n"
          : "+f"(c[j][0]), "+f"(c[j][1]), "+f"(c[j][2]), "+f"(c[j][3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  float s = 0;
  for (int j = 0; j < 8; ++j) s += c[j][0] + c[j][1] + c[j][2] + c[j][3];
  if (s == 12345.f) sink[0] = s;
}

float tf32_round(float v) {
  unsigned u;
  memcpy(&u, &v, 4);
  u = (u + 0x1000u) & 0xffffe000u;
  memcpy(&v, &u, 4);
  return v;
}

template <int N>
void time_wg(int ctas_per_sm, int wgs, float* sink) {
  int iters = 20000;
  auto k = wg_throughput<N>;
  CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 16384));
  cudaEvent_t s, e;
  cudaEventCreate(&s);
  cudaEventCreate(&e);
  k<<<132 * ctas_per_sm, 128 * wgs, 16384>>>(100, sink);
  CK(cudaDeviceSynchronize());
  cudaEventRecord(s);
  k<<<132 * ctas_per_sm, 128 * wgs, 16384>>>(iters, sink);
  cudaEventRecord(e);
  CK(cudaEventSynchronize(e));
  float ms;
  cudaEventElapsedTime(&ms, s, e);
  double flops = 2.0 * 64 * N * 8 * 8.0 * iters * wgs * 132 * ctas_per_sm;
  printf("wgmma m64n%dk8 RS  ctas/SM %d  warpgroups %d : %.1f TFLOP/s\n", N, ctas_per_sm, wgs,
         flops / ms / 1e9);
}

int main() {
  srand(1);
  std::vector<float> W(64 * 16), X(P * 16);
  for (auto& v : W) v = (float)(rand() % 7 - 3);
  for (auto& v : X) v = (float)(rand() % 9 - 4);
  float *dW, *dX, *dD, *dD2;
  CK(cudaMalloc(&dW, 64 * 576 * 4));
  CK(cudaMalloc(&dX, P * 16 * 4));
  CK(cudaMalloc(&dD, 64 * NN * 4));
  CK(cudaMalloc(&dD2, 64 * NN * 4));
  CK(cudaMemcpy(dW, W.data(), W.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dX, X.data(), X.size() * 4, cudaMemcpyHostToDevice));
  std::vector<float> D(64 * NN);
  for (int layout = 0; layout < 1; ++layout)  // layout 1 (64B swizzle): not run (see README)
    for (int variant = 0; variant < 1; ++variant) {
      printf("layout %d variant %d:", layout, variant);
      for (int p0 : {0, 1, 2, 3, 5, 8, 13, 30, 64}) {
        CK(cudaMemset(dD, 0xff, 64 * NN * 4));
        layout_kernel<<<1, 128>>>(dW, dX, dD, layout, p0, variant);
        cudaError_t err = cudaDeviceSynchronize();
        if (err != cudaSuccess) {
          printf(" p0=%d ERROR %s\n", p0, cudaGetErrorString(err));
          return 1;
        }
        CK(cudaMemcpy(D.data(), dD, D.size() * 4, cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int m = 0; m < 64; ++m)
          for (int n = 0; n < NN; ++n) {
            double ref = 0;
            for (int k = 0; k < 16; ++k) ref += (double)W[m * 16 + k] * X[(p0 + n) * 16 + k];
            if (D[m * NN + n] != ref) ++bad;
          }
        printf(" p0=%d:%s", p0, bad ? "BAD" : "ok");
      }
      printf("\n");
    }
  // accumulation
  std::vector<float> Wk(64 * 576);
  for (auto& v : Wk) v = tf32_round((float)rand() / RAND_MAX);
  for (auto& v : X) v = tf32_round((float)rand() / RAND_MAX);
  CK(cudaMemcpy(dW, Wk.data(), Wk.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dX, X.data(), X.size() * 4, cudaMemcpyHostToDevice));
  accum_kernel<<<1, 128>>>(dW, dX, dD, dD2);
  CK(cudaDeviceSynchronize());
  std::vector<float> D2(64 * NN);
  CK(cudaMemcpy(D.data(), dD, D.size() * 4, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(D2.data(), dD2, D2.size() * 4, cudaMemcpyDeviceToHost));
  double e_wg = 0, e_mma = 0, e_f32 = 0, mag = 0;
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < NN; ++n) {
      double ref = 0;
      float f = 0;
      for (int it = 0; it < 72; ++it)
        for (int k = 0; k < 8; ++k) {
          double prod = (double)Wk[m * 576 + 8 * it + k] * X[n * 16 + (it % 2) * 8 + k];
          ref += prod;
          f += (float)prod;
        }
      e_wg = fmax(e_wg, fabs(D[m * NN + n] - ref));
      e_mma = fmax(e_mma, fabs(D2[m * NN + n] - ref));
      e_f32 = fmax(e_f32, fabs(f - ref));
      mag = fmax(mag, fabs(ref));
    }
  printf("accumulate K=576 (|sum| up to %.1f): max err wgmma %.3g, mma.sync %.3g, fp32 serial %.3g\n",
         mag, e_wg, e_mma, e_f32);
  // throughput
  float* sink;
  CK(cudaMalloc(&sink, 4));
  for (int wgs : {1, 2})
    for (int cps : {1, 2}) {
      time_wg<32>(cps, wgs, sink);
      time_wg<64>(cps, wgs, sink);
      time_wg<128>(cps, wgs, sink);
    }
  time_wg<256>(1, 1, sink);
  time_wg<256>(1, 2, sink);
  {
    int iters = 20000;
    cudaEvent_t s, e;
    cudaEventCreate(&s);
    cudaEventCreate(&e);
    for (int warps : {4, 8, 16}) {
      mma_throughput<<<132 * 2, 32 * warps>>>(100, sink);
      CK(cudaDeviceSynchronize());
      cudaEventRecord(s);
      mma_throughput<<<132 * 2, 32 * warps>>>(iters, sink);
      cudaEventRecord(e);
      CK(cudaEventSynchronize(e));
      float ms;
      cudaEventElapsedTime(&ms, s, e);
      double flops = 2.0 * 16 * 8 * 8 * 8.0 * iters * warps * 132 * 2;
      printf("mma.sync m16n8k8 tf32, 2 CTAs/SM x %d warps: %.1f TFLOP/s\n", warps, flops / ms / 1e9);
    }
  }
  return 0;
}

// Probe (not part of the product): the TF32 wgmma issue rate in wsgemm's own operand layouts.
// The tf32 path issues m64nNk8 with both operands from shared memory (SS): A = W, [plane][64 output
// channels][4], LBO one plane, SBO 128 B; B = the window, [plane][pixel][4], LBO one plane, SBO
// 128 B, starting at whatever pixel a tap's shift gives (no swizzle). The question: how close to
// the RS rate (A in registers, 465-494 TFLOP/s on the H100, README.md) does SS run at N = 32, 64,
// 128, with B on a 128-byte line (shift 0) and off it (shift 1, 3: the taps' column shifts)?
// Each of 132 CTAs (one per SM) runs WG warpgroups, as wsgemm runs two consumers.
//
// nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -o wgmma_ss_probe wgmma_ss_probe.cu
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "../../templates/wgmma.cuh"
#include "probe_check.cuh"

constexpr int BM = 64, PLANES = 16, KSTEPS = PLANES / 2, PIX = 160;  // K = 64 channels
constexpr int A_FLOATS = PLANES * BM * 4, B_FLOATS = PLANES * PIX * 4;
constexpr int SMEM_BYTES = (A_FLOATS + B_FLOATS) * 4;

template <int N, bool SS>
__global__ void __launch_bounds__(256, 1) rate(int iters, int shift, float* sink) {
  extern __shared__ __align__(128) float smem[];
  float* a = smem;
  float* b = smem + A_FLOATS;
  for (int e = threadIdx.x; e < A_FLOATS + B_FLOATS; e += blockDim.x)
    smem[e] = 0.001f * (e % 7);
  dt::fence_proxy_async();
  __syncthreads();
  float d[N / 2];
  for (int i = 0; i < N / 2; ++i) d[i] = 0.0f;
  const unsigned a_regs[4] = {__float_as_uint(1.0f), __float_as_uint(0.5f),
                              __float_as_uint(0.25f), __float_as_uint(2.0f)};
  const unsigned long long a_desc = dt::wgmma_desc(a, BM * 16, 128);
  const unsigned long long b_desc = dt::wgmma_desc(b, PIX * 16, 128);
  for (int it = 0; it < iters; ++it) {
    dt::wgmma_fence();
#pragma unroll
    for (int j = 0; j < KSTEPS; ++j) {
      const unsigned long long bj = b_desc + 2 * j * PIX + (j % 2) * shift;
      if constexpr (SS) {
        dt::wgmma_ss_tf32<N>(d, a_desc + 2 * j * BM, bj, true);
      } else {
        dt::wgmma_rs_tf32<N>(d, a_regs, bj, true);
      }
    }
    dt::wgmma_commit();
    dt::wgmma_wait<1>();
  }
  dt::wgmma_wait<0>();
  float s = 0.0f;
  for (int i = 0; i < N / 2; ++i) s += d[i];
  if (s == 12345.0f) sink[0] = s;
}

template <int N, bool SS>
void measure(int warpgroups, int shift, float* sink) {
  auto kernel = rate<N, SS>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
  const int iters = 20000;
  kernel<<<132, 128 * warpgroups, SMEM_BYTES>>>(100, shift, sink);
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  CHECK(cudaEventRecord(start));
  kernel<<<132, 128 * warpgroups, SMEM_BYTES>>>(iters, shift, sink);
  CHECK(cudaEventRecord(stop));
  CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  const double flops = 2.0 * 64 * N * 8 * KSTEPS * (double)iters * warpgroups * 132;
  std::printf("m64n%-3dk8 %s  warpgroups %d  B shift %d : %6.1f TFLOP/s\n", N, SS ? "SS" : "RS",
              warpgroups, shift, flops / ms / 1e9);
}

int main() {
  float* sink = nullptr;
  CHECK(cudaMalloc(&sink, sizeof(float)));
  for (int warpgroups : {1, 2}) {
    for (int shift : {0, 1, 3}) {
      measure<32, false>(warpgroups, shift, sink);
      measure<64, false>(warpgroups, shift, sink);
      measure<32, true>(warpgroups, shift, sink);
      measure<64, true>(warpgroups, shift, sink);
      measure<128, true>(warpgroups, shift, sink);
    }
  }
  CHECK(cudaFree(sink));
  return 0;
}

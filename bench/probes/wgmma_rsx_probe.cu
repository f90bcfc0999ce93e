// Probe (not part of the product): could x be wgmma's register operand (A)? A tensor map box of
// NCHW x lands MN-major (pixels contiguous per channel), which TF32 wgmma cannot read from shared
// memory, so today the producer transposes every staged piece into the K-major slot (0.24 ms of
// the seed's 1.24 with staged windows, bench/results/2026-12-03-h200-resident). Instead each
// consumer thread could load its A fragment straight from the box (rows g, g + 8 = pixels, K
// columns t, t + 4 = channels: 4 LDS.32 and 4 roundings per k-step), with W as the K-major B
// operand from the image wsgemm already keeps, and reuse the fragment for every tap of the same
// shift (the seed: 4 shifts for its 9 taps). Measured: the TF32 rate of m64nNk8 RS wgmmas fed that
// way, each fragment reused REUSE times, for a channel stride of the box that spreads the lanes
// over the banks (CS = 168 floats, 8 mod 32) and the seed's dense one (144, 16 mod 32: 2-way
// conflicts), at window shifts 0 and 1; and SS from K-major images, today's form, in the same run.
// Each of 132 CTAs (one per SM) runs 1 or 2 warpgroups, as wsgemm runs two consumers.
//
// nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -o wgmma_rsx_probe wgmma_rsx_probe.cu
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "../../templates/tensor_core.cuh"
#include "../../templates/wgmma.cuh"
#include "probe_check.cuh"

constexpr int CHANNELS = 64, PLANES = CHANNELS / 4, KSTEPS = CHANNELS / 8, PIX = 160;
constexpr int MAX_N = 64, MAX_REUSE = 4, MAX_CS = 168;
constexpr int W_FLOATS = MAX_REUSE * PLANES * MAX_N * 4;  // B: [tap][plane][n][4]
constexpr int X_FLOATS = CHANNELS * MAX_CS;               // A's source: [channel][CS pixels]
constexpr int A_FLOATS = PLANES * 64 * 4;                 // SS: a K-major A image
constexpr int SMEM_BYTES = (W_FLOATS + X_FLOATS + A_FLOATS) * 4;
static_assert(SMEM_BYTES <= 227 * 1024, "fits one CTA's shared memory");
static_assert(PIX + 8 <= MAX_CS, "every window pixel and shift inside a channel's run");

template <int N, int REUSE, bool SS>
__global__ void __launch_bounds__(256, 1) rate(int iters, int cs, int shift, float* sink) {
  extern __shared__ __align__(128) float smem[];
  float* w = smem;
  float* x = smem + W_FLOATS;
  float* a_image = x + X_FLOATS;
  for (int e = threadIdx.x; e < W_FLOATS + X_FLOATS + A_FLOATS; e += blockDim.x)
    smem[e] = 0.001f * (e % 7);
  dt::fence_proxy_async();
  __syncthreads();
  const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  // Lane (g, t)'s first element: pixel 16 * warp + g of channel t, past the window's shift.
  const float* a_lane = x + t * cs + 16 * warp + g + shift;
  const unsigned long long w_desc = dt::wgmma_desc(w, N * 16, 128);
  const unsigned long long a_desc = dt::wgmma_desc(a_image, 64 * 16, 128);
  float d[N / 2];
  for (int i = 0; i < N / 2; ++i) d[i] = 0.0f;
  unsigned a[2][4];
  for (int it = 0; it < iters; ++it) {
#pragma unroll
    for (int j = 0; j < KSTEPS; ++j) {
      if constexpr (SS) {
        dt::wgmma_fence();
#pragma unroll
        for (int r = 0; r < REUSE; ++r)
          dt::wgmma_ss_tf32<N>(d, a_desc + 2 * j * 64, w_desc + (r * PLANES + 2 * j) * N, true);
      } else {
        const int set = j & 1;
        if (j >= 2) {
          dt::wgmma_wait<1>();  // the group that read this set (two k-steps back) is done
#pragma unroll
          for (int q = 0; q < 4; ++q) dt::keep_register(a[set][q]);
        }
        const float* src = a_lane + 8 * j * cs;
        const float v[4] = {src[0], src[8], src[4 * cs], src[4 * cs + 8]};
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          a[set][q] = dt::to_tf32(v[q]);
          dt::keep_register(a[set][q]);
        }
        dt::wgmma_fence();
#pragma unroll
        for (int r = 0; r < REUSE; ++r)
          dt::wgmma_rs_tf32<N>(d, a[set], w_desc + (r * PLANES + 2 * j) * N, true);
      }
      dt::wgmma_commit();
      if constexpr (SS) dt::wgmma_wait<1>();
    }
    // Drained per pass over the channels, as wsgemm drains per tap (3xtf32) or unit (tf32): no
    // wgmma is in flight across the loop's back edge, where ptxas would serialise them.
    if constexpr (!SS) dt::wgmma_wait<0>();
  }
  dt::wgmma_wait<0>();
  float s = 0.0f;
  for (int i = 0; i < N / 2; ++i) s += d[i];
  if (s == 12345.0f) sink[0] = s;
}

template <int N, int REUSE, bool SS>
void measure(int warpgroups, int cs, int shift, float* sink) {
  auto kernel = rate<N, REUSE, SS>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
  const int iters = 20000 / REUSE;
  kernel<<<132, 128 * warpgroups, SMEM_BYTES>>>(100, cs, shift, sink);
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  CHECK(cudaEventRecord(start));
  kernel<<<132, 128 * warpgroups, SMEM_BYTES>>>(iters, cs, shift, sink);
  CHECK(cudaEventRecord(stop));
  CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  CHECK(cudaEventElapsedTime(&ms, start, stop));
  const double flops = 2.0 * 64 * N * 8 * KSTEPS * REUSE * (double)iters * warpgroups * 132;
  std::printf("m64n%-3dk8 %s reuse %d  warpgroups %d  channel stride %3d  shift %d : %6.1f TFLOP/s\n",
              N, SS ? "SS (K-major images)  " : "RS (A from the window)", REUSE, warpgroups, cs, shift,
              flops / ms / 1e9);
}

template <int N>
void sweep(float* sink) {
  for (int warpgroups : {1, 2}) {
    measure<N, 1, true>(warpgroups, MAX_CS, 0, sink);
    for (int cs : {MAX_CS, 144}) {
      for (int shift : {0, 1}) {
        measure<N, 1, false>(warpgroups, cs, shift, sink);
        measure<N, 2, false>(warpgroups, cs, shift, sink);
        measure<N, 4, false>(warpgroups, cs, shift, sink);
      }
    }
  }
}

int main() {
  float* sink = nullptr;
  CHECK(cudaMalloc(&sink, sizeof(float)));
  sweep<64>(sink);
  sweep<32>(sink);
  CHECK(cudaFree(sink));
  return 0;
}

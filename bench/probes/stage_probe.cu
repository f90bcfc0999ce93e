// Probe (not part of the product): times one generated wsgemm kernel with a stage of it left out,
// to place the time inside the kernel without hardware counters ("time variants that leave one
// stage out, and take differences"). The kernel is `deconvtune inspect` output with a textual
// change that stage_probe.sh makes (or none: the baseline), so it computes garbage and is timed
// here, never by the product, which times only verified kernels.
//
// nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -DKERNEL_SOURCE='"k.cu"' \
//      -o probe stage_probe.cu
// ./probe GRID_X GRID_Y GRID_Z   (the launch of `deconvtune inspect --resources`)
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include KERNEL_SOURCE
#include "probe_check.cuh"

__global__ void fill(float* data, long long count, unsigned seed) {
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < count;
       i += (long long)gridDim.x * blockDim.x) {
    unsigned h = (unsigned)i * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    data[i] = (float)(h & 0xFFFF) / 65536.0f - 0.5f;
  }
}

float* filled(long long count, unsigned seed) {
  float* data = nullptr;
  CHECK(cudaMalloc(&data, (count > 0 ? count : 1) * sizeof(float)));
  fill<<<1024, 256>>>(data, count, seed);
  return data;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    std::printf("usage: %s GRID_X GRID_Y GRID_Z\n", argv[0]);
    return 2;
  }
  const dim3 grid(std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3]));
  using namespace dt;
  const long long x_count = (long long)N * CI * H * W, y_count = (long long)N * CO * OH * OW;
  const long long w_count = (long long)CI * CO_PER_GROUP * KH * KW;
  float* x = filled(x_count, 1);
  float* w = filled(w_count, 2);
  float* bias = filled(CO, 3);
  float* y = filled(y_count, 4);
  float* packed = filled(WORKSPACE_FLOATS, 5);
  // The L2 flushed before each launch, as the benchmark does: 2 x the H200's 60 MB.
  const long long flush_count = 30ll << 20;
  float* flush = filled(flush_count, 6);
  CHECK(
      cudaFuncSetAttribute(deconv_wsgemm, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES));
#if DT_XL == 2
  // Staged windows take a tensor map of x, encoded as the product's loader does from what the
  // module states (trial/benchmark.cpp).
  dt::TensorMap x_map;
  {
    const cuuint64_t extents[4] = {(cuuint64_t)W, (cuuint64_t)H, (cuuint64_t)CI, (cuuint64_t)N};
    const cuuint64_t strides[3] = {W * 4ull, W * H * 4ull, W * H * CI * 4ull};
    const cuuint32_t box[4] = {(cuuint32_t)SXC, (cuuint32_t)BOX_ROWS, (cuuint32_t)PIECE, 1};
    if (encode_tensor_map(&x_map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, x, extents, strides, box,
                          CU_TENSOR_MAP_SWIZZLE_NONE) != CUDA_SUCCESS) {
      std::printf("cuTensorMapEncodeTiled failed\n");
      return 1;
    }
  }
#endif
  auto launch = [&] {
#if DT_KC > 0
    deconv_wsgemm_pack<<<264, 256>>>(w, packed);
#endif
#if DT_XL == 2
    deconv_wsgemm<<<grid, THREADS, SMEM_BYTES>>>(x, w, bias, y, packed, x_map);
#else
    deconv_wsgemm<<<grid, THREADS, SMEM_BYTES>>>(x, w, bias, y, packed);
#endif
  };
  launch();
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  std::vector<float> times;
  for (int rep = 0; rep < 20; ++rep) {
    fill<<<1024, 256>>>(flush, flush_count, rep);
    CHECK(cudaEventRecord(start));
    launch();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  CHECK(cudaGetLastError());
  std::sort(times.begin(), times.end());
  std::printf("median %.4f ms  min %.4f ms\n", times[times.size() / 2], times.front());
  return 0;
}

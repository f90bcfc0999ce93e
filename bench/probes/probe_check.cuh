// The probes' one error check: a failed CUDA runtime call ends the probe, saying where.
#pragma once
#include <cuda.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define CHECK(call)                                                                            \
  do {                                                                                         \
    const cudaError_t status = (call);                                                         \
    if (status != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(status), __FILE__, __LINE__); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

// cuTensorMapEncodeTiled of a 4-D tensor (extents innermost first, strides in bytes of dimensions
// 1-3, unit element strides, L2 promotion 256 B, zero fill), through the runtime's entry point to
// the driver: the probes link no libcuda.
inline CUresult encode_tensor_map(void* map, CUtensorMapDataType type, void* base,
                                  const cuuint64_t (&extents)[4], const cuuint64_t (&strides)[3],
                                  const cuuint32_t (&box)[4], CUtensorMapSwizzle swizzle) {
  using Encode =
      CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  void* entry = nullptr;
  cudaDriverEntryPointQueryResult found;
  CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &entry, 12000, cudaEnableDefault,
                                         &found));
  const cuuint32_t unit[4] = {1, 1, 1, 1};
  return reinterpret_cast<Encode>(entry)(static_cast<CUtensorMap*>(map), type, 4, base, extents,
                                         strides, box, unit, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                                         CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                         CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
}

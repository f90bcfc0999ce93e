// Kernels that prepare and judge a trial: fill inputs with reproducible random numbers and compare
// a kernel's output with the float64 reference. They take sizes; of the problem constants only
// the data type (dt::elem), as they read and write the kernels' tensors.
#pragma once
#include "problem.cuh"

// splitmix64: a counter-based generator, so any element's value depends only on (seed, index).
__device__ __forceinline__ unsigned long long dt_mix(unsigned long long z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Values drawn in fp32 and rounded once to the data type: the inputs both kernel and reference
// read.
extern "C" __global__ void fill_uniform(dt::elem* __restrict__ out, unsigned long long count,
                                        unsigned long long seed, float lo, float hi) {
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < count;
       i += (unsigned long long)gridDim.x * blockDim.x) {
    const float unit = (float)(dt_mix(seed ^ dt_mix(i)) >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    out[i] = dt::from_f32(lo + (hi - lo) * unit);
  }
}

// Per block: the largest |out - ref| (+inf where exactly one of them is NaN or an infinity does
// not match) and its index, and in block_max[gridDim.x + block] the largest finite |ref|; the host
// reduces the blocks.
extern "C" __global__ void max_abs_error(const dt::elem* __restrict__ out,
                                         const double* __restrict__ ref, unsigned long long count,
                                         double* __restrict__ block_max,
                                         unsigned long long* __restrict__ block_argmax) {
  __shared__ double best[256];
  __shared__ unsigned long long where[256];
  __shared__ double magnitude[256];
  double my_best = 0.0, my_magnitude = 0.0;
  unsigned long long my_where = 0;
  for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x; i < count;
       i += (unsigned long long)gridDim.x * blockDim.x) {
    const double o = (double)dt::to_f32(out[i]);
    const double r = ref[i];
    double err;
    if (o != o || r != r) {
      err = (o != o && r != r) ? 0.0 : __longlong_as_double(0x7FF0000000000000ll);
    } else if (o == r) {
      err = 0.0;  // also equal infinities
    } else {
      err = fabs(o - r);  // an unmatched infinity gives +inf
    }
    if (r == r && fabs(r) > my_magnitude && fabs(r) < 1.0e300) my_magnitude = fabs(r);
    if (err > my_best) {
      my_best = err;
      my_where = i;
    }
  }
  best[threadIdx.x] = my_best;
  where[threadIdx.x] = my_where;
  magnitude[threadIdx.x] = my_magnitude;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride && best[threadIdx.x + stride] > best[threadIdx.x]) {
      best[threadIdx.x] = best[threadIdx.x + stride];
      where[threadIdx.x] = where[threadIdx.x + stride];
    }
    if (threadIdx.x < stride)
      magnitude[threadIdx.x] = fmax(magnitude[threadIdx.x], magnitude[threadIdx.x + stride]);
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    block_max[blockIdx.x] = best[0];
    block_argmax[blockIdx.x] = where[0];
    block_max[gridDim.x + blockIdx.x] = magnitude[0];
  }
}

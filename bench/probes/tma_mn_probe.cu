// Probe (not part of the product): can 16-bit wgmma read x straight from a TMA box of NCHW x?
// The box is taken from a tensor map whose dimensions are ordered (w, channel, h, n), so a box of
// (64 columns, KB channels, R rows) lands as R blocks of KB 128-byte rows (one row: 64 pixels of
// one channel), with the 128-byte swizzle: each 8 channels of a row block form one atom of the
// MN-major (transposed) B layout that bf16/fp16 wgmma reads. Checked, against a host sum:
// - boxes at every kind of start column (negative, odd, past the right edge), channels past C
//   (zeros), rows above the image (zeros);
// - the descriptor's K-group stride, in SBO or in LBO (which field the hardware reads);
// - an m64n64k16 wgmma per k16 step, B = row block r of the box, A = a K-major W image.
//
// nvcc -std=c++17 -O2 -gencode arch=compute_90a,code=sm_90a -o tma_mn_probe tma_mn_probe.cu
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../../templates/pipeline.cuh"
#include "../../templates/wgmma.cuh"
#include "probe_check.cuh"

// The probe's own wgmma forms (the product's templates have no 16-bit wgmma yet).
namespace dt {
// The 128-byte-swizzled layout of a 16-bit MN-major operand, as a TMA box with a 128-byte
// swizzle lands it: atoms of 8 K rows x 128 bytes (64 MN elements), 1024 bytes, 1024-aligned.
// LBO: the distance between atoms along MN (read only where N > 64), SBO: between the atoms of
// consecutive 8-row K groups. Layout type 1 (bits 62-63): 128-byte swizzle.
__device__ __forceinline__ unsigned long long wgmma_desc_mn_sw128(const void* start,
                                                                  unsigned lbo_bytes,
                                                                  unsigned sbo_bytes) {
  return wgmma_desc(static_cast<const float*>(start), lbo_bytes, sbo_bytes) | (1ull << 62);
}

// d (32 accumulators, in wgmma_ss_tf32's fragment order, templates/wgmma.cuh) = A (64 x 16,
// K-major, no swizzle, at a_desc) x B (16 x 64 at b_desc, MN-major: the transposed operand only
// 16-bit wgmma can read) + (accumulate ? d : 0), in fp32; BF16 chooses bfloat16 operands, else
// float16.
template <bool BF16>
__device__ __forceinline__ void wgmma_ss_16bit_n64_mn_b(float* d, unsigned long long a_desc,
                                                        unsigned long long b_desc,
                                                        bool accumulate) {
#define DT_WGMMA_16BIT(TYPE)                                                                       \
  asm volatile(                                                                                    \
      "{ .reg .pred p; setp.ne.b32 p, %34, 0;\n"                                                   \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE                                  \
      " "                                                                                          \
      "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%"   \
      "24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, p, 1, 1, 0, 1; }"                                \
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),        \
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),    \
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), \
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), \
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])                                         \
      : "l"(a_desc), "l"(b_desc), "r"((unsigned)accumulate))
  if constexpr (BF16) {
    DT_WGMMA_16BIT("bf16");
  } else {
    DT_WGMMA_16BIT("f16");
  }
#undef DT_WGMMA_16BIT
}
}  // namespace dt

constexpr int N = 2, C = 24, H = 6, W = 152;  // C: a box of 32 channels reaches past it
constexpr int KB = 32, ROWS = 3, PIX = 64, CO = 64;
constexpr int BOX_BYTES = PIX * KB * ROWS * 2;
constexpr int W_ELEMS = CO * KB;  // [plane of 8 channels][co][8]

template <bool BF16>
__global__ void __launch_bounds__(128, 1)
    probe(const __grid_constant__ dt::TensorMap map, const unsigned short* w_image, int w0, int c0,
          int h0, int n, int row, int k_in_lbo, float* out, unsigned short* raw) {
  __shared__ alignas(1024) unsigned short box[BOX_BYTES / 2];
  __shared__ alignas(128) unsigned short a[W_ELEMS];
  __shared__ unsigned long long landed;
  const int tid = threadIdx.x;
  for (int e = tid; e < W_ELEMS; e += 128) a[e] = w_image[e];
  if (tid == 0) {
    dt::mbarrier_init(&landed, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (tid == 0) {
    dt::mbarrier_expect_bytes(&landed, BOX_BYTES);
    dt::tensor_copy_to_shared(box, &map, w0, c0, h0, n, &landed);
    dt::mbarrier_arrive(&landed);
  }
  dt::mbarrier_wait(&landed, 0);
  for (int e = tid; e < BOX_BYTES / 2; e += 128) raw[e] = box[e];
  dt::fence_proxy_async();
  __syncthreads();
  float d[32];
  dt::wgmma_fence();
  for (int j = 0; j < KB / 16; ++j) {
    // A: planes 2j, 2j + 1 (LBO CO * 16 B), 8-row groups 128 B apart. B: row block `row`, atoms
    // 2j and 2j + 1, 1024 B apart.
    const unsigned long long a_desc =
        dt::wgmma_desc((const float*)(a + 2 * j * CO * 8), CO * 16, 128);
    const void* b_start = box + row * KB * PIX + 2 * j * 8 * PIX;
    const unsigned long long b_desc = k_in_lbo ? dt::wgmma_desc_mn_sw128(b_start, 1024, 16)
                                               : dt::wgmma_desc_mn_sw128(b_start, 16, 1024);
    dt::wgmma_ss_16bit_n64_mn_b<BF16>(d, a_desc, b_desc, j > 0);
  }
  dt::wgmma_commit();
  dt::wgmma_wait<0>();
  const int warp = tid / 32, g = tid % 32 / 4, t = tid % 4;
  for (int j = 0; j < 8; ++j)
    for (int q = 0; q < 4; ++q) {
      const int co = 16 * warp + g + 8 * (q / 2), p = 8 * j + 2 * t + q % 2;
      out[co * PIX + p] = d[4 * j + q];
    }
}

static float from16(unsigned short v, bool bf16) {
  if (bf16) {
    unsigned u = (unsigned)v << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  __half h;
  std::memcpy(&h, &v, 2);
  return __half2float(h);
}
static unsigned short to16(float f, bool bf16) {
  if (bf16) {
    __nv_bfloat16 b = __float2bfloat16(f);
    unsigned short v;
    std::memcpy(&v, &b, 2);
    return v;
  }
  __half h = __float2half(f);
  unsigned short v;
  std::memcpy(&v, &h, 2);
  return v;
}

int main(int argc, char** argv) {
  int failures = 0;
  for (int bf16 = 1; bf16 >= 0; --bf16) {
    std::vector<unsigned short> x(N * C * H * W), w(W_ELEMS);
    unsigned seed = 12345;
    auto random = [&] {
      seed = seed * 1664525u + 1013904223u;
      return (int)(seed >> 9) % 2001 / 1000.0f - 1.0f;
    };
    for (auto& v : x) v = to16(random(), bf16);
    for (auto& v : w) v = to16(random(), bf16);
    unsigned short *x_d, *w_d, *raw_d;
    float* out_d;
    CHECK(cudaMalloc(&x_d, x.size() * 2));
    CHECK(cudaMalloc(&w_d, w.size() * 2));
    CHECK(cudaMalloc(&raw_d, BOX_BYTES));
    CHECK(cudaMalloc(&out_d, CO * PIX * 4));
    CHECK(cudaMemcpy(x_d, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(w_d, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
    // Dimensions (w, channel, h, n): strides in bytes of channel, h, n.
    const cuuint64_t extents[4] = {W, C, H, N};
    const cuuint64_t strides[3] = {(cuuint64_t)H * W * 2, (cuuint64_t)W * 2,
                                   (cuuint64_t)C * H * W * 2};
    const cuuint32_t box[4] = {PIX, KB, ROWS, 1};
    dt::TensorMap map;
    const CUresult encoded = encode_tensor_map(&map, CU_TENSOR_MAP_DATA_TYPE_UINT16, x_d, extents,
                                               strides, box, CU_TENSOR_MAP_SWIZZLE_128B);
    std::printf("%s: encode (w, c, h, n) with a 128-byte swizzle: %d\n", bf16 ? "bf16" : "fp16",
                (int)encoded);
    if (encoded != CUDA_SUCCESS) return 1;
    // Start columns from the command line (a faulting one ends the process): default all kinds.
    std::vector<int> starts = {0, 1, 7, 8, 63, 100, 120, 151, -8, -1};
    if (argc > 1) starts.assign(1, std::atoi(argv[1]));
    for (int w0 : starts)
      for (int c0 : {0, 8})
        for (int row = 0; row < ROWS; ++row)
          for (int k_in_lbo = 0; k_in_lbo < 2; ++k_in_lbo) {
            const int h0 = -1, n = 1;
            if (bf16)
              probe<true><<<1, 128>>>(map, w_d, w0, c0, h0, n, row, k_in_lbo, out_d, raw_d);
            else
              probe<false><<<1, 128>>>(map, w_d, w0, c0, h0, n, row, k_in_lbo, out_d, raw_d);
            const cudaError_t status = cudaDeviceSynchronize();
            if (status != cudaSuccess) {
              std::printf("w0 %d c0 %d row %d: %s\n", w0, c0, row, cudaGetErrorString(status));
              return 1;
            }
            std::vector<float> out(CO * PIX);
            std::vector<unsigned short> raw(BOX_BYTES / 2);
            CHECK(cudaMemcpy(out.data(), out_d, out.size() * 4, cudaMemcpyDeviceToHost));
            CHECK(cudaMemcpy(raw.data(), raw_d, BOX_BYTES, cudaMemcpyDeviceToHost));
            auto x_at = [&](int c, int h, int iw) {
              if (c >= C || h < 0 || h >= H || iw < 0 || iw >= W) return 0.0f;
              return from16(x[((n * C + c) * H + h) * W + iw], bf16);
            };
            // The raw box: row block r, channel k, pixel p at 16-byte chunk (p / 8) ^ (k % 8).
            int raw_bad = 0;
            for (int r = 0; r < ROWS; ++r)
              for (int k = 0; k < KB; ++k)
                for (int p = 0; p < PIX; ++p) {
                  const int at = (r * KB + k) * PIX + ((p / 8) ^ (k % 8)) * 8 + p % 8;
                  raw_bad += from16(raw[at], bf16) != x_at(c0 + k, h0 + r, w0 + p);
                }
            double worst = 0;
            for (int co = 0; co < CO; ++co)
              for (int p = 0; p < PIX; ++p) {
                double sum = 0;
                for (int k = 0; k < KB; ++k)
                  sum += (double)from16(w[(k / 8 * CO + co) * 8 + k % 8], bf16) *
                         x_at(c0 + k, h0 + row, w0 + p);
                worst = std::fmax(worst, std::fabs(sum - out[co * PIX + p]));
              }
            const bool good = raw_bad == 0 && worst < 1e-3;
            failures += !good;
            if (!good || (row == 1 && c0 == 8))
              std::printf(
                  "%s w0 %4d c0 %d row %d k-stride in %s: box %s (%d wrong), wgmma max|err| "
                  "%.2e %s\n",
                  bf16 ? "bf16" : "fp16", w0, c0, row, k_in_lbo ? "LBO" : "SBO",
                  raw_bad ? "WRONG" : "ok", raw_bad, worst, good ? "ok" : "WRONG");
          }
  }
  std::printf("%s\n", failures ? "SOME CASES WRONG" : "all cases right");
  return 0;
}

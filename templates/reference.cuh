// The float64 GPU reference and the verification helpers. The reference is deliberately the
// simplest correct formulation (scatter-free gather, one thread per output element, every tap and
// input channel tested, double everywhere) so that it shares no cleverness with the kernels it
// judges. It reads the kernels' own inputs, in their data type (so both compute from the same
// rounded values), and writes y's reference in y's layout, so the compare goes element by element.
#pragma once
#include "epilogue.cuh"
#include "problem.cuh"

extern "C" __global__ void reference_f64(const dt::elem* __restrict__ x,
                                         const dt::elem* __restrict__ w,
                                         const dt::elem* __restrict__ bias,
                                         double* __restrict__ y) {
  using namespace dt;
  const i64 total = (i64)N * CO * OH * OW;
  for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total;
       i += (i64)gridDim.x * blockDim.x) {
    const int ow = (int)(i % OW);
    const int oh = (int)((i / OW) % OH);
    const int co = (int)((i / ((i64)OW * OH)) % CO);
    const i64 n = i / ((i64)OW * OH * CO);
    const int group = co / CO_PER_GROUP;
    double acc = HAS_BIAS ? (double)to_f32(bias[co]) : 0.0;
    // The defining relation of a transposed convolution: input (ih, iw) reaches output
    // (ih * SH - PH + kh * DH, iw * SW - PW + kw * DW). For each tap take the only input row that
    // can satisfy it and test the relation itself rather than reasoning about remainders.
    for (int kh = 0; kh < KH; ++kh) {
      const int ih = (oh + PH - kh * DH + SH * H) / SH - H;  // floor division, any sign
      if (ih < 0 || ih >= H || ih * SH - PH + kh * DH != oh) continue;
      for (int kw = 0; kw < KW; ++kw) {
        const int iw = (ow + PW - kw * DW + SW * W) / SW - W;
        if (iw < 0 || iw >= W || iw * SW - PW + kw * DW != ow) continue;
        for (int ci = group * CI_PER_GROUP; ci < (group + 1) * CI_PER_GROUP; ++ci)
          acc += (double)to_f32(x[x_index(n, ci, ih, iw)]) *
                 (double)to_f32(w[w_index(ci, co - group * CO_PER_GROUP, kh, kw)]);
      }
    }
    double v = acc;
    DT_EPILOGUE_F64(v)
    y[y_index(n, co, oh, ow)] = v;
  }
}

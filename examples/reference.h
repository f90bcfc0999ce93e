/* A float64 CPU reference of the examples' problem (ConvTranspose2d with bias, then the seed
 * epilogue mish, +0.5, hardtanh(-1, 1), *2), shared by the C and the C++ example. */
#ifndef DECONVTUNE_EXAMPLE_REFERENCE_H
#define DECONVTUNE_EXAMPLE_REFERENCE_H

#include <math.h>
#include <stddef.h>

enum { N = 2, CI = 8, CO = 8, H = 8, W = 8, K = 3, S = 2, P = 1, OP = 1 };
enum { OH = (H - 1) * S - 2 * P + K + OP, OW = (W - 1) * S - 2 * P + K + OP };

static const char* const kProblemJson =
    "{\"batch\": 2, \"in_channels\": 8, \"out_channels\": 8, \"height\": 8, \"width\": 8, "
    "\"kernel_size\": 3, \"stride\": 2, \"padding\": 1, \"output_padding\": 1, \"bias\": true, "
    "\"epilogue\": \"mish,add:0.5,hardtanh:-1:1,mul:2\"}";

/* Deterministic inputs in [-1, 1). */
static void example_fill(float* values, size_t count, unsigned seed) {
  for (size_t i = 0; i < count; ++i) {
    seed = seed * 1664525u + 1013904223u;
    values[i] = (float)((seed >> 8) / 8388608.0 - 1.0);
  }
}

static double example_epilogue(double v) {
  double mish = v * tanh(log1p(exp(v)));
  double t = mish + 0.5;
  t = t < -1 ? -1 : (t > 1 ? 1 : t);
  return 2 * t;
}

/* y[n][co][oh][ow] in float64; w is [CI][CO][K][K] as PyTorch stores it. */
static void example_reference(const float* x, const float* w, const float* bias, double* y) {
  for (size_t i = 0; i < (size_t)N * CO * OH * OW; ++i) y[i] = bias[(i / (OH * OW)) % CO];
  for (int n = 0; n < N; ++n)
    for (int ci = 0; ci < CI; ++ci)
      for (int ih = 0; ih < H; ++ih)
        for (int iw = 0; iw < W; ++iw)
          for (int co = 0; co < CO; ++co)
            for (int kh = 0; kh < K; ++kh)
              for (int kw = 0; kw < K; ++kw) {
                int oh = ih * S - P + kh, ow = iw * S - P + kw;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                y[((n * CO + co) * OH + oh) * OW + ow] +=
                    (double)x[((n * CI + ci) * H + ih) * W + iw] *
                    w[((ci * CO + co) * K + kh) * K + kw];
              }
  for (size_t i = 0; i < (size_t)N * CO * OH * OW; ++i) y[i] = example_epilogue(y[i]);
}

#endif

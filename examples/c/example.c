/* deconvtune from C: plan a small ConvTranspose2d + Mish/add/Hardtanh/scale block, run it on
 * cudaMalloc'ed buffers and compare with a float64 CPU reference. Without a GPU it says so and
 * exits 0 (nothing to run).
 *
 *   cc example.c $(pkg-config --cflags --libs deconvtune) -I$CUDA/include -L$CUDA/lib64 \
 *      -lcudart_static -lpthread -ldl -lrt -lm -o example */
#include <cuda_runtime_api.h>
#include <deconvtune/deconvtune.h>
#include <stdio.h>
#include <stdlib.h>

#include "../reference.h"

#define CUDA_OK(call)                                                               \
  do {                                                                              \
    cudaError_t e_ = (call);                                                        \
    if (e_ != cudaSuccess) {                                                        \
      fprintf(stderr, "%s failed: %s\n", #call, cudaGetErrorString(e_));            \
      return 1;                                                                     \
    }                                                                               \
  } while (0)

int main(void) {
  printf("deconvtune %s (C example)\n", deconvtune_version());
  deconvtune_engine* engine = NULL;
  deconvtune_plan* plan = NULL;
  /* NULL: the DB at $DECONVTUNE_DB or ~/.cache/deconvtune/tuning.db. */
  if (deconvtune_engine_create(NULL, DECONVTUNE_ON_MISS_HEURISTIC, DECONVTUNE_PRECISION_FP32, 0,
                               &engine) != DECONVTUNE_OK) {
    fprintf(stderr, "engine: %s\n", deconvtune_last_error());
    return 1;
  }
  deconvtune_status status = deconvtune_engine_plan(engine, kProblemJson, &plan);
  if (status == DECONVTUNE_ERROR_NO_GPU) {
    printf("no GPU: %s\n", deconvtune_last_error());
    deconvtune_engine_destroy(engine);
    return 0;
  }
  if (status != DECONVTUNE_OK) {
    fprintf(stderr, "plan: %s: %s\n", deconvtune_status_name(status), deconvtune_last_error());
    return 1;
  }
  printf("plan: %s (%s)\n", deconvtune_plan_config(plan), deconvtune_plan_source(plan));

  static float x[N * CI * H * W], w[CI * CO * K * K], bias[CO], y[N * CO * OH * OW];
  static double expected[N * CO * OH * OW];
  example_fill(x, sizeof x / sizeof *x, 1);
  example_fill(w, sizeof w / sizeof *w, 2);
  example_fill(bias, CO, 3);
  example_reference(x, w, bias, expected);

  void *dx, *dw, *dbias, *dy;
  CUDA_OK(cudaMalloc(&dx, sizeof x));
  CUDA_OK(cudaMalloc(&dw, sizeof w));
  CUDA_OK(cudaMalloc(&dbias, sizeof bias));
  CUDA_OK(cudaMalloc(&dy, sizeof y));
  CUDA_OK(cudaMemcpy(dx, x, sizeof x, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(dw, w, sizeof w, cudaMemcpyHostToDevice));
  CUDA_OK(cudaMemcpy(dbias, bias, sizeof bias, cudaMemcpyHostToDevice));
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreate(&stream));
  status = deconvtune_plan_run(plan, dx, dw, dbias, dy, stream);
  if (status != DECONVTUNE_OK) {
    fprintf(stderr, "run: %s\n", deconvtune_last_error());
    return 1;
  }
  CUDA_OK(cudaStreamSynchronize(stream));
  CUDA_OK(cudaMemcpy(y, dy, sizeof y, cudaMemcpyDeviceToHost));
  double max_err = 0;
  for (size_t i = 0; i < sizeof y / sizeof *y; ++i) {
    double err = fabs(y[i] - expected[i]);
    if (!(err <= max_err)) max_err = err; /* NaN counts as the worst */
  }
  printf("max |err| vs float64: %.3g\n", max_err);
  cudaFree(dx), cudaFree(dw), cudaFree(dbias), cudaFree(dy);
  cudaStreamDestroy(stream);
  deconvtune_plan_destroy(plan);
  deconvtune_engine_destroy(engine);
  if (!(max_err <= 1e-5)) {
    fprintf(stderr, "FAILED: the output differs from the reference\n");
    return 1;
  }
  printf("ok\n");
  return 0;
}

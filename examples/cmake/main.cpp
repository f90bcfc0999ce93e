// deconvtune from C++ through find_package(deconvtune): the same block as the C example, in tf32
// precision, with the plan cache shown. Without a GPU it says so and exits 0.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <deconvtune/deconvtune.hpp>
#include <vector>

#include "../reference.h"

namespace {

template <typename T>
struct DeviceArray {
  explicit DeviceArray(const std::vector<T>& host) : bytes(host.size() * sizeof(T)) {
    if (cudaMalloc(&pointer, bytes) != cudaSuccess ||
        cudaMemcpy(pointer, host.data(), bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
      throw std::runtime_error("cudaMalloc/cudaMemcpy failed");
    }
  }
  ~DeviceArray() { cudaFree(pointer); }
  void* pointer = nullptr;
  size_t bytes;
};

}  // namespace

int main() {
  std::printf("deconvtune %s (C++ example)\n", std::string(deconvtune::version()).c_str());
  try {
    deconvtune::EngineOptions options;  // the DB at $DECONVTUNE_DB or ~/.cache/deconvtune
    options.precision = deconvtune::PrecisionMode::kTf32;
    deconvtune::Engine engine(options);
    deconvtune::Plan plan = engine.plan_json(kProblemJson);
    engine.plan_json(kProblemJson);  // from the cache
    std::printf("plan: %s (%s), %zu cached\n", plan.config_name().c_str(), plan.source().c_str(),
                engine.cached_plans());

    std::vector<float> x(N * CI * H * W), w(CI * CO * K * K), bias(CO), y(N * CO * OH * OW);
    std::vector<double> expected(y.size());
    example_fill(x.data(), x.size(), 1);
    example_fill(w.data(), w.size(), 2);
    example_fill(bias.data(), bias.size(), 3);
    example_reference(x.data(), w.data(), bias.data(), expected.data());
    DeviceArray<float> dx(x), dw(w), dbias(bias), dy(y);
    plan.run(dx.pointer, dw.pointer, dbias.pointer, dy.pointer, nullptr);
    if (cudaMemcpy(y.data(), dy.pointer, dy.bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
      std::fprintf(stderr, "cudaMemcpy failed\n");
      return 1;
    }
    double max_err = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      const double err = std::fabs(y[i] - expected[i]);
      if (!(err <= max_err)) max_err = err;  // NaN counts as the worst
    }
    std::printf("max |err| vs float64: %.3g\n", max_err);
    if (!(max_err <= 5e-3)) {  // tf32: 10-bit mantissa inputs, fp32 accumulation
      std::fprintf(stderr, "FAILED: the output differs from the reference\n");
      return 1;
    }
  } catch (const deconvtune::Error& e) {
    if (e.status() == deconvtune::Status::kNoGpu) {
      std::printf("no GPU: %s\n", e.what());
      return 0;
    }
    std::fprintf(stderr, "deconvtune: %s\n", e.what());
    return 1;
  }
  std::printf("ok\n");
  return 0;
}

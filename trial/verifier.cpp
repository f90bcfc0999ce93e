#include "trial/verifier.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "codegen/generator.hpp"
#include "gpu/nvrtc_compiler.hpp"

namespace deconvtune {
namespace {

constexpr unsigned kCompareBlocks = 1024;
constexpr unsigned kCompareThreads = 256;  // matches the shared arrays in verify.cuh

unsigned grid_for(int64_t items, unsigned threads) {
  return static_cast<unsigned>(std::clamp<int64_t>((items + threads - 1) / threads, 1, 65536));
}

}  // namespace

struct Verifier::Kernels {
  Module module;
  CUfunction reference;
  CUfunction fill;
  CUfunction compare;
};

std::string Verification::summary() const {
  return fmt::format("max |err| {:.3e} (bound {:.1e}, max |ref| {:.3g}){}{}", max_abs_error, bound,
                     max_abs_reference, guard_intact ? "" : ", WROTE PAST THE END OF y",
                     passed() ? "" : fmt::format(", worst at flat index {}", worst_index));
}

size_t verification_bytes(const Problem& problem) {
  const size_t y = static_cast<size_t>(problem.y_elements());
  return 4 * (static_cast<size_t>(problem.x_elements() + problem.w_elements()) +
              problem.out_channels + y + Verifier::kGuardElements) +
         8 * y;
}

Verifier::Verifier(const Context& context, const Problem& problem)
    : context_(context), problem_(problem) {
  const size_t needed = verification_bytes(problem);
  const size_t free_bytes = context.free_memory();
  if (needed + (size_t{256} << 20) > free_bytes) {
    throw std::runtime_error(fmt::format(
        "problem {} needs {:.2f} GiB on the GPU to run and verify (inputs, output, float64 "
        "reference); {} has {:.2f} GiB free",
        problem.key(), needed / 1073741824.0, context.info().name, free_bytes / 1073741824.0));
  }
  CompileOptions options;
  options.arch = context.info().arch();
  options.program_name = "deconvtune_reference.cu";
  CompileResult compiled = compile_cuda(generate_reference_source(problem), options);
  if (!compiled.ok) {
    throw std::runtime_error("the float64 reference did not compile:\n" + compiled.log);
  }
  Module module(compiled.cubin);
  CUfunction reference = module.function("reference_f64");
  CUfunction fill = module.function("fill_uniform");
  CUfunction compare = module.function("max_abs_error");
  kernels_.reset(new Kernels{std::move(module), reference, fill, compare});

  x_ = DeviceBuffer(4 * problem.x_elements());
  w_ = DeviceBuffer(4 * problem.w_elements());
  bias_ = DeviceBuffer(4 * problem.out_channels);
  y_ = DeviceBuffer(4 * (problem.y_elements() + kGuardElements));
  reference_ = DeviceBuffer(8 * problem.y_elements());
  block_max_ = DeviceBuffer(8 * 2 * kCompareBlocks);
  block_argmax_ = DeviceBuffer(8 * kCompareBlocks);
}

Verifier::~Verifier() = default;

void Verifier::randomize_inputs(uint64_t seed) {
  auto fill = [&](DeviceBuffer& buffer, uint64_t stream, float lo, float hi) {
    unsigned long long count = buffer.bytes() / 4;
    unsigned long long stream_seed = seed * 0x100000001B3ull + stream;
    CUdeviceptr out = buffer.get();
    void* args[] = {&out, &count, &stream_seed, &lo, &hi};
    LaunchGeometry geometry;
    geometry.grid[0] = grid_for(static_cast<int64_t>(count), 256);
    geometry.block[0] = 256;
    launch(kernels_->fill, geometry, args);
  };
  // PyTorch's ConvTranspose2d init: bound 1/sqrt(fan_in), fan_in = weight.size(1) * kH * kW.
  const double fan_in = static_cast<double>(problem_.out_channels / problem_.groups *
                                            problem_.kernel.h * problem_.kernel.w);
  const float bound = static_cast<float>(1.0 / std::sqrt(fan_in));
  fill(x_, 1, 0.0f, 1.0f);
  fill(w_, 2, -bound, bound);
  fill(bias_, 3, -bound, bound);
  run_reference();
}

void Verifier::set_inputs(const std::vector<float>& x, const std::vector<float>& w,
                          const std::vector<float>& bias) {
  auto expect = [](size_t got, int64_t want, const char* what) {
    if (got != static_cast<size_t>(want)) {
      throw std::invalid_argument(
          fmt::format("{} has {} elements, the problem needs {}", what, got, want));
    }
  };
  expect(x.size(), problem_.x_elements(), "x");
  expect(w.size(), problem_.w_elements(), "weight");
  expect(bias.size(), problem_.bias ? problem_.out_channels : 0, "bias");
  x_.upload(x.data(), 4 * x.size());
  w_.upload(w.data(), 4 * w.size());
  bias_.fill_words(0);
  bias_.upload(bias.data(), 4 * bias.size());
  run_reference();
}

void Verifier::run_reference() {
  reference_.fill_words(0x7FF80000u);  // NaN halves: a missed element cannot pass
  CUdeviceptr x = x_.get(), w = w_.get(), b = bias_.get(), ref = reference_.get();
  void* args[] = {&x, &w, &b, &ref};
  LaunchGeometry geometry;
  geometry.grid[0] = grid_for(problem_.y_elements(), 256) * 16;
  geometry.block[0] = 256;
  launch(kernels_->reference, geometry, args);
  context_.synchronize();
}

void Verifier::poison_output() { y_.fill_words(kPoisonWord); }

Verification Verifier::check_output() const {
  Verification result;
  result.bound = error_bound(problem_);
  unsigned long long count = static_cast<unsigned long long>(problem_.y_elements());
  CUdeviceptr y = y_.get(), ref = reference_.get(), block_max = block_max_.get(),
              block_argmax = block_argmax_.get();
  void* args[] = {&y, &ref, &count, &block_max, &block_argmax};
  LaunchGeometry geometry;
  geometry.grid[0] = kCompareBlocks;
  geometry.block[0] = kCompareThreads;
  launch(kernels_->compare, geometry, args);
  std::vector<double> maxima(2 * kCompareBlocks);
  std::vector<unsigned long long> where(kCompareBlocks);
  block_max_.download(maxima.data(), 8 * maxima.size());
  block_argmax_.download(where.data(), 8 * where.size());
  for (unsigned i = 0; i < kCompareBlocks; ++i) {
    if (maxima[i] > result.max_abs_error || std::isnan(maxima[i])) {
      result.max_abs_error = maxima[i];
      result.worst_index = static_cast<int64_t>(where[i]);
    }
    result.max_abs_reference = std::max(result.max_abs_reference, maxima[kCompareBlocks + i]);
  }
  // Errors scale with the values themselves once they exceed the seed's range.
  result.bound *= std::max(1.0, result.max_abs_reference / kSeedOutputMagnitude);
  std::vector<unsigned> guard(kGuardElements);
  y_.download(guard.data(), 4 * kGuardElements, 4 * problem_.y_elements());
  result.guard_intact =
      std::all_of(guard.begin(), guard.end(), [](unsigned word) { return word == kPoisonWord; });
  return result;
}

std::vector<float> Verifier::download_output() const {
  std::vector<float> y(problem_.y_elements());
  y_.download(y.data(), 4 * y.size());
  return y;
}

std::vector<double> Verifier::download_reference() const {
  return reference_.download_all<double>();
}

}  // namespace deconvtune

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

namespace {

// y's buffer: y rounded up to whole words, which poison_output() fills (an odd count of 16-bit
// elements ends mid-word), then the guard band from y's last byte on.
size_t y_buffer_bytes(const Problem& problem) {
  return (static_cast<size_t>(problem.element_bytes() * problem.y_elements()) + 3) / 4 * 4 +
         4 * Verifier::kGuardElements;
}

}  // namespace

size_t verification_bytes(const Problem& problem) {
  const size_t inputs = static_cast<size_t>(problem.x_elements() + problem.w_elements()) +
                        static_cast<size_t>(problem.out_channels);
  return static_cast<size_t>(problem.element_bytes()) * inputs + y_buffer_bytes(problem) +
         8 * static_cast<size_t>(problem.y_elements());
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

  const int64_t element = problem.element_bytes();
  x_ = DeviceBuffer(element * problem.x_elements());
  w_ = DeviceBuffer(element * problem.w_elements());
  bias_ = DeviceBuffer(element * problem.out_channels);
  y_ = DeviceBuffer(y_buffer_bytes(problem));
  reference_ = DeviceBuffer(8 * problem.y_elements());
  block_max_ = DeviceBuffer(8 * 2 * kCompareBlocks);
  block_argmax_ = DeviceBuffer(8 * kCompareBlocks);
}

Verifier::~Verifier() = default;

void Verifier::randomize_inputs(uint64_t seed) {
  auto fill = [&](DeviceBuffer& buffer, uint64_t stream, float lo, float hi) {
    unsigned long long count = buffer.bytes() / static_cast<size_t>(problem_.element_bytes());
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
  // In the problem's data type: fp32 as given, 16-bit rounded to nearest even, as torch's .to().
  auto upload = [&](DeviceBuffer& buffer, const std::vector<float>& values) {
    if (problem_.dtype == DType::kFloat32) {
      buffer.upload(values.data(), 4 * values.size());
      return;
    }
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = to_bits(problem_.dtype, values[i]);
    buffer.upload(bits.data(), 2 * bits.size());
  };
  upload(x_, x);
  upload(w_, w);
  bias_.fill_words(0);
  upload(bias_, bias);
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

void Verifier::poison_output() { y_.fill_words(poison_word(problem_.dtype)); }

Verification Verifier::check_output() const {
  Verification result;
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
  result.bound = verification_bound(problem_, result.max_abs_reference);
  std::vector<unsigned> guard(kGuardElements);
  y_.download(guard.data(), 4 * kGuardElements, problem_.element_bytes() * problem_.y_elements());
  const unsigned poison = poison_word(problem_.dtype);
  result.guard_intact =
      std::all_of(guard.begin(), guard.end(), [&](unsigned word) { return word == poison; });
  return result;
}

std::vector<float> Verifier::download_output() const {
  std::vector<float> y(problem_.y_elements());
  if (problem_.dtype == DType::kFloat32) {
    y_.download(y.data(), 4 * y.size());
    return y;
  }
  std::vector<uint16_t> bits(y.size());
  y_.download(bits.data(), 2 * bits.size());
  for (size_t i = 0; i < y.size(); ++i) y[i] = from_bits(problem_.dtype, bits[i]);
  return y;
}

std::vector<double> Verifier::download_reference() const {
  return reference_.download_all<double>();
}

}  // namespace deconvtune

#include "trial/benchmark.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace deconvtune {

LoadedKernel::LoadedKernel(const GeneratedKernel& kernel, const std::vector<char>& cubin)
    : module_(cubin), function_(module_.function(kernel.kernel_name)), geometry_(kernel.launch) {
  // A kernel that states its shared-memory need must agree with the host's launch geometry.
  const int expected =
      module_.int_global("dt_shared_bytes", static_cast<int>(geometry_.shared_bytes));
  if (expected != static_cast<int>(geometry_.shared_bytes)) {
    throw std::logic_error(
        fmt::format("{}: the kernel expects {} B of shared memory, the launch "
                    "gives {} B",
                    kernel.config_name, expected, geometry_.shared_bytes));
  }
  if (geometry_.shared_bytes > 48 * 1024) {
    DT_CU(cuFuncSetAttribute(function_, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                             static_cast<int>(geometry_.shared_bytes)));
  }
  const int workspace_bytes = module_.int_global("dt_workspace_bytes", 0);
  if (workspace_bytes < 0 || workspace_bytes % 16 != 0) {
    throw std::logic_error(fmt::format("{}: the kernel states a workspace of {} B",
                                       kernel.config_name, workspace_bytes));
  }
  if (workspace_bytes > 0) {
    pack_ = module_.function(kernel.kernel_name + "_pack");
    workspace_ = DeviceBuffer(static_cast<size_t>(workspace_bytes));
    workspace_released_ = std::make_unique<Event>();
    constexpr unsigned kPackThreads = 256;  // grid-stride: any grid covers the image
    pack_geometry_.block[0] = kPackThreads;
    pack_geometry_.grid[0] = std::min<unsigned>(
        (static_cast<unsigned>(workspace_bytes) / 4 + kPackThreads - 1) / kPackThreads, 4096);
  }
  const std::vector<int> x_box = module_.int_array_global("dt_x_tensor_map", 9);
  if (!x_box.empty()) {
    const bool sane = (x_box[0] == 2 || x_box[0] == 4) &&
                      std::all_of(x_box.begin() + 1, x_box.end(), [](int v) { return v > 0; }) &&
                      std::all_of(x_box.begin() + 5, x_box.end(), [](int v) { return v <= 256; });
    if (!sane) {
      throw std::logic_error(
          fmt::format("{}: the kernel states an unusable tensor map of x", kernel.config_name));
    }
    TensorBox box;
    box.element_bytes = x_box[0];
    for (int d = 0; d < 4; ++d) {
      box.extents[d] = static_cast<cuuint64_t>(x_box[1 + d]);
      box.box[d] = static_cast<cuuint32_t>(x_box[5 + d]);
    }
    x_box_ = box;
  }
}

CUtensorMap LoadedKernel::x_map(CUdeviceptr x) const {
  const TensorBox& b = *x_box_;
  // Dense x (the extents come innermost first, as x lies in memory: NCHW or NHWC): each
  // dimension's stride in bytes is the product of the extents inside it.
  const cuuint64_t row = b.extents[0] * static_cast<cuuint64_t>(b.element_bytes);
  const cuuint64_t strides[3] = {row, row * b.extents[1], row * b.extents[1] * b.extents[2]};
  const cuuint32_t element_strides[4] = {1, 1, 1, 1};
  CUtensorMap map;
  // The staging ring holds x's own bits (16-bit x is widened from there): a bit copy serves.
  DT_CU(cuTensorMapEncodeTiled(
      &map, b.element_bytes == 2 ? CU_TENSOR_MAP_DATA_TYPE_UINT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
      4, reinterpret_cast<void*>(x), b.extents, strides, b.box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  return map;
}

void LoadedKernel::launch(CUdeviceptr x, CUdeviceptr w, CUdeviceptr bias, CUdeviceptr y,
                          CUstream stream) const {
  CUdeviceptr workspace = workspace_.get();
  // Kernels without a workspace have four parameters, without a tensor map five: the driver
  // reads only those (and copies them at the launch).
  void* args[] = {&x, &w, &bias, &y, &workspace, &mapped_.map};
  if (pack_ == nullptr && !x_box_) {
    deconvtune::launch(function_, geometry_, args, stream);
    return;
  }
  std::lock_guard<std::mutex> turn(launch_turn_);
  // Encoded again only for another x: a caller's launches mostly repeat their buffers.
  if (x_box_ && mapped_.x != x) {
    mapped_.map = x_map(x);
    mapped_.x = x;
  }
  if (pack_ == nullptr) {
    deconvtune::launch(function_, geometry_, args, stream);
    return;
  }
  DT_CU(cuStreamWaitEvent(stream, workspace_released_->get(), 0));
  void* pack_args[] = {&w, &workspace};
  deconvtune::launch(pack_, pack_geometry_, pack_args, stream);
  deconvtune::launch(function_, geometry_, args, stream);
  workspace_released_->record(stream);
}

Timing time_launches(const std::function<void()>& run, const Context& context,
                     const TrialOptions& options) {
  DeviceBuffer flush(options.flush_l2 ? 2 * static_cast<size_t>(context.info().l2_bytes) : 0);
  for (int i = 0; i < options.warmup_runs; ++i) run();
  context.synchronize();
  std::vector<double> samples;
  Event start, stop;
  for (int i = 0; i < options.timed_runs; ++i) {
    if (options.flush_l2)
      DT_CU(cuMemsetD8Async(flush.get(), static_cast<unsigned char>(i), flush.bytes(), nullptr));
    start.record();
    run();
    stop.record();
    samples.push_back(stop.milliseconds_since(start));
  }
  std::sort(samples.begin(), samples.end());
  Timing timing;
  timing.runs = static_cast<int>(samples.size());
  if (!samples.empty()) {
    const size_t mid = samples.size() / 2;
    timing.median_ms = samples.size() % 2 ? samples[mid] : 0.5 * (samples[mid - 1] + samples[mid]);
    timing.min_ms = samples.front();
    timing.max_ms = samples.back();
  }
  return timing;
}

double measure_copy_gbps(const Context& context) {
  const size_t bytes =
      std::max<size_t>(size_t{256} << 20, 8 * static_cast<size_t>(context.info().l2_bytes));
  DeviceBuffer source(bytes), target(bytes);
  TrialOptions options;
  options.warmup_runs = 2;
  options.timed_runs = 10;
  options.flush_l2 = false;  // the copy is eight times the L2: it flushes it itself
  const Timing timing =
      time_launches([&] { DT_CU(cuMemcpyDtoDAsync(target.get(), source.get(), bytes, nullptr)); },
                    context, options);
  return 2.0 * static_cast<double>(bytes) / (timing.median_ms * 1e6);
}

TrialMeasurement measurement_of(const TrialResult& result) {
  TrialMeasurement measurement;
  measurement.config_name = result.config_name;
  measurement.status = result.disposition;
  measurement.reason = result.reason;
  measurement.median_ms = result.timing.median_ms;
  measurement.min_ms = result.timing.min_ms;
  measurement.max_ms = result.timing.max_ms;
  measurement.max_error = result.verification.max_abs_error;
  return measurement;
}

TrialResult run_trial(const Context& context, Verifier& verifier, const Config& config,
                      const TrialOptions& options, const CompileResult* precompiled) {
  TrialResult result;
  result.config_name = config.name();
  GeneratedKernel kernel;
  try {
    kernel = generate_kernel(verifier.problem(), config, context.info().limits());
  } catch (const std::exception& e) {
    result.disposition = Disposition::kCompileFailed;
    result.reason = e.what();
    return result;
  }
  CompileOptions compile_options;
  compile_options.arch = context.info().arch();
  result.compile = precompiled ? *precompiled : compile_cuda(kernel.source, compile_options);
  if (!result.compile.ok) {
    result.disposition = Disposition::kCompileFailed;
    result.reason = result.compile.log;
    return result;
  }
  try {
    LoadedKernel loaded(kernel, result.compile.cubin);
    auto run = [&] { loaded.launch(verifier.x(), verifier.w(), verifier.bias(), verifier.y()); };
    verifier.poison_output();
    run();
    context.synchronize();
    result.verification = verifier.check_output();
    if (!result.verification.passed()) {
      result.disposition = Disposition::kWrong;
      result.reason = result.verification.summary();
      return result;
    }
    if (options.time_it) result.timing = time_launches(run, context, options);
  } catch (const CudaError& e) {
    result.disposition = e.context_lost() ? Disposition::kFaulted : Disposition::kLaunchFailed;
    result.reason = e.what();
  } catch (const std::logic_error& e) {
    result.disposition = Disposition::kLaunchFailed;
    result.reason = e.what();
  }
  return result;
}

std::vector<CompileResult> compile_configs(const Problem& problem,
                                           const std::vector<Config>& configs,
                                           const std::string& arch, const DeviceLimits& limits) {
  std::vector<std::string> sources;
  for (const Config& config : configs)
    sources.push_back(generate_kernel(problem, config, limits).source);
  CompileOptions options;
  options.arch = arch;
  return compile_cuda_parallel(sources, options);
}

}  // namespace deconvtune

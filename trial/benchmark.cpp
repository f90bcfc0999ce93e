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
}

void LoadedKernel::launch(CUdeviceptr x, CUdeviceptr w, CUdeviceptr bias, CUdeviceptr y,
                          CUstream stream) const {
  CUdeviceptr workspace = workspace_.get();
  // Kernels without a workspace have four parameters: the driver reads only those.
  void* args[] = {&x, &w, &bias, &y, &workspace};
  if (pack_ == nullptr) {
    deconvtune::launch(function_, geometry_, args, stream);
    return;
  }
  std::lock_guard<std::mutex> turn(workspace_turn_);
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

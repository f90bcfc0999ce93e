#pragma once
// The benchmark stage: compile a config, load it, verify it against the float64 reference, and
// only then time it. One Disposition says how each trial ended, with the reason in words.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "codegen/config.hpp"
#include "codegen/generator.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/driver_api.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "trial/disposition.hpp"
#include "trial/measurement.hpp"
#include "trial/verifier.hpp"

namespace deconvtune {

struct Timing {
  double median_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  int runs = 0;
};

struct TrialOptions {
  int warmup_runs = 3;
  int timed_runs = 20;
  bool flush_l2 = true;  // overwrite a buffer twice the L2's size before each timed run
  bool time_it = true;   // false: verify only
};

struct TrialResult {
  std::string config_name;
  Disposition disposition = Disposition::kOk;
  std::string reason;
  CompileResult compile;
  Verification verification;
  Timing timing;
};

// The trial's result as the record that goes on to the tuner and the DB (registers unknown).
TrialMeasurement measurement_of(const TrialResult& result);

// A kernel compiled and loaded, ready to launch on (x, w, bias, y).
//
// A kernel whose module states a workspace (`dt_workspace_bytes` > 0: wsgemm with W streamed)
// takes it as a fifth argument, and the module's `<kernel>_pack(w, workspace)` refills it from w
// before every launch, so a launch never depends on an earlier one's w. The workspace belongs to
// this object: launches take turns at it (each waits on the stream for the previous one's end),
// so one LoadedKernel stays safe to launch from several threads and streams.
//
// A kernel whose module states `dt_x_tensor_map` (wsgemm with staged windows) takes a tensor map
// of x as a sixth argument, encoded here for each launch's x from the extents and box the module
// states (x must then be 16-byte aligned, as the config's pointer_alignment says); a launch on the
// previous launch's x reuses its map.
class LoadedKernel {
 public:
  LoadedKernel(const GeneratedKernel& kernel, const std::vector<char>& cubin);
  void launch(CUdeviceptr x, CUdeviceptr w, CUdeviceptr bias, CUdeviceptr y,
              CUstream stream = nullptr) const;
  size_t workspace_bytes() const { return workspace_.bytes(); }

 private:
  Module module_;
  CUfunction function_;
  LaunchGeometry geometry_;
  CUfunction pack_ = nullptr;
  LaunchGeometry pack_geometry_;
  DeviceBuffer workspace_;
  std::unique_ptr<Event> workspace_released_;  // recorded after each launch that used it
  mutable std::mutex launch_turn_;             // the workspace's turns, and the map of x below
  struct TensorBox {
    int element_bytes = 0;
    cuuint64_t extents[4] = {};  // x's, innermost first: w, h, channel, n
    cuuint32_t box[4] = {};
  };
  std::optional<TensorBox> x_box_;
  struct MappedX {
    CUdeviceptr x = 0;
    CUtensorMap map{};
  };
  mutable MappedX mapped_;  // the last launch's x and its map, under launch_turn_
  CUtensorMap x_map(CUdeviceptr x) const;
};

// Times `run` with CUDA events: warm-up, then the median of `timed_runs`, the L2 flushed first.
Timing time_launches(const std::function<void()>& run, const Context& context,
                     const TrialOptions& options);

// The device-to-device copy bandwidth in GB/s (bytes read plus bytes written per second): the
// median of timed copies of a buffer eight times the L2's size (at least 256 MiB), so that it
// measures the memory, not the L2. What the tools hold a kernel's GB/s against.
double measure_copy_gbps(const Context& context);

// The whole trial of one config on the verifier's problem and inputs. Never throws for a kernel's
// failure; a lost context (kFaulted) means the caller's process must not use the GPU again.
// `precompiled`, when given, is this config's compile result (see compile_configs).
TrialResult run_trial(const Context& context, Verifier& verifier, const Config& config,
                      const TrialOptions& options, const CompileResult* precompiled = nullptr);

// Generates (for the device `limits` describe) and compiles every config for the problem in
// parallel; results in order.
std::vector<CompileResult> compile_configs(const Problem& problem,
                                           const std::vector<Config>& configs,
                                           const std::string& arch,
                                           const DeviceLimits& limits = {});

}  // namespace deconvtune

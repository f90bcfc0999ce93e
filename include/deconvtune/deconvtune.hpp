#pragma once
// deconvtune's C++ API: an Engine looks up the tuned kernel for a ConvTranspose2d + epilogue
// problem on this GPU (or picks a heuristic default, or tunes now), and the Plan it returns
// launches that kernel on device pointers.
//
//   deconvtune::Engine engine;                                  // options: see EngineOptions
//   deconvtune::Plan plan = engine.plan(deconvtune::ProblemSpec::seed());
//   plan.run(x, w, bias, y, stream);                            // device pointers, a CUstream
//
// Promises:
// - Plans are cached per (problem, device, CUDA context); the second plan() of a problem returns
//   the cached one. Engine and Plan are thread-safe.
// - Plan::run() does no allocation, compilation, database access or logging.
// - The engine uses the device's CUDA primary context, shared with the CUDA runtime and PyTorch.
// - Failures throw deconvtune::Error, whose status() is the C API's status code.
//
// Implemented in engine/engine.cpp; exported from libdeconvtune.so. This header includes no
// internal header (the implementation is behind Engine::Impl and detail::PlanState).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "deconvtune/deconvtune.h"

namespace deconvtune {

enum class Status : int {
  kOk = DECONVTUNE_OK,
  kInvalidArgument = DECONVTUNE_ERROR_INVALID_ARGUMENT,
  kBadProblem = DECONVTUNE_ERROR_BAD_PROBLEM,
  kNoGpu = DECONVTUNE_ERROR_NO_GPU,
  kNotTuned = DECONVTUNE_ERROR_NOT_TUNED,
  kCuda = DECONVTUNE_ERROR_CUDA,
  kCompile = DECONVTUNE_ERROR_COMPILE,
  kDatabase = DECONVTUNE_ERROR_DATABASE,
  kTuning = DECONVTUNE_ERROR_TUNING,
  kInternal = DECONVTUNE_ERROR_INTERNAL,
};

class DECONVTUNE_API Error : public std::runtime_error {
 public:
  Error(Status status, const std::string& message);
  Status status() const { return status_; }

 private:
  Status status_;
};

// fp32: as accurate as true fp32 (the default, as the user asked for the same outputs).
// tf32: TF32 tensor cores, what PyTorch does with torch.backends.cudnn.allow_tf32 (its default).
enum class PrecisionMode { kFp32 = DECONVTUNE_PRECISION_FP32, kTf32 = DECONVTUNE_PRECISION_TF32 };

// The element type of x, w, bias and y: fp32 accumulation and epilogue whatever it is, y rounded
// once on the store.
enum class DataType {
  kFloat32 = DECONVTUNE_DTYPE_FLOAT32,
  kBFloat16 = DECONVTUNE_DTYPE_BFLOAT16,
  kFloat16 = DECONVTUNE_DTYPE_FLOAT16,
};
// NCHW: contiguous; NHWC: channels_last (x and y; w is [C_in, C_out / groups, kH, kW] either way).
enum class MemoryLayout { kNchw = DECONVTUNE_LAYOUT_NCHW, kNhwc = DECONVTUNE_LAYOUT_NHWC };

// What plan() does when the database has no tuned winner for the problem on this GPU.
enum class OnMiss {
  kHeuristic =
      DECONVTUNE_ON_MISS_HEURISTIC,  // nearest tuned problem's winner if legal, else a rule
  kTune = DECONVTUNE_ON_MISS_TUNE,   // tune now, store the winner, use it
  kFail = DECONVTUNE_ON_MISS_FAIL,   // throw Error(Status::kNotTuned)
};

struct EngineOptions {
  std::string db_path;  // empty: $DECONVTUNE_DB, else ~/.cache/deconvtune/tuning.db
  OnMiss on_miss = OnMiss::kHeuristic;
  PrecisionMode precision = PrecisionMode::kFp32;  // for problems that do not name one
  int device = 0;                                  // CUDA device ordinal
  // kTune only: the time budget of one tuning run, and the `deconvtune` executable that runs the
  // measurement workers (empty: $DECONVTUNE_WORKER, else bin/deconvtune beside the library's
  // lib/ folder or the library itself, else `deconvtune` on PATH; never the current directory).
  double tune_budget_seconds = 120;
  std::string tuner_binary;
};

// A ConvTranspose2d + epilogue problem, with PyTorch's argument names; [h, w] pairs.
struct DECONVTUNE_API ProblemSpec {
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  std::array<int64_t, 2> kernel_size{0, 0};
  std::array<int64_t, 2> stride{1, 1};
  std::array<int64_t, 2> padding{0, 0};
  std::array<int64_t, 2> output_padding{0, 0};
  std::array<int64_t, 2> dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
  std::string epilogue = "mish,add:0.5,hardtanh:-1:1,mul:2";
  DataType dtype = DataType::kFloat32;
  MemoryLayout layout = MemoryLayout::kNchw;
  std::optional<PrecisionMode> precision;  // empty: the engine's

  // The JSON the C API and Engine::plan_json take.
  std::string to_json() const;
  // The user's headline block: x [128, 64, 128, 128], kernel 3, stride 2, padding 1,
  // output_padding 1, bias, the seed epilogue.
  static ProblemSpec seed();
};

namespace detail {
struct PlanState;
}

// A kernel ready to launch for one problem on one device. Cheap to copy (shared state).
class DECONVTUNE_API Plan {
 public:
  using DevicePtr = unsigned long long;  // CUdeviceptr

  Plan() = default;  // empty: run() throws
  explicit operator bool() const { return state_ != nullptr; }

  // y = epilogue(conv_transpose2d(x, w, bias)), enqueued on `stream` (CUstream / cudaStream_t;
  // nullptr: the legacy default stream). bias must be null exactly when the problem has none.
  // Throws Error(kInvalidArgument) for a null, misaligned or overlapping pointer, Error(kCuda)
  // when the launch is refused. Asynchronous, like any kernel launch.
  void run(const void* x, const void* w, const void* bias, void* y, void* stream = nullptr) const;
  void run(DevicePtr x, DevicePtr w, DevicePtr bias, DevicePtr y, void* stream = nullptr) const;

  const std::string& config_name() const;
  // "tuned" (the database's winner), "tuned-now", "nearest:<problem key>" (with " (tuned on
  // <GPU>, same arch and SM count)" when another GPU of this one's class tuned it) or "rule".
  const std::string& source() const;
  const std::string& problem_key() const;
  // [N, C_out, H_out, W_out], the logical shape in either layout (as torch's .shape).
  std::array<int64_t, 4> output_shape() const;
  // The byte alignment run() requires of x: its kernel's widest read of x (16 where it reads x in
  // 16-byte vectors or tensor map boxes, else one element). 0 for an empty plan.
  int64_t x_alignment() const;
  int device() const;

 private:
  friend class Engine;
  explicit Plan(std::shared_ptr<const detail::PlanState> state) : state_(std::move(state)) {}
  std::shared_ptr<const detail::PlanState> state_;
};

class DECONVTUNE_API Engine {
 public:
  // Opens the tuning database (Error(kDatabase) when it cannot); the GPU is first touched by
  // plan(), so an Engine can be made on a machine without one.
  explicit Engine(EngineOptions options = {});
  ~Engine();
  Engine(Engine&&) noexcept;
  Engine& operator=(Engine&&) noexcept;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Error(kBadProblem) naming the field for an invalid problem, Error(kNoGpu) without a GPU.
  Plan plan(const ProblemSpec& problem);
  Plan plan_json(std::string_view problem_json);

  const EngineOptions& options() const;
  size_t cached_plans() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The library's version ("0.1.0").
DECONVTUNE_API std::string_view version();
// Whether a CUDA driver and a GPU are present; `reason` says why not.
DECONVTUNE_API bool gpu_available(std::string* reason = nullptr);

}  // namespace deconvtune

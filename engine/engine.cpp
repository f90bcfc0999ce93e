// The C++ API of include/deconvtune/deconvtune.hpp: plan lookup (tuning DB winner, heuristic
// default, or tune now), the cubin cache, the in-memory plan cache, and the launch path.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "codegen/generator.hpp"
#include "codegen/problem.hpp"
#include "codegen/search_space.hpp"
#include "codegen/untrusted.hpp"
#include "deconvtune/deconvtune.hpp"
#include "gpu/driver_api.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "trial/benchmark.hpp"
#include "tuner/cubin_cache.hpp"
#include "tuner/heuristic.hpp"
#include "tuner/tuner.hpp"
#include "tuning_db/tuning_db.hpp"

#ifndef DECONVTUNE_VERSION
#error "DECONVTUNE_VERSION must be defined by the build (the project version)"
#endif

namespace deconvtune {
namespace {

// Makes `context` current on this thread for the guard's lifetime, then restores what the caller
// had current (the CUDA runtime and PyTorch read the current context as their current device).
class ContextSwitch {
 public:
  explicit ContextSwitch(CUcontext context) {
    DT_CU(cuCtxGetCurrent(&previous_));
    if (previous_ != context) {
      DT_CU(cuCtxSetCurrent(context));
      switched_ = true;
    }
  }
  ~ContextSwitch() {
    if (switched_) DriverApi::get().cuCtxSetCurrent(previous_);
  }
  ContextSwitch(const ContextSwitch&) = delete;
  ContextSwitch& operator=(const ContextSwitch&) = delete;

 private:
  CUcontext previous_ = nullptr;
  bool switched_ = false;
};

// One GPU as the engine uses it: its retained primary context and what tuning keys it by.
struct DeviceState {
  std::unique_ptr<Context> context;
  CUcontext handle = nullptr;
  DeviceLimits limits;
  db::DeviceRecord record;

  explicit DeviceState(int ordinal) {
    CUcontext previous = nullptr;
    DT_CU(cuCtxGetCurrent(&previous));
    context = std::make_unique<Context>(ordinal);  // retains the primary context, makes it current
    DT_CU(cuCtxGetCurrent(&handle));
    DriverApi::get().cuCtxSetCurrent(previous);
    const DeviceInfo& info = context->info();
    limits = info.limits();
    record = tuner::device_record(info);
  }
};

std::string tail(const std::string& text, size_t max_chars = 2000) {
  return text.size() <= max_chars ? text : "..." + text.substr(text.size() - max_chars);
}

}  // namespace

namespace detail {

struct PlanState {
  std::shared_ptr<const DeviceState> device;  // keeps the primary context retained
  std::unique_ptr<LoadedKernel> kernel;
  std::string config_name;
  std::string source;
  std::string problem_key;
  std::array<int64_t, 4> output_shape{};
  int ordinal = 0;
  bool has_bias = true;
  size_t x_bytes = 0, w_bytes = 0, bias_bytes = 0, y_bytes = 0;
  uintptr_t element_bytes = 4;  // of the problem's dtype: what w and bias must be aligned to
  uintptr_t x_alignment = 4;    // the kernel's widest read of x
  uintptr_t y_alignment = 4;    // the kernel's widest store to y

  PlanState() = default;
  PlanState(const PlanState&) = delete;
  PlanState& operator=(const PlanState&) = delete;
  // The module is unloaded with its context current, whichever thread drops the last Plan.
  ~PlanState() {
    if (!kernel || !device) return;
    try {
      ContextSwitch current(device->handle);
      kernel.reset();
    } catch (...) {
      // The driver is gone (process exit) or the context lost: nothing left to unload into.
    }
  }

  // Argument checks and one launch: no allocation on the success path.
  void run(uintptr_t x, uintptr_t w, uintptr_t bias, uintptr_t y, CUstream stream) const {
    if (x == 0 || w == 0 || y == 0) {
      throw Error(Status::kInvalidArgument,
                  fmt::format("Plan::run: {} is a null pointer", x == 0   ? "x"
                                                                 : w == 0 ? "w"
                                                                          : "y"));
    }
    if (has_bias && bias == 0) {
      throw Error(Status::kInvalidArgument,
                  "Plan::run: bias is null but the problem has a bias (\"bias\": true)");
    }
    if (!has_bias && bias != 0) {
      throw Error(Status::kInvalidArgument,
                  "Plan::run: bias was given but the problem has none (\"bias\": false)");
    }
    for (auto [pointer, name, alignment] : {std::tuple{x, "x", x_alignment},
                                            {w, "w", element_bytes},
                                            {bias, "bias", element_bytes},
                                            {y, "y", y_alignment}}) {
      if (pointer % alignment != 0) {
        throw Error(Status::kInvalidArgument,
                    fmt::format("Plan::run: {} (0x{:x}) is not {}-byte aligned, as kernel {} "
                                "needs",
                                name, pointer, alignment, config_name));
      }
    }
    auto overlaps = [&](uintptr_t a, size_t a_bytes) {
      return a != 0 && a < y + y_bytes && y < a + a_bytes;
    };
    if (overlaps(x, x_bytes) || overlaps(w, w_bytes) || overlaps(bias, bias_bytes)) {
      throw Error(Status::kInvalidArgument,
                  "Plan::run: y overlaps an input (x, w or bias); in-place is not supported");
    }
    try {
      ContextSwitch current(device->handle);
      kernel->launch(x, w, bias, y, stream);
    } catch (const CudaError& e) {
      throw Error(Status::kCuda, fmt::format("Plan::run ({}): {}", config_name, e.what()));
    }
  }
};

}  // namespace detail

Error::Error(Status status, const std::string& message)
    : std::runtime_error(message), status_(status) {}

namespace {

// ProblemSpec's integer and [h, w] fields, in the order of Problem's field table (kProblemFields),
// whose JSON names they take: checked below, so a field added there and not here fails to build.
struct SpecField {
  int64_t ProblemSpec::*scalar;
  std::array<int64_t, 2> ProblemSpec::*pair;
};
constexpr SpecField kSpecFields[] = {
    {&ProblemSpec::batch, nullptr},          {&ProblemSpec::in_channels, nullptr},
    {&ProblemSpec::out_channels, nullptr},   {&ProblemSpec::height, nullptr},
    {&ProblemSpec::width, nullptr},          {nullptr, &ProblemSpec::kernel_size},
    {nullptr, &ProblemSpec::stride},         {nullptr, &ProblemSpec::padding},
    {nullptr, &ProblemSpec::output_padding}, {nullptr, &ProblemSpec::dilation},
    {&ProblemSpec::groups, nullptr},
};
constexpr bool same_kinds() {
  if (std::size(kSpecFields) != std::size(kProblemFields)) return false;
  for (size_t i = 0; i < std::size(kSpecFields); ++i) {
    if ((kSpecFields[i].scalar != nullptr) != (kProblemFields[i].scalar != nullptr)) return false;
  }
  return true;
}
static_assert(same_kinds(), "kSpecFields must follow kProblemFields (codegen/problem.hpp)");

// The public enums spell the C API's values; the internal ones are the same lists in order.
DType to_internal(DataType dtype) { return static_cast<DType>(static_cast<int>(dtype)); }
Layout to_internal(MemoryLayout layout) { return static_cast<Layout>(static_cast<int>(layout)); }
static_assert(static_cast<int>(DType::kFloat16) == DECONVTUNE_DTYPE_FLOAT16 &&
              static_cast<int>(DType::kBFloat16) == DECONVTUNE_DTYPE_BFLOAT16 &&
              static_cast<int>(Layout::kNhwc) == DECONVTUNE_LAYOUT_NHWC);

}  // namespace

std::string ProblemSpec::to_json() const {
  nlohmann::json spec = nlohmann::json::object();
  for (size_t i = 0; i < std::size(kSpecFields); ++i) {
    const std::string name(kProblemFields[i].name);
    if (kSpecFields[i].scalar) {
      spec[name] = this->*kSpecFields[i].scalar;
    } else {
      const std::array<int64_t, 2>& p = this->*kSpecFields[i].pair;
      spec[name] = nlohmann::json::array({p[0], p[1]});
    }
  }
  spec["bias"] = bias;
  spec["epilogue"] = epilogue;
  spec["dtype"] = to_string(to_internal(dtype));
  spec["layout"] = to_string(to_internal(layout));
  if (precision) spec["precision"] = *precision == PrecisionMode::kTf32 ? "tf32" : "fp32";
  return spec.dump();
}

ProblemSpec ProblemSpec::seed() {
  const Problem seed = Problem::seed();
  ProblemSpec spec;
  for (size_t i = 0; i < std::size(kSpecFields); ++i) {
    if (kSpecFields[i].scalar) {
      spec.*kSpecFields[i].scalar = seed.*kProblemFields[i].scalar;
    } else {
      const Pair& p = seed.*kProblemFields[i].pair;
      spec.*kSpecFields[i].pair = {p.h, p.w};
    }
  }
  spec.bias = seed.bias;
  spec.epilogue = seed.epilogue.text();
  return spec;
}

void Plan::run(const void* x, const void* w, const void* bias, void* y, void* stream) const {
  run(reinterpret_cast<uintptr_t>(x), reinterpret_cast<uintptr_t>(w),
      reinterpret_cast<uintptr_t>(bias), reinterpret_cast<uintptr_t>(y), stream);
}

void Plan::run(DevicePtr x, DevicePtr w, DevicePtr bias, DevicePtr y, void* stream) const {
  if (!state_) throw Error(Status::kInvalidArgument, "Plan::run on an empty Plan");
  state_->run(x, w, bias, y, static_cast<CUstream>(stream));
}

namespace {
const std::string& empty_string() {
  static const std::string empty;
  return empty;
}
}  // namespace

const std::string& Plan::config_name() const {
  return state_ ? state_->config_name : empty_string();
}
const std::string& Plan::source() const { return state_ ? state_->source : empty_string(); }
const std::string& Plan::problem_key() const {
  return state_ ? state_->problem_key : empty_string();
}
std::array<int64_t, 4> Plan::output_shape() const {
  return state_ ? state_->output_shape : std::array<int64_t, 4>{};
}
int64_t Plan::x_alignment() const { return state_ ? static_cast<int64_t>(state_->x_alignment) : 0; }
int Plan::device() const { return state_ ? state_->ordinal : -1; }

struct Engine::Impl {
  EngineOptions options;
  std::string db_path;

  mutable std::mutex db_mutex;  // TuningDb is one SQLite connection: one user at a time
  std::unique_ptr<db::TuningDb> db;
  bool db_writable = true;

  std::mutex device_mutex;
  std::shared_ptr<const DeviceState> device;

  using PlanFuture = std::shared_future<std::shared_ptr<const detail::PlanState>>;
  mutable std::mutex plans_mutex;
  std::map<std::string, PlanFuture> plans;

  explicit Impl(EngineOptions engine_options) : options(std::move(engine_options)) {
    if (options.device < 0) {
      throw Error(Status::kInvalidArgument,
                  fmt::format("device ordinal {} is negative", options.device));
    }
    if (!(options.tune_budget_seconds >= 0)) {
      throw Error(Status::kInvalidArgument, "tune_budget_seconds must be >= 0");
    }
    db_path = options.db_path.empty() ? db::TuningDb::default_path() : options.db_path;
    try {
      db = std::make_unique<db::TuningDb>(db_path);
    } catch (const std::exception& writable_error) {
      // A database we may read but not write (a shared, read-only install) still gives winners;
      // compiled kernels then stay in memory only.
      std::error_code ignored;
      if (!std::filesystem::exists(db_path, ignored)) {
        throw Error(Status::kDatabase,
                    fmt::format("tuning database {}: {}", db_path, writable_error.what()));
      }
      try {
        db = std::make_unique<db::TuningDb>(db_path, /*read_only=*/true);
        db_writable = false;
      } catch (const std::exception&) {
        throw Error(Status::kDatabase,
                    fmt::format("tuning database {}: {}", db_path, writable_error.what()));
      }
    }
  }

  std::shared_ptr<const DeviceState> device_state() {
    std::lock_guard<std::mutex> lock(device_mutex);
    if (!device) {
      try {
        device = std::make_shared<const DeviceState>(options.device);
      } catch (const NoGpuError& e) {
        throw Error(Status::kNoGpu, e.what());
      } catch (const CudaError& e) {
        if (e.result() == CUDA_ERROR_INVALID_DEVICE || e.result() == CUDA_ERROR_NO_DEVICE) {
          throw Error(Status::kNoGpu,
                      fmt::format("no GPU with ordinal {}: {}", options.device, e.what()));
        }
        throw Error(Status::kCuda, e.what());
      }
    }
    return device;
  }

  Problem parse_problem(std::string_view text) const {
    nlohmann::json spec;
    try {
      spec = parse_untrusted_json(text, kMaxProblemNesting);
    } catch (const UntrustedJsonError& e) {
      throw Error(Status::kBadProblem, fmt::format("problem: {}", e.what()));
    }
    try {
      if (spec.is_object() && !spec.contains("precision")) {
        spec["precision"] = options.precision == PrecisionMode::kTf32 ? "tf32" : "fp32";
      }
      return Problem::from_json(spec);
    } catch (const std::invalid_argument& e) {  // ProblemError names the field
      throw Error(Status::kBadProblem, e.what());
    }
  }

  std::optional<db::WinnerRecord> tuned_winner(const Problem& problem, const DeviceState& dev) {
    std::lock_guard<std::mutex> lock(db_mutex);
    try {
      return db->winner(
          db::WinnerKey{problem.key(), dev.record.key(), generator_version(), problem.precision});
    } catch (const std::exception& e) {
      throw Error(Status::kDatabase, fmt::format("tuning database {}: {}", db_path, e.what()));
    }
  }

  // The config to run and where it came from.
  std::pair<Config, std::string> choose_config(const Problem& problem, const DeviceState& dev) {
    std::optional<db::WinnerRecord> winner = tuned_winner(problem, dev);
    if (winner && serves_as_tuned(*winner)) {
      try {
        Config config = Config::from_name(winner->config_name);
        if (why_illegal(problem, config, dev.limits).empty()) return {config, "tuned"};
      } catch (const std::invalid_argument&) {
        // A winner from an older space: treated as untuned.
      }
    }
    switch (options.on_miss) {
      case OnMiss::kFail:
        throw Error(Status::kNotTuned,
                    fmt::format("no tuned winner for {} on {} in {}{} (on_miss is 'fail'; run "
                                "`deconvtune autotune` first or use the heuristic default)",
                                problem.key(), dev.record.key(), db_path,
                                winner ? ": its winner was imported and is not measured on this "
                                         "GPU yet"
                                       : ""));
      case OnMiss::kTune:
        return tune_now(problem, dev);
      case OnMiss::kHeuristic:
        break;
    }
    std::lock_guard<std::mutex> lock(db_mutex);
    UntunedChoice choice;
    try {
      choice =
          choose_untuned_config(problem, dev.limits, *db, dev.record.key(), generator_version());
    } catch (const db::DbError& e) {
      throw Error(Status::kDatabase, fmt::format("tuning database {}: {}", db_path, e.what()));
    }
    return {choice.config, choice.source()};
  }

  std::pair<Config, std::string> tune_now(const Problem& problem, const DeviceState& dev) {
    tuner::TuneRequest request;
    request.problem = problem;
    request.db_path = db_path;
    request.pick_strategy = true;
    request.budget_seconds = options.tune_budget_seconds;
    request.launch_winner = false;  // this engine loads and launches it
    request.device = options.device;
    request.worker_binary = options.tuner_binary;  // empty: the tuner's own rule
    tuner::TuneReport report;
    try {
      report = tuner::autotune(request);
    } catch (const std::exception& e) {
      throw Error(Status::kTuning, fmt::format("tuning {} failed: {}", problem.key(), e.what()));
    }
    // An imported winner no trial of this run displaced is still unmeasured here.
    if (!report.winner || !serves_as_tuned(*report.winner)) {
      throw Error(Status::kTuning,
                  fmt::format("tuning {} on {} found no verified kernel ({} "
                              "trials)",
                              problem.key(), dev.record.key(), report.trials.size()));
    }
    return {Config::from_name(report.winner->config_name), "tuned-now"};
  }

  // The cubin from the DB's cache, else NVRTC (and into the cache when the DB is writable). The
  // DB serializes its own calls, and compiles of several threads run side by side.
  std::vector<char> cubin_for(const GeneratedKernel& kernel, const DeviceState& dev) {
    tuner::CubinLookup lookup =
        tuner::cached_or_compiled(*db, kernel.source, dev.record.arch, db_writable);
    if (!lookup.ok) {
      throw Error(Status::kCompile,
                  fmt::format("NVRTC could not compile {} for {}: {}", kernel.config_name,
                              dev.record.arch, tail(lookup.log)));
    }
    return std::move(lookup.cubin);
  }

  std::shared_ptr<const detail::PlanState> build(const Problem& problem,
                                                 std::shared_ptr<const DeviceState> dev) {
    auto [config, source] = choose_config(problem, *dev);
    GeneratedKernel kernel;
    try {
      kernel = generate_kernel(problem, config, dev->limits);
    } catch (const std::invalid_argument& e) {
      throw Error(Status::kInternal, e.what());
    }
    std::vector<char> cubin = cubin_for(kernel, *dev);
    auto state = std::make_shared<detail::PlanState>();
    try {
      ContextSwitch current(dev->handle);
      state->kernel = std::make_unique<LoadedKernel>(kernel, cubin);
    } catch (const CudaError& e) {
      throw Error(Status::kCuda, fmt::format("loading {}: {}", config.name(), e.what()));
    } catch (const std::logic_error& e) {
      throw Error(Status::kInternal, fmt::format("loading {}: {}", config.name(), e.what()));
    }
    state->device = std::move(dev);
    state->config_name = config.name();
    state->source = std::move(source);
    state->problem_key = problem.key();
    state->output_shape = {problem.batch, problem.out_channels, problem.out_height(),
                           problem.out_width()};
    state->ordinal = options.device;
    state->has_bias = problem.bias;
    const size_t element = static_cast<size_t>(problem.element_bytes());
    state->element_bytes = element;
    state->x_bytes = static_cast<size_t>(problem.x_elements()) * element;
    state->w_bytes = static_cast<size_t>(problem.w_elements()) * element;
    state->bias_bytes = problem.bias ? static_cast<size_t>(problem.out_channels) * element : 0;
    state->y_bytes = static_cast<size_t>(problem.y_elements()) * element;
    const PointerAlignment alignment = pointer_alignment(problem, config);
    state->x_alignment = static_cast<uintptr_t>(alignment.x);
    state->y_alignment = static_cast<uintptr_t>(alignment.y);
    return state;
  }

  Plan plan(const Problem& problem) {
    std::shared_ptr<const DeviceState> dev = device_state();
    const std::string key = fmt::format("{}@{}:{}", problem.key(), options.device,
                                        static_cast<const void*>(dev->handle));
    std::promise<std::shared_ptr<const detail::PlanState>> promise;
    PlanFuture future;
    bool builder = false;
    {
      std::lock_guard<std::mutex> lock(plans_mutex);
      auto found = plans.find(key);
      if (found != plans.end()) {
        future = found->second;
      } else {
        future = promise.get_future().share();
        plans.emplace(key, future);
        builder = true;
      }
    }
    if (builder) {
      // Built outside the lock: other problems plan meanwhile, and callers of this one wait.
      try {
        promise.set_value(build(problem, dev));
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(plans_mutex);
          plans.erase(key);  // a failure is not cached: the next call tries again
        }
        promise.set_exception(std::current_exception());
      }
    }
    return Plan(future.get());
  }
};

namespace {

// Every failure leaves the engine as deconvtune::Error with a status.
template <typename Body>
auto translated(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error&) {
    throw;
  } catch (const NoGpuError& e) {
    throw Error(Status::kNoGpu, e.what());
  } catch (const CudaError& e) {
    throw Error(Status::kCuda, e.what());
  } catch (const db::DbError& e) {
    throw Error(Status::kDatabase, e.what());
  } catch (const std::bad_alloc&) {
    throw Error(Status::kInternal, "out of host memory");
  } catch (const std::exception& e) {
    throw Error(Status::kInternal, e.what());
  }
}

}  // namespace

Engine::Engine(EngineOptions options)
    : impl_(translated([&] { return std::make_unique<Impl>(std::move(options)); })) {}
Engine::~Engine() = default;
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;

Plan Engine::plan(const ProblemSpec& problem) {
  return plan_json(translated([&] { return problem.to_json(); }));
}

Plan Engine::plan_json(std::string_view problem_json) {
  if (!impl_) throw Error(Status::kInvalidArgument, "Engine::plan on a moved-from Engine");
  return translated([&] { return impl_->plan(impl_->parse_problem(problem_json)); });
}

const EngineOptions& Engine::options() const {
  if (!impl_) throw Error(Status::kInvalidArgument, "Engine::options on a moved-from Engine");
  return impl_->options;
}

size_t Engine::cached_plans() const {
  if (!impl_) return 0;
  std::lock_guard<std::mutex> lock(impl_->plans_mutex);
  return impl_->plans.size();
}

std::string_view version() { return DECONVTUNE_VERSION; }

bool gpu_available(std::string* reason) { return DriverApi::available(reason); }

}  // namespace deconvtune

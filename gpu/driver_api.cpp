#include "gpu/driver_api.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>

namespace deconvtune {
namespace {

struct Loaded {
  DriverApi api;
  std::string error;  // empty when the driver loaded and initialised
};

const Loaded& load() {
  static const Loaded loaded = [] {
    Loaded result;
    void* handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      result.error = fmt::format(
          "no CUDA driver on this machine (dlopen libcuda.so.1: {}); GPU work is unavailable",
          dlerror());
      return result;
    }
#define DT_RESOLVE(api_name, symbol)                                                            \
  result.api.api_name = reinterpret_cast<decltype(result.api.api_name)>(dlsym(handle, symbol)); \
  if (result.api.api_name == nullptr) {                                                         \
    result.error = fmt::format("the CUDA driver lacks {} (driver too old?)", symbol);           \
    return result;                                                                              \
  }
    DT_DRIVER_FUNCTIONS(DT_RESOLVE)
#undef DT_RESOLVE
    CUresult init = result.api.cuInit(0);
    int count = 0;
    if (init == CUDA_SUCCESS) init = result.api.cuDeviceGetCount(&count);
    if (init != CUDA_SUCCESS) {
      const char* name = nullptr;
      result.api.cuGetErrorName(init, &name);
      result.error = fmt::format("the CUDA driver is present but cuInit failed ({}): no usable GPU",
                                 name ? name : "unknown error");
    } else if (count == 0) {
      result.error = "the CUDA driver is present but sees no GPU";
    }
    return result;
  }();
  return loaded;
}

}  // namespace

CudaError::CudaError(const std::string& call, CUresult result)
    : std::runtime_error([&] {
        const char* name = "unknown";
        const char* text = "unknown";
        if (DriverApi::available()) {
          DriverApi::get().cuGetErrorName(result, &name);
          DriverApi::get().cuGetErrorString(result, &text);
        }
        return fmt::format("{} failed: {} ({})", call, name ? name : "?", text ? text : "?");
      }()),
      result_(result) {}

bool CudaError::context_lost() const {
  switch (result_) {
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
      return true;
    default:
      return false;
  }
}

const DriverApi& DriverApi::get() {
  const Loaded& loaded = load();
  if (!loaded.error.empty()) throw NoGpuError(loaded.error);
  return loaded.api;
}

bool DriverApi::available(std::string* reason) {
  const Loaded& loaded = load();
  if (reason != nullptr) *reason = loaded.error;
  return loaded.error.empty();
}

void check(CUresult result, const char* call) {
  if (result != CUDA_SUCCESS) throw CudaError(call, result);
}

DeviceLimits DeviceInfo::limits() const {
  DeviceLimits limits;
  limits.sm_major = major;
  limits.sm_minor = minor;
  limits.max_shared_per_block = max_shared_per_block_optin;
  limits.max_shared_per_sm = max_shared_per_sm;
  limits.sm_count = sm_count;
  return limits;
}

std::string DeviceInfo::arch() const {
  // Cubins are built for the device at hand, so sm_90 devices get sm_90a's feature set (wgmma).
  return fmt::format("sm_{}{}{}", major, minor, major == 9 && minor == 0 ? "a" : "");
}

Context::Context(int ordinal) {
  const DriverApi& api = DriverApi::get();
  DT_CU(cuDeviceGet(&device_, ordinal));
  DT_CU(cuDevicePrimaryCtxRetain(&context_, device_));
  make_current();
  info_.ordinal = ordinal;
  char name[256] = {};
  DT_CU(cuDeviceGetName(name, sizeof(name), device_));
  info_.name = name;
  auto attribute = [&](CUdevice_attribute which) {
    int value = 0;
    check(api.cuDeviceGetAttribute(&value, which, device_), "cuDeviceGetAttribute");
    return value;
  };
  info_.major = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  info_.minor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  info_.sm_count = attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  info_.l2_bytes = attribute(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
  info_.max_shared_per_sm = attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
  info_.max_shared_per_block_optin =
      attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
  DT_CU(cuDriverGetVersion(&info_.driver_version));
  DT_CU(cuDeviceTotalMem(&info_.total_memory, device_));
}

Context::~Context() {
  if (context_ != nullptr) DriverApi::get().cuDevicePrimaryCtxRelease(device_);
}

void Context::make_current() const { DT_CU(cuCtxSetCurrent(context_)); }
void Context::synchronize() const { DT_CU(cuCtxSynchronize()); }

size_t Context::free_memory() const {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  DT_CU(cuMemGetInfo(&free_bytes, &total_bytes));
  return free_bytes;
}

Module::Module(const std::vector<char>& image) {
  DT_CU(cuModuleLoadDataEx(&module_, image.data(), 0, nullptr, nullptr));
}

Module::~Module() {
  if (module_ != nullptr) DriverApi::get().cuModuleUnload(module_);
}

Module::Module(Module&& other) noexcept : module_(other.module_) { other.module_ = nullptr; }

CUfunction Module::function(const std::string& name) const {
  CUfunction function = nullptr;
  check(DriverApi::get().cuModuleGetFunction(&function, module_, name.c_str()),
        fmt::format("cuModuleGetFunction(\"{}\")", name).c_str());
  return function;
}

int Module::int_global(const std::string& name, int fallback) const {
  const std::vector<int> value = int_array_global(name, 1);
  return value.empty() ? fallback : value.front();
}

std::vector<int> Module::int_array_global(const std::string& name, size_t count) const {
  CUdeviceptr address = 0;
  size_t bytes = 0;
  if (DriverApi::get().cuModuleGetGlobal(&address, &bytes, module_, name.c_str()) != CUDA_SUCCESS ||
      bytes != count * sizeof(int)) {
    return {};
  }
  std::vector<int> values(count);
  DT_CU(cuMemcpyDtoH(values.data(), address, bytes));
  return values;
}

Event::Event() { DT_CU(cuEventCreate(&event_, CU_EVENT_DEFAULT)); }
Event::~Event() {
  if (event_ != nullptr) DriverApi::get().cuEventDestroy(event_);
}
void Event::record(CUstream stream) { DT_CU(cuEventRecord(event_, stream)); }

float Event::milliseconds_since(const Event& start) const {
  DT_CU(cuEventSynchronize(event_));
  float ms = 0;
  DT_CU(cuEventElapsedTime(&ms, start.event_, event_));
  return ms;
}

void launch(CUfunction function, const LaunchGeometry& g, void** args, CUstream stream) {
  DT_CU(cuLaunchKernel(function, g.grid[0], g.grid[1], g.grid[2], g.block[0], g.block[1],
                       g.block[2], g.shared_bytes, stream, args, nullptr));
}

}  // namespace deconvtune

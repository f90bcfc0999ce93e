#pragma once
// The CUDA Driver API, loaded from libcuda.so.1 at run time: a machine without a driver (CI) can
// still start the binary, generate and compile. Every call is checked; a failure throws CudaError
// naming the call and CUDA's own error name and text. Owners (Context, Module, DeviceBuffer,
// Event) are RAII and move-only.
#include <cuda.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "codegen/config.hpp"        // LaunchGeometry
#include "codegen/search_space.hpp"  // DeviceLimits

namespace deconvtune {

class CudaError : public std::runtime_error {
 public:
  CudaError(const std::string& call, CUresult result);
  CUresult result() const { return result_; }
  // A sticky error: the context is unusable and the process must start over to use the GPU.
  bool context_lost() const;

 private:
  CUresult result_;
};

// Thrown when there is no driver or no GPU: the message says which, for the user.
class NoGpuError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DriverApi {
  // Loads libcuda.so.1 and cuInit()s once; throws NoGpuError when it cannot.
  static const DriverApi& get();
  // Whether a driver and at least one device exist; never throws. `reason` says why not.
  static bool available(std::string* reason = nullptr);

#define DT_DRIVER_FUNCTIONS(X)                                 \
  X(cuInit, "cuInit")                                          \
  X(cuDriverGetVersion, "cuDriverGetVersion")                  \
  X(cuDeviceGetCount, "cuDeviceGetCount")                      \
  X(cuDeviceGet, "cuDeviceGet")                                \
  X(cuDeviceGetName, "cuDeviceGetName")                        \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute")              \
  X(cuDeviceTotalMem, "cuDeviceTotalMem_v2")                   \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")      \
  X(cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2") \
  X(cuCtxSetCurrent, "cuCtxSetCurrent")                        \
  X(cuCtxGetCurrent, "cuCtxGetCurrent")                        \
  X(cuCtxSynchronize, "cuCtxSynchronize")                      \
  X(cuMemGetInfo, "cuMemGetInfo_v2")                           \
  X(cuModuleLoadDataEx, "cuModuleLoadDataEx")                  \
  X(cuModuleUnload, "cuModuleUnload")                          \
  X(cuModuleGetFunction, "cuModuleGetFunction")                \
  X(cuModuleGetGlobal, "cuModuleGetGlobal_v2")                 \
  X(cuFuncSetAttribute, "cuFuncSetAttribute")                  \
  X(cuFuncGetAttribute, "cuFuncGetAttribute")                  \
  X(cuLaunchKernel, "cuLaunchKernel")                          \
  X(cuMemAlloc, "cuMemAlloc_v2")                               \
  X(cuMemFree, "cuMemFree_v2")                                 \
  X(cuMemcpyHtoD, "cuMemcpyHtoD_v2")                           \
  X(cuMemcpyDtoH, "cuMemcpyDtoH_v2")                           \
  X(cuMemcpyDtoDAsync, "cuMemcpyDtoDAsync_v2")                 \
  X(cuMemsetD32, "cuMemsetD32_v2")                             \
  X(cuMemsetD8Async, "cuMemsetD8Async")                        \
  X(cuEventCreate, "cuEventCreate")                            \
  X(cuEventDestroy, "cuEventDestroy_v2")                       \
  X(cuEventRecord, "cuEventRecord")                            \
  X(cuEventSynchronize, "cuEventSynchronize")                  \
  X(cuEventElapsedTime, "cuEventElapsedTime")                  \
  X(cuStreamSynchronize, "cuStreamSynchronize")                \
  X(cuStreamWaitEvent, "cuStreamWaitEvent")                    \
  X(cuTensorMapEncodeTiled, "cuTensorMapEncodeTiled")          \
  X(cuGetErrorName, "cuGetErrorName")                          \
  X(cuGetErrorString, "cuGetErrorString")

#define DT_DECLARE_POINTER(api, symbol) decltype(&::api) api = nullptr;
  DT_DRIVER_FUNCTIONS(DT_DECLARE_POINTER)
#undef DT_DECLARE_POINTER
};

// Checks a driver call's result; `call` names it in the error.
void check(CUresult result, const char* call);
#define DT_CU(call_expr) ::deconvtune::check(::deconvtune::DriverApi::get().call_expr, #call_expr)

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0;
  int minor = 0;
  int sm_count = 0;
  int l2_bytes = 0;
  int max_shared_per_block_optin = 0;
  int driver_version = 0;
  int max_shared_per_sm = 0;
  size_t total_memory = 0;
  std::string arch() const;     // "sm_90a" (an H100), "sm_80" (an A100)
  DeviceLimits limits() const;  // what code generation needs of this GPU
};

// The device's primary context, made current on the calling thread.
class Context {
 public:
  explicit Context(int ordinal = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& info() const { return info_; }
  void make_current() const;
  void synchronize() const;
  size_t free_memory() const;

 private:
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
  DeviceInfo info_;
};

class Module {
 public:
  explicit Module(const std::vector<char>& image);
  ~Module();
  Module(Module&& other) noexcept;
  Module& operator=(Module&&) = delete;
  Module(const Module&) = delete;

  // Throws CudaError naming the kernel when the module lacks it.
  CUfunction function(const std::string& name) const;
  // The value of a `__device__ const int` the module defines, or `fallback` when it has none.
  int int_global(const std::string& name, int fallback) const;
  // The values of a `__device__ const int name[count]` the module defines; empty when it has none.
  std::vector<int> int_array_global(const std::string& name, size_t count) const;

 private:
  CUmodule module_ = nullptr;
};

class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(CUstream stream = nullptr);
  float milliseconds_since(const Event& start) const;  // synchronizes on this event
  CUevent get() const { return event_; }

 private:
  CUevent event_ = nullptr;
};

// Launches `function` with the given geometry and arguments (pointers to each argument).
void launch(CUfunction function, const LaunchGeometry& geometry, void** args,
            CUstream stream = nullptr);

}  // namespace deconvtune

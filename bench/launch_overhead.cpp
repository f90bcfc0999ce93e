// Host overhead of a cached plan's run(): the time the calling thread spends in Plan::run (argument
// checks, context check, cuLaunchKernel) per call, with the GPU kept busy elsewhere so launches
// only queue. Target: <= 5 us per call. The kernel is the seed epilogue on a small problem so the
// queue drains quickly between batches. Without a GPU it prints "skipped: no GPU (...)" and exits
// 0.
//
//   deconvtune_launch_overhead [--benchmark_format=json] [Google Benchmark flags]
//
// Only the public API (deconvtune.hpp) and the CUDA driver (dlopen'ed, for memory) are used.
#include <benchmark/benchmark.h>
#include <cuda.h>
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "deconvtune/deconvtune.hpp"

namespace {

// The few driver calls the benchmark needs for its buffers, from the driver itself.
struct Driver {
  decltype(&::cuMemAlloc_v2) mem_alloc = nullptr;
  decltype(&::cuMemFree_v2) mem_free = nullptr;
  decltype(&::cuCtxSynchronize) synchronize = nullptr;
  decltype(&::cuDevicePrimaryCtxRetain) retain = nullptr;
  decltype(&::cuCtxSetCurrent) set_current = nullptr;
  decltype(&::cuDeviceGet) device_get = nullptr;

  bool load() {
    void* handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) return false;
    mem_alloc = reinterpret_cast<decltype(mem_alloc)>(dlsym(handle, "cuMemAlloc_v2"));
    mem_free = reinterpret_cast<decltype(mem_free)>(dlsym(handle, "cuMemFree_v2"));
    synchronize = reinterpret_cast<decltype(synchronize)>(dlsym(handle, "cuCtxSynchronize"));
    retain = reinterpret_cast<decltype(retain)>(dlsym(handle, "cuDevicePrimaryCtxRetain"));
    set_current = reinterpret_cast<decltype(set_current)>(dlsym(handle, "cuCtxSetCurrent"));
    device_get = reinterpret_cast<decltype(device_get)>(dlsym(handle, "cuDeviceGet"));
    return mem_alloc && mem_free && synchronize && retain && set_current && device_get;
  }
};

void check(CUresult result, const char* what) {
  if (result != CUDA_SUCCESS) {
    std::fprintf(stderr, "launch_overhead: %s failed (CUresult %d)\n", what,
                 static_cast<int>(result));
    std::exit(1);
  }
}

struct Setup {
  Driver driver;
  deconvtune::Plan plan;
  CUdeviceptr x = 0, w = 0, bias = 0, y = 0;
};

Setup* setup = nullptr;

void BM_CachedPlanRun(benchmark::State& state) {
  int64_t launches = 0;
  for (auto _ : state) {
    setup->plan.run(setup->x, setup->w, setup->bias, setup->y, nullptr);
    // Drain the queue every 1024 launches (outside the timed region) so it never fills and blocks.
    if (++launches % 1024 == 0) {
      state.PauseTiming();
      check(setup->driver.synchronize(), "cuCtxSynchronize");
      state.ResumeTiming();
    }
  }
  check(setup->driver.synchronize(), "cuCtxSynchronize");
}

// The plan lookup of a cached problem: a hash-map hit behind a mutex, plus JSON parsing.
void BM_CachedPlanLookup(benchmark::State& state, deconvtune::Engine* engine,
                         const std::string* json) {
  for (auto _ : state) benchmark::DoNotOptimize(engine->plan_json(*json));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string reason;
  if (!deconvtune::gpu_available(&reason)) {
    std::printf("skipped: no GPU (%s)\n", reason.c_str());
    return 0;
  }
  Setup state;
  if (!state.driver.load()) {
    std::printf("skipped: no GPU (libcuda.so.1 lacks the needed calls)\n");
    return 0;
  }
  deconvtune::EngineOptions options;
  // A private DB: the benchmark must not depend on (or write into) the user's tuning DB.
  options.db_path = (std::filesystem::temp_directory_path() /
                     ("deconvtune-launch-overhead-" + std::to_string(getpid()) + ".db"))
                        .string();
  deconvtune::ProblemSpec spec = deconvtune::ProblemSpec::seed();
  spec.batch = 1;
  spec.height = spec.width = 16;
  try {
    deconvtune::Engine engine(options);
    state.plan = engine.plan(spec);
    CUdevice device = 0;
    CUcontext context = nullptr;
    check(state.driver.device_get(&device, 0), "cuDeviceGet");
    check(state.driver.retain(&context, device), "cuDevicePrimaryCtxRetain");
    check(state.driver.set_current(context), "cuCtxSetCurrent");
    const std::array<int64_t, 4> out = state.plan.output_shape();
    const size_t y_bytes = 4 * out[0] * out[1] * out[2] * out[3];
    const size_t x_bytes = 4 * spec.batch * spec.in_channels * spec.height * spec.width;
    const size_t w_bytes = 4 * spec.in_channels * spec.out_channels * 9;
    check(state.driver.mem_alloc(&state.x, x_bytes), "cuMemAlloc");
    check(state.driver.mem_alloc(&state.w, w_bytes), "cuMemAlloc");
    check(state.driver.mem_alloc(&state.bias, 4 * spec.out_channels), "cuMemAlloc");
    check(state.driver.mem_alloc(&state.y, y_bytes), "cuMemAlloc");
    std::printf("plan: %s (%s)\n", state.plan.config_name().c_str(), state.plan.source().c_str());
    setup = &state;
    const std::string json = spec.to_json();
    benchmark::RegisterBenchmark("BM_CachedPlanRun", BM_CachedPlanRun);
    benchmark::RegisterBenchmark("BM_CachedPlanLookup", BM_CachedPlanLookup, &engine, &json);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    for (CUdeviceptr p : {state.x, state.w, state.bias, state.y}) state.driver.mem_free(p);
  } catch (const deconvtune::Error& e) {
    std::fprintf(stderr, "launch_overhead: %s\n", e.what());
    return 1;
  }
  std::filesystem::remove(options.db_path);
  return 0;
}

#pragma once
// GPU tests skip, saying why, where no GPU is present, and run for real on the device. Those that
// launch kernels in the test process share one CUDA context (a context per test would cost each
// test a second of start-up); those that only start GPU processes need no context of their own.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "gpu/driver_api.hpp"

namespace deconvtune::gpu_tests {

// The test process's context on device 0, or nullptr without a GPU.
inline const Context* shared_context() {
  static std::unique_ptr<Context> context = [] {
    return DriverApi::available() ? std::make_unique<Context>(0) : nullptr;
  }();
  return context.get();
}

}  // namespace deconvtune::gpu_tests

// Skips the test without a GPU.
#define SKIP_WITHOUT_GPU()                                              \
  do {                                                                  \
    std::string why;                                                    \
    if (!::deconvtune::DriverApi::available(&why)) GTEST_SKIP() << why; \
  } while (0)

// Skips the test without a GPU, else makes the shared context current.
#define REQUIRE_GPU()                                          \
  do {                                                         \
    SKIP_WITHOUT_GPU();                                        \
    ::deconvtune::gpu_tests::shared_context()->make_current(); \
  } while (0)

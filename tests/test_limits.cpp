// Limits (issue 6): sizes whose products overflow are refused by Problem validation naming the
// field; counting stays exact and fast at the largest sizes validation lets through; a problem too
// large for the GPU is refused before anything is allocated; and tensors of more than 2^31
// elements are computed correctly (GPU tests: they skip, saying why, without a GPU).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "codegen/problem.hpp"
#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "tests/gpu_test_support.hpp"
#include "trial/benchmark.hpp"
#include "trial/verifier.hpp"

namespace deconvtune {
namespace {

using nlohmann::json;

json base_spec() {
  return json{{"batch", 1},  {"in_channels", 1}, {"out_channels", 1},
              {"height", 1}, {"width", 1},       {"kernel_size", 1}};
}

// The multiply-add count by its definition: every (input pixel, tap) pair landing in the output.
int64_t brute_force_taps(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d) {
  int64_t taps = 0;
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t t = 0; t < k; ++t) {
      const int64_t o = i * s - p + t * d;
      taps += (o >= 0 && o < out);
    }
  }
  return taps;
}

TEST(Limits, MultiplyAddCountMatchesItsDefinition) {
  std::mt19937 random(2026);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(random); };
  int checked = 0;
  for (int round = 0; round < 3000; ++round) {
    json spec = base_spec();
    spec["batch"] = pick(1, 3);
    spec["groups"] = pick(1, 3);
    spec["in_channels"] = spec["groups"].get<int>() * pick(1, 3);
    spec["out_channels"] = spec["groups"].get<int>() * pick(1, 3);
    spec["height"] = pick(1, 9);
    spec["width"] = pick(1, 9);
    spec["kernel_size"] = {pick(1, 6), pick(1, 6)};
    spec["stride"] = {pick(1, 4), pick(1, 4)};
    spec["dilation"] = {pick(1, 3), pick(1, 3)};
    spec["padding"] = {pick(0, 7), pick(0, 7)};
    spec["output_padding"] = {pick(0, 3), pick(0, 3)};
    Problem p;
    try {
      p = Problem::from_json(spec);
    } catch (const ProblemError&) {
      continue;  // e.g. output_padding too large, or a non-positive output
    }
    const int64_t expected =
        p.batch * p.in_channels * (p.out_channels / p.groups) *
        brute_force_taps(p.height, p.out_height(), p.kernel.h, p.stride.h, p.padding.h,
                         p.dilation.h) *
        brute_force_taps(p.width, p.out_width(), p.kernel.w, p.stride.w, p.padding.w, p.dilation.w);
    ASSERT_EQ(p.multiply_adds(), expected) << spec.dump();
    ++checked;
  }
  EXPECT_GT(checked, 1000) << "too few valid random problems to mean anything";
}

TEST(Limits, LargestSizesValidateQuicklyAndCountExactly) {
  // A kernel of 2^22 taps over 2^24 rows: 2^46 (input, tap) pairs, which a per-pair count would
  // take hours over; every pair lands (stride 1, no padding).
  json spec = base_spec();
  spec["height"] = 1 << 24;
  spec["kernel_size"] = {1 << 22, 1};
  const auto start = std::chrono::steady_clock::now();
  Problem p = Problem::from_json(spec);
  EXPECT_EQ(p.multiply_adds(), int64_t{1} << 46);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 2.0) << "validation and counting must not be O(height x kernel)";
}

struct Overflow {
  const char* label;
  const char* field;
  json spec;
};

class LimitsRefuse : public ::testing::TestWithParam<Overflow> {};

TEST_P(LimitsRefuse, OverflowingSizesNameTheField) {
  try {
    Problem p = Problem::from_json(GetParam().spec);
    FAIL() << "accepted " << GetParam().spec.dump() << " with " << p.multiply_adds()
           << " multiply-adds";
  } catch (const ProblemError& e) {
    EXPECT_EQ(e.field(), GetParam().field) << e.what();
    EXPECT_NE(std::string(e.what()).find(GetParam().field), std::string::npos) << e.what();
  }
}

json with(std::initializer_list<std::pair<const char*, json>> edits) {
  json spec = base_spec();
  for (const auto& [field, value] : edits) spec[field] = value;
  return spec;
}

INSTANTIATE_TEST_SUITE_P(
    Sizes, LimitsRefuse,
    ::testing::Values(
        // One size beyond the per-size limit (2^24): the arithmetic after it could overflow.
        Overflow{"int64_max_batch", "batch", with({{"batch", INT64_MAX}})},
        Overflow{"int64_max_width", "width", with({{"width", INT64_MAX}})},
        Overflow{"huge_stride", "stride", with({{"stride", {1, int64_t{1} << 40}}})},
        Overflow{"huge_dilation", "dilation", with({{"dilation", int64_t{1} << 33}})},
        // A uint64 beyond int64 reads back negative and is refused, not wrapped into a size.
        Overflow{"uint64_max_height", "height", with({{"height", UINT64_MAX}})},
        // Each size legal, their product not: x, y and W elements.
        Overflow{"x_elements", "batch",
                 with({{"batch", 1 << 24}, {"in_channels", 1 << 12}, {"height", 1 << 12}})},
        Overflow{"y_elements", "batch",
                 with({{"batch", 1 << 24},
                       {"out_channels", 1 << 12},
                       {"height", 1 << 12},
                       {"stride", 1 << 4}})},
        Overflow{"w_elements", "kernel_size",
                 with({{"in_channels", 1 << 20},
                       {"out_channels", 1 << 20},
                       {"kernel_size", 1 << 10},
                       {"height", 1}})},
        // Every tensor within 2^46 elements, the multiply-add count past int64: 2^69.
        Overflow{"macs_at_width", "width",
                 with({{"in_channels", 1 << 23},
                       {"out_channels", 1 << 23},
                       {"height", 1 << 11},
                       {"width", 1 << 12}})},
        // The same through a long kernel: 2^24 channel pairs x 2^46 (row, tap) pairs.
        Overflow{"macs_at_height", "height",
                 with({{"in_channels", 1 << 12},
                       {"out_channels", 1 << 12},
                       {"height", 1 << 24},
                       {"kernel_size", {1 << 22, 1}}})}),
    [](const auto& info) { return std::string(info.param.label); });

TEST(Limits, VerificationBytesDoNotOverflowAtTheLargestProblem) {
  // x and y at the largest size validation allows, 2^46 elements each.
  Problem p = Problem::from_json(with({{"batch", 1 << 22},
                                       {"in_channels", 1 << 12},
                                       {"out_channels", 1 << 12},
                                       {"height", 1 << 12}}));
  ASSERT_EQ(p.y_elements(), int64_t{1} << 46);
  const double expected = 4.0 * (p.x_elements() + p.w_elements() + p.out_channels + p.y_elements() +
                                 Verifier::kGuardElements) +
                          8.0 * p.y_elements();
  EXPECT_DOUBLE_EQ(static_cast<double>(verification_bytes(p)), expected);
}

// ---- GPU ----

const Context* gpu() { return gpu_tests::shared_context(); }

TEST(LimitsGpu, ProblemLargerThanTheGpuIsRefusedBeforeAllocation) {
  REQUIRE_GPU();
  // The seed shape at batch 16384: y alone is 256 GiB.
  Problem huge = Problem::seed();
  huge.batch = 16384;
  huge.validate();
  const size_t free_before = gpu()->free_memory();
  try {
    Verifier verifier(*gpu(), huge);
    FAIL() << "a problem needing " << verification_bytes(huge) << " B was accepted with "
           << free_before << " B free";
  } catch (const std::runtime_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("GiB on the GPU"), std::string::npos) << message;
    EXPECT_NE(message.find("free"), std::string::npos) << message;
  }
  const size_t free_after = gpu()->free_memory();
  // Nothing was allocated (nor leaked): the free memory is what it was, give or take the driver.
  EXPECT_LT(free_before > free_after ? free_before - free_after : 0, size_t{64} << 20);
}

// y of the seed shape at batch 513: 513 x 64 x 256 x 256 = 2^31 + 2^22 elements, so every index
// past 2^31 - 1 is exercised (8.6 GB of output; 28 GB on the GPU with inputs and the float64
// reference). Verified in full against the float64 GPU reference, guard band included.
class LimitsGpuLarge : public ::testing::TestWithParam<const char*> {};

TEST_P(LimitsGpuLarge, OutputOfMoreThanTwoToThe31ElementsIsCorrect) {
  REQUIRE_GPU();
  Problem problem = Problem::seed();
  problem.batch = 513;
  problem.validate();
  ASSERT_GT(problem.y_elements(), int64_t{1} << 31);
  const size_t needed = verification_bytes(problem) + (size_t{1} << 30);
  if (gpu()->free_memory() < needed) {
    GTEST_SKIP() << "needs " << needed / 1e9 << " GB free on the GPU, has "
                 << gpu()->free_memory() / 1e9;
  }
  Config config = default_config(problem);
  if (std::string(GetParam()) == "general") {
    bool found = false;
    for (const Config& candidate : enumerate_space(problem)) {
      if (candidate.family == Family::kDirect) {
        config = candidate;
        found = true;
        break;
      }
    }
    ASSERT_TRUE(found) << "the space has no general (direct) kernel";
  }
  Verifier verifier(*gpu(), problem);
  verifier.randomize_inputs(31);
  TrialOptions verify_only;
  verify_only.time_it = false;
  TrialResult trial = run_trial(*gpu(), verifier, config, verify_only);
  RecordProperty("config", config.name());
  RecordProperty("max_abs_error", std::to_string(trial.verification.max_abs_error));
  ASSERT_EQ(trial.disposition, Disposition::kOk) << config.name() << ": " << trial.reason;
  EXPECT_TRUE(trial.verification.guard_intact);
  EXPECT_GT(trial.verification.max_abs_reference, 0.5) << "inputs must not be trivial";
  std::printf("[ INFO     ] %s on y of %lld elements: %s\n", config.name().c_str(),
              static_cast<long long>(problem.y_elements()), trial.verification.summary().c_str());
}

INSTANTIATE_TEST_SUITE_P(Kernels, LimitsGpuLarge, ::testing::Values("default", "general"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace deconvtune

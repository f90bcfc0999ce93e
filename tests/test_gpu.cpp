// GPU tests: skipped (and reported as skipped) without a GPU; run for real on the device. Every
// kernel variant is checked against the float64 GPU reference, which is itself checked against
// PyTorch's float64 goldens. Outputs are poisoned with NaN before each run.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "reference/cpu_reference.hpp"
#include "tests/golden.hpp"
#include "tests/gpu_test_support.hpp"
#include "trial/benchmark.hpp"
#include "trial/verifier.hpp"

namespace deconvtune {
namespace {

const Context* gpu() { return gpu_tests::shared_context(); }

TrialOptions verify_only() {
  TrialOptions options;
  options.time_it = false;
  return options;
}

void expect_configs_correct(Verifier& verifier, const std::vector<Config>& space) {
  ASSERT_FALSE(space.empty());
  const std::vector<CompileResult> compiled =
      compile_configs(verifier.problem(), space, gpu()->info().arch());
  for (size_t i = 0; i < space.size(); ++i) {
    const Config& config = space[i];
    TrialResult trial = run_trial(*gpu(), verifier, config, verify_only(), &compiled[i]);
    EXPECT_EQ(trial.disposition, Disposition::kOk)
        << config.name() << " on " << verifier.problem().key() << ": " << trial.reason;
  }
}

void expect_every_config_correct(Verifier& verifier) {
  expect_configs_correct(verifier, enumerate_space(verifier.problem()));
}

class GoldenGpu : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenGpu, ReferenceAndEveryConfigMatchPyTorch) {
  REQUIRE_GPU();
  testing::Golden golden = testing::load_golden(GetParam());
  Verifier verifier(*gpu(), golden.problem);
  verifier.set_inputs(testing::convert<float>(golden.x), testing::convert<float>(golden.weight),
                      testing::convert<float>(golden.bias));
  std::vector<double> reference = verifier.download_reference();
  ASSERT_EQ(reference.size(), golden.y.size());
  double reference_err = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    reference_err = std::max(reference_err, std::fabs(reference[i] - golden.y[i]));
  }
  EXPECT_LE(reference_err, 1e-9) << "the float64 GPU reference disagrees with PyTorch";

  const std::vector<Config> space = enumerate_space(golden.problem);
  const std::vector<CompileResult> compiled =
      compile_configs(golden.problem, space, gpu()->info().arch());
  for (size_t i = 0; i < space.size(); ++i) {
    const Config& config = space[i];
    TrialResult trial = run_trial(*gpu(), verifier, config, verify_only(), &compiled[i]);
    ASSERT_EQ(trial.disposition, Disposition::kOk) << config.name() << ": " << trial.reason;
    std::vector<float> y = verifier.download_output();
    double err = 0;
    for (size_t i = 0; i < y.size(); ++i) err = std::max(err, std::fabs(y[i] - golden.y[i]));
    EXPECT_LE(err, error_bound(golden.problem) * 4) << config.name();
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenGpu, ::testing::ValuesIn(testing::golden_names()),
                         [](const auto& info) { return info.param; });

TEST(Gpu, SeedShapeDefaultKernelWithinFp32Bound) {
  REQUIRE_GPU();
  Problem seed = Problem::seed();
  Verifier verifier(*gpu(), seed);
  verifier.randomize_inputs(std::random_device{}());
  TrialResult trial = run_trial(*gpu(), verifier, default_config(seed), verify_only());
  ASSERT_EQ(trial.disposition, Disposition::kOk) << trial.reason;
  EXPECT_LE(trial.verification.max_abs_error, 2e-6);
  EXPECT_GT(trial.verification.max_abs_reference, 0.5) << "inputs must not be trivial";
  RecordProperty("seed_max_abs_error", std::to_string(trial.verification.max_abs_error));
}

struct NamedShape {
  const char* name;
  const char* spec;
};

class OddShapeGpu : public ::testing::TestWithParam<NamedShape> {};

// Shapes both the float32 and the dtype/layout suites take.
constexpr const char* kOddChannelsK3s2 =
    R"({"batch": 3, "in_channels": 61, "out_channels": 67, "height": 37, "width": 29,
        "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1})";
constexpr const char* kK5s3Gelu =
    R"({"batch": 2, "in_channels": 32, "out_channels": 48, "height": 19, "width": 23,
        "kernel_size": 5, "stride": 3, "padding": 1, "output_padding": 2, "epilogue": "gelu"})";

TEST_P(OddShapeGpu, EveryConfigMatchesTheReference) {
  REQUIRE_GPU();
  for (Precision precision : {Precision::kFp32, Precision::kTf32}) {
    Problem problem = Problem::from_json(nlohmann::json::parse(GetParam().spec));
    problem.precision = precision;
    Verifier verifier(*gpu(), problem);
    verifier.randomize_inputs(std::random_device{}());
    expect_every_config_correct(verifier);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, OddShapeGpu,
    ::testing::Values(
        NamedShape{"odd_channels_k3s2", kOddChannelsK3s2}, NamedShape{"k5s3_gelu", kK5s3Gelu},
        NamedShape{"groups4_stride1_nobias",
                   R"({"batch": 2, "in_channels": 64, "out_channels": 64, "height": 17, "width": 33,
            "kernel_size": 3, "stride": 1, "padding": 1, "groups": 4, "bias": false})"},
        NamedShape{"dilated_mixed_strides",
                   R"({"batch": 5, "in_channels": 12, "out_channels": 20, "height": 13, "width": 11,
            "kernel_size": [3, 4], "stride": [2, 3], "padding": [2, 0], "output_padding": [0, 2],
            "dilation": [2, 1], "groups": 2, "epilogue": "silu,add:-0.25,clamp:-1:0.5"})"},
        NamedShape{"wide_in_k4s2",
                   R"({"batch": 2, "in_channels": 256, "out_channels": 96, "height": 9, "width": 21,
            "kernel_size": 4, "stride": 2, "padding": 1, "epilogue": "leaky_relu:0.2"})"},
        NamedShape{"wide_in_k5s2",
                   R"({"batch": 1, "in_channels": 512, "out_channels": 64, "height": 7, "width": 13,
            "kernel_size": 5, "stride": 2, "padding": 2, "output_padding": 1})"},
        // Groups of 250 channels (the last streamed chunk part padding) and 65 output channels
        // (a W block of one channel): the packed W's group and block offsets.
        NamedShape{
            "wide_groups2_k3s2",
            R"({"batch": 2, "in_channels": 500, "out_channels": 130, "height": 11, "width": 19,
            "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "groups": 2})"},
        NamedShape{"single_row_k2s2",
                   R"({"batch": 1, "in_channels": 7, "out_channels": 3, "height": 1, "width": 129,
            "kernel_size": 2, "stride": 2})"}),
    [](const auto& info) { return std::string(info.param.name); });

// Staged windows (xl2: pieces of x's windows as tensor map boxes, so widths of 16 bytes'
// multiples), in every dtype, with W streamed and resident. Streamed: 300 channels (the last chunk
// holds 12: with kc16 its one piece part empty, with kc32 its second piece empty), windows
// crossing both side borders and the last input row (the box's zero fill), and two groups of 150
// channels, whose last pieces reach into the next group's channels (which must count as zeros).
// Resident: 40 channels (pieces of 8, the unit's whole window in five) under k3 s2, and 48 (three
// pieces of 16) under k4 s2. Only the xl2 configs: the rest of the space is the odd shapes' work.
TEST(Gpu, StagedWindowsMatchTheReferenceInEveryDtype) {
  REQUIRE_GPU();
  const char* streamed =
      R"({"batch": 2, "in_channels": 300, "out_channels": 72, "height": 9, "width": 24,
          "kernel_size": 4, "stride": 2, "padding": 1, "epilogue": "leaky_relu:0.2,add:0.5",
          "precision": "tf32"})";
  const char* resident_k3 =
      R"({"batch": 3, "in_channels": 40, "out_channels": 72, "height": 7, "width": 24,
          "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1,
          "epilogue": "mish,add:0.5,hardtanh:-1:1,mul:2", "precision": "tf32"})";
  const char* resident_k4 =
      R"({"batch": 2, "in_channels": 48, "out_channels": 40, "height": 9, "width": 24,
          "kernel_size": 4, "stride": 2, "padding": 1, "epilogue": "leaky_relu:0.2",
          "precision": "tf32"})";
  struct Case {
    const char* spec;
    DType dtype;
    int groups;
    bool resident;
    int step;  // every step-th staged config: the pieces' edges, not every knob again
  };
  for (const Case& c :
       {Case{streamed, DType::kFloat32, 1, false, 1}, Case{streamed, DType::kBFloat16, 1, false, 1},
        Case{streamed, DType::kFloat16, 1, false, 1}, Case{streamed, DType::kFloat32, 2, false, 2},
        Case{resident_k3, DType::kFloat32, 1, true, 2},
        Case{resident_k3, DType::kBFloat16, 1, true, 2},
        Case{resident_k4, DType::kFloat32, 1, true, 1},
        Case{resident_k4, DType::kFloat16, 1, true, 1}}) {
    Problem problem = Problem::from_json(nlohmann::json::parse(c.spec));
    problem.dtype = c.dtype;
    problem.groups = c.groups;
    std::vector<Config> staged;
    int index = 0;
    for (const Config& config : enumerate_space(problem)) {
      if (config.family == Family::kWsgemm && config.param("xl") == 2 &&
          (config.param("kc") == 0) == c.resident && index++ % c.step == 0)
        staged.push_back(config);
    }
    EXPECT_GT(staged.size(), 10u) << problem.key();
    Verifier verifier(*gpu(), problem);
    verifier.randomize_inputs(std::random_device{}());
    expect_configs_correct(verifier, staged);
  }
}

// The Hopper family on channels_last (NHWC) float32 under tf32: every step-th config of each x
// path, staged windows (each 4-channel plane one tensor map box landing in the slot) among them,
// with W resident (40 channels under k3 s2, 48 under k4 s2) and streamed (two groups of 148
// channels: the last plane of each group's last chunk lies past it, in the next group's channels,
// which must count as zeros). Odd widths: NHWC rows need no 16-byte multiples.
TEST(Gpu, ChannelsLastHopperKernelsMatchTheReference) {
  REQUIRE_GPU();
  struct Case {
    const char* spec;
    int step;  // every step-th config; not a multiple of 3, the x paths' count (the last knob)
  };
  for (const Case& c : {
           Case{R"({"batch": 3, "in_channels": 40, "out_channels": 72, "height": 7, "width": 23,
                    "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1,
                    "epilogue": "mish,add:0.5,hardtanh:-1:1,mul:2"})",
                2},
           Case{R"({"batch": 2, "in_channels": 48, "out_channels": 40, "height": 9, "width": 21,
                    "kernel_size": 4, "stride": 2, "padding": 1, "epilogue": "leaky_relu:0.2"})",
                2},
           Case{R"({"batch": 2, "in_channels": 296, "out_channels": 72, "height": 9, "width": 19,
                    "kernel_size": 4, "stride": 2, "padding": 1, "groups": 2})",
                5},
       }) {
    Problem problem = Problem::from_json(nlohmann::json::parse(c.spec));
    problem.layout = Layout::kNhwc;
    problem.precision = Precision::kTf32;
    std::vector<Config> hopper;
    int index = 0, staged = 0;
    for (const Config& config : enumerate_space(problem)) {
      if (config.family != Family::kWsgemm || index++ % c.step != 0) continue;
      hopper.push_back(config);
      staged += config.param("xl") == 2 ? 1 : 0;
    }
    EXPECT_GT(staged, 5) << problem.key();
    EXPECT_EQ(default_config(problem).family, Family::kWsgemm) << problem.key();
    Verifier verifier(*gpu(), problem);
    verifier.randomize_inputs(std::random_device{}());
    expect_configs_correct(verifier, hopper);
  }
}

// NaN, +Inf and -Inf in x (and NaN in W) must come out of every kernel as they come out of
// PyTorch's arithmetic, which the float64 reference follows: each output's class (NaN, +Inf, -Inf,
// finite) equal, finite outputs within the precision's bound. An Inf must not become NaN through
// a big + small split, and the seed chain's hardtanh turns +Inf into a finite 2.
namespace nonfinite {
int value_class(double v) { return std::isnan(v) ? 0 : std::isinf(v) ? (v > 0 ? 1 : 2) : 3; }

// Outputs whose every tap lands inside the input. At the border, a tap that falls outside meets
// zero padding in the tensor-core kernels (a NaN weight times 0 is NaN) but is absent in PyTorch.
bool every_tap_inside(const Problem& p, int64_t oh, int64_t ow) {
  for (int64_t kh = 0; kh < p.kernel.h; ++kh) {
    const int64_t th = oh + p.padding.h - kh * p.dilation.h;
    if (th % p.stride.h == 0 && (th < 0 || th / p.stride.h >= p.height)) return false;
  }
  for (int64_t kw = 0; kw < p.kernel.w; ++kw) {
    const int64_t tw = ow + p.padding.w - kw * p.dilation.w;
    if (tw % p.stride.w == 0 && (tw < 0 || tw / p.stride.w >= p.width)) return false;
  }
  return true;
}
}  // namespace nonfinite

TEST(Gpu, NonFiniteInputsPropagateAsInPyTorch) {
  REQUIRE_GPU();
  using nonfinite::value_class;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  for (const char* epilogue : {"mish,add:0.5,hardtanh:-1:1,mul:2", "leaky_relu:0.2"}) {
    for (Precision precision : {Precision::kFp32, Precision::kTf32}) {
      Problem problem = Problem::from_json(nlohmann::json::parse(fmt::format(
          R"({{"batch": 2, "in_channels": 24, "out_channels": 72, "height": 13, "width": 17,
              "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1,
              "epilogue": "{}"}})",
          epilogue)));
      problem.precision = precision;
      const std::vector<Config> space = enumerate_space(problem);
      const std::vector<CompileResult> compiled =
          compile_configs(problem, space, gpu()->info().arch());
      for (bool weight_nan : {false, true}) {
        std::mt19937 random(std::random_device{}());
        std::uniform_real_distribution<float> unit(0.0f, 1.0f), weight(-0.05f, 0.05f);
        std::vector<float> x(problem.x_elements()), w(problem.w_elements()),
            bias(problem.out_channels);
        for (float& v : x) v = unit(random);
        for (float& v : w) v = weight(random);
        for (float& v : bias) v = weight(random);
        // Far apart in one image: outputs that see one kind, and (channel 5 and 6 at one pixel)
        // outputs that see +Inf and -Inf together.
        const int64_t plane = problem.height * problem.width;
        x[0 * plane + 3 * problem.width + 4] = static_cast<float>(nan);
        x[1 * plane + 8 * problem.width + 2] = static_cast<float>(inf);
        x[2 * plane + 5 * problem.width + 12] = static_cast<float>(-inf);
        x[5 * plane + 10 * problem.width + 9] = static_cast<float>(inf);
        x[6 * plane + 10 * problem.width + 9] = static_cast<float>(-inf);
        x[problem.in_channels * plane + 7 * plane + 6 * problem.width + 6] =
            static_cast<float>(inf);
        if (weight_nan) w[17 * (problem.out_channels * 9) + 30 * 9 + 4] = static_cast<float>(nan);
        Verifier verifier(*gpu(), problem);
        verifier.set_inputs(x, w, bias);
        const std::vector<double> reference = verifier.download_reference();
        const int64_t oh_count = problem.out_height(), ow_count = problem.out_width();
        int counts[4] = {0, 0, 0, 0};
        for (double v : reference) ++counts[value_class(v)];
        ASSERT_GT(counts[0], 0) << "the reference must see NaN";
        ASSERT_GT(counts[3], 0);
        if (std::string(epilogue) == "leaky_relu:0.2") {
          ASSERT_GT(counts[1] + counts[2], 0) << "the reference must see infinities";
        }

        const double bound = error_bound(problem);
        for (size_t i = 0; i < space.size(); ++i) {
          ASSERT_TRUE(compiled[i].ok) << space[i].name() << ": " << compiled[i].log;
          LoadedKernel kernel(generate_kernel(problem, space[i]), compiled[i].cubin);
          verifier.poison_output();
          kernel.launch(verifier.x(), verifier.w(), verifier.bias(), verifier.y());
          gpu()->synchronize();
          const std::vector<float> y = verifier.download_output();
          int64_t wrong_class = 0, first_wrong = -1;
          double max_error = 0;
          for (size_t e = 0; e < y.size(); ++e) {
            const int64_t ow = static_cast<int64_t>(e) % ow_count;
            const int64_t oh = static_cast<int64_t>(e) / ow_count % oh_count;
            if (weight_nan && !nonfinite::every_tap_inside(problem, oh, ow)) continue;
            if (value_class(y[e]) != value_class(reference[e])) {
              if (wrong_class++ == 0) first_wrong = static_cast<int64_t>(e);
            } else if (value_class(reference[e]) == 3) {
              max_error = std::max(max_error, std::fabs(y[e] - reference[e]));
            }
          }
          EXPECT_EQ(wrong_class, 0)
              << space[i].name() << " (" << epilogue << (weight_nan ? ", NaN in W" : "")
              << "): first at " << first_wrong << ": got " << y[first_wrong] << ", PyTorch "
              << reference[first_wrong];
          EXPECT_LE(max_error, bound) << space[i].name();
        }
      }
    }
  }
}

TEST(Gpu, VerifierCatchesUnwrittenOutputAndGuardWrites) {
  REQUIRE_GPU();
  Problem problem = testing::load_golden("seed_small").problem;
  Verifier verifier(*gpu(), problem);
  verifier.randomize_inputs(7);
  verifier.poison_output();  // no kernel runs: every element is still NaN
  Verification untouched = verifier.check_output();
  EXPECT_FALSE(untouched.passed());
  EXPECT_TRUE(std::isinf(untouched.max_abs_error));

  TrialResult good = run_trial(*gpu(), verifier, default_config(problem), verify_only());
  ASSERT_EQ(good.disposition, Disposition::kOk) << good.reason;
  // One element past the end of y, as an off-by-one store would write it.
  float stray = 0.0f;
  DT_CU(cuMemcpyHtoD(verifier.y() + 4 * problem.y_elements(), &stray, 4));
  Verification overrun = verifier.check_output();
  EXPECT_FALSE(overrun.guard_intact);
  EXPECT_FALSE(overrun.passed());
}

TEST(Gpu, TrialTimesAVerifiedKernel) {
  REQUIRE_GPU();
  Problem problem = testing::load_golden("seed_small").problem;
  Verifier verifier(*gpu(), problem);
  verifier.randomize_inputs(11);
  TrialOptions options;
  options.timed_runs = 5;
  TrialResult trial = run_trial(*gpu(), verifier, default_config(problem), options);
  ASSERT_EQ(trial.disposition, Disposition::kOk) << trial.reason;
  EXPECT_EQ(trial.timing.runs, 5);
  EXPECT_GT(trial.timing.median_ms, 0.0);
  EXPECT_LE(trial.timing.min_ms, trial.timing.median_ms);
}

// A W-streamed kernel packs W into its workspace before every launch: launches alternating
// between two weight sets must each compute with their own (nothing kept from the launch before).
TEST(Gpu, StreamedKernelRepacksItsWeightsOnEveryLaunch) {
  REQUIRE_GPU();
  const Problem wide = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 2, "in_channels": 256, "out_channels": 72, "height": 11, "width": 13,
          "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "precision": "tf32"})"));
  const Config config = default_config(wide, gpu()->info().limits());
  ASSERT_GT(config.param("kc"), 0) << config.name();
  const GeneratedKernel kernel = generate_kernel(wide, config, gpu()->info().limits());
  CompileOptions options;
  options.arch = gpu()->info().arch();
  const CompileResult compiled = compile_cuda(kernel.source, options);
  ASSERT_TRUE(compiled.ok) << compiled.log;
  LoadedKernel loaded(kernel, compiled.cubin);
  EXPECT_GT(loaded.workspace_bytes(), 0u);
  Verifier first(*gpu(), wide), second(*gpu(), wide);
  first.randomize_inputs(1);
  second.randomize_inputs(2);
  for (int round = 0; round < 2; ++round) {
    for (Verifier* verifier : {&first, &second}) {
      verifier->poison_output();
      loaded.launch(verifier->x(), verifier->w(), verifier->bias(), verifier->y());
      gpu()->synchronize();
      const Verification check = verifier->check_output();
      EXPECT_TRUE(check.passed()) << config.name() << " round " << round << ": " << check.summary();
    }
  }
}

TEST(Gpu, LoadRefusesALaunchWhoseSharedMemoryDisagreesWithTheKernel) {
  REQUIRE_GPU();
  const Problem problem = testing::load_golden("seed_small").problem;
  GeneratedKernel kernel = generate_kernel(problem, default_config(problem));
  ASSERT_GT(kernel.launch.shared_bytes, 0u) << kernel.config_name;
  CompileOptions options;
  options.arch = gpu()->info().arch();
  const CompileResult compiled = compile_cuda(kernel.source, options);
  ASSERT_TRUE(compiled.ok) << compiled.log;
  EXPECT_NO_THROW(LoadedKernel(kernel, compiled.cubin));
  kernel.launch.shared_bytes -= 16;  // a host geometry drifted from the template's arithmetic
  try {
    LoadedKernel drifted(kernel, compiled.cubin);
    ADD_FAILURE() << "a launch 16 B short of the kernel's shared memory was loaded";
  } catch (const std::logic_error& error) {
    EXPECT_NE(std::string(error.what()).find("expects"), std::string::npos) << error.what();
  }
}

// A staged kernel's module states the tensor map of x the loader encodes; a statement the TMA
// engine cannot take (here a box of no channels) is refused at load, never launched.
TEST(Gpu, LoadRefusesAnUnusableTensorMapOfX) {
  REQUIRE_GPU();
  const Problem problem = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 1, "in_channels": 300, "out_channels": 72, "height": 9, "width": 24,
          "kernel_size": 4, "stride": 2, "padding": 1, "precision": "tf32"})"));
  GeneratedKernel kernel = generate_kernel(
      problem, Config::from_name("wsgemm_tf32_cp16_rp2_st3_rs1_kc16_coop1_mc1_xl2_mishexact"));
  CompileOptions options;
  options.arch = gpu()->info().arch();
  const CompileResult compiled = compile_cuda(kernel.source, options);
  ASSERT_TRUE(compiled.ok) << compiled.log;
  EXPECT_NO_THROW(LoadedKernel(kernel, compiled.cubin));
  const std::string box = "dt::PIECE, 1};";
  const size_t at = kernel.source.find(box);
  ASSERT_NE(at, std::string::npos) << "the module's statement of its box";
  kernel.source.replace(at, box.size(), "0, 1};");
  const CompileResult unusable = compile_cuda(kernel.source, options);
  ASSERT_TRUE(unusable.ok) << unusable.log;
  try {
    LoadedKernel refused(kernel, unusable.cubin);
    ADD_FAILURE() << "a tensor map box of no channels was loaded";
  } catch (const std::logic_error& error) {
    EXPECT_NE(std::string(error.what()).find("unusable tensor map"), std::string::npos)
        << error.what();
  }
}

// Every (dtype, layout) the problem takes, float32 NCHW (the suites above) aside.
std::vector<std::pair<DType, Layout>> other_dtypes_and_layouts() {
  return {{DType::kFloat32, Layout::kNhwc},
          {DType::kBFloat16, Layout::kNchw},
          {DType::kBFloat16, Layout::kNhwc},
          {DType::kFloat16, Layout::kNchw},
          {DType::kFloat16, Layout::kNhwc}};
}

// Every config of the general kernel and of the Hopper family (the two families that serve
// these; in NHWC under fp32 precision its 3xtf32 configs, x by cp.async), against the float64 GPU
// reference on the same rounded inputs, within verification_bound: fp32's accumulation bound plus
// the store's rounding, u |y|.
class DtypeLayoutGpu : public ::testing::TestWithParam<NamedShape> {};

TEST_P(DtypeLayoutGpu, EveryConfigMatchesTheReference) {
  REQUIRE_GPU();
  for (auto [dtype, layout] : other_dtypes_and_layouts()) {
    Problem problem = Problem::from_json(nlohmann::json::parse(GetParam().spec));
    problem.dtype = dtype;
    problem.layout = layout;
    SCOPED_TRACE(problem.key());
    Verifier verifier(*gpu(), problem);
    verifier.randomize_inputs(std::random_device{}());
    expect_every_config_correct(verifier);
    for (const Config& config : enumerate_space(problem)) {
      EXPECT_TRUE(config.family == Family::kDirect || config.family == Family::kWsgemm)
          << config.name();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DtypeLayoutGpu,
    ::testing::Values(
        NamedShape{"odd_channels_k3s2", kOddChannelsK3s2}, NamedShape{"k5s3_gelu", kK5s3Gelu},
        NamedShape{"dilated_mixed_strides_odd_count",
                   R"({"batch": 5, "in_channels": 12, "out_channels": 21, "height": 13, "width": 11,
            "kernel_size": [3, 4], "stride": [2, 3], "padding": [2, 0], "output_padding": [0, 2],
            "dilation": [2, 1], "groups": 3, "epilogue": "silu,add:-0.25,clamp:-1:0.5"})"},
        NamedShape{"wide_in_k4s2_nobias",
                   R"({"batch": 2, "in_channels": 256, "out_channels": 96, "height": 9, "width": 21,
            "kernel_size": 4, "stride": 2, "padding": 1, "bias": false,
            "epilogue": "leaky_relu:0.2"})"},
        NamedShape{"seed_small_chain",
                   R"({"batch": 2, "in_channels": 16, "out_channels": 8, "height": 15, "width": 17,
            "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1})"}),
    [](const auto& info) { return std::string(info.param.name); });

// The GPU reference and the general kernel for 16-bit and NHWC problems against the CPU reference
// (scatter form, its own indexing) on host inputs: the reference of the same rounded values in y's
// layout, and the kernel within the verifier's bound of it.
TEST(Gpu, SixteenBitAndChannelsLastReferenceMatchesTheCpuReference) {
  REQUIRE_GPU();
  for (auto [dtype, layout] : other_dtypes_and_layouts()) {
    Problem problem = Problem::from_json(nlohmann::json::parse(
        R"({"batch": 2, "in_channels": 6, "out_channels": 9, "height": 7, "width": 5,
            "kernel_size": [3, 2], "stride": [2, 3], "padding": 1, "output_padding": [1, 0],
            "groups": 3, "epilogue": "mish,add:0.5,hardtanh:-1:1,mul:2"})"));
    problem.dtype = dtype;
    problem.layout = layout;
    SCOPED_TRACE(problem.key());
    std::mt19937 random(11);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f), weight(-0.3f, 0.3f);
    std::vector<float> x(problem.x_elements()), w(problem.w_elements()), bias(problem.out_channels);
    for (float& v : x) v = unit(random);
    for (float& v : w) v = weight(random);
    for (float& v : bias) v = weight(random);
    Verifier verifier(*gpu(), problem);
    verifier.set_inputs(x, w, bias);
    const std::vector<double> expected =
        cpu_reference(problem, testing::convert<double>(x), testing::convert<double>(w),
                      testing::convert<double>(bias));
    const std::vector<double> reference = verifier.download_reference();
    ASSERT_EQ(reference.size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      ASSERT_NEAR(reference[i], expected[i], 1e-12) << "element " << i;
    }
    TrialResult trial = run_trial(*gpu(), verifier, default_config(problem), verify_only());
    ASSERT_EQ(trial.disposition, Disposition::kOk) << trial.reason;
    const std::vector<float> y = verifier.download_output();
    double largest = 0, error = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      largest = std::max(largest, std::fabs(expected[i]));
      error = std::max(error, std::fabs(y[i] - expected[i]));
      // Rounded once: y is the stored type's value nearest the fp32 result, so it is one of the
      // type's values (a float32 round trip through the type leaves it unchanged).
      ASSERT_EQ(round_to(dtype, y[i]), y[i]);
    }
    EXPECT_LE(error, verification_bound(problem, largest));
  }
}

TEST(Gpu, SixteenBitVerifierCatchesUnwrittenOutputAndGuardWrites) {
  REQUIRE_GPU();
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    // 1 x 3 x 5 x 7 outputs: an odd count, so y ends mid-word and the guard band starts there.
    Problem problem = Problem::from_json(nlohmann::json::parse(
        R"({"batch": 1, "in_channels": 4, "out_channels": 3, "height": 3, "width": 4,
            "kernel_size": 3, "stride": 2, "padding": 1})"));
    problem.dtype = dtype;
    ASSERT_EQ(problem.y_elements() % 2, 1) << problem.y_elements();
    Verifier verifier(*gpu(), problem);
    verifier.randomize_inputs(7);
    verifier.poison_output();
    Verification untouched = verifier.check_output();
    EXPECT_FALSE(untouched.passed());
    EXPECT_TRUE(std::isinf(untouched.max_abs_error));
    TrialResult good = run_trial(*gpu(), verifier, default_config(problem), verify_only());
    ASSERT_EQ(good.disposition, Disposition::kOk) << good.reason;
    const uint16_t stray = 0;
    DT_CU(cuMemcpyHtoD(verifier.y() + 2 * problem.y_elements(), &stray, 2));
    Verification overrun = verifier.check_output();
    EXPECT_FALSE(overrun.guard_intact);
    EXPECT_FALSE(overrun.passed());
  }
}

}  // namespace
}  // namespace deconvtune

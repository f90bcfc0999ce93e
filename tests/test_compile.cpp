// NVRTC needs no GPU: generation and compilation of every variant are CPU tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string_view>
#include <tuple>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "codegen/templates.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "trial/benchmark.hpp"

namespace deconvtune {
namespace {

std::vector<Problem> compile_problems() {
  Problem seed_tf32 = Problem::seed();
  seed_tf32.precision = Precision::kTf32;
  return {Problem::seed(), seed_tf32,
          Problem::from_json(nlohmann::json::parse(
              R"({"batch": 3, "in_channels": 61, "out_channels": 67, "height": 97, "width": 75,
                  "kernel_size": [5, 3], "stride": [3, 2], "padding": [1, 2], "output_padding": [2, 1],
                  "dilation": 1, "groups": 1, "bias": false, "epilogue": "gelu,mul:1.5"})")),
          Problem::from_json(nlohmann::json::parse(
              R"({"batch": 2, "in_channels": 128, "out_channels": 128, "height": 33, "width": 31,
                  "kernel_size": 3, "stride": 1, "padding": 1, "dilation": 2, "groups": 4,
                  "epilogue": "silu,clamp:-1:1"})"))};
}

// Configs of `space` such that each family's every parameter value appears in at least one, plus
// the default: sm_80 is a second arch for the same sources, and compiling its whole space again
// would double the suite's longest test for little more than ptxas's own coverage.
std::vector<Config> covering_subset(const std::vector<Config>& space,
                                    const Config& default_config) {
  std::set<std::tuple<Family, std::string, int>> seen;
  std::vector<Config> subset;
  for (const Config& config : space) {
    bool adds = config == default_config;
    for (const auto& [name, value] : config.params) {
      adds = seen.insert({config.family, name, value}).second || adds;
    }
    if (adds) subset.push_back(config);
  }
  return subset;
}

// ptxas serialises the wgmmas of a kernel whose other instructions touch their operand or
// accumulator registers while they are in flight, and says so in its report (C7513-C7515,
// "Potential Performance Loss"; bench/probes/wgmma_rsx_probe.cu's first form drew it).
bool wgmma_serialized(const std::string& log) {
  return log.find("wgmma.mma_async instructions are serialized") != std::string::npos;
}

// sm_80's space has no wgmma configs.
DeviceLimits a100_limits() {
  DeviceLimits a100;
  a100.sm_major = 8;
  a100.sm_count = 108;
  a100.max_shared_per_block = 163 * 1024;
  a100.max_shared_per_sm = 164 * 1024;
  return a100;
}

TEST(Compile, EveryConfigOfTheSpaceCompilesForSm90aAndACoveringSetForSm80) {
  const DeviceLimits a100 = a100_limits();
  // Staged windows with W resident share their staging with the streamed ones and the rest with
  // cp.async's: a covering set of those (the seed's 52 would add two minutes to CI on two cores).
  auto on_sm90a = [](const Problem& problem) {
    std::vector<Config> space, staged_resident;
    for (const Config& config : enumerate_space(problem)) {
      const bool staged = config.family == Family::kWsgemm && config.param("xl") == 2 &&
                          config.param("kc") == 0 && !(config == default_config(problem));
      (staged ? staged_resident : space).push_back(config);
    }
    if (!staged_resident.empty()) {
      for (const Config& config : covering_subset(staged_resident, staged_resident.front()))
        space.push_back(config);
    }
    return space;
  };
  for (const Problem& problem : compile_problems()) {
    for (const char* arch : {"sm_80", "sm_90a"}) {
      const bool sm80 = std::string_view(arch) == "sm_80";
      const std::vector<Config> space =
          sm80 ? covering_subset(enumerate_space(problem, a100), default_config(problem, a100))
               : on_sm90a(problem);
      const std::vector<CompileResult> results = compile_configs(problem, space, arch);
      for (size_t i = 0; i < space.size(); ++i) {
        const Config& config = space[i];
        const CompileResult& result = results[i];
        ASSERT_TRUE(result.ok) << config.name() << " for " << arch << ":\n" << result.log;
        EXPECT_FALSE(result.cubin.empty());
        EXPECT_FALSE(wgmma_serialized(result.log)) << config.name() << " for " << arch << ":\n"
                                                   << result.log;
        // From ptxas's report, or from the cubin where NVRTC's cache (with a driver) ran no ptxas.
        EXPECT_GT(result.resources.registers, 0) << result.log;
        // Spills are reported for every config; the configs expected to win (each problem's
        // default, chosen from H100 measurements) must have none on sm_90. (sm_80's ptxas spills
        // 16 B of the fp32 seed default; that is reported, not failed.) From the cubin alone
        // they are known only where the stack frame is 0, and unknown counts as may-spill.
        if (result.resources.spills()) {
          std::printf("spills: %s %s %d B stored / %d B loaded (-1: unknown, %d B stack frame)\n",
                      config.name().c_str(), arch, result.resources.spill_store_bytes,
                      result.resources.spill_load_bytes, result.resources.stack_bytes);
        }
        if (config == default_config(problem) && !sm80) {
          EXPECT_FALSE(result.resources.spills()) << config.name() << "\n" << result.log;
        }
        RecordProperty(config.name() + "_" + arch + "_registers", result.resources.registers);
      }
    }
  }
}

// The launch's shared memory comes from the host's copy of the template's tile arithmetic; the
// kernel states its own figure in dt_shared_bytes, which the PTX shows as an initialised global.
int kernel_shared_bytes(const std::string& ptx) {
  const std::string marker = "dt_shared_bytes = ";
  const size_t at = ptx.find(marker);
  if (at == std::string::npos) return -1;
  return std::stoi(ptx.substr(at + marker.size()));
}

// How PTX spells the module's statement of its tensor map of x (dt_x_tensor_map: element bytes,
// x's extents, the box): the ints' little-endian bytes, trailing zeros left out.
std::string stated_tensor_map(std::initializer_list<int> values) {
  std::string stated = "dt_x_tensor_map[36] = {";
  for (int value : values) {
    for (int byte = 0; byte < 4; ++byte)
      stated += std::to_string((value >> (8 * byte)) & 255) + ", ";
  }
  stated.resize(stated.size() - std::string("0, 0, 0, ").size() - 2);
  return stated + "}";
}

// The PTX of `config`'s kernel for `problem` (compute_90a: no ptxas run needed).
std::string kernel_ptx(const Problem& problem, const Config& config) {
  CompileOptions options;
  options.arch = "compute_90a";
  options.want_ptx = true;
  const CompileResult compiled = compile_cuda(generate_kernel(problem, config).source, options);
  EXPECT_TRUE(compiled.ok) << compiled.log;
  return compiled.ptx;
}

TEST(Compile, HostTileGeometryAgreesWithTheKernelsSharedMemory) {
  std::vector<Problem> problems = compile_problems();
  // Strides, paddings and dilations that move the phase shifts both ways, including pad > k.
  for (const char* spec : {
           R"({"batch": 1, "in_channels": 20, "out_channels": 24, "height": 9, "width": 11,
               "kernel_size": [4, 2], "stride": [4, 3], "padding": [5, 0], "dilation": [1, 3]})",
           R"({"batch": 1, "in_channels": 16, "out_channels": 40, "height": 7, "width": 5,
               "kernel_size": [1, 6], "stride": [2, 5], "padding": [0, 7], "dilation": [2, 1]})",
           // W streamed (kc, coop): 264 channels of k4 do not stay resident.
           R"({"batch": 1, "in_channels": 264, "out_channels": 72, "height": 6, "width": 10,
               "kernel_size": 4, "stride": 2, "padding": 1, "precision": "tf32"})",
       }) {
    problems.push_back(Problem::from_json(nlohmann::json::parse(spec)));
  }
  auto every = [](const std::vector<Config>& configs, size_t step) {
    std::vector<Config> sample;
    for (size_t i = 0; i < configs.size(); i += step) sample.push_back(configs[i]);
    return sample;
  };
  // Every sixteenth config of each space, spread over all its knobs, keeps the test short (CI runs
  // on two cores); the staged configs, whose layout differs most, are sampled apart below.
  std::vector<std::pair<Problem, std::vector<Config>>> cases;
  for (const Problem& problem : problems)
    cases.emplace_back(problem, every(enumerate_space(problem), 16));
  // Staged windows (xl2) need 16-byte rows: every twelfth of those configs alone, for 32-bit and
  // 16-bit x (the staging ring holds x's own type), for k3 s2, whose two row classes span
  // different window rows (one tensor map box serves both), and with W resident (40 channels:
  // the whole window in pieces of 8).
  // In NHWC each plane is a box of its own, padded to 128-byte multiples (float32 only).
  for (const auto& [dtype, kernel, channels, layout] :
       {std::tuple{DType::kFloat32, 4, 300, Layout::kNchw},
        std::tuple{DType::kBFloat16, 4, 300, Layout::kNchw},
        std::tuple{DType::kFloat32, 3, 300, Layout::kNchw},
        std::tuple{DType::kFloat32, 3, 40, Layout::kNchw},
        std::tuple{DType::kFloat32, 4, 300, Layout::kNhwc},
        std::tuple{DType::kFloat32, 3, 40, Layout::kNhwc}}) {
    Problem problem = Problem::from_json(nlohmann::json::parse(
        R"({"batch": 1, "in_channels": 300, "out_channels": 72, "height": 9, "width": 24,
            "kernel_size": 4, "stride": 2, "padding": 1, "precision": "tf32"})"));
    problem.dtype = dtype;
    problem.layout = layout;
    problem.kernel = {kernel, kernel};
    problem.in_channels = channels;
    std::vector<Config> staged;
    for (const Config& config : enumerate_space(problem)) {
      if (config.family == Family::kWsgemm && config.param("xl") == 2) staged.push_back(config);
    }
    ASSERT_GT(staged.size(), 24u) << to_string(dtype);
    // (NHWC differs from NCHW only in the planes' padding: half as many of its configs.)
    cases.emplace_back(problem, every(staged, layout == Layout::kNhwc ? 24 : 12));
  }
  CompileOptions options;
  options.arch = "compute_90a";  // PTX only: the figure is visible without running ptxas
  int checked = 0;
  for (const auto& [problem, configs] : cases) {
    for (const Config& config : configs) {
      const GeneratedKernel kernel = generate_kernel(problem, config);
      if (kernel.launch.shared_bytes == 0) continue;  // the direct kernel needs none
      const CompileResult compiled = compile_cuda(kernel.source, options);
      ASSERT_TRUE(compiled.ok) << kernel.config_name << "\n" << compiled.log;
      EXPECT_EQ(kernel_shared_bytes(compiled.ptx), static_cast<int>(kernel.launch.shared_bytes))
          << kernel.config_name << " on " << problem.key();
      ++checked;
    }
  }
  EXPECT_GT(checked, 40);
}

// A streamed kernel carries a second entry (the W packer) and states its workspace; ptxas's report
// of the module is the main kernel's, the larger one.
TEST(Compile, StreamedDefaultCompilesWithItsPackerAndNoSpills) {
  const Problem wide = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 2, "in_channels": 256, "out_channels": 128, "height": 16, "width": 16,
          "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "precision": "tf32"})"));
  const Config config = default_config(wide);
  ASSERT_GT(config.param("kc"), 0) << config.name();
  const GeneratedKernel kernel = generate_kernel(wide, config);
  CompileOptions options;
  options.want_ptx = true;
  const CompileResult compiled = compile_cuda(kernel.source, options);
  ASSERT_TRUE(compiled.ok) << compiled.log;
  EXPECT_NE(compiled.ptx.find(".entry deconv_wsgemm_pack"), std::string::npos);
  EXPECT_NE(compiled.ptx.find("dt_workspace_bytes = "), std::string::npos);
  EXPECT_EQ(compiled.resources.registers,
            cubin_resources(compiled.cubin, "deconv_wsgemm").registers);
  EXPECT_FALSE(compiled.resources.spills()) << compiled.log;
}

// Staged windows (xl2) copy each piece of a window as one box of a tensor map of x, which the
// module describes (dt_x_tensor_map: element bytes, x's extents, the box) for the loader to
// encode; one bulk copy per (channel, row) instead cost k4s2_wide a third of its time.
TEST(Compile, StagedWindowsCopyEachPieceAsOneTensorMapBox) {
  const Problem problem = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 2, "in_channels": 256, "out_channels": 128, "height": 12, "width": 20,
          "kernel_size": 4, "stride": 2, "padding": 1, "precision": "tf32"})"));
  const std::string ptx = kernel_ptx(
      problem, Config::from_name("wsgemm_tf32_cp16_rp2_st3_rs1_kc16_coop1_mc1_xl2_mishexact"));
  auto count = [&](const std::string& text) {
    int n = 0;
    for (size_t at = ptx.find(text); at != std::string::npos; at = ptx.find(text, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("cp.async.bulk.tensor.4d"), 2 * 2) << "one per row class, at two call sites";
  // The W chunks stay plain bulk copies: one per class.
  EXPECT_EQ(count("cp.async.bulk.shared::cluster.global"), 2);
  // 4-byte elements; x 20 x 12 x 256 x 2; box: 3 columns of skew (the window's first column,
  // -1, is 3 past the 16-byte boundary at -4) + cp16 + 2 shift columns, rounded to 4 floats (24),
  // 2 * rp2 + 1 window rows (5), 16 channels, one image.
  const std::string stated = stated_tensor_map({4, 20, 12, 256, 2, 24, 5, 16, 1});
  EXPECT_NE(ptx.find(stated), std::string::npos) << stated;
  EXPECT_NE(ptx.find(".param .align 64 .b8 deconv_wsgemm_param_5[128]"), std::string::npos);
}

// Staged NHWC windows: a pixel's channels are contiguous, the K-major layout the tensor cores
// read, so each 4-channel plane of a window is one box of a tensor map over (channel, w, h, n)
// that lands in its slot as it is: no staging ring, no per-element copies.
TEST(Compile, StagedNhwcWindowsLandEachPlaneAsOneBoxInItsSlot) {
  Problem problem = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 2, "in_channels": 256, "out_channels": 128, "height": 12, "width": 21,
          "kernel_size": 4, "stride": 2, "padding": 1, "precision": "tf32"})"));
  problem.layout = Layout::kNhwc;
  const Config config =
      Config::from_name("wsgemm_tf32_cp16_rp2_st3_rs1_kc16_coop1_mc1_xl2_mishexact");
  ASSERT_EQ(why_illegal(problem, config, {}), "");
  const std::string ptx = kernel_ptx(problem, config);
  EXPECT_EQ(kernel_shared_bytes(ptx),
            static_cast<int>(generate_kernel(problem, config).launch.shared_bytes));
  EXPECT_NE(ptx.find("cp.async.bulk.tensor.4d"), std::string::npos);
  EXPECT_EQ(ptx.find("cp.async.ca.shared"), std::string::npos) << "no per-element copy";
  // 4-byte elements; x 256 x 21 x 12 x 2 (channel, w, h, n); box: 4 channels, cp16 + 2 shift
  // columns, 2 * rp2 + 1 window rows, one image.
  const std::string stated = stated_tensor_map({4, 256, 21, 12, 2, 4, 18, 5, 1});
  EXPECT_NE(ptx.find(stated), std::string::npos) << stated;
}

// The consumers' unit order (templates/wsgemm.cuh, ORDER_UNITS): where the two consumer
// warpgroups alternate units of streamed W, one named barrier per direction between them (each
// consumer arrives once and waits once per unit); none with W resident, where in-order arrivals
// already order the slots' rounds, nor where cooperative consumers both take every unit. The PTX
// keeps the inline barriers as written, so they can be counted there.
TEST(Compile, ConsumersOrderUnitsOnlyWhereTheyAlternateStreamedUnits) {
  const Problem wide = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 2, "in_channels": 256, "out_channels": 128, "height": 16, "width": 16,
          "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "precision": "tf32"})"));
  Problem resident = Problem::seed();
  resident.precision = Precision::kTf32;
  auto count = [](const std::string& text, const std::regex& pattern) {
    return std::distance(std::sregex_iterator(text.begin(), text.end(), pattern),
                         std::sregex_iterator());
  };
  const std::regex arrive(R"(bar\.arrive\s+%r\d+,\s*256;)"), wait(R"(bar\.sync\s+%r\d+,\s*256;)");
  for (auto [problem, part, ordered] : {std::tuple{wide, "_rs0_kc16_coop0_mc1_xl0_", true},
                                        {wide, "_rs0_kc16_coop1_mc1_xl0_", false},
                                        {resident, "_rs0_kc0_coop0_mc1_xl0_", false}}) {
    const std::vector<Config> space = enumerate_space(problem);
    const std::string wanted = part;  // (a lambda cannot capture a structured binding in C++17)
    const auto config = std::find_if(space.begin(), space.end(), [&](const Config& c) {
      return c.family == Family::kWsgemm && c.name().find(wanted) != std::string::npos;
    });
    ASSERT_NE(config, space.end()) << part;
    CompileOptions options;
    options.arch = "compute_90a";  // PTX only
    const CompileResult compiled = compile_cuda(generate_kernel(problem, *config).source, options);
    ASSERT_TRUE(compiled.ok) << compiled.log;
    EXPECT_EQ(count(compiled.ptx, arrive), ordered ? 1 : 0) << config->name();
    EXPECT_EQ(count(compiled.ptx, wait), ordered ? 1 : 0) << config->name();
  }
}

// Every (dtype, layout) of two odd problems: only the general kernel and the Hopper family serve
// them (pgemm says why not), and each config of the general kernel compiles for sm_90a (the default
// for sm_80 too) without spills, as does the float64 reference of the same variant.
TEST(Compile, GeneralKernelOfEveryDtypeAndLayoutCompilesWithoutSpills) {
  const std::vector<Problem> shapes = {compile_problems()[2], compile_problems()[3]};
  for (const Problem& shape : shapes) {
    for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
      for (Layout layout : {Layout::kNchw, Layout::kNhwc}) {
        Problem problem = shape;
        problem.dtype = dtype;
        problem.layout = layout;
        SCOPED_TRACE(problem.key());
        const bool float32_nchw = dtype == DType::kFloat32 && layout == Layout::kNchw;
        const std::vector<Config> space = enumerate_space(problem);
        std::vector<Config> direct;
        for (const Config& config : space) {
          if (config.family == Family::kDirect) direct.push_back(config);
        }
        ASSERT_FALSE(direct.empty());
        if (!float32_nchw) {
          // Besides the general kernel only wsgemm serves other types and layouts. 16-bit x
          // comes through registers, or staged as NCHW rows (cp.async and NHWC planes land x as
          // it is, unwidened), under TF32 math (exact on 16-bit values).
          bool hopper = false;
          for (const Config& config : space) {
            if (config.family == Family::kDirect) continue;
            hopper = true;
            EXPECT_EQ(config.family, Family::kWsgemm) << config.name();
            if (dtype == DType::kFloat32) continue;
            EXPECT_EQ(config.param("xl"), layout == Layout::kNchw ? config.param("xl") : 1)
                << config.name();
            EXPECT_NE(config.param("xl"), 0) << config.name();
            EXPECT_EQ(config.math, MathMode::kTf32) << config.name();
          }
          EXPECT_EQ(default_config(problem).family == Family::kWsgemm, hopper)
              << "the Hopper family is the default wherever it serves the problem";
          Problem float32 = shape;
          for (const Config& config : enumerate_space(float32)) {
            if (config.family != Family::kPgemm) continue;
            EXPECT_NE(why_illegal(problem, config, {}).find("takes float32 NCHW only"),
                      std::string::npos)
                << config.name();
            break;
          }
        }
        for (const char* arch : {"sm_90a", "sm_80"}) {
          CompileOptions options;
          options.arch = arch;
          for (const Config& config : direct) {
            // sm_80 is a second arch for the same source: its default is enough.
            if (std::string_view(arch) == "sm_80" && !(config == default_config(problem))) continue;
            const CompileResult compiled =
                compile_cuda(generate_kernel(problem, config).source, options);
            ASSERT_TRUE(compiled.ok) << config.name() << " " << arch << ":\n" << compiled.log;
            // Every spill is reported, as for float32 NCHW (EveryConfigOfTheSpace...).
            if (compiled.resources.spills()) {
              std::printf("spills: %s %s %s %d B stored / %d B loaded (%d B stack frame)\n",
                          problem.key().c_str(), config.name().c_str(), arch,
                          compiled.resources.spill_store_bytes, compiled.resources.spill_load_bytes,
                          compiled.resources.stack_bytes);
            }
            // The float32 NCHW c1 configs spill a few bytes on sm_90a (reported); the variants
            // of the other types and layouts spill in none.
            if (!float32_nchw || config == default_config(problem)) {
              EXPECT_FALSE(compiled.resources.spills()) << config.name() << "\n" << compiled.log;
            }
          }
          const CompileResult reference = compile_cuda(generate_reference_source(problem), options);
          ASSERT_TRUE(reference.ok) << reference.log;
        }
      }
    }
  }
}

// The Hopper family on 16-bit tensors: the xl1 sibling of each float32 default (W resident and W
// streamed), in bfloat16 and float16, NCHW and NHWC, compiles for sm_90a without spills; in NHWC
// its staged sibling is refused (the boxes would land 16-bit planes the TF32 wgmmas cannot read).
TEST(Compile, SixteenBitWsgemmCompilesWithoutSpills) {
  Problem streamed = compile_problems()[1];
  streamed.in_channels = 256;
  streamed.out_channels = 128;
  for (Problem shape : {compile_problems()[1], streamed}) {
    shape.batch = 2;
    std::string name = default_config(shape).name();
    ASSERT_EQ(default_config(shape).family, Family::kWsgemm) << name;
    // The float32 default's geometry with x through registers (its own xl may be 0 or 2).
    name = std::regex_replace(name, std::regex("_xl[0-9]_"), "_xl1_");
    for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
      for (Layout layout : {Layout::kNchw, Layout::kNhwc}) {
        Problem problem = shape;
        problem.dtype = dtype;
        problem.layout = layout;
        const Config config = Config::from_name(name);
        ASSERT_EQ(why_illegal(problem, config, {}), "") << problem.key() << " " << name;
        const CompileResult compiled = compile_cuda(generate_kernel(problem, config).source, {});
        ASSERT_TRUE(compiled.ok) << problem.key() << " " << name << ":\n" << compiled.log;
        EXPECT_FALSE(compiled.resources.spills()) << problem.key() << " " << name;
        EXPECT_FALSE(wgmma_serialized(compiled.log)) << problem.key() << " " << name << ":\n"
                                                     << compiled.log;
        if (layout == Layout::kNhwc) {
          const Config staged =
              Config::from_name(std::regex_replace(name, std::regex("_xl1_"), "_xl2_"));
          EXPECT_NE(why_illegal(problem, staged, {}).find("registers (xl1)"), std::string::npos)
              << why_illegal(problem, staged, {});
        }
      }
    }
  }
}

TEST(Compile, ArchNumberReadsEveryDigit) {
  EXPECT_EQ(arch_number("sm_90a"), 90);
  EXPECT_EQ(arch_number("sm_80"), 80);
  EXPECT_EQ(arch_number("compute_100"), 100);  // not 1.0: three-digit capabilities exist
  EXPECT_EQ(arch_number("sm_120a"), 120);
  EXPECT_EQ(arch_number("hopper"), -1);
  EXPECT_EQ(arch_number("sm_9"), -1);
  EXPECT_EQ(arch_number("sm_90b"), -1);
}

TEST(Compile, WgmmaConfigForPlainSm90SaysItNeedsSm90a) {
  Problem seed = Problem::seed();
  seed.precision = Precision::kTf32;
  const GeneratedKernel kernel = generate_kernel(
      seed, Config::from_name("pgemm_tf32_bn64_rp2_cp64_wm4_wn2_st1_xs0_wg1_mishfast"));
  CompileOptions options;
  options.arch = "sm_90";
  const CompileResult plain = compile_cuda(kernel.source, options);
  EXPECT_FALSE(plain.ok);
  EXPECT_NE(plain.log.find("sm_90a"), std::string::npos) << plain.log;
}

TEST(Compile, FailureCarriesTheLogAndOptions) {
  CompileResult result =
      compile_cuda("extern \"C\" __global__ void k() { undefined_thing(); }", {});
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.log.find("undefined_thing"), std::string::npos) << result.log;
  EXPECT_NE(std::find(result.options.begin(), result.options.end(),
                      std::string("--gpu-architecture=") + kDefaultArch),
            result.options.end());
  CompileOptions misspelt;
  misspelt.arch = "sm90";
  EXPECT_THROW(compile_cuda("", misspelt), std::invalid_argument);
}

TEST(Compile, PtxForVirtualArchAndOnRequest) {
  GeneratedKernel kernel = generate_kernel(Problem::seed(), default_config(Problem::seed()));
  CompileOptions options;
  options.arch = "compute_90";
  CompileResult virtual_arch = compile_cuda(kernel.source, options);
  ASSERT_TRUE(virtual_arch.ok) << virtual_arch.log;
  EXPECT_NE(virtual_arch.ptx.find(".entry " + kernel.kernel_name), std::string::npos);
  options.arch = "sm_90";
  options.want_ptx = true;
  CompileResult real_arch = compile_cuda(kernel.source, options);
  ASSERT_TRUE(real_arch.ok);
  EXPECT_NE(real_arch.ptx.find(".target sm_90"), std::string::npos);
}

TEST(Compile, ReferenceSourceCompilesForEveryGoldenShape) {
  CompileResult result = compile_cuda(generate_reference_source(Problem::seed()), {});
  ASSERT_TRUE(result.ok) << result.log;
  EXPECT_NE(result.log.find("reference_f64"), std::string::npos);
  EXPECT_NE(result.log.find("max_abs_error"), std::string::npos);
}

TEST(Compile, GeneratedSourceIsSelfContainedAndSpecialised) {
  Problem p = Problem::seed();
  GeneratedKernel kernel = generate_kernel(p, default_config(p));
  EXPECT_EQ(kernel.source.find("#include"), std::string::npos) << "includes must be inlined";
  EXPECT_NE(kernel.source.find("#define DT_N 128"), std::string::npos);
  EXPECT_NE(kernel.source.find("dt_hardtanh(v, -1.0f, 1.0f)"), std::string::npos);
  EXPECT_NE(kernel.source.find(p.key()), std::string::npos);
  EXPECT_NE(kernel.source.find(generator_version()), std::string::npos);
}

TEST(Compile, EachTemplateCompilesOnItsOwnWithItsDefaults) {
  // CLBlast's rule: every parameter has a default, so a template alone is a valid program. Only
  // its includes are inlined; no problem or config is defined.
  for (const auto& [name, text] : templates::all()) {
    CompileResult result = compile_cuda(expand_template(name), {});
    EXPECT_TRUE(result.ok) << name << ":\n" << result.log;
  }
}

TEST(Compile, PtxasReportParsing) {
  const std::string log =
      "ptxas info    : Compiling entry function 'a' for 'sm_90'\n"
      "ptxas info    : Function properties for a\n"
      "    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n"
      "ptxas info    : Used 96 registers, used 1 barriers, 16384 bytes smem, 400 bytes cmem[0]\n"
      "ptxas info    : Compiling entry function 'b' for 'sm_90'\n"
      "ptxas info    : Used 32 registers\n";
  ResourceUsage a = parse_ptxas_report(log, "a");
  EXPECT_EQ(a.registers, 96);
  EXPECT_EQ(a.shared_bytes, 16384);
  EXPECT_EQ(a.stack_bytes, 8);
  EXPECT_TRUE(a.spills());
  EXPECT_EQ(parse_ptxas_report(log, "b").registers, 32);
  EXPECT_EQ(parse_ptxas_report(log, "missing").registers, -1);
  // Unnamed: the most any entry uses, whichever ptxas reports first.
  const std::string reversed =
      log.substr(log.find("ptxas info    : Compiling entry function 'b'")) +
      log.substr(0, log.find("ptxas info    : Compiling entry function 'b'"));
  for (const std::string& text : {log, reversed}) {
    const ResourceUsage worst = parse_ptxas_report(text, "");
    EXPECT_EQ(worst.registers, 96);
    EXPECT_EQ(worst.spill_load_bytes, 12);
  }
}

// The cubin's own account of its kernels (what compile_cuda reports when NVRTC's cache served the
// cubin and ptxas's report is missing) against ptxas's report of the same compile.

// The entries ptxas's -v report names, in its order.
std::vector<std::string> reported_entries(const std::string& log) {
  static const std::regex kEntry("Compiling entry function '([^']+)'");
  std::vector<std::string> names;
  for (std::sregex_iterator it(log.begin(), log.end(), kEntry), end; it != end; ++it) {
    names.push_back((*it)[1]);
  }
  return names;
}

// Every field of the cubin's figures for `kernel` equals ptxas's, except spills, which the cubin
// knows only where the stack frame is 0 (a spill needs the frame).
void expect_cubin_agrees(const ResourceUsage& cubin, const ResourceUsage& ptxas,
                         const std::string& what) {
  EXPECT_GT(ptxas.registers, 0) << what;
  EXPECT_EQ(cubin.registers, ptxas.registers) << what;
  EXPECT_EQ(cubin.stack_bytes, ptxas.stack_bytes) << what;
  EXPECT_EQ(cubin.shared_bytes, ptxas.shared_bytes) << what;
  if (ptxas.stack_bytes == 0) {
    EXPECT_EQ(ptxas.spill_bytes(), 0) << what << ": ptxas spilled without a stack frame";
    EXPECT_EQ(cubin.spill_bytes(), 0) << what;
    EXPECT_FALSE(cubin.spills()) << what;
  } else {
    EXPECT_EQ(cubin.spill_store_bytes, -1) << what;
    EXPECT_EQ(cubin.spill_load_bytes, -1) << what;
    EXPECT_EQ(cubin.spill_bytes(), -1) << what;
    EXPECT_TRUE(cubin.spills()) << what << ": unknown spills are not no spills";
  }
}

// A handwritten module: a kernel with a stack frame (a dynamically indexed local array), static
// shared memory and an out-of-line device function; one with dynamic shared memory only; one
// with none; one whose frame holds spills.
constexpr char kHandwritten[] = R"(
__device__ __noinline__ float gather(const float* x, int n, int m) {
  float a[24];
  for (int i = 0; i < 24; ++i) a[i] = x[i * n];
  return a[m % 24] + a[(m * 7) % 24];
}
extern "C" __global__ void framed(float* x, int n, int m) {
  __shared__ float tile[300];
  tile[threadIdx.x % 300] = gather(x + threadIdx.x, n, m);
  __syncthreads();
  x[threadIdx.x] = tile[(threadIdx.x * 13) % 300];
}
extern "C" __global__ void dynamic_only(float* x) {
  extern __shared__ float buffer[];
  buffer[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  x[threadIdx.x] = buffer[threadIdx.x ^ 1];
}
extern "C" __global__ void plain(float* x) { x[threadIdx.x] *= 2.0f; }
extern "C" __global__ void __launch_bounds__(1024, 2) spilling(float* x, int n, int m) {
  float a[48];  // 32 registers a thread at 2 x 1024 threads: ptxas spills
  #pragma unroll
  for (int i = 0; i < 48; ++i) a[i] = x[i * n + threadIdx.x];
  for (int j = 0; j < m; ++j) {
    #pragma unroll
    for (int i = 0; i < 48; ++i) a[i] = a[i] * a[(i + 5) % 48] + 1.0f;
  }
  float sum = 0.0f;
  #pragma unroll
  for (int i = 0; i < 48; ++i) sum += a[i];
  x[threadIdx.x] = sum;
}
)";

struct Module {
  std::string what;
  std::string source;
  std::vector<std::string> entries;  // that ptxas must report (at least one in any case)
};

std::vector<Module> cubin_test_modules(const std::string& arch) {
  std::vector<Module> modules;
  const Problem seed = Problem::seed();
  Problem seed_tf32 = seed;
  seed_tf32.precision = Precision::kTf32;
  for (const Problem& problem : {seed, seed_tf32}) {
    const Config config =
        arch == "sm_80" ? default_config(problem, a100_limits()) : default_config(problem);
    const GeneratedKernel kernel = generate_kernel(problem, config);
    modules.push_back({kernel.config_name, kernel.source, {}});
  }
  modules.push_back(
      {"direct",
       generate_kernel(seed, Config::from_name("direct_ffma_t128_c1_mishexact")).source,
       {}});
  modules.push_back({"reference",
                     generate_reference_source(seed),
                     {"reference_f64", "fill_uniform", "max_abs_error"}});
  modules.push_back({"handwritten", kHandwritten, {"framed", "dynamic_only", "plain", "spilling"}});
  if (arch == "sm_90a") {
    // W streamed (kc > 0): deconv_wsgemm and its helper deconv_wsgemm_pack in one module.
    const Problem wide = Problem::from_json(nlohmann::json::parse(
        R"({"batch": 1, "in_channels": 256, "out_channels": 64, "height": 8, "width": 8,
            "kernel_size": 4, "stride": 2, "padding": 1, "precision": "tf32"})"));
    for (const Config& config : enumerate_space(wide)) {
      if (config.family == Family::kWsgemm && config.param("kc") > 0) {
        modules.push_back({config.name(),
                           generate_kernel(wide, config).source,
                           {"deconv_wsgemm", "deconv_wsgemm_pack"}});
        break;
      }
    }
    EXPECT_EQ(modules.back().entries.size(), 2u) << "no wsgemm config with W streamed";
  }
  return modules;
}

TEST(Compile, CubinResourcesEqualPtxasReportForEveryEntry) {
  for (const std::string arch : {"sm_80", "sm_90a"}) {
    const std::vector<Module> modules = cubin_test_modules(arch);
    std::vector<std::string> sources;
    for (const Module& module : modules) sources.push_back(module.source);
    CompileOptions options;
    options.arch = arch;
    // ptxas's report is the reference, so NVRTC's cache (on a machine with a driver) must not
    // serve these compiles; NVRTC 13 documents the flag (nvrtc.h).
    if (std::stoi(nvrtc_version()) >= 13) options.extra = {"--no-cache"};
    const std::vector<CompileResult> results = compile_cuda_parallel(sources, options);
    bool framed = false, unframed = false, spilled = false, static_shared = false;
    for (size_t i = 0; i < modules.size(); ++i) {
      const CompileResult& result = results[i];
      const std::string what = modules[i].what + " for " + arch;
      ASSERT_TRUE(result.ok) << what << ":\n" << result.log;
      const std::vector<std::string> entries = reported_entries(result.log);
      EXPECT_FALSE(entries.empty()) << what << ":\n" << result.log;
      for (const std::string& name : modules[i].entries) {
        EXPECT_NE(std::find(entries.begin(), entries.end(), name), entries.end())
            << what << ": " << name;
      }
      for (const std::string& entry : entries) {
        const ResourceUsage ptxas = parse_ptxas_report(result.log, entry);
        expect_cubin_agrees(cubin_resources(result.cubin, entry), ptxas, what + ": " + entry);
        (ptxas.stack_bytes > 0 ? framed : unframed) = true;
        spilled = spilled || ptxas.spill_bytes() > 0;
        static_shared = static_shared || ptxas.shared_bytes > 0;
      }
      // The cache hit: the same compile without ptxas's report. The module's figures are the
      // most any entry uses; its spills are unknown when any entry's are.
      const ResourceUsage hit = compiled_resources("", result.cubin);
      EXPECT_EQ(hit.registers, result.resources.registers) << what;
      EXPECT_EQ(hit.stack_bytes, result.resources.stack_bytes) << what;
      EXPECT_EQ(hit.shared_bytes, result.resources.shared_bytes) << what;
      EXPECT_EQ(hit.spill_bytes(), result.resources.stack_bytes == 0 ? 0 : -1) << what;
      EXPECT_EQ(cubin_resources(result.cubin, "").registers, hit.registers) << what;
      // With the report, compile_cuda's figures are still ptxas's own.
      const ResourceUsage reported = compiled_resources(result.log, result.cubin);
      EXPECT_EQ(reported.registers, parse_ptxas_report(result.log, "").registers) << what;
      EXPECT_EQ(reported.spill_bytes(), parse_ptxas_report(result.log, "").spill_bytes()) << what;
      EXPECT_EQ(cubin_resources(result.cubin, "no_such_kernel").registers, -1) << what;
    }
    EXPECT_TRUE(framed && unframed && spilled && static_shared)
        << arch << ": the modules cover frames and shared memory";
  }
}

// Reads and writes of a trusted cubin's ELF fields, to corrupt them on purpose.
uint64_t get_le(const std::string& bytes, size_t at, int width) {
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i)
    value = (value << 8) | static_cast<unsigned char>(bytes.at(at + i));
  return value;
}
void put_le(std::string& bytes, size_t at, uint64_t value, int width) {
  for (int i = 0; i < width; ++i) bytes.at(at + i) = static_cast<char>(value >> (8 * i));
}
// The offset of the section header of the section called `name`.
size_t section_header(const std::string& cubin, const std::string& name) {
  const size_t table = get_le(cubin, 0x28, 8), count = get_le(cubin, 0x3c, 2);
  const size_t names = get_le(cubin, table + get_le(cubin, 0x3e, 2) * 64 + 24, 8);
  for (size_t i = 0; i < count; ++i) {
    const size_t at = table + i * 64;
    if (cubin.compare(names + get_le(cubin, at, 4), name.size() + 1, name.c_str(),
                      name.size() + 1) == 0)
      return at;
  }
  ADD_FAILURE() << "no section " << name;
  return 0;
}

bool all_unknown(const ResourceUsage& r) {
  return r.registers == -1 && r.shared_bytes == -1 && r.stack_bytes == -1 &&
         r.spill_store_bytes == -1 && r.spill_load_bytes == -1;
}

std::string compiled_cubin(const std::string& source, const std::string& arch) {
  CompileOptions options;
  options.arch = arch;
  const CompileResult result = compile_cuda(source, options);
  EXPECT_TRUE(result.ok) << result.log;
  return std::string(result.cubin.begin(), result.cubin.end());
}

// Where the register count lives: EIATTR_REGCOUNT in .nv.info for both archs; the .text section's
// sh_info bits 24-31 for sm_80, not for sm_90a (0 there), so they serve only as a fallback.
TEST(Compile, CubinRegisterCountFromNvInfoAndTextSectionInfo) {
  for (const std::string arch : {"sm_80", "sm_90a"}) {
    std::string cubin = compiled_cubin(kHandwritten, arch);
    const int registers = cubin_resources(cubin, "plain").registers;
    ASSERT_GT(registers, 0) << arch;
    const uint64_t info = get_le(cubin, section_header(cubin, ".text.plain") + 44, 4);
    EXPECT_EQ(static_cast<int>(info >> 24), arch == "sm_80" ? registers : 0) << arch;
    // Rename every EIATTR_REGCOUNT (format 4, attribute 0x2f) of .nv.info to an attribute this
    // reader skips: only the fallback is left.
    const size_t header = section_header(cubin, ".nv.info");
    const size_t begin = get_le(cubin, header + 24, 8), end = begin + get_le(cubin, header + 32, 8);
    for (size_t at = begin; at < end;
         at += get_le(cubin, at, 1) == 4 ? 4 + get_le(cubin, at + 2, 2) : 4) {
      if (get_le(cubin, at, 1) == 4 && get_le(cubin, at + 1, 1) == 0x2f)
        put_le(cubin, at + 1, 0x7e, 1);
    }
    EXPECT_EQ(cubin_resources(cubin, "plain").registers, arch == "sm_80" ? registers : -1) << arch;
  }
}

TEST(Compile, CorruptOrTruncatedCubinsGiveUnknownResources) {
  const std::string cubin = compiled_cubin(kHandwritten, "sm_90a");
  ASSERT_GT(cubin_resources(cubin, "").registers, 0);
  EXPECT_TRUE(all_unknown(cubin_resources(std::string_view(), "")));
  EXPECT_TRUE(all_unknown(cubin_resources(std::string("not an ELF file at all"), "")));
  // What is read ends with the section header table; only the program headers follow it.
  const size_t table = get_le(cubin, 0x28, 8);
  const size_t table_end = table + get_le(cubin, 0x3c, 2) * 64;
  ASSERT_LT(table_end, cubin.size());
  const ResourceUsage whole = cubin_resources(cubin, "");
  for (size_t size = 0; size < cubin.size(); size += size + 2048 < table_end ? 61 : 1) {
    const ResourceUsage cut = cubin_resources(std::string_view(cubin.data(), size), "");
    if (size < table_end) {
      EXPECT_TRUE(all_unknown(cut)) << size;
    } else {
      EXPECT_EQ(cut.registers, whole.registers) << size;
    }
  }
  const size_t names = section_header(cubin, ".shstrtab");
  const size_t info = section_header(cubin, ".nv.info");
  const size_t symbols = section_header(cubin, ".symtab");
  struct Corruption {
    const char* what;
    size_t at;
    int width;
    uint64_t value;
  };
  for (const Corruption& c : std::vector<Corruption>{
           {"machine", 0x12, 2, 62},
           {"class", 4, 1, 1},
           {"section table past the end", 0x28, 8, cubin.size() - 63},
           {"section table offset wraps", 0x28, 8, ~uint64_t{0} - 8},
           {"section header size", 0x3a, 2, 40},
           {"no sections", 0x3c, 2, 0},
           {"too many sections", 0x3c, 2, 0xffff},
           {"section names index", 0x3e, 2, 0xfff0},
           {"section names offset wraps", names + 24, 8, ~uint64_t{0}},
           {"section names size", names + 32, 8, uint64_t{1} << 62},
           {"a section name past its table", info, 4, 0x7fffffff},
           {"nv.info past the end", info + 24, 8, cubin.size()},
           {"nv.info size wraps", info + 32, 8, ~uint64_t{0} - 16},
           {"first nv.info record runs past its section", get_le(cubin, info + 24, 8) + 2, 2,
            0xfff0},
           {"symbol table entry size", symbols + 56, 8, 16},
           {"symbol table's string table", symbols + 40, 4, 0xffffffff},
           {"symbol table size", symbols + 32, 8, uint64_t{1} << 40},
       }) {
    std::string bad = cubin;
    put_le(bad, c.at, c.value, c.width);
    EXPECT_TRUE(all_unknown(cubin_resources(bad, ""))) << c.what;
    EXPECT_TRUE(all_unknown(compiled_resources("", std::vector<char>(bad.begin(), bad.end()))))
        << c.what;
  }
  // Each byte of the ELF header and of the section header table (and every 251st byte between),
  // flipped: no crash, and any figure given stays in range.
  for (size_t at = 0; at < cubin.size(); at += at < 64 || at >= table ? 1 : 251) {
    std::string bad = cubin;
    bad[at] = static_cast<char>(bad[at] ^ 0x5a);
    const ResourceUsage r = cubin_resources(bad, "");
    EXPECT_TRUE(r.registers == -1 || (r.registers > 0 && r.registers <= 255)) << at;
    EXPECT_GE(r.shared_bytes, -1) << at;
    EXPECT_GE(r.stack_bytes, -1) << at;
  }
}

TEST(Compile, UnknownSpillsAreNotNoSpills) {
  ResourceUsage usage;
  EXPECT_TRUE(usage.spills_known());
  EXPECT_EQ(usage.spill_bytes(), 0);
  EXPECT_FALSE(usage.spills());
  usage.stack_bytes = 64;
  usage.spill_store_bytes = usage.spill_load_bytes = -1;
  EXPECT_FALSE(usage.spills_known());
  EXPECT_EQ(usage.spill_bytes(), -1);
  EXPECT_TRUE(usage.spills());
  usage.spill_store_bytes = 4;
  usage.spill_load_bytes = 12;
  EXPECT_EQ(usage.spill_bytes(), 16);
  EXPECT_TRUE(usage.spills());
}

TEST(Compile, GeneratorVersionHashesTheTemplates) {
  EXPECT_EQ(generator_version().rfind("gen-", 0), 0u);
  EXPECT_EQ(generator_version().size(), 16u);
}

}  // namespace
}  // namespace deconvtune

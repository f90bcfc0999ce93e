#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"

namespace deconvtune {
namespace {

TEST(Config, NameRoundTripsForEveryConfigOfTheSpace) {
  Problem seed = Problem::seed();
  seed.precision = Precision::kTf32;
  std::set<std::string> names;
  for (const Config& config : enumerate_space(seed)) {
    EXPECT_EQ(Config::from_name(config.name()), config);
    EXPECT_EQ(config.to_json()["name"], config.name());
    EXPECT_TRUE(names.insert(config.name()).second) << "duplicate " << config.name();
  }
  EXPECT_GE(names.size(), 4u);
}

TEST(Config, BadNamesSayWhatIsWrong) {
  for (const char* name : {"", "warp_ffma_t256_c4_mishexact", "direct_tf64_t256_c4_mishexact",
                           "direct_ffma_t255_c4_mishexact", "direct_ffma_c4_t256_mishexact",
                           "direct_ffma_t256_c4_mishslow", "direct_ffma_t256_mishexact",
                           "direct_ffma_t256_c4x_mishexact"}) {
    EXPECT_THROW(Config::from_name(name), std::invalid_argument) << name;
  }
}

TEST(Config, SpaceRespectsPrecisionAndEpilogue) {
  Problem fp32 = Problem::seed();
  for (const Config& config : enumerate_space(fp32)) {
    EXPECT_TRUE(math_meets(config.math, Precision::kFp32)) << config.name();
    EXPECT_EQ(config.mish, MishVariant::kExact) << "fast mish is outside the fp32 bound";
  }
  Problem no_mish = Problem::seed();
  no_mish.precision = Precision::kTf32;
  no_mish.epilogue = Epilogue::parse("relu");
  for (const Config& config : enumerate_space(no_mish)) EXPECT_EQ(config.mish, MishVariant::kExact);
}

TEST(Config, WgmmaConfigsOnlyWhereTheDeviceAndTilesAllowThem) {
  Problem seed = Problem::seed();
  seed.precision = Precision::kTf32;
  const Config wgmma = Config::from_name("pgemm_tf32_bn64_rp2_cp64_wm4_wn2_st1_xs0_wg1_mishfast");
  EXPECT_EQ(why_illegal(seed, wgmma, {}), "");
  DeviceLimits a100;
  a100.sm_major = 8;
  EXPECT_NE(why_illegal(seed, wgmma, a100).find("sm_90a"), std::string::npos);
  for (const Config& config : enumerate_space(seed, a100)) {
    if (config.family == Family::kPgemm) {
      EXPECT_EQ(config.param("wg"), 0) << config.name();
    }
  }
  EXPECT_NE(
      why_illegal(seed, Config::from_name("pgemm_tf32_bn32_rp2_cp64_wm2_wn2_st1_xs0_wg1_mishfast"),
                  {})
          .find("bn64"),
      std::string::npos);
  const Problem fp32 = Problem::seed();
  EXPECT_NE(
      why_illegal(fp32,
                  Config::from_name("pgemm_3xtf32_bn64_rp1_cp64_wm4_wn2_st1_xs0_wg1_mishexact"), {})
          .find("xs1"),
      std::string::npos);
}

TEST(Config, WsgemmConfigsOnlyWhereTheirRulesAllowThem) {
  const Problem seed = Problem::seed();
  DeviceLimits a100;
  a100.sm_major = 8;
  auto count = [](const std::vector<Config>& space, const std::string& part) {
    return std::count_if(space.begin(), space.end(),
                         [&](const Config& c) { return c.name().find(part) != std::string::npos; });
  };
  EXPECT_EQ(count(enumerate_space(seed, a100), "wsgemm"), 0) << "wgmma is sm_90a's alone";
  Problem tf32 = seed;
  tf32.precision = Precision::kTf32;
  const std::vector<Config> tf32_space = enumerate_space(tf32);
  EXPECT_GT(count(tf32_space, "wsgemm_tf32"), 0);
  EXPECT_EQ(count(tf32_space, "wsgemm_3xtf32"), 0) << "3xtf32 only under fp32";
  const std::vector<Config> fp32_space = enumerate_space(seed);
  EXPECT_GT(count(fp32_space, "wsgemm_3xtf32"), 0);
  EXPECT_EQ(count(fp32_space, "_rs1_"), 0) << "3xtf32 with rs1 is excluded";
  // Stride 3 with a 2-row kernel leaves a row phase without taps: no row classes.
  Problem holes = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 1, "in_channels": 8, "out_channels": 8, "height": 9, "width": 9,
          "kernel_size": 2, "stride": 3, "precision": "tf32"})"));
  const std::vector<Config> holes_space = enumerate_space(holes);
  EXPECT_GT(count(holes_space, "wsgemm"), 0);
  EXPECT_EQ(count(holes_space, "_rs1_"), 0);
  // Stride 1 has one row phase: no row classes either.
  Problem stride1 = tf32;
  stride1.stride = {1, 1};
  stride1.output_padding = {0, 0};
  EXPECT_EQ(count(enumerate_space(stride1), "_rs1_"), 0);
  // W streams only where it cannot stay resident: never for the seed's 144 KB slice, always for
  // 256 input channels with k4 (1 MB per 64 output channels), and under tf32 alone.
  for (const Config& c : tf32_space) {
    if (c.family != Family::kWsgemm) continue;
    EXPECT_NE(c.param("cp"), 8) << "cp8 only for narrow phases";
    EXPECT_EQ(c.param("kc"), 0) << c.name();
    EXPECT_EQ(c.param("coop"), 0) << "consumers share units only with W streamed";
    EXPECT_EQ(c.param("mc"), 1) << "clusters share streamed W chunks only";
  }
  Problem wide = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 32, "in_channels": 256, "out_channels": 64, "height": 64, "width": 64,
          "kernel_size": 4, "stride": 2, "padding": 1, "precision": "tf32"})"));
  EXPECT_GT(count(enumerate_space(wide), "wsgemm_tf32"), 0);
  EXPECT_GT(count(enumerate_space(wide), "_coop1_"), 0);
  EXPECT_EQ(default_config(wide).param("coop"), 1) << "the H200's streamed winners share units";
  EXPECT_EQ(default_config(wide).param("mc"), 1) << "clusters measured slower on the H200";
  EXPECT_EQ(default_config(wide).param("rs"), 1) << "k4 streams half its taps per slot with rs1";
  EXPECT_EQ(default_config(wide).param("xl"), 2) << "staged windows won the streamed kernels";
  EXPECT_EQ(default_config(wide).param("rp"), 1) << "k4s2_wide: one phase row per consumer";
  // A streamed k3 (wide_512): staged windows too, two phase rows per consumer.
  Problem wide_k3 = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 32, "in_channels": 512, "out_channels": 256, "height": 32, "width": 32,
          "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "precision": "tf32"})"));
  EXPECT_GT(default_config(wide_k3).param("kc"), 0);
  EXPECT_EQ(default_config(wide_k3).param("xl"), 2)
      << "wide_512: 0.453 ms against 0.545 by cp.async";
  EXPECT_EQ(default_config(wide_k3).param("rp"), 2);
  EXPECT_EQ(default_config(tf32).param("xl"), 0) << "cp.async keeps long windows in flight";
  EXPECT_GT(count(tf32_space, "_kc0_coop0_mc1_xl2_"), 0) << "staged windows with W resident too";
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    Problem half_seed = tf32;
    half_seed.dtype = dtype;
    EXPECT_EQ(default_config(half_seed).param("kc"), 0);
    EXPECT_EQ(default_config(half_seed).param("xl"), 2)
        << "16-bit seed: 1.16 ms staged, 1.50 through registers";
    half_seed.width = 100;  // rows of 200 bytes: no tensor map of x
    EXPECT_EQ(default_config(half_seed).param("xl"), 1);
  }
  // A staged run is a row of a tensor map box: widths of 4 floats or 8 16-bit elements.
  Problem narrow = wide;
  narrow.width = 6;
  EXPECT_EQ(count(enumerate_space(narrow), "_xl2_"), 0);
  EXPECT_EQ(default_config(narrow).param("xl"), 1) << "registers where staging cannot serve";
  // In NHWC a staged plane is a box of 4 channels at a 16-byte boundary of each pixel: any width,
  // channels per group a multiple of 4; the default for float32 NHWC, 16-bit NHWC through
  // registers alone.
  Problem channels_last = tf32;
  channels_last.layout = Layout::kNhwc;
  channels_last.width = 101;
  EXPECT_EQ(default_config(channels_last).param("xl"), 2) << "seed NHWC: 1.14 ms, 2.08 cp.async";
  const Config staged_nhwc = default_config(channels_last);
  channels_last.in_channels = 66;
  EXPECT_NE(why_illegal(channels_last, staged_nhwc, {}).find("multiple of 4, not 66"),
            std::string::npos)
      << why_illegal(channels_last, staged_nhwc, {});
  EXPECT_EQ(count(enumerate_space(channels_last), "_xl2_"), 0);
  channels_last.in_channels = 64;
  channels_last.dtype = DType::kBFloat16;
  for (const Config& c : enumerate_space(channels_last)) {
    if (c.family == Family::kWsgemm) {
      EXPECT_EQ(c.param("xl"), 1) << c.name();
    }
  }
  // Plan::run checks x and y against each config's widest access (engine/engine.cpp).
  EXPECT_EQ(pointer_alignment(wide, default_config(wide)).x, 16) << "a tensor map of x";
  EXPECT_EQ(pointer_alignment(narrow, default_config(narrow)).x, 4);
  EXPECT_EQ(pointer_alignment(wide, default_config(wide)).y, 16);
  for (const Config& c : enumerate_space(wide)) {
    if (c.family == Family::kDirect) {
      EXPECT_EQ(pointer_alignment(wide, c).x, 4);
      EXPECT_EQ(pointer_alignment(wide, c).y, 4) << "the general kernel stores single elements";
    }
  }
  for (auto [width, staged] : {std::pair{12, false}, {16, true}}) {
    Problem half = wide;
    half.dtype = DType::kBFloat16;
    half.width = width;
    EXPECT_EQ(count(enumerate_space(half), "_xl2_") > 0, staged) << width;
    EXPECT_EQ(count(enumerate_space(half), "_xl0_"), 0) << "cp.async cannot widen 16-bit x";
    EXPECT_EQ(pointer_alignment(half, default_config(half)).x, staged ? 16 : 2) << width;
  }
  int clustered = 0;
  for (const Config& c : enumerate_space(wide)) {
    if (c.family != Family::kWsgemm || c.param("mc") == 1) continue;
    ++clustered;
    EXPECT_EQ(c.param("coop"), 1) << c.name();
    EXPECT_EQ(family_spec(c.family).launch(wide, c, DeviceLimits{}).grid[0] % 2, 0u)
        << c.name() << ": clusters take whole pairs of CTAs";
  }
  EXPECT_GT(clustered, 0);
  for (const Config& c : enumerate_space(wide)) {
    if (c.family == Family::kWsgemm) {
      EXPECT_GT(c.param("kc"), 0) << c.name();
    }
  }
  Problem wide_fp32 = wide;
  wide_fp32.precision = Precision::kFp32;
  EXPECT_EQ(count(enumerate_space(wide_fp32), "wsgemm"), 0) << "W streams under tf32 only";
  Problem narrow_groups = wide;  // 32 channels per group: a kc32 chunk would hold all of them
  narrow_groups.groups = 8;
  narrow_groups.out_channels = 512;
  for (const Config& c : enumerate_space(narrow_groups)) {
    if (c.family == Family::kWsgemm) {
      EXPECT_EQ(c.param("kc"), 0) << c.name();
    }
  }
}

// The device is an input of code generation: persistent kernels size their grid by its SM count
// (and how many CTAs its shared memory holds), and a config is generated only where it is legal.
TEST(Config, LaunchGeometryAndLegalityFollowTheDevice) {
  const Problem seed = Problem::seed();
  DeviceLimits h100, half = h100, tiny = h100;
  half.sm_count = h100.sm_count / 2;
  tiny.max_shared_per_block = 48 * 1024;
  tiny.max_shared_per_sm = 64 * 1024;
  int persistent = 0;
  for (const Config& config : enumerate_space(seed, h100)) {
    const FamilySpec& spec = family_spec(config.family);
    const LaunchGeometry full = spec.launch(seed, config, h100);
    const LaunchGeometry halved = spec.launch(seed, config, half);
    EXPECT_EQ(generate_kernel(seed, config, h100).launch.grid[0], full.grid[0]) << config.name();
    EXPECT_EQ(full.shared_bytes, halved.shared_bytes) << config.name();
    if (full.grid[0] == halved.grid[0]) continue;  // a grid of the problem's size, not the GPU's
    ++persistent;
    EXPECT_LT(halved.grid[0], full.grid[0]) << config.name();
    EXPECT_EQ(generate_kernel(seed, config, half).launch.grid[0], halved.grid[0]);
    if (full.shared_bytes > static_cast<unsigned>(tiny.max_shared_per_block)) {
      EXPECT_FALSE(why_illegal(seed, config, tiny).empty()) << config.name();
      EXPECT_THROW(generate_kernel(seed, config, tiny), std::invalid_argument) << config.name();
    }
  }
  EXPECT_GT(persistent, 0) << "the seed's space has persistent kernels (pgemm, wsgemm)";
}

TEST(Config, DefaultServesAnyProblemAndNarrowGroups) {
  Problem p = Problem::seed();
  p.groups = 64;  // one output channel per group: only c1 is legal
  EXPECT_TRUE(why_illegal(p, default_config(p), {}).empty()) << default_config(p).name();
  EXPECT_FALSE(why_illegal(p, Config::from_name("direct_ffma_t256_c8_mishexact"), {}).empty());
}

// A problem given as JSON (PyTorch's ConvTranspose2d names), under tf32.
Problem benchmark_problem(const std::string& text) {
  Problem p = Problem::from_json(nlohmann::json::parse(text));
  p.precision = Precision::kTf32;
  return p;
}

TEST(Config, DefaultOnShortStripsStreamsCooperativeUnitsOfEveryRowPhase) {
  // dcgan0 (62 output pixels per SM) and mixed1 (248), whose resident or row-class picks took
  // 2-2.6x their tuned winners' time on the H200.
  for (const char* text :
       {R"({"batch": 32, "in_channels": 256, "out_channels": 128, "height": 8, "width": 8,
            "kernel_size": 4, "stride": 2, "padding": 1, "epilogue": "relu"})",
        R"({"batch": 32, "in_channels": 128, "out_channels": 64, "height": 16, "width": 16,
            "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1,
            "epilogue": "silu"})"}) {
    const Config c = default_config(benchmark_problem(text));
    SCOPED_TRACE(c.name());
    EXPECT_EQ(c.family, Family::kWsgemm);
    EXPECT_GT(c.param("kc"), 0);
    EXPECT_EQ(c.param("coop"), 1);
    EXPECT_EQ(c.param("rs"), 0);
    EXPECT_EQ(c.param("st"), 3);
    EXPECT_EQ(c.param("xl"), 1);  // units of 8 or 16 phase columns
  }
  // Long strips keep the order measured on the benchmark set: k4s2_wide and k5s2_wide (496
  // pixels per SM, just above the line) serve one row phase per CTA.
  for (const char* text :
       {R"({"batch": 32, "in_channels": 256, "out_channels": 128, "height": 64, "width": 64,
            "kernel_size": 4, "stride": 2, "padding": 1, "epilogue": "relu"})",
        R"({"batch": 16, "in_channels": 256, "out_channels": 128, "height": 32, "width": 32,
            "kernel_size": 5, "stride": 2, "padding": 2, "output_padding": 1,
            "epilogue": "gelu"})"}) {
    const Config c = default_config(benchmark_problem(text));
    SCOPED_TRACE(c.name());
    EXPECT_EQ(c.family, Family::kWsgemm);
    EXPECT_EQ(c.param("rs"), 1);
  }
}

}  // namespace
}  // namespace deconvtune

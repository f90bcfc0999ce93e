#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

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

TEST(Config, DefaultServesAnyProblemAndNarrowGroups) {
  Problem p = Problem::seed();
  p.groups = 64;  // one output channel per group: only c1 is legal
  EXPECT_TRUE(why_illegal(p, default_config(p), {}).empty()) << default_config(p).name();
  EXPECT_FALSE(why_illegal(p, Config::from_name("direct_ffma_t256_c8_mishexact"), {}).empty());
}

}  // namespace
}  // namespace deconvtune

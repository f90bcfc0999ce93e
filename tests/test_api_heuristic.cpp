// The untuned-problem heuristic (tuner/heuristic.hpp), on CPU: nearest tuned winner when legal,
// the rule's default otherwise, and only winners of the same GPU class, generator and precision.
#include <gtest/gtest.h>

#include <cmath>

#include "codegen/generator.hpp"
#include "tests/api_test_util.hpp"
#include "tuner/heuristic.hpp"

namespace deconvtune {
namespace {

using testing_api::record_winner;
using testing_api::test_device;

Problem seed_with(int64_t batch, Precision precision = Precision::kFp32) {
  Problem problem = Problem::seed();
  problem.batch = batch;
  problem.precision = precision;
  problem.validate();
  return problem;
}

TEST(ApiHeuristic, DistanceIsZeroForTheSameProblemAndGrowsWithSizeAndGeometry) {
  const Problem seed = Problem::seed();
  EXPECT_EQ(problem_distance(seed, seed), 0);
  EXPECT_DOUBLE_EQ(problem_distance(seed, seed_with(64)), 1);  // half the batch: one octave
  EXPECT_DOUBLE_EQ(problem_distance(seed, seed_with(32)), 2);
  Problem stride1 = seed;
  stride1.stride = {1, 1};
  stride1.output_padding = {0, 0};
  EXPECT_GT(problem_distance(seed, stride1), problem_distance(seed, seed_with(1)));
  EXPECT_EQ(problem_distance(seed, stride1), problem_distance(stride1, seed));
  // Another dtype or layout is no neighbour at all, however alike the shape; within one, sizes
  // count as before.
  Problem half = seed;
  half.dtype = DType::kBFloat16;
  Problem half_small = seed_with(1);
  half_small.dtype = DType::kBFloat16;
  EXPECT_TRUE(std::isinf(problem_distance(half, seed)));
  EXPECT_DOUBLE_EQ(problem_distance(half, half_small), 7);
  Problem channels_last = seed;
  channels_last.layout = Layout::kNhwc;
  EXPECT_TRUE(std::isinf(problem_distance(channels_last, seed)));
  EXPECT_TRUE(std::isinf(problem_distance(seed, channels_last)));
}

TEST(ApiHeuristic, EmptyDbGivesTheRuleDefault) {
  db::TuningDb db(":memory:");
  const Problem problem = Problem::seed();
  UntunedChoice choice =
      choose_untuned_config(problem, DeviceLimits{}, db, test_device().key(), generator_version());
  EXPECT_EQ(choice.config, default_config(problem));
  EXPECT_EQ(choice.source(), "rule");
}

// Two legal configs of the seed's space that differ from the rule's pick (names are taken from the
// space, so the tests follow it as it changes); the first is a tensor-core one.
std::pair<std::string, std::string> two_other_configs(const Problem& problem) {
  const std::string rule = default_config(problem).name();
  std::string tensor_core, other;
  for (const Config& config : enumerate_space(problem)) {
    if (config.name() == rule) continue;
    if (tensor_core.empty() && config.family != Family::kDirect) {
      tensor_core = config.name();
    } else if (other.empty()) {
      other = config.name();
    }
  }
  EXPECT_FALSE(tensor_core.empty() || other.empty()) << "the seed's space is too small";
  return {tensor_core, other};
}

TEST(ApiHeuristic, NearestTunedWinnerIsUsedWhenLegal) {
  db::TuningDb db(":memory:");
  const Problem problem = Problem::seed();
  // Two tuned neighbours with different (legal, non-default) winners: the nearer one wins.
  const auto [near_config, far_config] = two_other_configs(problem);
  record_winner(db, seed_with(64), near_config, 1.0);
  record_winner(db, seed_with(8), far_config, 0.5);
  UntunedChoice choice =
      choose_untuned_config(problem, DeviceLimits{}, db, test_device().key(), generator_version());
  EXPECT_EQ(choice.config.name(), near_config);
  EXPECT_EQ(choice.source(), "nearest:" + seed_with(64).key());
  EXPECT_DOUBLE_EQ(choice.distance, 1);

  // Leave-one-out (the default report): the nearer one excluded, the farther one is next.
  choice = choose_untuned_config(problem, DeviceLimits{}, db, test_device().key(),
                                 generator_version(), seed_with(64).key());
  EXPECT_EQ(choice.config.name(), far_config);
}

TEST(ApiHeuristic, IllegalWinnerIsSkipped) {
  db::TuningDb db(":memory:");
  // The neighbour's tensor-core winner cannot run on a GPU without TF32 tensor cores (sm_70).
  const std::string tensor_core = two_other_configs(Problem::seed()).first;
  record_winner(db, seed_with(64), tensor_core, 1.0);
  DeviceLimits volta;
  volta.sm_major = 7;
  const Problem problem = Problem::seed();
  ASSERT_FALSE(why_illegal(problem, Config::from_name(tensor_core), volta).empty());
  UntunedChoice choice =
      choose_untuned_config(problem, volta, db, test_device().key(), generator_version());
  EXPECT_EQ(choice.source(), "rule");
  EXPECT_EQ(choice.config, default_config(problem, volta));
  EXPECT_TRUE(why_illegal(problem, choice.config, volta).empty());
  // On a GPU that has them, the same winner is taken.
  EXPECT_EQ(
      choose_untuned_config(problem, DeviceLimits{}, db, test_device().key(), generator_version())
          .config.name(),
      tensor_core);
}

TEST(ApiHeuristic, AWinnerOfAnotherDtypeOrLayoutIsNotBorrowed) {
  db::TuningDb db(":memory:");
  Problem half = Problem::seed();
  half.precision = Precision::kTf32;
  half.dtype = DType::kBFloat16;
  // A float32 neighbour's winner that is legal for the bfloat16 problem too (wsgemm xl1), and a
  // bfloat16 neighbour's (the general kernel, not the rule's pick).
  std::string shared, general;
  const Config rule = default_config(half);
  for (const Config& config : enumerate_space(half)) {
    if (config.family == Family::kWsgemm && !(config == rule) && shared.empty())
      shared = config.name();
    if (config.family == Family::kDirect && !(config == rule) && general.empty())
      general = config.name();
  }
  ASSERT_FALSE(shared.empty() || general.empty());
  Problem float32 = seed_with(64);
  float32.precision = Precision::kTf32;
  record_winner(db, float32, shared, 1.0);
  UntunedChoice choice =
      choose_untuned_config(half, DeviceLimits{}, db, test_device().key(), generator_version());
  EXPECT_EQ(choice.source(), "rule") << choice.config.name();
  Problem half_neighbour = float32;
  half_neighbour.dtype = DType::kBFloat16;
  half_neighbour.batch = 8;  // farther than the float32 one by size
  record_winner(db, half_neighbour, general, 1.0);
  choice =
      choose_untuned_config(half, DeviceLimits{}, db, test_device().key(), generator_version());
  EXPECT_EQ(choice.config.name(), general);
  Problem channels_last = half;
  channels_last.dtype = DType::kFloat32;
  channels_last.layout = Layout::kNhwc;
  EXPECT_EQ(choose_untuned_config(channels_last, DeviceLimits{}, db, test_device().key(),
                                  generator_version())
                .source(),
            "rule");
}

TEST(ApiHeuristic, OnlySameDeviceGeneratorAndPrecisionCount) {
  db::TuningDb db(":memory:");
  const std::string config = two_other_configs(Problem::seed()).first;
  record_winner(db, seed_with(64), config, 1.0);
  const Problem problem = Problem::seed();
  EXPECT_EQ(
      choose_untuned_config(problem, DeviceLimits{}, db, "other|sm_80|108", generator_version())
          .source(),
      "rule");
  EXPECT_EQ(
      choose_untuned_config(problem, DeviceLimits{}, db, test_device().key(), "gen-other").source(),
      "rule");
  // A tf32 problem does not take an fp32 problem's winner.
  EXPECT_EQ(choose_untuned_config(seed_with(128, Precision::kTf32), DeviceLimits{}, db,
                                  test_device().key(), generator_version())
                .source(),
            "rule");
  // The problem's own winner is the tuned path's business, not the heuristic's.
  EXPECT_EQ(choose_untuned_config(seed_with(64), DeviceLimits{}, db, test_device().key(),
                                  generator_version())
                .source(),
            "rule");
}

// Issue 17.2: an H100's tuning is the H200's best guess (same arch and SM count), stated as such;
// this GPU's own winners come first at equal distance; another class never counts.
TEST(ApiHeuristic, AnotherGpuOfTheSameClassIsANeighbourStatedAsSuch) {
  db::TuningDb db(":memory:");
  const auto [near_config, far_config] = two_other_configs(Problem::seed());
  db::DeviceRecord sibling = test_device();
  sibling.name = "Sibling GPU";
  db::DeviceRecord other_class = test_device();
  other_class.name = "Older GPU";
  other_class.arch = "sm_80";
  other_class.sm_count = 108;
  const Problem problem = seed_with(128);
  record_winner(db, problem, near_config, 1.0, other_class);
  EXPECT_EQ(
      choose_untuned_config(problem, DeviceLimits{}, db, test_device().key(), generator_version())
          .source(),
      "rule")
      << "another arch's winner is no guess";
  record_winner(db, problem, near_config, 1.0, sibling);
  UntunedChoice choice =
      choose_untuned_config(problem, DeviceLimits{}, db, test_device().key(), generator_version());
  EXPECT_EQ(choice.config.name(), near_config);
  EXPECT_EQ(choice.source(),
            "nearest:" + problem.key() + " (tuned on Sibling GPU, same arch and SM count)");
  EXPECT_DOUBLE_EQ(choice.distance, kOtherGpuStep) << "the problem's own winner, one GPU over";
  // This GPU's winner of a problem twice the size (distance 1) loses to the sibling's own winner...
  record_winner(db, seed_with(256), far_config, 1.0);
  EXPECT_EQ(
      choose_untuned_config(problem, DeviceLimits{}, db, test_device().key(), generator_version())
          .config.name(),
      near_config);
  // ...and at the same problem distance this GPU's winner wins.
  db::TuningDb tie(":memory:");
  record_winner(tie, seed_with(256), near_config, 1.0, sibling);
  record_winner(tie, seed_with(256), far_config, 1.0);
  choice =
      choose_untuned_config(problem, DeviceLimits{}, tie, test_device().key(), generator_version());
  EXPECT_EQ(choice.config.name(), far_config);
  EXPECT_EQ(choice.source(), "nearest:" + seed_with(256).key());
  EXPECT_EQ(db::device_class(test_device().key()), "sm_90|132");
  EXPECT_EQ(db::device_class("no bars"), "");
}

}  // namespace
}  // namespace deconvtune

// The float64 CPU reference against PyTorch's own float64 results on every golden problem.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "reference/cpu_reference.hpp"
#include "tests/golden.hpp"

namespace deconvtune {
namespace {

using testing::golden_names;
using testing::load_golden;

class CpuReferenceGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CpuReferenceGolden, MatchesPyTorchFloat64) {
  testing::Golden golden = load_golden(GetParam());
  std::vector<double> y = cpu_reference(golden.problem, golden.x, golden.weight, golden.bias);
  ASSERT_EQ(y.size(), golden.y.size());
  double max_err = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_FALSE(std::isnan(y[i])) << "element " << i;
    max_err = std::max(max_err, std::fabs(y[i] - golden.y[i]));
  }
  EXPECT_LE(max_err, 1e-5) << golden.problem.key();
}

INSTANTIATE_TEST_SUITE_P(Golden, CpuReferenceGolden, ::testing::ValuesIn(golden_names()),
                         [](const auto& info) { return info.param; });

TEST(CpuReference, GoldenSetCoversEveryParameterAndOp) {
  std::set<int64_t> strides, dilations, groups;
  bool bias_on = false, bias_off = false, non_square_kernel = false, output_padding = false;
  std::set<EpilogueKind> ops;
  for (const std::string& name : golden_names()) {
    const Problem p = load_golden(name).problem;
    strides.insert(p.stride.h);
    strides.insert(p.stride.w);
    dilations.insert(p.dilation.h);
    groups.insert(p.groups);
    (p.bias ? bias_on : bias_off) = true;
    non_square_kernel |= p.kernel.h != p.kernel.w;
    output_padding |= p.output_padding.h > 0 || p.output_padding.w > 0;
    for (const EpilogueOp& op : p.epilogue.ops()) ops.insert(op.kind);
  }
  EXPECT_GE(golden_names().size(), 12u);
  EXPECT_EQ(strides, (std::set<int64_t>{1, 2, 3}));
  EXPECT_TRUE(dilations.count(2));
  EXPECT_TRUE(groups.count(2) && groups.count(4));
  EXPECT_TRUE(bias_on && bias_off && non_square_kernel && output_padding);
  EXPECT_EQ(ops.size(), 12u);
}

TEST(CpuReference, RejectsMismatchedTensors) {
  Problem p = load_golden("seed_small").problem;
  EXPECT_THROW(cpu_reference(p, {1.0}, {}, {}), std::invalid_argument);
}

}  // namespace
}  // namespace deconvtune

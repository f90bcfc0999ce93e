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

// NHWC is NCHW with x and y stored channel-innermost; a 16-bit problem is the float32 one on
// inputs rounded to that type. Checked on a golden problem with groups and a long chain.
TEST(CpuReference, ChannelsLastAndSixteenBitAreTheFloat32NchwReferenceRearranged) {
  testing::Golden golden = load_golden("groups2_stride2x3_longchain");
  const Problem& nchw = golden.problem;
  const std::vector<double> expected = cpu_reference(nchw, golden.x, golden.weight, golden.bias);
  const int64_t n_count = nchw.batch, oh = nchw.out_height(), ow = nchw.out_width();
  // NCHW -> NHWC of a [n, c, h, w] tensor.
  auto to_nhwc = [&](const std::vector<double>& t, int64_t c_count, int64_t h, int64_t w) {
    std::vector<double> out(t.size());
    for (int64_t n = 0; n < n_count; ++n)
      for (int64_t c = 0; c < c_count; ++c)
        for (int64_t i = 0; i < h * w; ++i) {
          out[(n * h * w + i) * c_count + c] = t[(n * c_count + c) * h * w + i];
        }
    return out;
  };
  Problem nhwc = nchw;
  nhwc.layout = Layout::kNhwc;
  const std::vector<double> channels_last =
      cpu_reference(nhwc, to_nhwc(golden.x, nchw.in_channels, nchw.height, nchw.width),
                    golden.weight, golden.bias);
  EXPECT_EQ(channels_last, to_nhwc(expected, nchw.out_channels, oh, ow));

  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    Problem half = nchw;
    half.dtype = dtype;
    auto rounded = [&](std::vector<double> t) {
      for (double& v : t) v = round_to(dtype, static_cast<float>(v));
      return t;
    };
    const std::vector<double> y = cpu_reference(half, golden.x, golden.weight, golden.bias);
    EXPECT_EQ(y,
              cpu_reference(nchw, rounded(golden.x), rounded(golden.weight), rounded(golden.bias)))
        << to_string(dtype);
    EXPECT_NE(y, expected) << "rounding the inputs to " << to_string(dtype) << " changes y";
  }
}

TEST(CpuReference, RejectsMismatchedTensors) {
  Problem p = load_golden("seed_small").problem;
  EXPECT_THROW(cpu_reference(p, {1.0}, {}, {}), std::invalid_argument);
}

}  // namespace
}  // namespace deconvtune

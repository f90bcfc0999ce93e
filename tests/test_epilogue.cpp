#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "codegen/epilogue.hpp"

namespace deconvtune {
namespace {

TEST(Epilogue, ParsesAndPrintsCanonically) {
  Epilogue e = Epilogue::parse(" mish , add:0.50,hardtanh:-1:1, mul:2 ");
  EXPECT_EQ(e.text(), "mish,add:0.5,hardtanh:-1:1,mul:2");
  EXPECT_EQ(e, Epilogue::seed());
  EXPECT_EQ(Epilogue::parse(e.text()), e);
  EXPECT_TRUE(Epilogue::parse("").ops().empty());
  EXPECT_EQ(Epilogue::parse("leaky_relu:0.1,gelu,silu,sigmoid,tanh,softplus,relu,clamp:-2:3")
                .ops()
                .size(),
            8u);
}

TEST(Epilogue, RejectsBadChains) {
  for (const char* text :
       {"swish", "add", "add:1:2", "mul:x", "hardtanh:1", "clamp:2:1", "mish,,relu", "add:nan",
        "add:inf", "mul:1e39", "mul:1e-39", "leaky_relu:0x1p-1049", "add:-1e-320"}) {
    EXPECT_THROW(Epilogue::parse(text), std::invalid_argument) << text;
  }
  // The smallest fp32 normal and zero of either sign are arguments fp32 holds exactly.
  EXPECT_NO_THROW(Epilogue::parse("mul:1.1754944e-38,add:-0,add:0"));
}

TEST(Epilogue, AppliesPyTorchSemantics) {
  Epilogue seed = Epilogue::seed();
  const double v = 0.7;
  const double mish = v * std::tanh(std::log1p(std::exp(v)));
  EXPECT_DOUBLE_EQ(seed.apply(v), 2.0 * std::min(1.0, mish + 0.5));
  EXPECT_DOUBLE_EQ(seed.apply(50.0), 2.0);            // mish(50) = 50, clipped to 1
  EXPECT_DOUBLE_EQ(seed.apply(-50.0), 1.0);           // mish(-50) ~ 0, + 0.5
  EXPECT_TRUE(std::isnan(seed.apply(std::nan(""))));  // hardtanh(NaN) is NaN
  EXPECT_TRUE(std::isnan(Epilogue::parse("relu").apply(std::nan(""))));
  EXPECT_DOUBLE_EQ(Epilogue::parse("leaky_relu:0.1").apply(-2.0), -0.2);
  EXPECT_DOUBLE_EQ(Epilogue::parse("softplus").apply(30.0), 30.0);  // threshold 20
  EXPECT_NEAR(Epilogue::parse("gelu").apply(1.0), 0.8413447460685429, 1e-15);
}

TEST(Epilogue, CudaStatementsUseExactLiterals) {
  Epilogue e = Epilogue::parse("add:0.1,clamp:-1:2");
  EXPECT_EQ(e.cuda_statements("v", false), "v = dt_add(v, 0.1f); v = dt_clamp(v, -1.0f, 2.0f); ");
  EXPECT_EQ(e.cuda_statements("v", true), "v = dt_add(v, 0.1); v = dt_clamp(v, -1.0, 2.0); ");
}

}  // namespace
}  // namespace deconvtune

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "codegen/problem.hpp"

namespace deconvtune {
namespace {

using nlohmann::json;

json seed_json() { return Problem::seed().to_json(); }

TEST(Problem, SeedShapeAndKey) {
  Problem p = Problem::seed();
  EXPECT_EQ(p.out_height(), 256);
  EXPECT_EQ(p.out_width(), 256);
  EXPECT_EQ(p.y_elements(), int64_t{128} * 64 * 256 * 256);
  // Along each axis the 128 inputs reach 383 in-range outputs (the first input's tap -1 falls off).
  EXPECT_EQ(p.multiply_adds(), int64_t{128} * 64 * 64 * 383 * 383);
  EXPECT_EQ(p.key(),
            "convT2d:n128:ci64:co64:h128:w128:k3x3:s2x2:p1x1:op1x1:d1x1:g1:bias:float32:NCHW:fp32|"
            "mish,add:0.5,hardtanh:-1:1,mul:2");
}

TEST(Problem, JsonRoundTripAndIntOrPair) {
  Problem p = Problem::from_json(json::parse(R"({"batch": 2, "in_channels": 4, "out_channels": 6,
      "height": 5, "width": 7, "kernel_size": [3, 2], "stride": 2, "padding": [1, 0],
      "output_padding": [1, 0], "dilation": 1, "groups": 2, "bias": false, "epilogue": "relu",
      "precision": "tf32"})"));
  EXPECT_EQ(p.kernel, (Pair{3, 2}));
  EXPECT_EQ(p.stride, (Pair{2, 2}));
  EXPECT_EQ(p.out_height(), (5 - 1) * 2 - 2 + 2 + 1 + 1);
  EXPECT_EQ(p.out_width(), (7 - 1) * 2 - 0 + 1 + 0 + 1);
  EXPECT_EQ(p.precision, Precision::kTf32);
  EXPECT_EQ(Problem::from_json(p.to_json()).key(), p.key());
}

TEST(Problem, ArgumentSeedInlineAndFile) {
  EXPECT_EQ(Problem::from_argument("seed").key(), Problem::seed().key());
  EXPECT_EQ(Problem::from_argument(seed_json().dump()).key(), Problem::seed().key());
  std::string path = ::testing::TempDir() + "/problem.json";
  std::ofstream(path) << seed_json().dump(2);
  EXPECT_EQ(Problem::from_argument(path).key(), Problem::seed().key());
  std::remove(path.c_str());
}

struct BadSpec {
  const char* label;
  const char* field;  // the field the error must name
  std::function<void(json&)> edit;
};

class ProblemRejects : public ::testing::TestWithParam<BadSpec> {};

TEST_P(ProblemRejects, NamesTheField) {
  json spec = seed_json();
  GetParam().edit(spec);
  try {
    Problem::from_json(spec);
    FAIL() << "accepted " << spec.dump();
  } catch (const ProblemError& e) {
    EXPECT_EQ(e.field(), GetParam().field) << e.what();
    EXPECT_NE(std::string(e.what()).find(GetParam().field), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    BadSpecs, ProblemRejects,
    ::testing::Values(
        BadSpec{"zero_batch", "batch", [](json& s) { s["batch"] = 0; }},
        BadSpec{"negative_height", "height", [](json& s) { s["height"] = -3; }},
        BadSpec{"zero_kernel", "kernel_size",
                [](json& s) {
                  s["kernel_size"] = {3, 0};
                }},
        BadSpec{"zero_stride", "stride", [](json& s) { s["stride"] = 0; }},
        BadSpec{"negative_padding", "padding", [](json& s) { s["padding"] = -1; }},
        BadSpec{"output_padding_too_big", "output_padding",
                [](json& s) { s["output_padding"] = 2; }},
        BadSpec{"channels_not_divisible", "in_channels",
                [](json& s) {
                  s["groups"] = 3;
                  s["in_channels"] = 64;
                  s["out_channels"] = 63;
                }},
        BadSpec{"out_not_divisible", "out_channels",
                [](json& s) {
                  s["groups"] = 4;
                  s["out_channels"] = 62;
                }},
        BadSpec{"zero_groups", "groups", [](json& s) { s["groups"] = 0; }},
        BadSpec{"zero_dilation", "dilation",
                [](json& s) {
                  s["dilation"] = {0, 1};
                }},
        BadSpec{"non_positive_output", "padding",
                [](json& s) {
                  s["height"] = 1;
                  s["kernel_size"] = 1;
                  s["padding"] = 1;
                }},
        BadSpec{"unknown_op", "epilogue", [](json& s) { s["epilogue"] = "mish,swish"; }},
        BadSpec{"op_arity", "epilogue", [](json& s) { s["epilogue"] = "add"; }},
        BadSpec{"op_not_number", "epilogue", [](json& s) { s["epilogue"] = "mul:two"; }},
        BadSpec{"clamp_inverted", "epilogue", [](json& s) { s["epilogue"] = "clamp:1:-1"; }},
        BadSpec{"bad_precision", "precision", [](json& s) { s["precision"] = "fp16"; }},
        BadSpec{"string_size", "width", [](json& s) { s["width"] = "128"; }},
        BadSpec{"triple", "kernel_size",
                [](json& s) {
                  s["kernel_size"] = {3, 3, 3};
                }},
        BadSpec{"float_size", "batch", [](json& s) { s["batch"] = 1.5; }},
        BadSpec{"bias_not_bool", "bias", [](json& s) { s["bias"] = 1; }},
        BadSpec{"unknown_field", "kernel", [](json& s) { s["kernel"] = 3; }},
        BadSpec{"missing_field", "in_channels", [](json& s) { s.erase("in_channels"); }},
        BadSpec{"huge_sizes", "batch",
                [](json& s) {
                  s["batch"] = 1 << 24;
                  s["height"] = 1 << 20;
                  s["width"] = 1 << 20;
                }},
        BadSpec{"output_row_past_int32", "stride",
                [](json& s) {
                  s["batch"] = 1;
                  s["height"] = 1 << 24;
                  s["stride"] = {256, 2};
                }},
        BadSpec{"float64_dtype", "dtype", [](json& s) { s["dtype"] = "float64"; }},
        BadSpec{"torch_spelled_dtype", "dtype", [](json& s) { s["dtype"] = "torch.float16"; }},
        BadSpec{"numeric_dtype", "dtype", [](json& s) { s["dtype"] = 2; }},
        BadSpec{"lowercase_layout", "layout", [](json& s) { s["layout"] = "nhwc"; }},
        BadSpec{"channels_last_layout", "layout", [](json& s) { s["layout"] = "channels_last"; }},
        BadSpec{"null_layout", "layout", [](json& s) { s["layout"] = nullptr; }}),
    [](const auto& info) { return std::string(info.param.label); });

TEST(Problem, MalformedJsonAndMissingFileNameTheProblem) {
  try {
    Problem::from_argument("{\"batch\": 1,");
    FAIL();
  } catch (const ProblemError& e) {
    EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos);
  }
  EXPECT_THROW(Problem::from_argument("/no/such/problem.json"), ProblemError);
  EXPECT_THROW(Problem::from_argument("[1, 2]"), ProblemError);
}

TEST(Problem, FilesThatAreNotSmallRegularFilesAndDeepNestingAreRefused) {
  auto refusal = [](const std::string& argument) -> std::string {
    try {
      Problem::from_argument(argument);
    } catch (const ProblemError& e) {
      return e.what();
    }
    return "accepted";
  };
  // A FIFO would block the read forever; /dev/zero would never end.
  const std::string fifo = ::testing::TempDir() + "/deconvtune_problem_fifo";
  std::remove(fifo.c_str());
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(refusal(fifo).find("not a regular file"), std::string::npos) << refusal(fifo);
  std::remove(fifo.c_str());
  EXPECT_NE(refusal("/dev/zero").find("not a regular file"), std::string::npos);
  EXPECT_NE(refusal(::testing::TempDir()).find("not a regular file"), std::string::npos);
  const std::string big = ::testing::TempDir() + "/deconvtune_problem_big.json";
  {
    std::ofstream out(big);
    out << "{\"batch\": 1" << std::string(kMaxProblemFileBytes, ' ') << "}";
  }
  EXPECT_NE(refusal(big).find("larger than"), std::string::npos) << refusal(big);
  std::remove(big.c_str());
  // Deep nesting, inline and in a file, stops before the parser recurses.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_NE(refusal(deep), "accepted");  // not an object: taken as a (too long) file name
  EXPECT_NE(refusal("{\"batch\": " + deep + "}").find("nested deeper"), std::string::npos);
  // Brackets inside strings do not count.
  EXPECT_EQ(json_nesting_depth(R"({"epilogue": "[[[[[[[[[[[[[[[[\"[[[["})"), 1);
  EXPECT_EQ(json_nesting_depth(R"({"kernel_size": [3, [5]]})"), 3);
}

// Issue 14.3: two readers of one document must not disagree (nlohmann keeps the last duplicate),
// and a message quoting untrusted text neither floods the terminal nor drives it.
TEST(Problem, DuplicateKeysAreRefusedAndQuotedValuesAreEscapedAndCut) {
  auto refusal = [](const std::string& argument) -> std::string {
    try {
      Problem::from_argument(argument);
    } catch (const ProblemError& e) {
      return e.what();
    }
    return "accepted";
  };
  const std::string base = R"("in_channels": 4, "out_channels": 4, "height": 4, "width": 4, )";
  EXPECT_NE(refusal("{" + base + R"("kernel_size": 3, "batch": 1, "batch": 2})")
                .find("duplicate key 'batch'"),
            std::string::npos);
  // Keys of sibling objects may repeat; keys of one object may not, at any depth.
  EXPECT_EQ(parse_untrusted_json(R"({"a": {"k": 1}, "b": {"k": 2}})", 8)["b"]["k"], 2);
  EXPECT_THROW(parse_untrusted_json(R"([{"k": 1, "k": 1}])", 8), UntrustedJsonError);
  EXPECT_THROW(parse_untrusted_json(R"({"a": [[{"x": 0, "x": 0}]]})", 8), UntrustedJsonError);

  // A 10 MB value is quoted in a few hundred characters.
  const std::string huge =
      "{" + base + R"("kernel_size": 3, "batch": ")" + std::string(10 << 20, 'A') + "\"}";
  const std::string long_message = refusal(huge);
  EXPECT_NE(long_message.find("batch"), std::string::npos) << long_message.substr(0, 200);
  EXPECT_LT(long_message.size(), 600u);
  // A field name carrying a terminal escape (ESC [ 2 J clears the screen) is shown escaped.
  const std::string escape =
      refusal("{" + base + R"("kernel_size": 3, "batch": 1, "\u001b[2J": 1})");
  EXPECT_EQ(escape.find('\x1b'), std::string::npos) << escape;
  EXPECT_NE(escape.find("\\x1b[2J"), std::string::npos) << escape;
  const std::string newline =
      refusal("{" + base + R"("kernel_size": 3, "batch": 1, "epilogue": "mish\nrelu\u0007"})");
  EXPECT_EQ(newline.find('\n'), std::string::npos) << newline;
  EXPECT_EQ(newline.find('\a'), std::string::npos) << newline;
  EXPECT_EQ(printable(std::string("a\tb\xff", 4)), "a\\x09b\\xff");
  EXPECT_EQ(printable(std::string(300, 'x'), 10), std::string(10, 'x') + "...");
}

TEST(Problem, DtypeAndLayoutAreFieldsOfTheKeyAndTheJson) {
  std::set<std::string> keys;
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (Layout layout : {Layout::kNchw, Layout::kNhwc}) {
      json spec = seed_json();
      spec["dtype"] = std::string(to_string(dtype));
      spec["layout"] = std::string(to_string(layout));
      const Problem p = Problem::from_json(spec);
      EXPECT_EQ(p.dtype, dtype);
      EXPECT_EQ(p.layout, layout);
      EXPECT_EQ(p.to_json()["dtype"], to_string(dtype));
      EXPECT_EQ(p.to_json()["layout"], to_string(layout));
      EXPECT_EQ(Problem::from_json(p.to_json()).key(), p.key());
      EXPECT_NE(p.key().find(fmt::format(":bias:{}:{}:fp32|", to_string(dtype), to_string(layout))),
                std::string::npos)
          << p.key();
      EXPECT_EQ(p.io_bytes(), element_bytes(dtype) * (p.x_elements() + p.y_elements()));
      keys.insert(p.key());
    }
  }
  EXPECT_EQ(keys.size(), 6u);
  // Left out, they are float32 and NCHW: the key every earlier problem (and DB) has.
  json spec = seed_json();
  spec.erase("dtype");
  spec.erase("layout");
  EXPECT_EQ(Problem::from_json(spec).key(), Problem::seed().key());
  EXPECT_EQ(Problem::seed().dtype, DType::kFloat32);
  EXPECT_EQ(Problem::seed().layout, Layout::kNchw);
}

TEST(Problem, TheDtypeErrorListsTheTypes) {
  json spec = seed_json();
  spec["dtype"] = "half";
  try {
    Problem::from_json(spec);
    FAIL();
  } catch (const ProblemError& e) {
    EXPECT_STREQ(e.what(),
                 "problem field 'dtype': 'half' is not a data type (float32, bfloat16 or float16)");
  }
}

TEST(Problem, TheFieldTableNamesEveryNumericField) {
  // Every field to_json writes is in kProblemFields or one of the fields with forms of their own.
  const std::set<std::string> others = {"bias", "dtype", "layout", "precision", "epilogue"};
  std::set<std::string> table;
  for (const ProblemField& field : kProblemFields) {
    table.insert(std::string(field.name));
    EXPECT_NE(field.scalar == nullptr, field.pair == nullptr) << field.name;
  }
  const json seed = seed_json();
  for (const auto& item : seed.items()) {
    EXPECT_TRUE(table.count(item.key()) + others.count(item.key()) == 1) << item.key();
  }
  EXPECT_EQ(table.size() + others.size(), seed.size());
}

TEST(Dtype, SixteenBitRoundingIsNearestEven) {
  // bfloat16 keeps 8 significant bits, float16 11: ties go to the even neighbour.
  EXPECT_EQ(to_bits(DType::kBFloat16, 1.0f), 0x3F80);
  EXPECT_EQ(round_to(DType::kBFloat16, 1.0f + 0x1p-8f), 1.0f);                // tie, to even
  EXPECT_EQ(round_to(DType::kBFloat16, 1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);  // tie, to even
  EXPECT_EQ(round_to(DType::kBFloat16, 1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);
  EXPECT_EQ(to_bits(DType::kFloat16, 1.0f), 0x3C00);
  EXPECT_EQ(to_bits(DType::kFloat16, -2.0f), 0xC000);
  EXPECT_EQ(to_bits(DType::kFloat16, 65504.0f), 0x7BFF);
  EXPECT_EQ(to_bits(DType::kFloat16, 65520.0f), 0x7C00);  // the tie past the largest: infinity
  EXPECT_EQ(to_bits(DType::kFloat16, 0x1p-24f), 0x0001);  // the smallest subnormal
  EXPECT_EQ(to_bits(DType::kFloat16, 0x1p-25f), 0x0000);  // its half: a tie, to even (zero)
  EXPECT_EQ(to_bits(DType::kFloat16, 0x1p-14f - 0x1p-26f), 0x0400);  // rounds up into the normals
  EXPECT_EQ(round_to(DType::kFloat16, 1.0f + 0x1p-11f), 1.0f);
  EXPECT_EQ(round_to(DType::kFloat16, 1.0f + 3 * 0x1p-11f), 1.0f + 0x1p-9f);
  EXPECT_TRUE(std::isnan(round_to(DType::kFloat16, NAN)));
  EXPECT_TRUE(std::isnan(round_to(DType::kBFloat16, NAN)));
  EXPECT_EQ(round_to(DType::kFloat32, 0.1f), 0.1f);
  // Every 16-bit pattern that is a number survives the round trip.
  for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
    for (uint32_t bits = 0; bits < 0x10000; ++bits) {
      const float value = from_bits(dtype, static_cast<uint16_t>(bits));
      if (!std::isnan(value)) {
        ASSERT_EQ(static_cast<uint32_t>(to_bits(dtype, value)), bits) << to_string(dtype) << bits;
      }
    }
  }
  // The unit roundoff bounds every rounding of a normal value.
  for (float v : {0.1f, 1.0f / 3, 1.7f, 1234.567f, -0.0078f}) {
    for (DType dtype : {DType::kBFloat16, DType::kFloat16}) {
      EXPECT_LE(std::fabs(round_to(dtype, v) - v), unit_roundoff(dtype) * std::fabs(v));
    }
  }
}

TEST(Problem, SixteenBitVerificationAddsTheStoresRounding) {
  Problem p = Problem::seed();
  const double fp32 = verification_bound(p, 2.0);
  EXPECT_DOUBLE_EQ(fp32, error_bound(p));
  p.dtype = DType::kBFloat16;
  EXPECT_DOUBLE_EQ(verification_bound(p, 2.0), fp32 + 2.0 * 0x1p-8);
  p.dtype = DType::kFloat16;
  EXPECT_DOUBLE_EQ(verification_bound(p, 2.0), fp32 + 2.0 * 0x1p-11);
  EXPECT_GE(verified_error_ceiling(p), verification_bound(p, 2.0));
}

TEST(Problem, PrecisionIsPartOfTheKey) {
  Problem a = Problem::seed();
  Problem b = a;
  b.precision = Precision::kTf32;
  EXPECT_NE(a.key(), b.key());
}

}  // namespace
}  // namespace deconvtune

#pragma once
// A validated ConvTranspose2d + epilogue problem: every parameter PyTorch's ConvTranspose2d takes,
// the data type, layout, precision mode and epilogue chain. A Problem that exists is valid (the
// factories validate by PyTorch's rules), and key() names it canonically for caches and the DB.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "codegen/dtype.hpp"
#include "codegen/epilogue.hpp"
#include "codegen/untrusted.hpp"

namespace deconvtune {

enum class Precision { kFp32, kTf32 };
std::string_view to_string(Precision precision);

// Integer division rounding toward minus infinity (the phase arithmetic of strided taps).
int64_t floor_div(int64_t a, int64_t b);
int64_t floor_mod(int64_t a, int64_t b);           // a - b * floor_div(a, b): in [0, b) for b > 0
Precision parse_precision(std::string_view text);  // throws std::invalid_argument

constexpr int kMaxProblemNesting = 8;  // a problem spec nests 2 deep (codegen/untrusted.hpp)
constexpr size_t kMaxProblemFileBytes = 1 << 20;

// A spec that breaks a rule. field() names the JSON field (e.g. "output_padding").
class ProblemError : public std::invalid_argument {
 public:
  // The field a fault of the spec as a whole (not an object, not a readable file) names.
  static constexpr const char* kWholeSpec = "(problem)";
  ProblemError(const std::string& field, const std::string& rule);
  // The field as what() names it: escaped where the spec's own text is not printable.
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

struct Pair {
  int64_t h = 0;
  int64_t w = 0;
  bool operator==(const Pair& other) const { return h == other.h && w == other.w; }
};

struct Problem {
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  Pair kernel;
  Pair stride{1, 1};
  Pair padding{0, 0};
  Pair output_padding{0, 0};
  Pair dilation{1, 1};
  int64_t groups = 1;
  bool bias = true;
  DType dtype = DType::kFloat32;
  Layout layout = Layout::kNchw;
  Precision precision = Precision::kFp32;
  Epilogue epilogue;
  // The user's label for it (a problems file's "name"): shown by the tools, part of neither key()
  // nor to_json(), so two names of one shape share their tuning.
  std::string name;
  // Throws ProblemError for the first rule broken.
  void validate() const;

  int64_t out_height() const;
  int64_t out_width() const;
  int64_t x_elements() const { return batch * in_channels * height * width; }
  int64_t w_elements() const { return in_channels * (out_channels / groups) * kernel.h * kernel.w; }
  int64_t y_elements() const { return batch * out_channels * out_height() * out_width(); }
  int64_t multiply_adds() const;  // of the transposed convolution, zero taps excluded
  int64_t element_bytes() const { return deconvtune::element_bytes(dtype); }
  // x read once and y written once: the traffic no kernel avoids. The DB's time floor and the
  // GB/s the tools print both count it.
  int64_t io_bytes() const { return element_bytes() * (x_elements() + y_elements()); }

  std::string key() const;
  nlohmann::json to_json() const;
  bool operator==(const Problem& other) const { return key() == other.key(); }

  // The user's headline block: x [128, 64, 128, 128], k3 s2 p1 op1, the seed epilogue.
  static Problem seed();
  // PyTorch's argument names; an int or an [h, w] pair where PyTorch takes either. Unknown fields
  // are errors (a typo must not silently fall back to a default). Validates.
  static Problem from_json(const nlohmann::json& spec);
  // `seed`, a path to a JSON file, or inline JSON. Validates.
  static Problem from_argument(std::string_view argument);
};

// The problem's integer and [h, w] fields, in key order: the one list of them that key(),
// to_json(), from_json() and the DB's parse_problem_key read (and the public ProblemSpec's JSON is
// checked against at compile time, engine/engine.cpp). The other fields (bias, dtype, layout,
// precision, epilogue) each have a form of their own and follow in the key in that order.
struct ProblemField {
  std::string_view name;               // the JSON name: PyTorch's argument name
  std::string_view prefix;             // in the key: n128, k3x3
  int64_t Problem::*scalar = nullptr;  // exactly one of scalar and pair is set
  Pair Problem::*pair = nullptr;
  bool required = false;  // else it has the default a Problem starts with
};
inline constexpr ProblemField kProblemFields[] = {
    {"batch", "n", &Problem::batch, nullptr, true},
    {"in_channels", "ci", &Problem::in_channels, nullptr, true},
    {"out_channels", "co", &Problem::out_channels, nullptr, true},
    {"height", "h", &Problem::height, nullptr, true},
    {"width", "w", &Problem::width, nullptr, true},
    {"kernel_size", "k", nullptr, &Problem::kernel, true},
    {"stride", "s", nullptr, &Problem::stride},
    {"padding", "p", nullptr, &Problem::padding},
    {"output_padding", "op", nullptr, &Problem::output_padding},
    {"dilation", "d", nullptr, &Problem::dilation},
    {"groups", "g", &Problem::groups, nullptr},
};

// The largest |y| of the seed's inputs: the verifier widens error_bound for outputs beyond it.
inline constexpr double kSeedOutputMagnitude = 2.0;

// The error a kernel may show against float64: the precision's bound on the seed shape (fp32 2e-6,
// tf32 1e-3), widened for longer dot products (error grows like sqrt(K)); the verifier widens it
// further for outputs larger than the seed's (verification_bound).
double error_bound(const Problem& problem);

// The bound the verifier holds a kernel's max |err| to, given the reference's max |y|: the
// accumulation bound error_bound, scaled once |y| passes the seed's range, plus for a 16-bit y
// the one rounding of the store, u |y| (u = 2^-8 bfloat16, 2^-11 float16; at most half an ulp of
// y). The reference computes from the same rounded inputs, so their rounding is no error.
double verification_bound(const Problem& problem, double max_abs_reference);

// The largest max |error| a verified run of `problem` can have: error_bound widened as the
// verifier widens it for the largest output its inputs (x in [0, 1), W and bias within
// 1/sqrt(fan_in)) and the epilogue can produce. A stored kOk error above it was never verified.
double verified_error_ceiling(const Problem& problem);

}  // namespace deconvtune

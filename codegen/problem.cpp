#include "codegen/problem.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

namespace deconvtune {
namespace {

using nlohmann::json;

int64_t read_int(const json& spec, const char* field) {
  const json& value = spec.at(field);
  if (!value.is_number_integer()) {
    throw ProblemError(field, fmt::format("must be an integer, got {}", value.dump()));
  }
  return value.get<int64_t>();
}

Pair read_pair(const json& spec, const char* field) {
  const json& value = spec.at(field);
  if (value.is_number_integer()) return {value.get<int64_t>(), value.get<int64_t>()};
  if (value.is_array() && value.size() == 2 && value[0].is_number_integer() &&
      value[1].is_number_integer()) {
    return {value[0].get<int64_t>(), value[1].get<int64_t>()};
  }
  throw ProblemError(
      field, fmt::format("must be an integer or an [h, w] pair of integers, got {}", value.dump()));
}

void require_positive(int64_t value, const char* field) {
  if (value <= 0) throw ProblemError(field, fmt::format("must be positive, got {}", value));
}

void require_positive(Pair value, const char* field) {
  if (value.h <= 0 || value.w <= 0) {
    throw ProblemError(field, fmt::format("must be positive, got [{}, {}]", value.h, value.w));
  }
}

void require_non_negative(Pair value, const char* field) {
  if (value.h < 0 || value.w < 0) {
    throw ProblemError(field, fmt::format("must be non-negative, got [{}, {}]", value.h, value.w));
  }
}

// Products of sizes must not overflow: a tensor this large could not exist anyway.
constexpr int64_t kMaxElements = int64_t{1} << 46;

int64_t checked_product(std::initializer_list<int64_t> factors, const char* field) {
  int64_t product = 1;
  for (int64_t f : factors) {
    if (f != 0 && product > kMaxElements / f) {
      throw ProblemError(field, "tensor size overflows (more than 2^46 elements)");
    }
    product *= f;
  }
  return product;
}

int64_t output_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t op, int64_t d) {
  return (in - 1) * s - 2 * p + d * (k - 1) + op + 1;
}

// Along one axis: the (input i, tap t) pairs whose output o = i * s - p + t * d lands in [0, out).
// Each input pixel meets every such tap once. O(k), not O(in * k): sizes go up to 2^24 each.
int64_t in_range_taps(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d) {
  int64_t taps = 0;
  for (int64_t t = 0; t < k; ++t) {
    const int64_t first = std::max<int64_t>(0, -floor_div(t * d - p, s));  // ceil((p - t*d) / s)
    const int64_t last = std::min(in - 1, floor_div(out - 1 + p - t * d, s));
    taps += std::max<int64_t>(0, last - first + 1);
  }
  return taps;
}

}  // namespace

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
int64_t floor_mod(int64_t a, int64_t b) { return a - b * floor_div(a, b); }

ProblemError::ProblemError(const std::string& field, const std::string& rule)
    // Both may quote the spec, which is untrusted: escaped and cut (codegen/untrusted.hpp). The
    // field is kept escaped too, so that field() names it exactly as what() does.
    : std::invalid_argument(
          field == kWholeSpec
              ? fmt::format("problem: {}", printable(rule, 400))
              : fmt::format("problem field '{}': {}", printable(field, 80), printable(rule, 400))),
      field_(printable(field, 80)) {}

std::string_view to_string(Precision precision) {
  return precision == Precision::kFp32 ? "fp32" : "tf32";
}

Precision parse_precision(std::string_view text) {
  if (text == "fp32") return Precision::kFp32;
  if (text == "tf32") return Precision::kTf32;
  throw std::invalid_argument(fmt::format("precision '{}' is unknown (fp32 or tf32)", text));
}

int64_t Problem::out_height() const {
  return output_size(height, kernel.h, stride.h, padding.h, output_padding.h, dilation.h);
}

int64_t Problem::out_width() const {
  return output_size(width, kernel.w, stride.w, padding.w, output_padding.w, dilation.w);
}

void Problem::validate() const {
  require_positive(batch, "batch");
  require_positive(in_channels, "in_channels");
  require_positive(out_channels, "out_channels");
  require_positive(height, "height");
  require_positive(width, "width");
  require_positive(kernel, "kernel_size");
  require_positive(stride, "stride");
  require_positive(dilation, "dilation");
  require_positive(groups, "groups");
  require_non_negative(padding, "padding");
  require_non_negative(output_padding, "output_padding");
  // Sizes large enough to overflow the arithmetic below are refused before it runs.
  for (auto [value, field] : {std::pair{batch, "batch"},
                              {in_channels, "in_channels"},
                              {out_channels, "out_channels"},
                              {height, "height"},
                              {width, "width"},
                              {kernel.h, "kernel_size"},
                              {kernel.w, "kernel_size"},
                              {stride.h, "stride"},
                              {stride.w, "stride"},
                              {padding.h, "padding"},
                              {padding.w, "padding"},
                              {dilation.h, "dilation"},
                              {dilation.w, "dilation"}}) {
    if (value > (int64_t{1} << 24)) {
      throw ProblemError(field, fmt::format("{} is larger than 2^24", value));
    }
  }
  if (output_padding.h >= std::max(stride.h, dilation.h) ||
      output_padding.w >= std::max(stride.w, dilation.w)) {
    throw ProblemError("output_padding",
                       fmt::format("must be smaller than either stride or dilation, got "
                                   "output_padding [{}, {}], stride [{}, {}], dilation [{}, {}]",
                                   output_padding.h, output_padding.w, stride.h, stride.w,
                                   dilation.h, dilation.w));
  }
  if (in_channels % groups != 0) {
    throw ProblemError("in_channels",
                       fmt::format("{} is not divisible by groups ({})", in_channels, groups));
  }
  if (out_channels % groups != 0) {
    throw ProblemError("out_channels",
                       fmt::format("{} is not divisible by groups ({})", out_channels, groups));
  }
  if (out_height() <= 0 || out_width() <= 0) {
    throw ProblemError("padding", fmt::format("the output size [{}, {}] is not positive",
                                              out_height(), out_width()));
  }
  // The kernels hold a row or column index in 32 bits (y's offsets are 64-bit).
  if (out_height() > INT32_MAX || out_width() > INT32_MAX) {
    throw ProblemError("stride",
                       fmt::format("the output size [{}, {}] passes 2^31 - 1 along an axis",
                                   out_height(), out_width()));
  }
  checked_product({batch, in_channels, height, width}, "batch");
  checked_product({batch, out_channels, out_height(), out_width()}, "batch");
  checked_product({in_channels, out_channels, kernel.h, kernel.w}, "kernel_size");
  // multiply_adds() must fit in int64: refuse, naming the factor at which the count overflows.
  int64_t count = 1;
  for (auto [factor, field] :
       {std::pair{batch, "batch"},
        {in_channels, "in_channels"},
        {out_channels / groups, "out_channels"},
        {in_range_taps(height, out_height(), kernel.h, stride.h, padding.h, dilation.h), "height"},
        {in_range_taps(width, out_width(), kernel.w, stride.w, padding.w, dilation.w), "width"}}) {
    if (__builtin_mul_overflow(count, factor, &count)) {
      throw ProblemError(field,
                         "the multiply-add count (batch x in_channels x out_channels / groups x "
                         "taps along height x taps along width) overflows int64");
    }
  }
}

int64_t Problem::multiply_adds() const {
  // validate() has checked that this product fits in int64 (every factor is non-negative).
  return batch * in_channels * (out_channels / groups) *
         in_range_taps(height, out_height(), kernel.h, stride.h, padding.h, dilation.h) *
         in_range_taps(width, out_width(), kernel.w, stride.w, padding.w, dilation.w);
}

std::string Problem::key() const {
  std::string key = "convT2d";
  for (const ProblemField& field : kProblemFields) {
    if (field.scalar) {
      key += fmt::format(":{}{}", field.prefix, this->*field.scalar);
    } else {
      key += fmt::format(":{}{}x{}", field.prefix, (this->*field.pair).h, (this->*field.pair).w);
    }
  }
  return key + fmt::format(":{}:{}:{}:{}|{}", bias ? "bias" : "nobias", to_string(dtype),
                           to_string(layout), to_string(precision), epilogue.text());
}

json Problem::to_json() const {
  json spec = json::object();
  for (const ProblemField& field : kProblemFields) {
    if (field.scalar) {
      spec[std::string(field.name)] = this->*field.scalar;
    } else {
      spec[std::string(field.name)] = json::array({(this->*field.pair).h, (this->*field.pair).w});
    }
  }
  spec["bias"] = bias;
  spec["dtype"] = to_string(dtype);
  spec["layout"] = to_string(layout);
  spec["epilogue"] = epilogue.text();
  spec["precision"] = to_string(precision);
  return spec;
}

Problem Problem::seed() {
  Problem p;
  p.batch = 128;
  p.in_channels = 64;
  p.out_channels = 64;
  p.height = 128;
  p.width = 128;
  p.kernel = {3, 3};
  p.stride = {2, 2};
  p.padding = {1, 1};
  p.output_padding = {1, 1};
  p.epilogue = Epilogue::seed();
  p.name = "seed";
  p.validate();
  return p;
}

Problem Problem::from_json(const json& spec) {
  if (!spec.is_object()) {
    throw ProblemError(ProblemError::kWholeSpec,
                       fmt::format("must be a JSON object, got {}", spec.dump()));
  }
  // The fields outside kProblemFields; "name" is the user's label, in neither key() nor to_json().
  static const char* const kOthers[] = {"bias", "epilogue", "precision", "name", "dtype", "layout"};
  for (const ProblemField& field : kProblemFields) {
    if (field.required && !spec.contains(field.name))
      throw ProblemError(std::string(field.name), "is required");
  }
  for (const auto& item : spec.items()) {
    // A named variable, not a structured binding: clang 14 cannot capture those in a lambda.
    const std::string& name = item.key();
    if (std::none_of(std::begin(kProblemFields), std::end(kProblemFields),
                     [&](const ProblemField& field) { return field.name == name; }) &&
        std::none_of(std::begin(kOthers), std::end(kOthers),
                     [&](const char* other) { return name == other; })) {
      throw ProblemError(name, "is not a ConvTranspose2d problem field");
    }
  }
  Problem p;
  for (const ProblemField& field : kProblemFields) {
    const std::string name(field.name);
    if (!spec.contains(name)) continue;
    if (field.scalar) {
      p.*field.scalar = read_int(spec, name.c_str());
    } else {
      p.*field.pair = read_pair(spec, name.c_str());
    }
  }
  if (spec.contains("bias")) {
    if (!spec["bias"].is_boolean()) {
      throw ProblemError("bias", fmt::format("must be true or false, got {}", spec["bias"].dump()));
    }
    p.bias = spec["bias"].get<bool>();
  }
  auto read_string = [&](const char* field) {
    if (!spec[field].is_string()) {
      throw ProblemError(field, fmt::format("must be a string, got {}", spec[field].dump()));
    }
    return spec[field].get<std::string>();
  };
  // The named field's parse, its std::invalid_argument as a ProblemError naming the field.
  auto parse_field = [&](const char* field, auto parse) {
    try {
      return parse(read_string(field));
    } catch (const ProblemError&) {
      throw;
    } catch (const std::invalid_argument& e) {
      throw ProblemError(field, e.what());
    }
  };
  if (spec.contains("dtype")) p.dtype = parse_field("dtype", parse_dtype);
  if (spec.contains("layout")) p.layout = parse_field("layout", parse_layout);
  if (spec.contains("name")) p.name = read_string("name");
  p.epilogue =
      spec.contains("epilogue") ? parse_field("epilogue", Epilogue::parse) : Epilogue::seed();
  if (spec.contains("precision")) p.precision = parse_field("precision", parse_precision);
  p.validate();
  return p;
}

Problem Problem::from_argument(std::string_view argument) {
  if (argument == "seed") return seed();
  std::string text(argument);
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text[first] != '{') {
    // Only a regular file, and a small one: a FIFO would block forever, /dev/zero never ends.
    std::error_code error;
    const std::filesystem::file_status status = std::filesystem::status(text, error);
    if (!error && std::filesystem::exists(status) && !std::filesystem::is_regular_file(status)) {
      throw ProblemError(ProblemError::kWholeSpec, fmt::format("'{}' is not a regular file", text));
    }
    if (!error && std::filesystem::is_regular_file(status) &&
        std::filesystem::file_size(text, error) > kMaxProblemFileBytes) {
      throw ProblemError(ProblemError::kWholeSpec,
                         fmt::format("'{}' is larger than {} bytes: not a problem spec", text,
                                     kMaxProblemFileBytes));
    }
    std::ifstream file(text);
    if (!file) {
      throw ProblemError(ProblemError::kWholeSpec,
                         fmt::format("'{}' is not 'seed', inline JSON or a readable "
                                     "JSON file",
                                     text));
    }
    std::ostringstream contents;
    contents << file.rdbuf();
    text = contents.str();
  }
  json spec;
  try {
    spec = parse_untrusted_json(text, kMaxProblemNesting);
  } catch (const UntrustedJsonError& e) {
    throw ProblemError(ProblemError::kWholeSpec, fmt::format("{}: not a problem spec", e.what()));
  }
  return from_json(spec);
}

double error_bound(const Problem& problem) {
  // tf32: one TF32 product per multiply-add, both operands rounded to nearest, as cuBLAS and cuDNN
  // compute it. cuDNN's own TF32 draws 4.3-5.3e-4 over the seed's outputs on the H100 and H200
  // (bench/results/), and the max of 5e8 errors moves by 10-20% between draws, so the bound sits
  // at about twice what cuDNN reaches.
  const double base = problem.precision == Precision::kFp32 ? 2e-6 : 1e-3;
  // Terms per output: input channels of the group times the taps that land (on average).
  const double taps = std::max(1.0, static_cast<double>(problem.kernel.h * problem.kernel.w) /
                                        static_cast<double>(problem.stride.h * problem.stride.w));
  const double terms = static_cast<double>(problem.in_channels / problem.groups) * taps;
  const double seed_terms = 64.0 * 9.0 / 4.0;
  // Rounding errors grow with the size of the products too: W is drawn as PyTorch initialises
  // it, within 1/sqrt(fan_in), fan_in = C_out/groups * kH * kW, so a narrow group has larger
  // weights than the seed's (fan_in 576) and proportionally larger errors.
  const double fan_in = static_cast<double>(problem.out_channels / problem.groups *
                                            problem.kernel.h * problem.kernel.w);
  const double weight_scale = std::sqrt(576.0 / fan_in);
  return base * std::max(1.0, std::sqrt(terms / seed_terms) * weight_scale);
}

double verification_bound(const Problem& problem, double max_abs_reference) {
  // Errors scale with the values themselves once they exceed the seed's range. A float32 y needs
  // no rounding term: error_bound covers fp32's own rounding of y.
  const double store = problem.dtype == DType::kFloat32 ? 0.0 : unit_roundoff(problem.dtype);
  return error_bound(problem) * std::max(1.0, max_abs_reference / kSeedOutputMagnitude) +
         store * max_abs_reference;
}

double verified_error_ceiling(const Problem& problem) {
  const double fan_in = static_cast<double>(problem.out_channels / problem.groups *
                                            problem.kernel.h * problem.kernel.w);
  // Every tap of the group's channels, each |x| < 1 times |w| <= 1/sqrt(fan_in), plus the bias.
  const double terms = static_cast<double>(problem.in_channels / problem.groups * problem.kernel.h *
                                           problem.kernel.w) +
                       1.0;
  const double largest_output = problem.epilogue.magnitude_bound(terms / std::sqrt(fan_in));
  return verification_bound(problem, largest_output);
}

}  // namespace deconvtune

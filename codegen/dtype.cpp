#include "codegen/dtype.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace deconvtune {
namespace {

uint32_t bits_of(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

float float_of(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// Round-to-nearest-even of fp32 into binary16, through double so that the one rounding is the
// final one: every fp32 is exact in double, and std::nearbyint on the scaled significand rounds
// to even under the default rounding mode.
uint16_t half_bits(float value) {
  const uint32_t f = bits_of(value);
  const uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
  if (std::isnan(value)) return static_cast<uint16_t>(sign | 0x7E00u);
  const double magnitude = std::fabs(static_cast<double>(value));
  if (magnitude >= 65520.0) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds past 65504
  int exponent = 0;
  std::frexp(magnitude, &exponent);  // magnitude = m * 2^exponent, m in [0.5, 1)
  // binary16 keeps 11 significant bits down to 2^-14, then a fixed quantum of 2^-24.
  const int quantum_exponent = std::max(exponent - 11, -24);
  const double units = std::nearbyint(std::ldexp(magnitude, -quantum_exponent));
  const double rounded = std::ldexp(units, quantum_exponent);
  if (rounded == 0) return sign;
  int e = 0;
  const double m = std::frexp(rounded, &e);  // rounded may have carried into the next binade
  if (e - 1 < -14) return static_cast<uint16_t>(sign | static_cast<uint16_t>(units));  // subnormal
  const uint16_t biased = static_cast<uint16_t>(e - 1 + 15);
  const uint16_t fraction = static_cast<uint16_t>(std::ldexp(m * 2 - 1, 10));
  return static_cast<uint16_t>(sign | (biased << 10) | fraction);
}

float half_value(uint16_t bits) {
  const float sign = (bits & 0x8000u) ? -1.0f : 1.0f;
  const int biased = (bits >> 10) & 0x1F;
  const int fraction = bits & 0x3FF;
  if (biased == 0x1F) return fraction ? std::nanf("") : sign * INFINITY;
  if (biased == 0) return sign * std::ldexp(static_cast<float>(fraction), -24);
  return sign * std::ldexp(static_cast<float>(fraction + 1024), biased - 25);
}

uint16_t bfloat_bits(float value) {
  const uint32_t f = bits_of(value);
  if (std::isnan(value)) return static_cast<uint16_t>((f >> 16) | 0x40u);  // stays a quiet NaN
  // Nearest even on the 16 bits dropped; a carry into the exponent is the correct rounding
  // (up to infinity past bfloat16's largest finite value).
  const uint32_t rounding = 0x7FFFu + ((f >> 16) & 1u);
  return static_cast<uint16_t>((f + rounding) >> 16);
}

}  // namespace

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kBFloat16:
      return "bfloat16";
    case DType::kFloat16:
      return "float16";
  }
  return "?";
}

std::string_view to_string(Layout layout) { return layout == Layout::kNchw ? "NCHW" : "NHWC"; }

DType parse_dtype(std::string_view text) {
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    if (text == to_string(dtype)) return dtype;
  }
  throw std::invalid_argument(
      fmt::format("'{}' is not a data type (float32, bfloat16 or float16)", text));
}

Layout parse_layout(std::string_view text) {
  for (Layout layout : {Layout::kNchw, Layout::kNhwc}) {
    if (text == to_string(layout)) return layout;
  }
  throw std::invalid_argument(
      fmt::format("'{}' is not a layout (NCHW, or NHWC for channels_last)", text));
}

int element_bytes(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

double unit_roundoff(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return std::ldexp(1.0, -24);
    case DType::kBFloat16:
      return std::ldexp(1.0, -8);
    case DType::kFloat16:
      return std::ldexp(1.0, -11);
  }
  return 1.0;
}

uint16_t to_bits(DType dtype, float value) {
  if (dtype == DType::kFloat16) return half_bits(value);
  if (dtype == DType::kBFloat16) return bfloat_bits(value);
  throw std::invalid_argument("to_bits: float32 has no 16-bit form");
}

float from_bits(DType dtype, uint16_t bits) {
  if (dtype == DType::kFloat16) return half_value(bits);
  if (dtype == DType::kBFloat16) return float_of(static_cast<uint32_t>(bits) << 16);
  throw std::invalid_argument("from_bits: float32 has no 16-bit form");
}

float round_to(DType dtype, float value) {
  return dtype == DType::kFloat32 ? value : from_bits(dtype, to_bits(dtype, value));
}

}  // namespace deconvtune

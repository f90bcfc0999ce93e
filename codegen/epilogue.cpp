#include "codegen/epilogue.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>

#include "codegen/untrusted.hpp"

namespace deconvtune {
namespace {

struct OpInfo {
  EpilogueKind kind;
  const char* name;
  int arity;
  const char* usage;
};

constexpr std::array<OpInfo, 12> kOps = {{
    {EpilogueKind::kMish, "mish", 0, "mish"},
    {EpilogueKind::kAdd, "add", 1, "add:c"},
    {EpilogueKind::kMul, "mul", 1, "mul:c"},
    {EpilogueKind::kHardtanh, "hardtanh", 2, "hardtanh:lo:hi"},
    {EpilogueKind::kRelu, "relu", 0, "relu"},
    {EpilogueKind::kLeakyRelu, "leaky_relu", 1, "leaky_relu:slope"},
    {EpilogueKind::kGelu, "gelu", 0, "gelu"},
    {EpilogueKind::kSilu, "silu", 0, "silu"},
    {EpilogueKind::kSigmoid, "sigmoid", 0, "sigmoid"},
    {EpilogueKind::kTanh, "tanh", 0, "tanh"},
    {EpilogueKind::kSoftplus, "softplus", 0, "softplus"},
    {EpilogueKind::kClamp, "clamp", 2, "clamp:lo:hi"},
}};

const OpInfo& info(EpilogueKind kind) {
  return *std::find_if(kOps.begin(), kOps.end(), [&](const OpInfo& op) { return op.kind == kind; });
}

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

double parse_number(std::string_view token, std::string_view shown_op) {
  std::string owned(trim(token));
  const std::string shown = printable(owned, 80);
  char* end = nullptr;
  errno = 0;
  double value = std::strtod(owned.c_str(), &end);
  // strtod reports ERANGE for overflow and for inexact underflow alike; underflow is refused below
  // with its own message.
  const bool overflowed = errno == ERANGE && std::fabs(value) > 1.0;
  if (owned.empty() || end != owned.c_str() + owned.size() || overflowed || !std::isfinite(value)) {
    throw std::invalid_argument(
        fmt::format("epilogue op '{}': argument '{}' is not a finite number", shown_op, shown));
  }
  // Arguments become fp32 literals in the kernel; refuse what fp32 cannot hold. A magnitude below
  // fp32's normal range would be flushed or rounded to a denormal there while the float64
  // reference keeps it, and its shortest text may not even parse back.
  if (std::fabs(value) > std::numeric_limits<float>::max()) {
    throw std::invalid_argument(
        fmt::format("epilogue op '{}': argument '{}' is outside the fp32 range", shown_op, shown));
  }
  if (value != 0.0 && std::fabs(value) < std::numeric_limits<float>::min()) {
    throw std::invalid_argument(fmt::format(
        "epilogue op '{}': argument '{}' is nonzero but below the fp32 normal range ({})", shown_op,
        shown, std::numeric_limits<float>::min()));
  }
  return value;
}

double softplus(double v) { return v > 20.0 ? v : std::log1p(std::exp(v)); }
double clamp(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

}  // namespace

std::string epilogue_op_names() {
  std::string names;
  for (const OpInfo& op : kOps) names += (names.empty() ? "" : ", ") + std::string(op.usage);
  return names;
}

Epilogue Epilogue::parse(std::string_view text) {
  std::vector<EpilogueOp> ops;
  if (trim(text).empty()) return Epilogue{};
  for (std::string_view op_text : split(text, ',')) {
    op_text = trim(op_text);
    const std::string shown = printable(op_text, 80);  // untrusted: escaped and cut
    std::vector<std::string_view> fields = split(op_text, ':');
    std::string_view name = trim(fields.front());
    auto found =
        std::find_if(kOps.begin(), kOps.end(), [&](const OpInfo& op) { return name == op.name; });
    if (found == kOps.end()) {
      throw std::invalid_argument(
          fmt::format("epilogue op '{}' is unknown (known ops: {})", shown, epilogue_op_names()));
    }
    if (static_cast<int>(fields.size()) - 1 != found->arity) {
      throw std::invalid_argument(fmt::format("epilogue op '{}' takes {} argument(s), written {}",
                                              shown, found->arity, found->usage));
    }
    EpilogueOp op{found->kind, {}};
    for (size_t i = 1; i < fields.size(); ++i) op.args.push_back(parse_number(fields[i], shown));
    if ((op.kind == EpilogueKind::kHardtanh || op.kind == EpilogueKind::kClamp) &&
        op.args[0] > op.args[1]) {
      throw std::invalid_argument(
          fmt::format("epilogue op '{}': lower bound exceeds upper bound", shown));
    }
    ops.push_back(std::move(op));
  }
  return Epilogue(std::move(ops));
}

Epilogue Epilogue::seed() { return parse("mish,add:0.5,hardtanh:-1:1,mul:2"); }

std::string Epilogue::text() const {
  std::string out;
  for (const EpilogueOp& op : ops_) {
    if (!out.empty()) out += ',';
    out += info(op.kind).name;
    for (double arg : op.args) out += fmt::format(":{}", arg);
  }
  return out;
}

std::string Epilogue::cuda_statements(std::string_view var, bool fp64) const {
  std::string out;
  for (const EpilogueOp& op : ops_) {
    out += fmt::format("{} = dt_{}({}", var, info(op.kind).name, var);
    // Shortest round-trip text, so the literal is exactly the argument (rounded once to fp32).
    for (double arg : op.args) {
      out += fp64 ? fmt::format(", {:#}", arg) : fmt::format(", {:#}f", static_cast<float>(arg));
    }
    out += "); ";
  }
  return out;
}

double Epilogue::magnitude_bound(double magnitude) const {
  double m = magnitude;
  for (const EpilogueOp& op : ops_) {
    switch (op.kind) {
      case EpilogueKind::kAdd:
        m += std::fabs(op.args[0]);
        break;
      case EpilogueKind::kMul:
        m *= std::fabs(op.args[0]);
        break;
      case EpilogueKind::kHardtanh:
      case EpilogueKind::kClamp:
        // The result lies in [lo, hi] (or is hi when lo > hi, as PyTorch clamps).
        m = std::max(std::fabs(op.args[0]), std::fabs(op.args[1]));
        break;
      case EpilogueKind::kLeakyRelu:
        m *= std::max(1.0, std::fabs(op.args[0]));
        break;
      case EpilogueKind::kSoftplus:
        m += std::log(2.0);  // softplus(v) <= max(v, 0) + ln 2
        break;
      case EpilogueKind::kSigmoid:
        m = 1;
        break;
      case EpilogueKind::kTanh:
        m = std::min(m, 1.0);
        break;
      case EpilogueKind::kMish:  // v times a factor in (0, 1)
      case EpilogueKind::kRelu:
      case EpilogueKind::kGelu:  // |gelu(v)| <= |v|
      case EpilogueKind::kSilu:
        break;
    }
  }
  return m;
}

double Epilogue::apply(double v) const {
  for (const EpilogueOp& op : ops_) {
    switch (op.kind) {
      case EpilogueKind::kMish:
        v = v * std::tanh(std::log1p(std::exp(v)));
        break;
      case EpilogueKind::kAdd:
        v = v + op.args[0];
        break;
      case EpilogueKind::kMul:
        v = v * op.args[0];
        break;
      case EpilogueKind::kHardtanh:
      case EpilogueKind::kClamp:
        v = clamp(v, op.args[0], op.args[1]);
        break;
      case EpilogueKind::kRelu:
        v = v < 0.0 ? 0.0 : v;
        break;
      case EpilogueKind::kLeakyRelu:
        v = v < 0.0 ? v * op.args[0] : v;
        break;
      case EpilogueKind::kGelu:
        v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
        break;
      case EpilogueKind::kSilu:
        v = v / (1.0 + std::exp(-v));
        break;
      case EpilogueKind::kSigmoid:
        v = 1.0 / (1.0 + std::exp(-v));
        break;
      case EpilogueKind::kTanh:
        v = std::tanh(v);
        break;
      case EpilogueKind::kSoftplus:
        v = softplus(v);
        break;
    }
  }
  return v;
}

bool Epilogue::contains(EpilogueKind kind) const {
  return std::any_of(ops_.begin(), ops_.end(),
                     [&](const EpilogueOp& op) { return op.kind == kind; });
}

}  // namespace deconvtune

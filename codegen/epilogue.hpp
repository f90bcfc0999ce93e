#pragma once
// The elementwise epilogue: an ordered chain of ops applied to each convolution output, written as
// text like "mish,add:0.5,hardtanh:-1:1,mul:2". The op table is data: each op has a name, an arity
// and a device function `dt_<name>` in templates/epilogue.cuh that the generator inlines.
#include <string>
#include <string_view>
#include <vector>

namespace deconvtune {

enum class EpilogueKind {
  kMish,
  kAdd,
  kMul,
  kHardtanh,
  kRelu,
  kLeakyRelu,
  kGelu,
  kSilu,
  kSigmoid,
  kTanh,
  kSoftplus,
  kClamp,
};

struct EpilogueOp {
  EpilogueKind kind;
  std::vector<double> args;  // as many as the op's arity, all finite

  bool operator==(const EpilogueOp& other) const {
    return kind == other.kind && args == other.args;
  }
};

class Epilogue {
 public:
  Epilogue() = default;
  explicit Epilogue(std::vector<EpilogueOp> ops) : ops_(std::move(ops)) {}

  // Parses a chain; throws std::invalid_argument naming the bad op or argument.
  static Epilogue parse(std::string_view text);
  // The seed's chain: mish, +0.5, hardtanh(-1, 1), *2.
  static Epilogue seed();

  // Canonical text: parse(text()) == *this, and equal chains give equal text.
  std::string text() const;
  // One CUDA statement per op, `v = dt_<op>(v, args...);`, the arguments as exact fp32 literals or,
  // for the float64 reference, as double literals.
  std::string cuda_statements(std::string_view var, bool fp64) const;
  // The chain in float64, with PyTorch's semantics (NaN propagates through clamps).
  double apply(double v) const;
  // An upper bound on |apply(v)| over every |v| <= magnitude: what the verifier's output-scaled
  // error bound can grow to, so that a stored error can be judged without the run's data.
  double magnitude_bound(double magnitude) const;

  const std::vector<EpilogueOp>& ops() const { return ops_; }
  bool contains(EpilogueKind kind) const;
  bool operator==(const Epilogue& other) const { return ops_ == other.ops_; }

 private:
  std::vector<EpilogueOp> ops_;
};

// The op names the parser accepts, for error messages and help text.
std::string epilogue_op_names();

}  // namespace deconvtune

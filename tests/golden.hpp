#pragma once
// Golden data written by tests/golden/make_goldens.py (PyTorch, float64): inputs, weights, bias and
// the block's output for small problems covering every parameter and epilogue op.
#include <string>
#include <vector>

#include "codegen/problem.hpp"

namespace deconvtune::testing {

struct Golden {
  std::string name;
  Problem problem;
  std::vector<double> x, weight, bias, y;
};

std::vector<std::string> golden_names();
Golden load_golden(const std::string& name);

template <typename To, typename From>
std::vector<To> convert(const std::vector<From>& values) {
  return std::vector<To>(values.begin(), values.end());
}

}  // namespace deconvtune::testing

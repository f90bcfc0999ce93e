#pragma once
// The variant spaces, as data: each family declares its template, its kernel, the math modes it
// implements, its tunable parameters with their candidate values, and the legality rules that keep
// every yielded config compilable and correct for the problem and device at hand.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "codegen/config.hpp"
#include "codegen/problem.hpp"

namespace deconvtune {

// What the legality rules and the launch geometry need to know of the target GPU (gpu/'s
// DeviceInfo::limits() gives the present one's). Defaults describe an H100 (sm_90).
struct DeviceLimits {
  int sm_major = 9;
  int sm_minor = 0;
  int max_shared_per_block = 227 * 1024;
  int max_shared_per_sm = 228 * 1024;
  int sm_count = 132;
};

struct ParamSpec {
  std::string name;   // letters only: it is spelled in config names as <name><value>
  std::string macro;  // the template's #define
  std::vector<int> values;
  std::string meaning;
};

struct FamilySpec {
  Family family;
  std::string template_file;
  std::string kernel_name;
  std::vector<MathMode> maths;
  std::vector<ParamSpec> params;
  // True for a family whose template reads and writes float32 NCHW only (pgemm); the general
  // kernel and wsgemm serve other data types and layouts, wsgemm by rules of its own.
  bool float32_nchw_only = true;
  // Empty when `config` is legal for the problem and device, else the rule it breaks.
  std::function<std::string(const Problem&, const Config&, const DeviceLimits&)> why_illegal;
  // The grid for the device: persistent kernels size it by its SM count and shared memory.
  std::function<LaunchGeometry(const Problem&, const Config&, const DeviceLimits&)> launch;
};

const std::vector<FamilySpec>& families();
// Families that only tests use (the `fault` family of templates/fault_injection.cuh): their names
// parse and their kernels generate, but enumerate_space never yields them.
const std::vector<FamilySpec>& test_only_families();
const FamilySpec& family_spec(Family family);

// Which math modes meet a precision mode's error bound: fp32 needs FFMA or 3xTF32 on float32
// tensors; on 16-bit ones, whose values TF32 holds exactly, TF32 too.
bool math_meets(MathMode math, Precision precision, DType dtype = DType::kFloat32);

// The legality verdict for one config: empty when legal, otherwise why not.
std::string why_illegal(const Problem& problem, const Config& config, const DeviceLimits& device);

// Every legal config for the problem and device, in a stable order.
std::vector<Config> enumerate_space(const Problem& problem, const DeviceLimits& device = {});

// What a config's kernel needs of x's and y's base addresses, in bytes: its widest access. The
// tensor-core families store y 16 bytes at a time, staged Hopper windows (xl2) copy x's rows in
// 16-byte units; elsewhere one element.
struct PointerAlignment {
  int64_t x = 4;
  int64_t y = 4;
};
PointerAlignment pointer_alignment(const Problem& problem, const Config& config);

// The config to run when nothing is tuned: a rule-based pick from the space, never empty (the
// general direct kernel serves every problem).
Config default_config(const Problem& problem, const DeviceLimits& device = {});

}  // namespace deconvtune

#pragma once
// Inputs, outputs and the float64 GPU reference for one problem: the judge every kernel variant
// must satisfy before it may be timed. The output buffer carries a guard band past the end of y;
// both are poisoned with a NaN pattern before each checked run, and the band must come back intact.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "codegen/problem.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/driver_api.hpp"

namespace deconvtune {

struct Verification {
  double max_abs_error = 0;
  int64_t worst_index = -1;  // flat index, in y's layout, of the largest error
  double max_abs_reference = 0;
  double bound = 0;          // what max_abs_error had to stay within
  bool guard_intact = true;  // nothing written past the end of y
  bool passed() const { return guard_intact && max_abs_error <= bound; }
  std::string summary() const;
};

// error_bound(problem) (codegen/problem.hpp) is the judge's bound; check_output widens it for
// outputs larger than the seed's.

class Verifier {
 public:
  static constexpr size_t kGuardElements = 1024;        // 4-byte words past y's last byte
  static constexpr unsigned kPoisonWord = 0x7FC0DEADu;  // a quiet NaN no kernel computes
  // For 16-bit y: both halves 0x7FC1, a quiet NaN in bfloat16 and in float16 alike that cvt never
  // produces (it gives 0x7FFF), and the same word at any 2-byte offset, so the guard band past an
  // odd element count reads as intact.
  static constexpr unsigned kPoison16Word = 0x7FC17FC1u;
  static unsigned poison_word(DType dtype) {
    return dtype == DType::kFloat32 ? kPoisonWord : kPoison16Word;
  }

  // Compiles the reference for the problem's device arch and allocates every buffer (refusing,
  // before any allocation, a problem that does not fit in the device's free memory).
  Verifier(const Context& context, const Problem& problem);
  ~Verifier();

  // Fresh random inputs (x uniform in [0, 1) as torch.rand; W and bias as PyTorch's default
  // initialisation, uniform within 1/sqrt(fan_in)), then the reference on them.
  void randomize_inputs(uint64_t seed);
  // Caller-provided inputs (e.g. golden data; x in the problem's layout), rounded to its data
  // type, then the reference on them.
  void set_inputs(const std::vector<float>& x, const std::vector<float>& w,
                  const std::vector<float>& bias);

  void poison_output();
  Verification check_output() const;

  CUdeviceptr x() const { return x_.get(); }
  CUdeviceptr w() const { return w_.get(); }
  CUdeviceptr bias() const { return bias_.get(); }
  CUdeviceptr y() const { return y_.get(); }
  std::vector<float> download_output() const;  // in y's layout, widened to float
  std::vector<double> download_reference() const;
  const Problem& problem() const { return problem_; }

 private:
  void run_reference();

  const Context& context_;
  Problem problem_;
  struct Kernels;
  std::unique_ptr<Kernels> kernels_;
  DeviceBuffer x_, w_, bias_, y_, reference_, block_max_, block_argmax_;
};

// Bytes the verifier (and the kernel's own buffers) need on the device for `problem`.
size_t verification_bytes(const Problem& problem);

}  // namespace deconvtune

#pragma once
// NVRTC: CUDA source -> cubin (and PTX). Needs no GPU. Every result carries the options used and
// NVRTC's full log; a failed compile is a result with ok == false, not an exception, so a tuner
// can record it and go on. ptxas's resource report (registers, shared memory, spills) is parsed
// from the log, which is why --ptxas-options=-v is always passed. Where the log has no report
// (with a CUDA driver present NVRTC serves a repeated compile from its cache, ~/.nv/ComputeCache,
// without running ptxas), the resources are read from the cubin instead: see cubin_resources.
#include <string>
#include <string_view>
#include <vector>

namespace deconvtune {

// A kernel's resources; -1 in any field: not known. ptxas's report gives every field; a cubin
// alone gives registers, shared memory and the stack frame, but spills only where the frame is 0.
struct ResourceUsage {
  int registers = -1;
  int shared_bytes = 0;  // static shared memory
  int stack_bytes = 0;   // stack frame (local memory)
  int spill_store_bytes = 0;
  int spill_load_bytes = 0;
  bool spills_known() const { return spill_store_bytes >= 0 && spill_load_bytes >= 0; }
  // Bytes spilled, stores plus loads; -1 when not known.
  int spill_bytes() const { return spills_known() ? spill_store_bytes + spill_load_bytes : -1; }
  // It spills, or may: unknown spills (beside a nonzero stack frame) are not "no spills".
  bool spills() const { return !spills_known() || spill_store_bytes > 0 || spill_load_bytes > 0; }
};

// The target when no GPU names one: an H100's, with sm_90a's wgmma.
inline constexpr char kDefaultArch[] = "sm_90a";

struct CompileOptions {
  std::string arch = kDefaultArch;  // sm_XX[a] (cubin) or compute_XX[a] (PTX only)
  bool want_ptx = false;            // also keep the PTX
  std::vector<std::string> extra;   // further NVRTC flags
  std::string program_name = "deconvtune_kernel.cu";
};

struct CompileResult {
  bool ok = false;
  std::string log;                   // NVRTC's log, including ptxas's -v report
  std::vector<std::string> options;  // exactly what NVRTC was given
  std::vector<char> cubin;           // empty unless ok and arch is sm_XX
  std::string ptx;                   // when want_ptx
  ResourceUsage resources;           // the most any of the module's kernels uses, per field:
                                     // from ptxas's report, else (a cache hit) from the cubin
  double milliseconds = 0;
};

// The compute capabilities this NVRTC compiles for (75, 80, ..., 90, ...).
std::vector<int> supported_archs();

// The compute capability an arch string names (sm_90a -> 90, compute_100 -> 100), -1 when it is
// not of that form.
int arch_number(const std::string& arch);

// Exactly the flags compile_cuda gives NVRTC for these options. Throws std::invalid_argument for
// an arch string not of the form sm_90, sm_90a or compute_90, or one NVRTC does not support.
std::vector<std::string> nvrtc_flags(const CompileOptions& options);

// Compiles `source` with NVRTC. Throws only for misuse (an unknown arch string); a source that
// does not compile is reported in the result.
CompileResult compile_cuda(const std::string& source, const CompileOptions& options);

// Compiles every source, `threads` at a time (0: one per hardware thread); results in order.
std::vector<CompileResult> compile_cuda_parallel(const std::vector<std::string>& sources,
                                                 const CompileOptions& options,
                                                 unsigned threads = 0);

// "12.9" etc., NVRTC's own version.
std::string nvrtc_version();

// The key under which the tuning DB caches what compile_cuda(source, options) produces: a sha256
// over the source, its NVRTC flags, the arch and the NVRTC version in use, as 64 hex digits. The
// tuner stores under it and the engine looks up under it.
std::string cubin_cache_key(const std::string& source, const CompileOptions& options);
std::string cubin_cache_key(const std::string& source, const std::vector<std::string>& flags,
                            const std::string& arch, const std::string& nvrtc_version);

// Parses ptxas -v output for the entry `kernel` or, when `kernel` is empty, the most any entry
// uses, per field (a module may hold a helper kernel beside the main one); fields not reported stay
// at their defaults.
ResourceUsage parse_ptxas_report(const std::string& log, const std::string& kernel);

// The resources of the entry `kernel` or, when `kernel` is empty, the most any entry uses, per
// field (unknown where any entry's is), read from the cubin alone: registers (EIATTR_REGCOUNT),
// the stack frame (EIATTR_FRAME_SIZE) and static shared memory (.nv.shared.<kernel>, less the
// 1 KiB that sm_90 and later cubins reserve there, which ptxas does not count). The cubin does not
// record spills: they are 0 where the stack frame is 0 (a spill needs the frame) and unknown (-1)
// beside a nonzero one. The cubin is input: a malformed or truncated one, or a kernel it does not
// hold, gives every field unknown (-1), never a crash or an exception.
ResourceUsage cubin_resources(std::string_view cubin, const std::string& kernel);
ResourceUsage cubin_resources(const std::vector<char>& cubin, const std::string& kernel);

// What compile_cuda reports for a cubin compiled with --ptxas-options=-v and NVRTC's log of it:
// parse_ptxas_report(log, "") where the log holds ptxas's report, else (NVRTC served the cubin
// from its cache) cubin_resources(cubin, "").
ResourceUsage compiled_resources(const std::string& log, const std::vector<char>& cubin);

}  // namespace deconvtune

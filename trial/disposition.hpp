#pragma once
// How one trial ended: the one word every stage above uses for it (the tuner's reports, the tuning
// DB's status column, the worker protocol). A leaf: it needs nothing of the GPU.
#include <string_view>

namespace deconvtune {

enum class Disposition {
  kOk,             // verified, then timed
  kCompileFailed,  // NVRTC refused the source
  kLaunchFailed,   // the module or launch was refused (resources, bad geometry)
  kFaulted,        // the kernel faulted: the context is lost
  kTimedOut,       // the kernel did not finish before its deadline
  kWrong,          // it ran but the output disagrees with the reference (or wrote past y)
};

inline constexpr Disposition kEveryDisposition[] = {
    Disposition::kOk,      Disposition::kCompileFailed, Disposition::kLaunchFailed,
    Disposition::kFaulted, Disposition::kTimedOut,      Disposition::kWrong};

std::string_view to_string(Disposition disposition);  // "ok", "compile_failed", ...
// Reads back to_string(); throws std::invalid_argument naming the accepted words.
Disposition parse_disposition(std::string_view text);

}  // namespace deconvtune

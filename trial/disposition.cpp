#include "trial/disposition.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace deconvtune {

std::string_view to_string(Disposition disposition) {
  switch (disposition) {
    case Disposition::kOk:
      return "ok";
    case Disposition::kCompileFailed:
      return "compile_failed";
    case Disposition::kLaunchFailed:
      return "launch_failed";
    case Disposition::kFaulted:
      return "faulted";
    case Disposition::kTimedOut:
      return "timed_out";
    case Disposition::kWrong:
      return "wrong";
  }
  return "?";
}

Disposition parse_disposition(std::string_view text) {
  std::string accepted;
  for (Disposition disposition : kEveryDisposition) {
    if (to_string(disposition) == text) return disposition;
    accepted += (accepted.empty() ? "" : ", ") + std::string(to_string(disposition));
  }
  throw std::invalid_argument(
      fmt::format("'{}' is not a trial status (one of: {})", text.substr(0, 64), accepted));
}

}  // namespace deconvtune

// What the DB holds is checked before it is written, field by field (FieldError names the field):
// tokens, printable text, finite numbers in range, and for a verified trial or a winner a time and
// an error that are possible for the problem. Import (exchange.cpp) holds foreign rows to the same
// rules.
#include <fmt/format.h>

#include <cmath>
#include <utility>

#include "codegen/config.hpp"
#include "tuning_db/detail.hpp"
#include "tuning_db/text.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::db {

FieldError::FieldError(std::string field, const std::string& rule)
    : DbError(fmt::format("{}: {}", field, rule)), field_(std::move(field)) {}

std::string DeviceRecord::key() const { return fmt::format("{}|{}|{}", name, arch, sm_count); }

std::string device_class(std::string_view device_key) {
  // Names hold no '|' (validate_device), so the class is what follows the first one.
  const size_t bar = device_key.find('|');
  if (bar == std::string_view::npos || device_key.find('|', bar + 1) == std::string_view::npos) {
    return {};
  }
  return std::string(device_key.substr(bar + 1));
}

// ---------------------------------------------------------------------------------------------
// Validation

namespace {

constexpr double kMaxMilliseconds = 1e7;  // ~2.8 hours: no kernel or compile takes longer

void require_token(std::string_view field, std::string_view value, size_t max_length) {
  if (value.empty()) throw FieldError(std::string(field), "must not be empty");
  if (value.size() > max_length) {
    throw FieldError(std::string(field),
                     fmt::format("is {} characters long, more than {}", value.size(), max_length));
  }
  for (char c : value) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok) {
      throw FieldError(std::string(field),
                       fmt::format("'{}' may hold only letters, digits, '_', '-' and '.'",
                                   text::printable(value)));
    }
  }
}

void require_printable(std::string_view field, std::string_view value, size_t max_length,
                       bool allow_empty) {
  if (value.empty() && !allow_empty) throw FieldError(std::string(field), "must not be empty");
  if (value.size() > max_length) {
    throw FieldError(std::string(field),
                     fmt::format("is {} characters long, more than {}", value.size(), max_length));
  }
  if (!text::is_printable_ascii(value)) {
    throw FieldError(std::string(field), fmt::format("'{}' holds characters other than printable "
                                                     "ASCII",
                                                     text::printable(value)));
  }
}

void require_range(std::string_view field, double value, double low, double high) {
  if (!std::isfinite(value) || value < low || value > high) {
    throw FieldError(std::string(field),
                     fmt::format("{} is not a finite number in [{}, {}]", value, low, high));
  }
}

void require_int_range(std::string_view field, int64_t value, int64_t low, int64_t high) {
  if (value < low || value > high) {
    throw FieldError(std::string(field), fmt::format("{} is not in [{}, {}]", value, low, high));
  }
}

}  // namespace

void validate_device(const DeviceRecord& device) {
  require_printable("name", device.name, 256, false);
  if (device.name.find('|') != std::string::npos) {
    throw FieldError("name", "must not contain '|' (it separates the parts of a device key)");
  }
  // "sm_90", "sm_90a", "sm_100": what NVRTC's --gpu-architecture takes.
  const std::string& arch = device.arch;
  bool arch_ok = arch.size() >= 5 && arch.size() <= 8 && arch.compare(0, 3, "sm_") == 0;
  size_t digits = 0;
  for (size_t i = 3; arch_ok && i < arch.size(); ++i) {
    if (arch[i] >= '0' && arch[i] <= '9' && i == 3 + digits) {
      ++digits;
    } else if (!(arch[i] >= 'a' && arch[i] <= 'z' && i == arch.size() - 1)) {
      arch_ok = false;
    }
  }
  if (!arch_ok || digits < 2) {
    throw FieldError("arch",
                     fmt::format("'{}' is not an sm_XY architecture name", text::printable(arch)));
  }
  require_int_range("sm_count", device.sm_count, 1, 100000);
  require_int_range("driver_version", device.driver_version, 0, 100000000);
  require_printable("nvrtc_version", device.nvrtc_version, 32, true);
  // 0 (not measured) up to 100 TB/s, twenty times any GPU memory's bandwidth today.
  if (!(device.copy_gbps >= 0 && device.copy_gbps <= 100000)) {
    throw FieldError("copy_gbps", fmt::format("{} is not a bandwidth in GB/s from 0 (not measured) "
                                              "to 100000",
                                              device.copy_gbps));
  }
}

namespace {

Problem validate_key(const std::string& problem_key, const std::string& device_key,
                     const std::string& generator_version, Precision precision,
                     const std::string& config_name) {
  Problem problem = parse_problem_key(problem_key);
  if (problem.precision != precision) {
    throw FieldError("precision", fmt::format("is {} but the problem key says {}",
                                              to_string(precision), to_string(problem.precision)));
  }
  require_printable("device_key", device_key, 300, false);
  require_token("generator_version", generator_version, 64);
  require_token("config_name", config_name, 256);
  return problem;
}

}  // namespace

void detail::validate_generator_version(const std::string& version) {
  require_token("generator_version", version, 64);
}

double time_floor_ms(const Problem& problem) {
  constexpr double kFastestBytesPerMs = 20e12 / 1e3;  // 20 TB/s: see tuning_db.hpp
  return static_cast<double>(problem.io_bytes()) / kFastestBytesPerMs;
}

void validate_verified(const Problem& problem, double median_ms, double min_ms, double max_error) {
  const double floor = time_floor_ms(problem);
  for (auto [field, time] : {std::pair{"median_ms", median_ms}, std::pair{"min_ms", min_ms}}) {
    if (!(time >= floor)) {
      throw FieldError(field, fmt::format("{} ms is faster than moving x and y at 20 TB/s ({} ms "
                                          "for this problem): not a real measurement",
                                          time, floor));
    }
  }
  const double ceiling = verified_error_ceiling(problem);
  if (!(max_error <= ceiling)) {
    throw FieldError("max_error", fmt::format("{} is above {}, the most a verified {} result of "
                                              "this problem can be off by",
                                              max_error, ceiling, to_string(problem.precision)));
  }
}

void validate_trial(const TrialRecord& trial) {
  const Problem problem = validate_key(trial.problem_key, trial.device_key, trial.generator_version,
                                       trial.precision, trial.config_name);
  parse_disposition(to_string(trial.status));  // an out-of-range enum value
  if (trial.reason.size() > kMaxReasonBytes) {
    throw FieldError("reason", fmt::format("is {} bytes long, more than {}", trial.reason.size(),
                                           kMaxReasonBytes));
  }
  if (!text::is_valid_utf8(trial.reason)) throw FieldError("reason", "is not valid UTF-8");
  bool ok = trial.status == Disposition::kOk;
  // A verified trial has a real time; a failed one may have none (zeros).
  double low = ok ? 1e-9 : 0;
  require_range("median_ms", trial.median_ms, low, kMaxMilliseconds);
  require_range("min_ms", trial.min_ms, low, kMaxMilliseconds);
  require_range("max_ms", trial.max_ms, low, kMaxMilliseconds);
  if (ok && !(trial.min_ms <= trial.median_ms && trial.median_ms <= trial.max_ms)) {
    throw FieldError("median_ms", fmt::format("{} is not between min_ms {} and max_ms {}",
                                              trial.median_ms, trial.min_ms, trial.max_ms));
  }
  if (ok || !std::isnan(trial.max_error)) {
    // A wrong kernel's error may be NaN (its output was); anything else is a real number.
    if (!(trial.max_error >= 0) || (ok && !std::isfinite(trial.max_error))) {
      throw FieldError("max_error", fmt::format("{} is not a {}non-negative number",
                                                trial.max_error, ok ? "finite " : ""));
    }
  }
  if (ok) validate_verified(problem, trial.median_ms, trial.min_ms, trial.max_error);
  require_int_range("registers", trial.registers, -1, 255);
  require_int_range("shared_bytes", trial.shared_bytes, -1, 1 << 24);
  require_int_range("spill_bytes", trial.spill_bytes, -1, 1 << 30);
  require_range("compile_ms", trial.compile_ms, 0, kMaxMilliseconds);
  if (!text::is_utc_timestamp(trial.measured_at)) {
    throw FieldError(
        "measured_at",
        fmt::format("'{}' is not an ISO 8601 UTC time like 2026-11-24T18:37:05.123456Z",
                    text::printable(trial.measured_at)));
  }
}

void validate_winner(const WinnerRecord& winner) {
  const Problem problem =
      validate_key(winner.problem_key, winner.device_key, winner.generator_version,
                   winner.precision, winner.config_name);
  if (!may_win(winner.config_name)) {
    throw FieldError("config_name", fmt::format("'{}' is a test-only kernel, which never wins",
                                                text::printable(winner.config_name)));
  }
  require_range("median_ms", winner.median_ms, 1e-9, kMaxMilliseconds);
  require_range("max_error", winner.max_error, 0, 1e30);
  validate_verified(problem, winner.median_ms, winner.median_ms, winner.max_error);
  if (!text::is_utc_timestamp(winner.updated_at)) {
    throw FieldError(
        "updated_at",
        fmt::format("'{}' is not an ISO 8601 UTC time like 2026-11-24T18:37:05.123456Z",
                    text::printable(winner.updated_at)));
  }
}

}  // namespace deconvtune::db

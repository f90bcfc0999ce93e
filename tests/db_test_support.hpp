#pragma once
// Shared by the tuning DB tests: a temporary folder, file bytes, sample records, a raw SQLite
// handle and the `deconvtune` binary through the shell.
#include <fmt/format.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "tests/cli_runner.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::db::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "deconvtune-db-test-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A raw SQLite handle for looking at what TuningDb wrote, or for breaking files on purpose.
class RawDb {
 public:
  explicit RawDb(const std::string& path, int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_URI, nullptr) != SQLITE_OK) {
      std::string reason = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("open " + path + ": " + reason);
    }
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  sqlite3* handle() const { return db_; }
  std::string text(const std::string& sql) const {
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sqlite3_errmsg(db_));
    }
    std::string result;
    if (sqlite3_step(statement) == SQLITE_ROW) {
      const unsigned char* value = sqlite3_column_text(statement, 0);
      result = value ? reinterpret_cast<const char*>(value) : "NULL";
    }
    sqlite3_finalize(statement);
    return result;
  }
  void exec(const std::string& sql) const {
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sqlite3_errmsg(db_));
    }
  }

 private:
  sqlite3* db_ = nullptr;
};

using deconvtune::testing::CliResult;
using deconvtune::testing::run_cli;

inline std::string shell_quoted(const std::string& path) { return "'" + path + "'"; }

inline DeviceRecord h100() { return {"NVIDIA H100 80GB HBM3", "sm_90", 132, 13000, "13.0"}; }

// The DbError `action` throws, or "(no DbError)".
inline std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const DbError& e) {
    return e.what();
  }
  return "(no DbError)";
}

// A problem small enough to tune in a second under the simulation and to verify on the CPU.
inline nlohmann::json small_problem_json(int64_t batch = 2) {
  return {{"batch", batch}, {"in_channels", 8}, {"out_channels", 16},
          {"height", 12},   {"width", 10},      {"kernel_size", 3},
          {"stride", 2},    {"padding", 1},     {"output_padding", 1}};
}

inline Problem small_problem(Precision precision = Precision::kFp32, int64_t batch = 2) {
  Problem problem = Problem::from_json(small_problem_json(batch));
  problem.precision = precision;
  return problem;
}

inline WinnerKey key_of(const Problem& problem, const DeviceRecord& device,
                        const std::string& generator = "gen-test01") {
  return {problem.key(), device.key(), generator, problem.precision};
}

inline TrialRecord ok_trial(const WinnerKey& key, const std::string& config, double median_ms) {
  TrialRecord trial;
  trial.problem_key = key.problem_key;
  trial.device_key = key.device_key;
  trial.generator_version = key.generator_version;
  trial.precision = key.precision;
  trial.config_name = config;
  trial.status = Disposition::kOk;
  trial.median_ms = median_ms;
  trial.min_ms = median_ms * 0.95;
  trial.max_ms = median_ms * 1.1;
  trial.max_error = 3.5e-7;
  trial.registers = 128;
  trial.shared_bytes = 49152;
  trial.spill_bytes = 0;
  trial.compile_ms = 812.5;
  return trial;
}

inline TrialRecord failed_trial(const WinnerKey& key, const std::string& config, Disposition status,
                                const std::string& reason) {
  TrialRecord trial = ok_trial(key, config, 0);
  trial.status = status;
  trial.reason = reason;
  trial.median_ms = trial.min_ms = trial.max_ms = 0;
  return trial;
}

// A DB with two problems, one device, a few trials and winners.
inline void fill_sample(TuningDb& db) {
  DeviceRecord device = h100();
  db.upsert_device(device);
  for (Precision precision : {Precision::kFp32, Precision::kTf32}) {
    Problem problem = small_problem(precision);
    db.upsert_problem(problem);
    WinnerKey key = key_of(problem, device);
    db.record_trial(ok_trial(key, "igemm_tf32_bn32_rp2_cp64_wm4_wn4_st1_v4_mishfast", 1.25));
    db.record_trial(ok_trial(key, "direct_ffma_t256_c4_mishexact", 3.0625));
    db.record_trial(failed_trial(key, "igemm_bad", Disposition::kFaulted,
                                 "CUDA_ERROR_ILLEGAL_ADDRESS: \"quoted\", comma, newline\nhere"));
  }
}

}  // namespace deconvtune::db::testing

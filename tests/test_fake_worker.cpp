// The tuner against a worker that misbehaves in every way a broken or hostile process can (issue
// 14.6/14.7): each reply is recorded with its reason and tuning goes on; nothing hangs the tuner.
// The fake worker is a shell script that answers the first request with fixed lines.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "codegen/search_space.hpp"
#include "db_test_support.hpp"
#include "tuner/tuner.hpp"
#include "tuner/worker_protocol.hpp"

namespace deconvtune::tuner {
namespace {

using db::testing::TempDir;
namespace fs = std::filesystem;

Problem small_problem() {
  return Problem::from_json(nlohmann::json{{"batch", 2},
                                           {"in_channels", 4},
                                           {"out_channels", 8},
                                           {"height", 5},
                                           {"width", 7},
                                           {"kernel_size", 3},
                                           {"stride", 2},
                                           {"padding", 1},
                                           {"output_padding", 1}});
}

// A verified result as the real worker sends it, for `config`, with fields overridden.
std::string result_line(const std::string& config, const nlohmann::json& overrides = {}) {
  TrialReply reply;
  reply.config_name = config;
  reply.status = Disposition::kOk;
  reply.median_ms = 1.0;
  reply.min_ms = 0.9;
  reply.max_ms = 1.2;
  reply.runs = 20;
  reply.max_error = 1e-7;
  reply.error_bound = 2e-6;
  nlohmann::json line = to_json(reply);
  for (const auto& [key, value] : overrides.items()) line[key] = value;
  return line.dump();
}

struct Misbehaviour {
  const char* name;
  std::string script;  // shell lines after the request was read and "ready" sent
  Disposition status;
  std::string reason;  // a part of the recorded reason
};

std::string quoted(const std::string& line) { return "printf '%s\\n' '" + line + "'"; }

std::vector<Misbehaviour> misbehaviours(const std::string& config) {
  const std::string verified = quoted(R"({"type": "verified", "ms": 1})");
  return {
      {"verified_huge_ms_then_silence",
       quoted(R"({"type": "verified", "ms": 1e300})") + "; sleep 600", Disposition::kTimedOut,
       "did not finish"},
      {"silence", "sleep 600", Disposition::kTimedOut, "the verification launch did not finish"},
      {"garbage", verified + "; echo 'not json at all'", Disposition::kLaunchFailed, "unreadable"},
      {"duplicate_key",
       verified + "; " + quoted(R"({"type": "result", "median_ms": 1, "median_ms": 2})"),
       Disposition::kLaunchFailed, "duplicate key 'median_ms'"},
      {"nested_deep",
       verified + "; " +
           quoted("{\"type\": " + std::string(5000, '[') + std::string(5000, ']') + "}"),
       Disposition::kLaunchFailed, "nested deeper"},
      {"missing_field",
       verified + "; " + quoted(R"({"type": "result", "config": ")" + config + "\"}"),
       Disposition::kLaunchFailed, "status"},
      {"exits", verified + "; exit 0", Disposition::kFaulted,
       "the worker died during the timed runs"},
      {"below_the_time_floor",
       verified + "; " +
           quoted(result_line(config, {{"median_ms", 1e-9}, {"min_ms", 1e-9}, {"max_ms", 1e-9}})),
       Disposition::kLaunchFailed, "implausible result"},
      {"error_above_the_bound", verified + "; " + quoted(result_line(config, {{"max_error", 1e3}})),
       Disposition::kLaunchFailed, "implausible result"},
      {"times_not_ordered", verified + "; " + quoted(result_line(config, {{"min_ms", 5.0}})),
       Disposition::kLaunchFailed, "implausible timing"},
      {"another_config", verified + "; " + quoted(result_line("pgemm_not_this_one")),
       Disposition::kLaunchFailed, "another config"},
      {"killed_by_sigkill", verified + "; kill -9 $$", Disposition::kFaulted,
       "killed from outside twice"},
  };
}

TEST(TunerFakeWorker, EveryMalformedReplyIsRecordedWithItsReasonAndNothingHangs) {
  TempDir dir;
  const Problem problem = small_problem();
  const Config config = enumerate_space(problem).front();
  for (const Misbehaviour& m : misbehaviours(config.name())) {
    const fs::path script = dir.path() / (std::string(m.name) + ".sh");
    std::ofstream(script) << "#!/bin/sh\nread request\n"
                          << quoted(R"({"type": "ready"})") << "\n"
                          << m.script << "\n";
    fs::permissions(script, fs::perms::owner_all);
    TuneRequest request;
    request.problem = problem;
    request.db_path = dir.file(std::string(m.name) + ".db");
    request.simulation = Simulation{};  // nothing compiled; the script is the worker
    request.worker_binary = script.string();
    request.kernel_deadline_seconds = 1;
    request.setup_deadline_seconds = 5;
    request.extra_candidates = {config};
    request.extra_candidates_only = true;
    const auto start = std::chrono::steady_clock::now();
    TuneReport report;
    try {
      report = autotune(request);
    } catch (const std::exception& e) {
      ADD_FAILURE() << m.name << ": the tuner gave up: " << e.what();
      continue;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_LT(seconds, 30) << m.name << ": bounded by the deadlines, not by the worker";
    ASSERT_EQ(report.trials.size(), 1u) << m.name;
    const db::TrialRecord& trial = report.trials.front();
    EXPECT_EQ(trial.status, m.status) << m.name << ": " << trial.reason;
    EXPECT_NE(trial.reason.find(m.reason), std::string::npos) << m.name << ": " << trial.reason;
    EXPECT_FALSE(report.winner) << m.name << ": nothing verified, nothing wins";
  }
}

// True once `pid` has ended (gone, or a zombie nobody reaped yet), waiting up to 5 s.
bool ends_soon(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string pid_field, comm, state;
    if (!(stat >> pid_field >> comm >> state) || state == "Z") return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// A worker that never says "ready" is the setup's fault, not a candidate's: an error that names
// the deadline, after at most two starts. What the worker started goes with it: a child left
// behind would hold the caller's pipes open for its whole life (under CTest, ten minutes).
TEST(TunerFakeWorker, AWorkerThatNeverGetsReadyEndsTheRunWithAClearError) {
  TempDir dir;
  const fs::path script = dir.path() / "mute.sh";
  const fs::path children = dir.path() / "children";
  std::ofstream(script) << "#!/bin/sh\nsleep 600 &\necho $! >> '" << children.string()
                        << "'\nwait\n";
  fs::permissions(script, fs::perms::owner_all);
  TuneRequest request;
  request.problem = small_problem();
  request.db_path = dir.file("mute.db");
  request.simulation = Simulation{};
  request.worker_binary = script.string();
  request.setup_deadline_seconds = 1;
  request.extra_candidates = {enumerate_space(request.problem).front()};
  request.extra_candidates_only = true;
  try {
    const TuneReport report = autotune(request);
    EXPECT_FALSE(report.error.empty()) << "a report without a winner must say why";
    EXPECT_NE(report.error.find("1 s"), std::string::npos) << report.error;
  } catch (const TuneError& e) {
    EXPECT_NE(std::string(e.what()).find("took more than 1 s"), std::string::npos) << e.what();
  }
  std::ifstream started(children);
  int count = 0;
  for (pid_t child; started >> child; ++count) {
    EXPECT_TRUE(ends_soon(child)) << "the worker's child " << child << " outlived it";
  }
  EXPECT_GE(count, 1) << "the fake worker never ran";
}

}  // namespace
}  // namespace deconvtune::tuner

// The tuner on a GPU (skipped without one): the test-only fault templates, each recorded with its
// status and reason while tuning goes on to a verified winner; and the second run, which measures
// nothing and launches the winner from the cubin cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "tests/gpu_test_support.hpp"
#include "trial/benchmark.hpp"
#include "trial/verifier.hpp"
#include "tuner/tuner.hpp"

namespace deconvtune::tuner {
namespace {

class TunerGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "deconvtune_tuner_gpu_XXXXXX").string();
    dir_ = mkdtemp(pattern.data());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  TuneRequest request() const {
    TuneRequest r;
    r.problem = Problem::from_json(nlohmann::json{{"batch", 2},
                                                  {"in_channels", 16},
                                                  {"out_channels", 32},
                                                  {"height", 9},
                                                  {"width", 12},
                                                  {"kernel_size", 3},
                                                  {"stride", 2},
                                                  {"padding", 1},
                                                  {"output_padding", 1}});
    r.db_path = (dir_ / "tuning.db").string();
    const char* binary = std::getenv("DECONVTUNE_BINARY");
    r.worker_binary = binary ? binary : DECONVTUNE_BINARY;
    r.kernel_deadline_seconds = 5;
    r.extra_candidates_only = true;
    for (int kind = 0; kind <= 5; ++kind) {
      r.extra_candidates.push_back(
          Config::from_name("fault_ffma_kind" + std::to_string(kind) + "_mishexact"));
    }
    // Two real configs after the faults: tuning must reach them with a fresh worker.
    r.extra_candidates.push_back(default_config(r.problem));
    r.extra_candidates.push_back(Config::from_name("direct_ffma_t256_c2_mishexact"));
    return r;
  }

  std::filesystem::path dir_;
};

TEST_F(TunerGpu, EachFaultIsRecordedAndTuningEndsWithAVerifiedWinner) {
  SKIP_WITHOUT_GPU();
  TuneRequest r = request();
  TuneReport report = autotune(r);
  std::map<std::string, db::TrialRecord> by_config;
  for (const db::TrialRecord& trial : report.trials) {
    by_config[trial.config_name] = trial;
    std::printf("  %-52s %-15s %s\n", trial.config_name.c_str(),
                std::string(to_string(trial.status)).c_str(),
                trial.reason.substr(0, trial.reason.find('\n')).substr(0, 120).c_str());
  }
  ASSERT_EQ(report.trials.size(), r.extra_candidates.size()) << "every candidate is recorded";
  auto status_of = [&](int kind) {
    return by_config.at("fault_ffma_kind" + std::to_string(kind) + "_mishexact");
  };
  EXPECT_EQ(status_of(0).status, Disposition::kOk) << status_of(0).reason;
  EXPECT_EQ(status_of(1).status, Disposition::kCompileFailed);
  EXPECT_NE(status_of(1).reason.find("deliberate compile error"), std::string::npos)
      << status_of(1).reason;
  EXPECT_EQ(status_of(2).status, Disposition::kFaulted) << status_of(2).reason;
  EXPECT_EQ(status_of(3).status, Disposition::kTimedOut) << status_of(3).reason;
  EXPECT_EQ(status_of(4).status, Disposition::kWrong) << status_of(4).reason;
  EXPECT_EQ(status_of(5).status, Disposition::kWrong) << status_of(5).reason;
  EXPECT_NE(status_of(5).reason.find("PAST THE END OF y"), std::string::npos)
      << "only the guard band sees this one: " << status_of(5).reason;
  EXPECT_GE(report.worker_restarts, 2) << "after the fault and after the hang";
  for (const Config& config : {r.extra_candidates[6], r.extra_candidates[7]}) {
    EXPECT_EQ(by_config.at(config.name()).status, Disposition::kOk)
        << config.name() << ": " << by_config.at(config.name()).reason;
  }
  ASSERT_TRUE(report.winner);
  EXPECT_EQ(by_config.at(report.winner->config_name).status, Disposition::kOk);
  ASSERT_TRUE(report.first_launch) << report.first_launch_skipped;
  EXPECT_TRUE(report.first_launch->cubin_from_cache);

  // The winner is correct on fresh inputs in this process too.
  Context context(0);
  Verifier verifier(context, r.problem);
  verifier.randomize_inputs(99);
  TrialOptions verify_only;
  verify_only.time_it = false;
  TrialResult check =
      run_trial(context, verifier, Config::from_name(report.winner->config_name), verify_only);
  EXPECT_EQ(check.disposition, Disposition::kOk) << check.reason;
}

TEST_F(TunerGpu, SecondRunMeasuresNothingAndLaunchesFromTheCubinCache) {
  SKIP_WITHOUT_GPU();
  TuneRequest r = request();
  r.extra_candidates.erase(r.extra_candidates.begin() + 1, r.extra_candidates.begin() + 6);
  TuneReport first = autotune(r);
  ASSERT_TRUE(first.winner);
  r.start = std::chrono::steady_clock::now();
  TuneReport second = autotune(r);
  EXPECT_TRUE(second.trials.empty());
  EXPECT_EQ(second.skipped_already_measured, second.space_size);
  ASSERT_TRUE(second.winner);
  EXPECT_EQ(second.winner->config_name, first.winner->config_name);
  ASSERT_TRUE(second.first_launch) << second.first_launch_skipped;
  EXPECT_TRUE(second.first_launch->cubin_from_cache);
  std::printf(
      "  second run: start to first launch %.1f ms (context %.1f, cubin %.1f, load %.1f, "
      "launch %.1f)\n",
      second.first_launch->since_start_ms, second.first_launch->context_ms,
      second.first_launch->cubin_ms, second.first_launch->load_ms, second.first_launch->launch_ms);
}

}  // namespace
}  // namespace deconvtune::tuner

// The command line as a user meets it: exit codes and messages.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/driver_api.hpp"

namespace {

struct CliResult {
  int exit_code;
  std::string output;  // stdout and stderr together
};

CliResult run_cli(const std::string& arguments) {
  const char* binary = std::getenv("DECONVTUNE_BINARY");
  std::string command =
      std::string(binary ? binary : DECONVTUNE_BINARY) + " " + arguments + " 2>&1";
  CliResult result{-1, {}};
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Cli, BadSpecsExitTwoAndNameTheField) {
  const std::pair<const char*, const char*> cases[] = {
      {R"('{"batch": 0, "in_channels": 4, "out_channels": 4, "height": 4, "width": 4, "kernel_size": 3}')",
       "batch"},
      {R"('{"batch": 1, "in_channels": 4, "out_channels": 4, "height": 4, "width": 4, "kernel_size": 3, "stride": 2, "output_padding": 2}')",
       "output_padding"},
      {R"('{"batch": 1, "in_channels": 4, "out_channels": 4, "height": 4, "width": 4, "kernel_size": 3, "epilogue": "swish"}')",
       "swish"},
      {R"('{"batch": 1, "in_channels": 4,')", "malformed JSON"},
      {"/does/not/exist.json", "readable JSON file"},
  };
  for (const auto& [spec, expected] : cases) {
    for (const char* command : {"run", "inspect"}) {
      CliResult result = run_cli(std::string(command) + " --problem " + spec);
      EXPECT_EQ(result.exit_code, 2) << command << " " << spec << "\n" << result.output;
      EXPECT_TRUE(contains(result.output, expected)) << result.output;
      EXPECT_FALSE(contains(result.output, "terminate called")) << result.output;
    }
  }
}

TEST(Cli, BadConfigAndArchAreInputErrors) {
  CliResult config = run_cli("inspect --problem seed --config direct_ffma_t999_c4_mishexact");
  EXPECT_EQ(config.exit_code, 2) << config.output;
  EXPECT_TRUE(contains(config.output, "t = 999")) << config.output;
  CliResult arch = run_cli("inspect --problem seed --arch hopper --resources");
  EXPECT_EQ(arch.exit_code, 2) << arch.output;
  CliResult usage = run_cli("frobnicate");
  EXPECT_EQ(usage.exit_code, 2) << usage.output;
}

TEST(Cli, InspectPrintsSourcePtxAndResourcesForSm90) {
  CliResult source = run_cli("inspect --problem seed --arch sm_90");
  EXPECT_EQ(source.exit_code, 0) << source.output;
  EXPECT_TRUE(contains(source.output, "extern \"C\" __global__")) << source.output;
  CliResult ptx = run_cli("inspect --problem seed --arch sm_90 --ptx");
  EXPECT_EQ(ptx.exit_code, 0);
  EXPECT_TRUE(contains(ptx.output, ".visible .entry deconv_")) << ptx.output.substr(0, 2000);
  CliResult resources = run_cli("inspect --problem seed --arch sm_90 --resources");
  EXPECT_EQ(resources.exit_code, 0) << resources.output;
  EXPECT_TRUE(contains(resources.output, "registers")) << resources.output;
  CliResult list = run_cli("inspect --problem seed --list-configs");
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_TRUE(contains(list.output, "direct_ffma_t256_c4_mishexact")) << list.output;
}

TEST(Cli, RunWithoutGpuCompilesAndSaysWhatItCouldNotDo) {
  if (deconvtune::DriverApi::available()) GTEST_SKIP() << "a GPU is present: run really runs";
  CliResult result = run_cli("run --problem seed");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "No GPU")) << result.output;
  EXPECT_TRUE(contains(result.output, "compiled")) << result.output;
  EXPECT_TRUE(contains(result.output, "Not done without a GPU")) << result.output;
  CliResult strict = run_cli("run --problem seed --require-gpu");
  EXPECT_EQ(strict.exit_code, 3) << strict.output;
}

TEST(Cli, AutotuneRefusesDurationsThatAreNotFiniteSeconds) {
  for (const char* option : {"--budget-seconds nan", "--budget-seconds inf", "--budget-seconds -3",
                             "--kernel-deadline nan", "--kernel-deadline 1e300"}) {
    CliResult result = run_cli(std::string("autotune --problem seed --simulate ") + option);
    EXPECT_EQ(result.exit_code, 2) << option << "\n" << result.output;
    EXPECT_TRUE(
        contains(result.output, std::string(option).substr(0, std::string(option).find(' '))))
        << option << "\n"
        << result.output;
  }
}

}  // namespace

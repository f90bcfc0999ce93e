// The command line as a user meets it: exit codes and messages.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "tests/cli_runner.hpp"

namespace {

using deconvtune::testing::CliResult;
using deconvtune::testing::run_cli;

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
  // A file that is not there is no field of a problem.
  CliResult missing = run_cli("run --problem /does/not/exist.json");
  EXPECT_TRUE(contains(missing.output, "problem: '/does/not/exist.json' is not")) << missing.output;
  EXPECT_FALSE(contains(missing.output, "field")) << missing.output;
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

// The target is an input of the space: --arch sm_80 lists no sm_90a (wgmma) config and defaults to
// one that compiles there; sm_90a's space has the Hopper family.
TEST(Cli, InspectListsTheSpaceOfTheTargetArch) {
  CliResult ampere = run_cli(
      "inspect --problem '{\"batch\": 2, \"in_channels\": 64, "
      "\"out_channels\": 64, \"height\": 8, \"width\": 8, "
      "\"kernel_size\": 3, \"precision\": \"tf32\"}' --arch sm_80 "
      "--list-configs");
  ASSERT_EQ(ampere.exit_code, 0) << ampere.output;
  EXPECT_FALSE(contains(ampere.output, "wsgemm")) << ampere.output;
  EXPECT_FALSE(contains(ampere.output, "_wg1_")) << ampere.output;
  CliResult hopper =
      run_cli("inspect --problem seed --precision tf32 --arch sm_90a --list-configs");
  EXPECT_TRUE(contains(hopper.output, "wsgemm")) << hopper.output;
  CliResult source = run_cli("inspect --problem seed --precision tf32 --arch sm_80 --resources");
  EXPECT_EQ(source.exit_code, 0) << "the default for sm_80 compiles there: " << source.output;
}

TEST(Cli, RunWithoutGpuCompilesAndSaysWhatItCouldNotDo) {
  if (deconvtune::DriverApi::available()) GTEST_SKIP() << "a GPU is present: run really runs";
  CliResult result = run_cli("run --problem seed");
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_TRUE(contains(result.output, "No GPU")) << result.output;
  EXPECT_TRUE(contains(result.output, "compiled")) << result.output;
  EXPECT_TRUE(contains(result.output, "Not done without a GPU")) << result.output;
  // The default config only (seconds, not the whole space), unless --all-configs asks for more.
  using deconvtune::Config;
  const deconvtune::Problem seed = deconvtune::Problem::seed();
  const std::string default_name = deconvtune::default_config(seed).name();
  EXPECT_TRUE(contains(result.output, "Compiling the problem's 1 variant(s)")) << result.output;
  EXPECT_TRUE(contains(result.output, default_name)) << result.output;
  const std::string family = "direct_";  // the FFMA kernels: the quickest to compile
  CliResult some = run_cli("run --problem seed --all-configs --only " + family + " --json");
  EXPECT_EQ(some.exit_code, 0) << some.output;
  size_t expected = 0;
  for (const Config& config : deconvtune::enumerate_space(seed)) {
    expected += config.name().find(family) != std::string::npos;
  }
  const nlohmann::json document = nlohmann::json::parse(some.stdout_text);
  EXPECT_EQ(document.at("results").size(), expected) << some.output;
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

namespace {

// `inspect --sass` runs the environment's disassembler: CUDA_HOME and PATH set for one command.
CliResult run_sass(const std::optional<std::string>& cuda_home, const std::string& path,
                   const std::string& tmpdir = "/tmp") {
  std::string environment = "env -u CUDA_HOME PATH='" + path + "' TMPDIR=\"" + tmpdir + "\"";
  if (cuda_home) environment += " CUDA_HOME='" + *cuda_home + "'";
  return run_cli("inspect --problem seed --config direct_ffma_t128_c1_mishexact --sass",
                 environment);
}

}  // namespace

TEST(Cli, SassFindsTheDisassemblerInCudaHomeOrOnPathAndFailsClearlyWithoutOne) {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "deconvtune-sass-XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const fs::path root = pattern;
  fs::create_directories(root / "cuda" / "bin");
  fs::create_directories(root / "it's");
  auto tool = [&](const fs::path& path, const std::string& body) {
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(path, fs::perms::owner_all);
  };
  // Prints its arguments and the cubin's ELF magic, so the test sees what it was given.
  tool(root / "cuda" / "bin" / "cuobjdump",
       "PATH=/usr/bin:/bin; echo \"FAKE SASS $1 $2\"; head -c 4 \"$2\" | tail -c 3; echo; echo "
       "\"$2\" > " +
           (root / "last_file").string());

  CliResult missing = run_sass(std::nullopt, (root / "nothing").string());
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_TRUE(contains(missing.output, "cuobjdump")) << missing.output;
  EXPECT_TRUE(contains(missing.output, "CUDA_HOME")) << missing.output;

  CliResult found =
      run_sass((root / "cuda").string(), (root / "nothing").string(), (root / "it's").string());
  EXPECT_EQ(found.exit_code, 0) << found.output;
  EXPECT_TRUE(contains(found.output, "FAKE SASS -sass ")) << found.output;
  EXPECT_TRUE(contains(found.output, "ELF")) << "the cubin was written whole: " << found.output;
  std::string file;
  std::getline(std::ifstream(root / "last_file"), file);
  EXPECT_EQ(fs::path(file).parent_path().parent_path(), root / "it's") << file;
  EXPECT_FALSE(fs::exists(fs::path(file).parent_path())) << "the private folder is removed";

  // On PATH when CUDA_HOME has none; a failing tool is a failure (exit 1) with its output.
  fs::create_directories(root / "path");
  tool(root / "path" / "cuobjdump", "echo broken cubin; exit 4");
  CliResult failing = run_sass((root / "nothing").string(), (root / "path").string());
  EXPECT_EQ(failing.exit_code, 1) << failing.output;
  EXPECT_TRUE(contains(failing.output, "exit code 4")) << failing.output;
  EXPECT_TRUE(contains(failing.output, "broken cubin")) << failing.output;
  fs::remove_all(root);
}

TEST(Cli, UnknownSubcommandsAreNamedWithASuggestion) {
  const std::pair<const char*, const char*> cases[] = {
      {"tune", "did you mean 'autotune'?"},
      {"autotun --problem seed", "did you mean 'autotune'?"},
      {"db lst", "'lst' is not a command of deconvtune db; did you mean 'list'?"},
      {"frobnicate", "'frobnicate' is not a command of deconvtune (commands: run, inspect"},
  };
  for (const auto& [arguments, expected] : cases) {
    CliResult result = run_cli(arguments);
    EXPECT_EQ(result.exit_code, 2) << arguments << "\n" << result.output;
    EXPECT_TRUE(contains(result.output, expected)) << arguments << "\n" << result.output;
    EXPECT_FALSE(contains(result.output, "A subcommand is required")) << result.output;
  }
  // Hidden commands are commands, and a leaf's positional arguments are not subcommands.
  EXPECT_FALSE(contains(run_cli("worker --help").output, "not a command"));
  EXPECT_TRUE(contains(run_cli("db import /does/not/exist").output, "no such file"));
}

// Issue 14.3/14.4: values that used to mean something else or fail late are bad input (exit 2).
TEST(Cli, DbPathsDevicesAndArchsHaveOneRuleAndExitTwo) {
  const std::pair<const char*, const char*> cases[] = {
      {"db list --db ''", "--db is empty"},
      {"autotune --simulate --problem seed --db ''", "--db is empty"},
      {"db list --db :memory:", "would keep nothing"},
      {"db show --db 'file:/tmp/x.db?mode=ro'", "not a SQLite URI"},
      {"default-report --problems /dev/null --db file:x", "not a SQLite URI"},
      {"autotune --simulate --problem seed --devices 0,1,0 --db /nonexistent/x.db",
       "lists 0 twice"},
      {"inspect --problem seed --arch sm_1000 --resources", "NVRTC"},
      {"inspect --problem seed --arch sm_90b --resources", "not of the form"},
  };
  for (const auto& [arguments, expected] : cases) {
    CliResult result = run_cli(arguments);
    EXPECT_EQ(result.exit_code, 2) << arguments << "\n" << result.output;
    EXPECT_TRUE(contains(result.output, expected)) << arguments << "\n" << result.output;
  }
  EXPECT_FALSE(std::filesystem::exists("file:")) << "no URI folder tree in the working folder";
}

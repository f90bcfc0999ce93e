// Other programs are found by one rule and run without a shell (issue 14.4): the worker binary and
// the disassembler never come from the current directory, temp files live in a private folder.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "db_test_support.hpp"
#include "tuner/executable.hpp"
#include "tuner/tuner.hpp"

namespace deconvtune::tuner {
namespace {

namespace fs = std::filesystem;
using db::testing::TempDir;

// Sets (or unsets) an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    set(value);
  }
  ~ScopedEnv() { set(old_); }
  void set(const std::optional<std::string>& value) {
    if (value) {
      setenv(name_, value->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

class ScopedCwd {
 public:
  explicit ScopedCwd(const fs::path& to) : old_(fs::current_path()) { fs::current_path(to); }
  ~ScopedCwd() { fs::current_path(old_); }

 private:
  fs::path old_;
};

void write_script(const fs::path& path, const std::string& body) {
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(TunerExecutable, TheWorkerIsFoundByOneRuleAndNeverInTheCurrentDirectory) {
  TempDir dir;
  write_script(dir.path() / "deconvtune", "echo planted");
  fs::create_directory(dir.path() / "bin");
  const fs::path installed = dir.path() / "bin" / "deconvtune";
  write_script(installed, "echo installed");
  std::ofstream(dir.path() / "not_executable") << "data";
  ScopedCwd cwd(dir.path());
  ScopedEnv worker("DECONVTUNE_WORKER", std::nullopt);
  // Empty and relative PATH entries mean the current directory: skipped.
  ScopedEnv path("PATH", std::string(":.:bin:") + (dir.path() / "missing").string());
  try {
    const std::string found = worker_executable("");
    ADD_FAILURE() << "found " << found;
  } catch (const TuneError& e) {
    EXPECT_TRUE(contains(e.what(), "DECONVTUNE_WORKER")) << e.what();
  }
  EXPECT_THROW(worker_executable("deconvtune"), TuneError) << "a bare name is searched on PATH";

  path.set(".:" + (dir.path() / "bin").string());
  EXPECT_EQ(worker_executable(""), installed.string());
  EXPECT_EQ(worker_executable("deconvtune"), installed.string());
  EXPECT_EQ(worker_executable("./bin/deconvtune"), installed.string()) << "a path made absolute";

  worker.set((dir.path() / "not_executable").string());
  try {
    worker_executable("");
    ADD_FAILURE() << "a file that is not executable was accepted";
  } catch (const TuneError& e) {
    EXPECT_TRUE(contains(e.what(), "DECONVTUNE_WORKER")) << e.what();
    EXPECT_TRUE(contains(e.what(), "not_executable")) << e.what();
  }
  worker.set("bin");  // a folder, searched on PATH as a name: not a file
  EXPECT_THROW(worker_executable(""), TuneError);
  worker.set(installed.string());
  EXPECT_EQ(worker_executable(""), installed.string());
}

TEST(TunerExecutable, ProgramsRunWithoutAShellAndTempFilesArePrivate) {
  TempDir dir;
  const fs::path script = dir.path() / "tool";
  write_script(script, "echo \"args: $*\"; echo oops >&2; cat \"$1\"; exit 3");
  std::string folder_path;
  {
    PrivateTempDir folder;
    folder_path = folder.path();
    EXPECT_EQ(fs::status(folder_path).permissions() & fs::perms::all, fs::perms::owner_all);
    const std::string file = folder.write_file("in.bin", {'h', 'i', '\n'});
    EXPECT_THROW(folder.write_file("in.bin", {'x'}), std::runtime_error) << "never overwritten";
    // A quote in an argument stays one argument: nothing is parsed by a shell.
    const CapturedRun run = run_capturing({script.string(), file, "a'b; echo injected"});
    EXPECT_EQ(run.exit_code, 3);
    EXPECT_TRUE(contains(run.output, "args: " + file + " a'b; echo injected")) << run.output;
    EXPECT_TRUE(contains(run.output, "oops")) << "stderr is captured too";
    EXPECT_TRUE(contains(run.output, "hi")) << run.output;
    EXPECT_FALSE(contains(run.output, "\ninjected")) << run.output;
  }
  EXPECT_FALSE(fs::exists(folder_path)) << "removed with its contents";
  EXPECT_THROW(run_capturing({(dir.path() / "missing").string()}), std::runtime_error);
  // $TMPDIR with a quote in it is only a folder name.
  fs::create_directory(dir.path() / "it's");
  ScopedEnv tmpdir("TMPDIR", (dir.path() / "it's").string());
  PrivateTempDir quoted;
  EXPECT_EQ(fs::path(quoted.path()).parent_path(), dir.path() / "it's");
}

}  // namespace
}  // namespace deconvtune::tuner

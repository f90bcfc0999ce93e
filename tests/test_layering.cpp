// The host code's layering (docs/architecture.md): each folder is one stage and includes only the
// stages below it. CMake links each stage's library only to those below, so a call that climbs
// back up fails to link; this test catches the include that climbs up without a call, and a new
// folder that nobody placed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace {

// Lower numbers sit lower. A folder includes its own headers and those of folders with a smaller
// number; folders of one number are independent of each other.
const std::map<std::string, int> kStage = {
    {"codegen", 0},    // problem, epilogue, config, space, generator: no CUDA, no files
    {"reference", 1},  // the float64 CPU reference (the tests' oracle)
    {"gpu", 1},        // Driver API, NVRTC and the cubin cache key, device buffers
    {"trial", 2},      // verifier, benchmark, Disposition
    {"tuning_db", 3},  // the SQLite store and its export/import
    {"tuner", 4},      // pipeline, measurer, worker protocol, strategies, heuristic
    {"include", 5},    // the public API's headers (deconvtune/...), implemented by engine/
    {"engine", 6},     // the public C++ and C API's implementation, plan cache, tune-on-miss
    {"tools", 7},      // the command line
};
// Folders above every stage: they may include anything.
const std::set<std::string> kAboveAll = {"tests", "fuzz", "bench", "examples"};
// Folders without host code.
const std::set<std::string> kNoHostCode = {"templates", "python", "docs",
                                           "scripts",   "cmake",  "build"};

const std::filesystem::path kRoot = DECONVTUNE_SOURCE_DIR;

// The stage an include path names: "gpu/driver_api.hpp" -> gpu, "deconvtune/deconvtune.h" ->
// include (its folder in the tree).
std::string stage_of_include(const std::string& path) {
  const std::string first = path.substr(0, path.find('/'));
  return first == "deconvtune" ? "include" : first;
}

bool is_host_source(const std::filesystem::path& path) {
  const std::string extension = path.extension().string();
  return extension == ".cpp" || extension == ".hpp" || extension == ".h" || extension == ".c";
}

struct Walk {
  std::vector<std::string> violations;  // "file:line: why"
  int includes_checked = 0;
};

// Calls visit(folder, stage, file, line, path) for every project include (a quoted path with a
// folder) of every host source of every stage under `root`.
template <typename Visit>
void for_each_include(const std::filesystem::path& root, Visit&& visit) {
  static const std::regex kInclude(R"re(^\s*#\s*include\s+"([^"]+/[^"]+)")re");
  for (const auto& [folder, stage] : kStage) {
    if (!std::filesystem::is_directory(root / folder)) continue;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root / folder)) {
      if (!entry.is_regular_file() || !is_host_source(entry.path())) continue;
      std::ifstream in(entry.path());
      std::string text;
      for (int line = 1; std::getline(in, text); ++line) {
        std::smatch match;
        if (std::regex_search(text, match, kInclude))
          visit(folder, stage, entry.path(), line, match[1].str());
      }
    }
  }
}

// Every project include of every stage under `root`, checked.
Walk check_includes(const std::filesystem::path& root) {
  Walk walk;
  for_each_include(root, [&](const std::string& folder, int stage,
                             const std::filesystem::path& file, int line, const std::string& path) {
    ++walk.includes_checked;
    const std::string target = stage_of_include(path);
    const std::string where =
        file.lexically_relative(root).string() + ":" + std::to_string(line) + ": '" + path + "'";
    const auto found = kStage.find(target);
    if (found == kStage.end()) {
      walk.violations.push_back(where + " is of no stage");
    } else if (target != folder && found->second >= stage) {
      walk.violations.push_back(where + " climbs from " + folder + " (stage " +
                                std::to_string(stage) + ") to " + target + " (stage " +
                                std::to_string(found->second) + ")");
    }
  });
  return walk;
}

TEST(Layering, EveryIncludeRunsDownward) {
  const Walk walk = check_includes(kRoot);
  for (const std::string& violation : walk.violations) ADD_FAILURE() << violation;
  // The walk found the tree: a wrong DECONVTUNE_SOURCE_DIR would check nothing and pass.
  EXPECT_GT(walk.includes_checked, 100);
}

// The checker on a planted tree: each kind of arrow back up is found, and nothing else.
TEST(Layering, ThePlantedArrowsBackUpAreFound) {
  const std::filesystem::path root =
      std::filesystem::path(::testing::TempDir()) / ("layering-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  const std::map<std::string, std::string> files = {
      {"gpu/ok.cpp", "#include \"gpu/ok.hpp\"\n#include \"codegen/problem.hpp\"\n"},
      {"gpu/up.cpp", "#include <vector>\n  #  include \"tuner/tuner.hpp\"  // why\n"},
      {"gpu/sideways.hpp", "#include \"reference/cpu_reference.hpp\"\n"},
      {"engine/public.cpp", "#include \"deconvtune/deconvtune.h\"\n"},
      {"codegen/public.cpp", "#include \"deconvtune/deconvtune.h\"\n"},
      {"tuning_db/nowhere.cpp", "#include \"elsewhere/thing.hpp\"\n"},
      {"tools/cli.cpp", "#include \"engine/x.hpp\"\n#include \"codegen/y.hpp\"\n"},
  };
  for (const auto& [name, text] : files) {
    std::filesystem::create_directories((root / name).parent_path());
    std::ofstream(root / name) << text;
  }
  const Walk walk = check_includes(root);
  std::filesystem::remove_all(root);
  std::set<std::string> found;
  for (const std::string& violation : walk.violations) found.insert(violation.substr(0, 18));
  EXPECT_EQ(walk.includes_checked, 9);
  EXPECT_EQ(found, (std::set<std::string>{"codegen/public.cpp", "gpu/sideways.hpp:1",
                                          "gpu/up.cpp:2: 'tun", "tuning_db/nowhere."}))
      << ::testing::PrintToString(walk.violations);
}

// A header that says "Internal to <folder>/" in its first lines (the parts of tuner.cpp and
// tuning_db.cpp, the SQLite wrapper) is included from its own folder only: the stages above use the
// stage's interface. Tests, fuzzers and benchmarks may look inside.
TEST(Layering, InternalHeadersStayInTheirFolder) {
  int internal = 0;
  for_each_include(kRoot, [&](const std::string& folder, int, const std::filesystem::path& file,
                              int line, const std::string& path) {
    std::ifstream header(kRoot / path);
    std::string opening, first_lines;
    for (int i = 0; i < 3 && std::getline(header, opening); ++i) first_lines += opening;
    const std::string owner = path.substr(0, path.find('/'));
    if (first_lines.find("// Internal to " + owner + "/") == std::string::npos) return;
    ++internal;
    EXPECT_EQ(owner, folder) << file.lexically_relative(kRoot).string() << ":" << line
                             << " includes " << path << ", internal to " << owner << "/";
  });
  EXPECT_GT(internal, 10) << "the internal headers were found";
}

// The tuning DB is a store (issue 16.2): the generator version of what it keeps is a value its
// callers pass, never one it asks the generator for.
TEST(Layering, TheTuningDbIsGivenTheGeneratorVersion) {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kRoot / "tuning_db")) {
    if (!entry.is_regular_file() || !is_host_source(entry.path())) continue;
    ++files;
    std::ifstream in(entry.path());
    std::string text;
    for (int line = 1; std::getline(in, text); ++line) {
      EXPECT_EQ(text.find("codegen/generator.hpp"), std::string::npos)
          << entry.path().filename() << ":" << line;
      EXPECT_EQ(text.find("generator_version()"), std::string::npos)
          << entry.path().filename() << ":" << line;
    }
  }
  EXPECT_GT(files, 5);
}

TEST(Layering, EveryFolderWithHostCodeIsPlaced) {
  for (const auto& entry : std::filesystem::directory_iterator(kRoot)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.front() == '.' || name.rfind("build", 0) == 0) continue;
    if (kStage.count(name) || kAboveAll.count(name) || kNoHostCode.count(name)) continue;
    bool has_host_code = false;
    for (const auto& file : std::filesystem::recursive_directory_iterator(entry.path())) {
      has_host_code = has_host_code || (file.is_regular_file() && is_host_source(file.path()));
    }
    EXPECT_FALSE(has_host_code) << name << "/ holds host code but is not a stage of "
                                << "tests/test_layering.cpp (nor above them all)";
  }
}

}  // namespace

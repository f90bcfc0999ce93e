// Replays every committed fuzz input (fuzz/corpus/<target>/ and fuzz/regressions/<target>/) through
// its target: what a fuzzer once found stays fixed, in every build configuration.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz/fuzz_targets.hpp"

namespace deconvtune::fuzz {

// Failure messages show the target's name (found by argument-dependent lookup).
void PrintTo(const Target& target, std::ostream* out) { *out << target.name; }

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

class FuzzReplay : public ::testing::TestWithParam<Target> {};

TEST_P(FuzzReplay, EveryCommittedInputPasses) {
  int replayed = 0;
  for (const char* folder : {"corpus", "regressions"}) {
    const std::filesystem::path dir =
        std::filesystem::path(DECONVTUNE_FUZZ_DIR) / folder / GetParam().name;
    if (!std::filesystem::is_directory(dir)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (!entry.is_regular_file()) continue;
      const std::string data = read_file(entry.path());
      try {
        GetParam().run(data);
      } catch (const std::exception& e) {
        ADD_FAILURE() << entry.path() << ": " << e.what();
      } catch (...) {
        ADD_FAILURE() << entry.path() << ": a non-standard exception";
      }
      ++replayed;
    }
  }
  // A missing or empty corpus must not pass silently.
  EXPECT_GE(replayed, 5) << "too few committed inputs for target " << GetParam().name;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::ValuesIn(targets_begin(), targets_end()),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace deconvtune::fuzz

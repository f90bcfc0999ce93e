#pragma once
// What the fuzz targets share: the invariant check that reports a finding, and a scratch file for
// targets whose parser reads a path.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "fuzz/fuzz_targets.hpp"

namespace deconvtune::fuzz {

inline void require(bool holds, const std::string& what) {
  if (!holds) throw InvariantBroken(what);
}

// One scratch file per process and target (`suffix` tells them apart), rewritten for each input,
// removed at exit.
class ScratchFile {
 public:
  explicit ScratchFile(std::string_view suffix)
      : path_(std::filesystem::temp_directory_path() /
              fmt::format("deconvtune-fuzz-{}-{}", getpid(), suffix)) {}
  ~ScratchFile() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  const std::filesystem::path& write(std::string_view contents) {
    std::ofstream(path_, std::ios::binary | std::ios::trunc)
        .write(contents.data(), static_cast<std::streamsize>(contents.size()));
    return path_;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace deconvtune::fuzz

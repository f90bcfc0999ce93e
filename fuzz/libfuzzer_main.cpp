// libFuzzer's entry point for one target, chosen at compile time with -DDECONVTUNE_FUZZ_TARGET=name
// (see fuzz/CMakeLists.txt). Exceptions other than the target's documented refusals escape and
// abort, which libFuzzer reports with the input that caused them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  deconvtune::fuzz::DECONVTUNE_FUZZ_TARGET(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

#include "fuzz/fuzz_targets.hpp"

#include <iterator>

namespace deconvtune::fuzz {
namespace {

// The corpus folders under fuzz/corpus/ and fuzz/regressions/ carry these names.
constexpr Target kTargets[] = {
    {"problem", problem_target},
    {"epilogue", epilogue_target},
    {"db_import", db_import_target},
    {"cubin", cubin_target},
};

}  // namespace

const Target* targets_begin() { return std::begin(kTargets); }
const Target* targets_end() { return std::end(kTargets); }

}  // namespace deconvtune::fuzz

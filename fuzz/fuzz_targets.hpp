#pragma once
// Fuzz targets: each takes arbitrary bytes, feeds them to one parser of untrusted input, and checks
// what the parser promises. A refusal of the documented kind (ProblemError, std::invalid_argument,
// DbError) is a pass; a crash, a sanitizer report, an exception of any other kind, or a broken
// invariant (InvariantBroken) is a finding.
//
// The same functions run in two harnesses: libFuzzer (fuzz/libfuzzer_main.cpp, built with
// -DDECONVTUNE_FUZZ=ON and clang) and the GoogleTest replay of every committed corpus and
// regression input (fuzz/replay_test.cpp, built in every configuration, so CI replays them always).
#include <stdexcept>
#include <string>
#include <string_view>

namespace deconvtune::fuzz {

class InvariantBroken : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Problem::from_argument on the bytes as inline JSON (when they start with '{') and as the
// contents of a JSON file; both must agree. An accepted problem must round-trip through to_json,
// keep its sizes within the validated limits, and yield a legal default config whose kernel source
// generates.
void problem_target(std::string_view data);

// Epilogue::parse; an accepted chain must round-trip through text(), hold only finite fp32-range
// arguments, print as CUDA, and propagate NaN as PyTorch does.
void epilogue_target(std::string_view data);

// db::read_exchange_file (what `db import FILE` reads: a JSON export or a tuning DB file); an
// accepted document must merge into an empty DB (or be refused leaving it unchanged), merge a
// second time adding nothing, and round-trip export -> import -> export byte for byte.
void db_import_target(std::string_view data);

// cubin_resources (what a cubin from NVRTC's cache or a tuning DB file says of its kernels):
// never throws; every figure is unknown (-1) or in range, and spills are 0 exactly where the stack
// frame is 0, else unknown; a kernel uses no more registers than its module's most.
void cubin_target(std::string_view data);

// A target: its name (the corpus folder) and its function.
struct Target {
  const char* name;
  void (*run)(std::string_view data);
};

// Every target, for the replay test.
const Target* targets_begin();
const Target* targets_end();

}  // namespace deconvtune::fuzz

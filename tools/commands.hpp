#pragma once
// The `deconvtune` subcommands. Each returns the process exit code; see ExitCode.
#include <cstdint>
#include <optional>
#include <string>

namespace deconvtune {
struct Problem;
}

namespace deconvtune::tools {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,        // the work ran and failed (a kernel was wrong, a CUDA call failed)
  kExitBadInput = 2,       // the command line, problem spec or config name is invalid
  kExitNoGpu = 3,          // a GPU was required and there is none
  kExitInterrupted = 130,  // SIGINT or SIGTERM stopped it (128 + SIGINT, as a shell reports)
};

struct ProblemArgs {
  std::string problem = "seed";
  std::string precision;  // empty: the problem's own (fp32 unless the spec says otherwise)
  std::string dtype;      // likewise (float32 unless it says otherwise)
  std::string layout;     // likewise (NCHW)
};

// --dtype and --layout, where given, in place of the problem's own (run, inspect and autotune take
// them as --precision). Throws std::invalid_argument for an unknown name.
void override_dtype_and_layout(Problem& problem, const std::string& dtype,
                               const std::string& layout);

struct RunArgs {
  ProblemArgs problem;
  std::string config;  // empty: the default config
  bool all_configs = false;
  std::string name_filter;  // with all_configs: only names that contain it
  int reps = 20;
  int warmup = 3;
  std::optional<uint64_t> seed;
  bool json = false;  // stdout: one JSON document ({"results": [...]}); the human text to stderr
  bool wide = false;
  bool require_gpu = false;
  int device = 0;
};

struct InspectArgs {
  ProblemArgs problem;
  std::string config;
  std::string arch;  // empty: the GPU's, else kDefaultArch (sm_90a)
  bool ptx = false;
  bool sass = false;
  bool resources = false;
  bool list_configs = false;
  bool log = false;
  bool json = false;  // with list_configs: {"configs": [...]} on stdout
  bool wide = false;
};

int run_command(const RunArgs& args);
int inspect_command(const InspectArgs& args);

}  // namespace deconvtune::tools

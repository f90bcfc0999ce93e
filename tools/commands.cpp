#include "tools/commands.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "codegen/generator.hpp"
#include "codegen/problem.hpp"
#include "codegen/search_space.hpp"
#include "trial/benchmark.hpp"
#include "gpu/driver_api.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "trial/verifier.hpp"
#include "tuner/executable.hpp"

namespace deconvtune::tools {
namespace {

// Input errors are reported and mapped to kExitBadInput; they carry their own message.
struct BadInput {
  std::string message;
};
// A tool the command needs is missing or failed: kExitFailure.
struct ToolFailure {
  std::string message;
};

Problem load_problem(const ProblemArgs& args) {
  try {
    Problem problem = Problem::from_argument(args.problem);
    if (!args.precision.empty()) problem.precision = parse_precision(args.precision);
    return problem;
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
}

Config load_config(const std::string& name, const Problem& problem) {
  if (name.empty()) return default_config(problem);
  try {
    Config config = Config::from_name(name);
    if (std::string reason = why_illegal(problem, config, DeviceLimits{}); !reason.empty()) {
      throw BadInput{fmt::format("config {} does not serve this problem: {}", name, reason)};
    }
    return config;
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
}

std::string resources_text(const ResourceUsage& r) {
  return fmt::format("{} registers, {} B static smem, {} B stack, spills {} B stored / {} B loaded",
                     r.registers, r.shared_bytes, r.stack_bytes, r.spill_store_bytes,
                     r.spill_load_bytes);
}

// Without a GPU, `run` still proves the generator and compiler: every config for sm_90a.
int compile_only(const Problem& problem, const std::vector<Config>& configs,
                 const std::string& why_no_gpu) {
  fmt::print("No GPU: {}.\nCompiling the problem's {} variant(s) for {} instead.\n", why_no_gpu,
             configs.size(), kDefaultArch);
  fmt::print("{:<58} {:>8} {:>5} {:>8} {:>7}  {}\n", "config", "compile", "regs", "smem B",
             "spill B", "status");
  int failures = 0;
  const std::vector<CompileResult> results = compile_configs(problem, configs, kDefaultArch);
  for (size_t i = 0; i < configs.size(); ++i) {
    const Config& config = configs[i];
    const CompileResult& compiled = results[i];
    const LaunchGeometry launch = family_spec(config.family).launch(problem, config);
    failures += !compiled.ok;
    const ResourceUsage& r = compiled.resources;
    fmt::print("{:<58} {:>6.0f}ms {:>5} {:>8} {:>7}  {}\n", config.name(), compiled.milliseconds,
               r.registers, r.shared_bytes + launch.shared_bytes,
               r.spill_store_bytes + r.spill_load_bytes, compiled.ok ? "compiled" : "FAILED");
    if (!compiled.ok) fmt::print(stderr, "{}\n", compiled.log);
  }
  fmt::print(
      "Not done without a GPU: launching, verifying against the float64 reference, timing.\n");
  return failures ? kExitFailure : kExitOk;
}

int run_checked(const RunArgs& args) {
  Problem problem = load_problem(args.problem);
  std::vector<Config> configs;
  if (args.all_configs) {
    for (Config& config : enumerate_space(problem)) {
      if (config.name().find(args.name_filter) != std::string::npos) configs.push_back(config);
    }
    if (configs.empty()) {
      throw BadInput{fmt::format("no config of the space has '{}' in its name", args.name_filter)};
    }
  } else {
    configs.push_back(load_config(args.config, problem));
  }
  fmt::print("problem   {}\n", problem.key());
  fmt::print("output    [{}, {}, {}, {}] ({:.3f} GiB), {:.2f} G multiply-adds\n", problem.batch,
             problem.out_channels, problem.out_height(), problem.out_width(),
             problem.y_elements() * 4.0 / 1073741824.0, problem.multiply_adds() / 1e9);
  std::string why_no_gpu;
  if (!DriverApi::available(&why_no_gpu)) {
    if (args.require_gpu) {
      fmt::print(stderr, "deconvtune: error: {}\n", why_no_gpu);
      return kExitNoGpu;
    }
    // Without a GPU the most useful thing left is to prove every variant compiles.
    return compile_only(problem, args.config.empty() ? enumerate_space(problem) : configs,
                        why_no_gpu);
  }
  Context context(args.device);
  const uint64_t seed = args.seed ? *args.seed : std::random_device{}();
  fmt::print("device    {} ({}, {} SMs), NVRTC {}, input seed {}\n", context.info().name,
             context.info().arch(), context.info().sm_count, nvrtc_version(), seed);
  Verifier verifier(context, problem);
  verifier.randomize_inputs(seed);

  TrialOptions options;
  options.timed_runs = args.reps;
  options.warmup_runs = args.warmup;
  fmt::print("{:<58} {:>14} {:>9} {:>9} {:>10} {:>5} {:>6}\n", "config", "status", "median ms",
             "min ms", "max |err|", "regs", "spill");
  std::vector<nlohmann::json> lines;
  int failures = 0;
  const std::vector<CompileResult> compiled =
      compile_configs(problem, configs, context.info().arch());
  for (size_t i = 0; i < configs.size(); ++i) {
    const Config& config = configs[i];
    TrialResult trial = run_trial(context, verifier, config, options, &compiled[i]);
    const bool ok = trial.disposition == Disposition::kOk;
    failures += !ok;
    const ResourceUsage& r = trial.compile.resources;
    fmt::print("{:<58} {:>14} {:>9.4f} {:>9.4f} {:>10.3e} {:>5} {:>6}\n", trial.config_name,
               to_string(trial.disposition), trial.timing.median_ms, trial.timing.min_ms,
               trial.verification.max_abs_error, r.registers,
               r.spill_store_bytes + r.spill_load_bytes);
    if (!ok) fmt::print(stderr, "  {}: {}\n", trial.config_name, trial.reason);
    lines.push_back({{"problem_key", problem.key()},
                     {"config", trial.config_name},
                     {"status", to_string(trial.disposition)},
                     {"device", context.info().name},
                     {"median_ms", trial.timing.median_ms},
                     {"min_ms", trial.timing.min_ms},
                     {"max_ms", trial.timing.max_ms},
                     {"runs", trial.timing.runs},
                     {"max_abs_err", trial.verification.max_abs_error},
                     {"error_bound", trial.verification.bound},
                     {"verified", ok},
                     {"registers", r.registers},
                     {"spill_bytes", r.spill_store_bytes + r.spill_load_bytes}});
    if (trial.disposition == Disposition::kFaulted) {
      fmt::print(stderr, "The CUDA context is lost; stopping.\n");
      break;
    }
  }
  if (args.json) {
    for (const nlohmann::json& line : lines) fmt::print("{}\n", line.dump());
  }
  return failures ? kExitFailure : kExitOk;
}

// The SASS of `cubin` from cuobjdump, else nvdisasm: looked for in $CUDA_HOME/bin, then on PATH.
// The cubin goes to a private folder and the tool is started without a shell, so neither a planted
// link nor a quote in $TMPDIR can redirect it. Throws ToolFailure when no tool exists or it fails.
std::string disassemble(const std::vector<char>& cubin) {
  struct Disassembler {
    const char* name;
    const char* flag;  // before the file
  };
  const char* cuda_home = std::getenv("CUDA_HOME");
  std::vector<std::string> tried;
  for (const Disassembler& tool :
       {Disassembler{"cuobjdump", "-sass"}, Disassembler{"nvdisasm", ""}}) {
    std::string path;
    if (cuda_home && cuda_home[0] == '/') {
      path = tuner::resolve_executable(std::string(cuda_home) + "/bin/" + tool.name);
    }
    if (path.empty()) path = tuner::find_on_path(tool.name);
    if (path.empty()) {
      tried.push_back(tool.name);
      continue;
    }
    tuner::PrivateTempDir folder;
    const std::string file = folder.write_file("kernel.cubin", cubin);
    std::vector<std::string> argv{path};
    if (*tool.flag) argv.push_back(tool.flag);
    argv.push_back(file);
    tuner::CapturedRun run = tuner::run_capturing(argv);
    if (run.exit_code != 0) {
      throw ToolFailure{fmt::format(
          "{} failed ({}):\n{}", path,
          run.exit_code < 0 ? "killed" : fmt::format("exit code {}", run.exit_code), run.output)};
    }
    return run.output;
  }
  throw ToolFailure{fmt::format(
      "--sass needs the CUDA toolkit's {}: not found in $CUDA_HOME/bin ({}) nor on PATH; set "
      "CUDA_HOME to the toolkit (e.g. /usr/local/cuda)",
      fmt::join(tried, " or "), cuda_home && *cuda_home ? cuda_home : "unset")};
}

int inspect_checked(const InspectArgs& args) {
  Problem problem = load_problem(args.problem);
  if (args.list_configs) {
    for (const Config& config : enumerate_space(problem)) {
      fmt::print("{}  {}\n", config.name(), config.to_json().dump());
    }
    return kExitOk;
  }
  Config config = load_config(args.config, problem);
  GeneratedKernel kernel = generate_kernel(problem, config);
  if (!args.ptx && !args.sass && !args.resources && !args.log) {
    fmt::print("{}", kernel.source);
    return kExitOk;
  }
  CompileOptions options;
  options.arch = args.arch;
  if (options.arch.empty()) {
    options.arch = DriverApi::available() ? Context(0).info().arch() : kDefaultArch;
  }
  options.want_ptx = args.ptx;
  CompileResult compiled;
  try {
    compiled = compile_cuda(kernel.source, options);
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
  if (!compiled.ok) {
    fmt::print(stderr, "deconvtune: {} did not compile for {}:\n{}\n", config.name(), options.arch,
               compiled.log);
    return kExitFailure;
  }
  if (args.resources) {
    fmt::print("{} for {}: {}; dynamic smem {} B; grid [{}, {}, {}] x block [{}, {}, {}]\n",
               config.name(), options.arch, resources_text(compiled.resources),
               kernel.launch.shared_bytes, kernel.launch.grid[0], kernel.launch.grid[1],
               kernel.launch.grid[2], kernel.launch.block[0], kernel.launch.block[1],
               kernel.launch.block[2]);
  }
  if (args.log) {
    fmt::print("NVRTC {} options:", nvrtc_version());
    for (const std::string& option : compiled.options) fmt::print(" {}", option);
    fmt::print("\n{}\n", compiled.log);
  }
  if (args.ptx) fmt::print("{}", compiled.ptx);
  if (args.sass) fmt::print("{}", disassemble(compiled.cubin));
  return kExitOk;
}

template <typename Args>
int guarded(int (*body)(const Args&), const Args& args) {
  try {
    return body(args);
  } catch (const BadInput& e) {
    fmt::print(stderr, "deconvtune: error: {}\n", e.message);
    return kExitBadInput;
  } catch (const NoGpuError& e) {
    fmt::print(stderr, "deconvtune: error: {}\n", e.what());
    return kExitNoGpu;
  } catch (const ToolFailure& e) {
    fmt::print(stderr, "deconvtune: error: {}\n", e.message);
    return kExitFailure;
  }
}

}  // namespace

int run_command(const RunArgs& args) { return guarded(run_checked, args); }
int inspect_command(const InspectArgs& args) { return guarded(inspect_checked, args); }

}  // namespace deconvtune::tools

#include "tools/commands.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <vector>

#include "codegen/generator.hpp"
#include "codegen/problem.hpp"
#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tools/cli_checks.hpp"
#include "tools/table.hpp"
#include "trial/benchmark.hpp"
#include "trial/verifier.hpp"
#include "tuner/executable.hpp"

namespace deconvtune::tools {
namespace {

// A tool the command needs is missing or failed: kExitFailure.
struct ToolFailure {
  std::string message;
};

Problem load_problem(const ProblemArgs& args) {
  try {
    Problem problem = Problem::from_argument(args.problem);
    if (!args.precision.empty()) problem.precision = parse_precision(args.precision);
    override_dtype_and_layout(problem, args.dtype, args.layout);
    return problem;
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
}

// The device the space, the default and the launch geometry are for: the GPU present, else the
// target `arch` names (an H100's figures for the rest: NVRTC needs no GPU), else an H100.
DeviceLimits target_limits(const std::optional<Context>& context, const std::string& arch) {
  if (context) return context->info().limits();
  DeviceLimits limits;
  if (const int number = arch_number(arch); number > 0) {
    limits.sm_major = number / 10;
    limits.sm_minor = number % 10;
  }
  return limits;
}

Config load_config(const std::string& name, const Problem& problem, const DeviceLimits& limits) {
  if (name.empty()) return default_config(problem, limits);
  try {
    Config config = Config::from_name(name);
    if (std::string reason = why_illegal(problem, config, limits); !reason.empty()) {
      throw BadInput{fmt::format("config {} does not serve this problem: {}", name, reason)};
    }
    return config;
  } catch (const std::invalid_argument& e) {
    throw BadInput{e.what()};
  }
}

// Unknown figures (a cubin from NVRTC's cache carries no spill counts) are kUnknown.
std::string resources_text(const ResourceUsage& r) {
  const std::string spills =
      r.spills_known()
          ? fmt::format("spills {} B stored / {} B loaded", r.spill_store_bytes, r.spill_load_bytes)
          : "spills - (a stack frame, and no ptxas report: NVRTC's cache served the cubin)";
  return fmt::format("{} registers, {} B static smem, {} B stack, {}", cell::count(r.registers),
                     cell::count(r.shared_bytes), cell::count(r.stack_bytes), spills);
}

// A run's row, in the table and the JSON alike; times and the error are unknown until launched.
struct RunRow {
  std::string config;
  std::string status;
  double compile_ms = NAN;
  double median_ms = NAN, min_ms = NAN, max_ms = NAN;
  int runs = 0;
  double max_abs_err = NAN, error_bound = NAN;
  int registers = -1, shared_bytes = -1, spill_bytes = -1;

  nlohmann::json to_json() const {
    return {{"config", config},
            {"status", status},
            {"verified", status == to_string(Disposition::kOk)},
            {"compile_ms", json_number(compile_ms)},
            {"median_ms", json_number(median_ms)},
            {"min_ms", json_number(min_ms)},
            {"max_ms", json_number(max_ms)},
            {"runs", runs},
            {"max_abs_err", json_number(max_abs_err)},
            {"error_bound", json_number(error_bound)},
            {"registers", json_count(registers)},
            {"shared_bytes", json_count(shared_bytes)},
            {"spill_bytes", json_count(spill_bytes)}};
  }
};

// The row of a compiled config: its compile time and resources; not launched yet.
RunRow compiled_row(const Problem& problem, const Config& config, const CompileResult& compiled,
                    const DeviceLimits& limits) {
  RunRow row;
  row.config = config.name();
  row.status = compiled.ok ? "compiled" : std::string(to_string(Disposition::kCompileFailed));
  row.compile_ms = compiled.milliseconds;
  const ResourceUsage& r = compiled.resources;
  row.registers = r.registers;
  row.shared_bytes =
      r.shared_bytes < 0
          ? -1
          : r.shared_bytes +
                family_spec(config.family).launch(problem, config, limits).shared_bytes;
  row.spill_bytes = r.spill_bytes();
  return row;
}

Table run_table(const std::vector<RunRow>& rows, bool launched) {
  Table table({{"config"},
               {"status"},
               {"median ms", Align::kRight, launched ? 0 : 9},
               {"min ms", Align::kRight, launched ? 5 : 9},
               {"max |err|", Align::kRight, launched ? 4 : 9},
               {"compile ms", Align::kRight, launched ? 6 : 3},
               {"regs", Align::kRight, 1},
               {"smem B", Align::kRight, 3},
               {"spill B", Align::kRight, 2}});
  for (const RunRow& row : rows) {
    table.add_row({row.config, row.status, cell::ms(row.median_ms), cell::ms(row.min_ms),
                   launched ? cell::error(row.max_abs_err) : std::string(kUnknown),
                   cell::whole(row.compile_ms), cell::count(row.registers),
                   cell::count(row.shared_bytes), cell::count(row.spill_bytes)});
  }
  return table;
}

// Without a GPU, `run` still proves the generator and compiler: the configs compile for sm_90a.
int compile_only(const Problem& problem, const std::vector<Config>& configs,
                 const std::string& why_no_gpu, const Output& out, nlohmann::json& document) {
  out.say("No GPU: {}.\nCompiling the problem's {} variant(s) for {} instead.\n", why_no_gpu,
          configs.size(), kDefaultArch);
  int failures = 0;
  std::vector<RunRow> rows;
  const DeviceLimits limits = target_limits(std::nullopt, kDefaultArch);
  const std::vector<CompileResult> results =
      compile_configs(problem, configs, kDefaultArch, limits);
  for (size_t i = 0; i < configs.size(); ++i) {
    failures += !results[i].ok;
    rows.push_back(compiled_row(problem, configs[i], results[i], limits));
    if (!results[i].ok) fmt::print(stderr, "{}\n", results[i].log);
  }
  out.print(run_table(rows, /*launched=*/false));
  out.say("Not done without a GPU: launching, verifying against the float64 reference, timing.\n");
  for (const RunRow& row : rows) document["results"].push_back(row.to_json());
  return failures ? kExitFailure : kExitOk;
}

// The configs `run` measures: --config (or the default), or the space's under --all-configs.
std::vector<Config> chosen_configs(const RunArgs& args, const Problem& problem,
                                   const DeviceLimits& limits) {
  if (!args.all_configs) return {load_config(args.config, problem, limits)};
  std::vector<Config> configs;
  for (Config& config : enumerate_space(problem, limits)) {
    if (config.name().find(args.name_filter) != std::string::npos) configs.push_back(config);
  }
  if (configs.empty()) {
    throw BadInput{fmt::format("no config of the space has '{}' in its name", args.name_filter)};
  }
  return configs;
}

RunRow trial_row(const Problem& problem, const Config& config, const TrialResult& trial,
                 const DeviceLimits& limits) {
  RunRow row = compiled_row(problem, config, trial.compile, limits);
  row.status = to_string(trial.disposition);
  if (trial.disposition == Disposition::kOk) {
    row.median_ms = trial.timing.median_ms;
    row.min_ms = trial.timing.min_ms;
    row.max_ms = trial.timing.max_ms;
    row.runs = trial.timing.runs;
  }
  row.max_abs_err = trial.verification.max_abs_error;
  row.error_bound = trial.verification.bound;
  return row;
}

int run_checked(const RunArgs& args) {
  const Output out(args.json, args.wide);
  Problem problem = load_problem(args.problem);
  std::string why_no_gpu;
  std::optional<Context> context;
  if (DriverApi::available(&why_no_gpu)) context.emplace(args.device);
  const DeviceLimits limits = target_limits(context, kDefaultArch);
  const std::vector<Config> configs = chosen_configs(args, problem, limits);
  out.say("problem   {}\n", out.problem_text(problem));
  out.say("output    [{}, {}, {}, {}] ({:.3f} GiB), {:.2f} G multiply-adds\n", problem.batch,
          problem.out_channels, problem.out_height(), problem.out_width(),
          static_cast<double>(problem.y_elements() * problem.element_bytes()) / 1073741824.0,
          problem.multiply_adds() / 1e9);
  nlohmann::json document = {{"problem_key", problem.key()},
                             {"name", problem.name},
                             {"label", compact_label(problem)},
                             {"device", nullptr},
                             {"results", nlohmann::json::array()}};
  if (!context) {
    if (args.require_gpu) {
      fmt::print(stderr, "deconvtune: error: {}\n", why_no_gpu);
      return kExitNoGpu;
    }
    // Without a GPU what is left is to prove that the chosen variants compile: the default (or
    // --config) in seconds, the space under --all-configs.
    document["no_gpu"] = why_no_gpu;
    const int code = compile_only(problem, configs, why_no_gpu, out, document);
    if (out.json()) out.emit(document);
    return code;
  }
  const uint64_t seed = args.seed ? *args.seed : std::random_device{}();
  out.say("device    {} ({}, {} SMs), NVRTC {}, input seed {}\n", context->info().name,
          context->info().arch(), context->info().sm_count, nvrtc_version(), seed);
  document["device"] = context->info().name;
  document["input_seed"] = seed;
  Verifier verifier(*context, problem);
  verifier.randomize_inputs(seed);

  TrialOptions options;
  options.timed_runs = args.reps;
  options.warmup_runs = args.warmup;
  std::vector<RunRow> rows;
  int failures = 0;
  const std::vector<CompileResult> compiled =
      compile_configs(problem, configs, context->info().arch(), limits);
  for (size_t i = 0; i < configs.size(); ++i) {
    // Said before the launch, so that a kernel that never returns is named by the last line.
    if (configs.size() > 1)
      fmt::print(stderr, "run: {}/{} {}\n", i + 1, configs.size(), configs[i].name());
    TrialResult trial = run_trial(*context, verifier, configs[i], options, &compiled[i]);
    const bool ok = trial.disposition == Disposition::kOk;
    failures += !ok;
    rows.push_back(trial_row(problem, configs[i], trial, limits));
    if (!ok) fmt::print(stderr, "  {}: {}\n", trial.config_name, trial.reason);
    if (trial.disposition == Disposition::kFaulted) {
      fmt::print(stderr, "The CUDA context is lost; stopping.\n");
      break;
    }
  }
  out.print(run_table(rows, /*launched=*/true));
  for (const RunRow& row : rows) document["results"].push_back(row.to_json());
  if (out.json()) out.emit(document);
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
  if (args.json && !args.list_configs) {
    throw BadInput{
        "--json goes with --list-configs: the other outputs are CUDA source, PTX, SASS "
        "or ptxas text"};
  }
  Problem problem = load_problem(args.problem);
  std::optional<Context> context;
  if (args.arch.empty() && DriverApi::available()) context.emplace(0);
  const std::string arch = !args.arch.empty() ? args.arch
                           : context          ? context->info().arch()
                                              : kDefaultArch;
  const DeviceLimits limits = target_limits(context, arch);
  if (args.list_configs) {
    const Output out(args.json, args.wide);
    Table table(
        {{"config"}, {"family"}, {"math"}, {"mish"}, {"parameters", Align::kLeft, 1, true}});
    nlohmann::json configs = nlohmann::json::array();
    for (const Config& config : enumerate_space(problem, limits)) {
      const nlohmann::json spec = config.to_json();
      std::string parameters;
      for (const auto& [name, value] : config.params) {
        parameters += fmt::format("{}{}={}", parameters.empty() ? "" : " ", name, value);
      }
      table.add_row({config.name(), spec["family"], spec["math"], spec["mish"], parameters});
      configs.push_back(spec);
    }
    out.print(table);
    if (out.json()) out.emit({{"problem_key", problem.key()}, {"configs", configs}});
    return kExitOk;
  }
  Config config = load_config(args.config, problem, limits);
  GeneratedKernel kernel = generate_kernel(problem, config, limits);
  if (!args.ptx && !args.sass && !args.resources && !args.log) {
    fmt::print("{}", kernel.source);
    return kExitOk;
  }
  CompileOptions options;
  options.arch = arch;
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

void override_dtype_and_layout(Problem& problem, const std::string& dtype,
                               const std::string& layout) {
  if (!dtype.empty()) problem.dtype = parse_dtype(dtype);
  if (!layout.empty()) problem.layout = parse_layout(layout);
}

}  // namespace deconvtune::tools

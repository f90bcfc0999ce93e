// The deconvtune command line: parses arguments with CLI11 and hands them to tools/commands.cpp.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "codegen/epilogue.hpp"
#include "tools/commands.hpp"

namespace {

void add_problem_options(CLI::App& command, deconvtune::tools::ProblemArgs& args) {
  command
      .add_option("--problem", args.problem,
                  "'seed', a JSON file or inline JSON with PyTorch's ConvTranspose2d names "
                  "(batch, in_channels, out_channels, height, width, kernel_size, stride, padding, "
                  "output_padding, dilation, groups, bias, epilogue, precision)")
      ->capture_default_str();
  command.add_option("--precision", args.precision, "fp32 or tf32 (overrides the problem's)")
      ->check(CLI::IsMember({"fp32", "tf32"}));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace deconvtune::tools;
  CLI::App app{
      "deconvtune: fused ConvTranspose2d + epilogue kernels, generated per shape, compiled with "
      "NVRTC, verified and timed on the GPU.\nEpilogue ops: " +
      deconvtune::epilogue_op_names()};
  app.require_subcommand(1);
  app.set_version_flag("--version", "deconvtune 0.1.0");

  RunArgs run;
  CLI::App* run_cmd = app.add_subcommand(
      "run",
      "Generate, compile, launch on fresh random inputs, verify against the float64 GPU reference "
      "and time. Without a GPU: compile the problem's variants for sm_90 and say what was not "
      "run.");
  add_problem_options(*run_cmd, run.problem);
  run_cmd->add_option("--config", run.config, "a config name (see inspect --list-configs)");
  run_cmd->add_flag("--all-configs", run.all_configs, "run every config of the space (a sweep)");
  run_cmd->add_option("--reps", run.reps, "timed runs (median reported)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  run_cmd->add_option("--warmup", run.warmup, "untimed runs first")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  run_cmd->add_option("--seed", run.seed, "random seed for the inputs (default: fresh)");
  run_cmd->add_option("--device", run.device, "GPU ordinal")->capture_default_str();
  run_cmd->add_flag("--json", run.json, "end with one JSON line per config");
  run_cmd->add_flag("--require-gpu", run.require_gpu, "exit 3 when no GPU is present");

  InspectArgs inspect;
  CLI::App* inspect_cmd = app.add_subcommand(
      "inspect",
      "Print a config's generated CUDA source, its PTX, SASS or resources, or the space.");
  add_problem_options(*inspect_cmd, inspect.problem);
  inspect_cmd->add_option("--config", inspect.config,
                          "a config name (default: the default config)");
  inspect_cmd->add_option("--arch", inspect.arch,
                          "target, e.g. sm_90 (default: the GPU's, else sm_90)");
  inspect_cmd->add_flag("--ptx", inspect.ptx, "print the PTX instead of the source");
  inspect_cmd->add_flag("--sass", inspect.sass, "print the SASS (needs cuobjdump)");
  inspect_cmd->add_flag("--resources", inspect.resources,
                        "print registers, shared memory and spills (ptxas's report)");
  inspect_cmd->add_flag("--log", inspect.log, "print NVRTC's options and full log (ptxas report)");
  inspect_cmd->add_flag("--list-configs", inspect.list_configs,
                        "list the variant space, one config name first on each line");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitBadInput;
  }
  try {
    if (*run_cmd) return run_command(run);
    if (*inspect_cmd) return inspect_command(inspect);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deconvtune: error: %s\n", e.what());
    return kExitFailure;
  }
  return kExitBadInput;
}

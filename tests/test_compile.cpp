// NVRTC needs no GPU: generation and compilation of every variant are CPU tests.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <tuple>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "codegen/templates.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "trial/benchmark.hpp"

namespace deconvtune {
namespace {

std::vector<Problem> compile_problems() {
  Problem seed_tf32 = Problem::seed();
  seed_tf32.precision = Precision::kTf32;
  return {Problem::seed(), seed_tf32,
          Problem::from_json(nlohmann::json::parse(
              R"({"batch": 3, "in_channels": 61, "out_channels": 67, "height": 97, "width": 75,
                  "kernel_size": [5, 3], "stride": [3, 2], "padding": [1, 2], "output_padding": [2, 1],
                  "dilation": 1, "groups": 1, "bias": false, "epilogue": "gelu,mul:1.5"})")),
          Problem::from_json(nlohmann::json::parse(
              R"({"batch": 2, "in_channels": 128, "out_channels": 128, "height": 33, "width": 31,
                  "kernel_size": 3, "stride": 1, "padding": 1, "dilation": 2, "groups": 4,
                  "epilogue": "silu,clamp:-1:1"})"))};
}

// Configs of `space` such that each family's every parameter value appears in at least one, plus
// the default: sm_80 is a second arch for the same sources, and compiling its whole space again
// would double the suite's longest test for little more than ptxas's own coverage.
std::vector<Config> covering_subset(const std::vector<Config>& space,
                                    const Config& default_config) {
  std::set<std::tuple<Family, std::string, int>> seen;
  std::vector<Config> subset;
  for (const Config& config : space) {
    bool adds = config == default_config;
    for (const auto& [name, value] : config.params) {
      adds = seen.insert({config.family, name, value}).second || adds;
    }
    if (adds) subset.push_back(config);
  }
  return subset;
}

TEST(Compile, EveryConfigOfTheSpaceCompilesForSm90aAndACoveringSetForSm80) {
  DeviceLimits a100;  // sm_80's space has no wgmma configs
  a100.sm_major = 8;
  a100.sm_count = 108;
  a100.max_shared_per_block = 163 * 1024;
  a100.max_shared_per_sm = 164 * 1024;
  for (const Problem& problem : compile_problems()) {
    for (const char* arch : {"sm_80", "sm_90a"}) {
      const bool sm80 = std::string_view(arch) == "sm_80";
      const std::vector<Config> space =
          sm80 ? covering_subset(enumerate_space(problem, a100), default_config(problem, a100))
               : enumerate_space(problem);
      const std::vector<CompileResult> results = compile_configs(problem, space, arch);
      for (size_t i = 0; i < space.size(); ++i) {
        const Config& config = space[i];
        const CompileResult& result = results[i];
        ASSERT_TRUE(result.ok) << config.name() << " for " << arch << ":\n" << result.log;
        EXPECT_FALSE(result.cubin.empty());
        EXPECT_GT(result.resources.registers, 0) << result.log;
        // Spills are reported for every config; the configs expected to win (each problem's
        // default, chosen from H100 measurements) must have none on sm_90. (sm_80's ptxas spills
        // 16 B of the fp32 seed default; that is reported, not failed.)
        if (result.resources.spills()) {
          std::printf("spills: %s %s %d B stored / %d B loaded\n", config.name().c_str(), arch,
                      result.resources.spill_store_bytes, result.resources.spill_load_bytes);
        }
        if (config == default_config(problem) && !sm80) {
          EXPECT_FALSE(result.resources.spills()) << config.name() << "\n" << result.log;
        }
        RecordProperty(config.name() + "_" + arch + "_registers", result.resources.registers);
      }
    }
  }
}

// The launch's shared memory comes from the host's copy of the template's tile arithmetic; the
// kernel states its own figure in dt_shared_bytes, which the PTX shows as an initialised global.
int kernel_shared_bytes(const std::string& ptx) {
  const std::string marker = "dt_shared_bytes = ";
  const size_t at = ptx.find(marker);
  if (at == std::string::npos) return -1;
  return std::stoi(ptx.substr(at + marker.size()));
}

TEST(Compile, HostTileGeometryAgreesWithTheKernelsSharedMemory) {
  std::vector<Problem> problems = compile_problems();
  // Strides, paddings and dilations that move the phase shifts both ways, including pad > k.
  for (const char* spec : {
           R"({"batch": 1, "in_channels": 20, "out_channels": 24, "height": 9, "width": 11,
               "kernel_size": [4, 2], "stride": [4, 3], "padding": [5, 0], "dilation": [1, 3]})",
           R"({"batch": 1, "in_channels": 16, "out_channels": 40, "height": 7, "width": 5,
               "kernel_size": [1, 6], "stride": [2, 5], "padding": [0, 7], "dilation": [2, 1]})",
           // W streamed (kc, coop): 264 channels of k4 do not stay resident.
           R"({"batch": 1, "in_channels": 264, "out_channels": 72, "height": 6, "width": 10,
               "kernel_size": 4, "stride": 2, "padding": 1, "precision": "tf32"})",
       }) {
    problems.push_back(Problem::from_json(nlohmann::json::parse(spec)));
  }
  CompileOptions options;
  options.arch = "compute_90a";  // PTX only: the figure is visible without running ptxas
  int checked = 0;
  for (const Problem& problem : problems) {
    const std::vector<Config> space = enumerate_space(problem);
    // Every eighth config of the space keeps the test short; each covers bn/rp/cp/st/xs choices.
    for (size_t i = 0; i < space.size(); i += 8) {
      const GeneratedKernel kernel = generate_kernel(problem, space[i]);
      if (kernel.launch.shared_bytes == 0) continue;  // the direct kernel needs none
      const CompileResult compiled = compile_cuda(kernel.source, options);
      ASSERT_TRUE(compiled.ok) << kernel.config_name << "\n" << compiled.log;
      EXPECT_EQ(kernel_shared_bytes(compiled.ptx), static_cast<int>(kernel.launch.shared_bytes))
          << kernel.config_name << " on " << problem.key();
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

// A streamed kernel carries a second entry (the W packer) and states its workspace; ptxas's report
// of the module is the main kernel's, the larger one.
TEST(Compile, StreamedDefaultCompilesWithItsPackerAndNoSpills) {
  const Problem wide = Problem::from_json(nlohmann::json::parse(
      R"({"batch": 2, "in_channels": 256, "out_channels": 128, "height": 16, "width": 16,
          "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1, "precision": "tf32"})"));
  const Config config = default_config(wide);
  ASSERT_GT(config.param("kc"), 0) << config.name();
  const GeneratedKernel kernel = generate_kernel(wide, config);
  CompileOptions options;
  options.want_ptx = true;
  const CompileResult compiled = compile_cuda(kernel.source, options);
  ASSERT_TRUE(compiled.ok) << compiled.log;
  EXPECT_NE(compiled.ptx.find(".entry deconv_wsgemm_pack"), std::string::npos);
  EXPECT_NE(compiled.ptx.find("dt_workspace_bytes = "), std::string::npos);
  EXPECT_EQ(compiled.resources.registers,
            parse_ptxas_report(compiled.log, "deconv_wsgemm").registers);
  EXPECT_FALSE(compiled.resources.spills()) << compiled.log;
}

TEST(Compile, WgmmaConfigForPlainSm90SaysItNeedsSm90a) {
  Problem seed = Problem::seed();
  seed.precision = Precision::kTf32;
  const GeneratedKernel kernel = generate_kernel(
      seed, Config::from_name("pgemm_tf32_bn64_rp2_cp64_wm4_wn2_st1_xs0_wg1_mishfast"));
  CompileOptions options;
  options.arch = "sm_90";
  const CompileResult plain = compile_cuda(kernel.source, options);
  EXPECT_FALSE(plain.ok);
  EXPECT_NE(plain.log.find("sm_90a"), std::string::npos) << plain.log;
}

TEST(Compile, FailureCarriesTheLogAndOptions) {
  CompileResult result =
      compile_cuda("extern \"C\" __global__ void k() { undefined_thing(); }", {});
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.log.find("undefined_thing"), std::string::npos) << result.log;
  EXPECT_NE(std::find(result.options.begin(), result.options.end(),
                      std::string("--gpu-architecture=") + kDefaultArch),
            result.options.end());
  CompileOptions misspelt;
  misspelt.arch = "sm90";
  EXPECT_THROW(compile_cuda("", misspelt), std::invalid_argument);
}

TEST(Compile, PtxForVirtualArchAndOnRequest) {
  GeneratedKernel kernel = generate_kernel(Problem::seed(), default_config(Problem::seed()));
  CompileOptions options;
  options.arch = "compute_90";
  CompileResult virtual_arch = compile_cuda(kernel.source, options);
  ASSERT_TRUE(virtual_arch.ok) << virtual_arch.log;
  EXPECT_NE(virtual_arch.ptx.find(".entry " + kernel.kernel_name), std::string::npos);
  options.arch = "sm_90";
  options.want_ptx = true;
  CompileResult real_arch = compile_cuda(kernel.source, options);
  ASSERT_TRUE(real_arch.ok);
  EXPECT_NE(real_arch.ptx.find(".target sm_90"), std::string::npos);
}

TEST(Compile, ReferenceSourceCompilesForEveryGoldenShape) {
  CompileResult result = compile_cuda(generate_reference_source(Problem::seed()), {});
  ASSERT_TRUE(result.ok) << result.log;
  EXPECT_NE(result.log.find("reference_f64"), std::string::npos);
  EXPECT_NE(result.log.find("max_abs_error"), std::string::npos);
}

TEST(Compile, GeneratedSourceIsSelfContainedAndSpecialised) {
  Problem p = Problem::seed();
  GeneratedKernel kernel = generate_kernel(p, default_config(p));
  EXPECT_EQ(kernel.source.find("#include"), std::string::npos) << "includes must be inlined";
  EXPECT_NE(kernel.source.find("#define DT_N 128"), std::string::npos);
  EXPECT_NE(kernel.source.find("dt_hardtanh(v, -1.0f, 1.0f)"), std::string::npos);
  EXPECT_NE(kernel.source.find(p.key()), std::string::npos);
  EXPECT_NE(kernel.source.find(generator_version()), std::string::npos);
}

TEST(Compile, EachTemplateCompilesOnItsOwnWithItsDefaults) {
  // CLBlast's rule: every parameter has a default, so a template alone is a valid program. Only
  // its includes are inlined; no problem or config is defined.
  for (const auto& [name, text] : templates::all()) {
    CompileResult result = compile_cuda(expand_template(name), {});
    EXPECT_TRUE(result.ok) << name << ":\n" << result.log;
  }
}

TEST(Compile, PtxasReportParsing) {
  const std::string log =
      "ptxas info    : Compiling entry function 'a' for 'sm_90'\n"
      "ptxas info    : Function properties for a\n"
      "    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n"
      "ptxas info    : Used 96 registers, used 1 barriers, 16384 bytes smem, 400 bytes cmem[0]\n"
      "ptxas info    : Compiling entry function 'b' for 'sm_90'\n"
      "ptxas info    : Used 32 registers\n";
  ResourceUsage a = parse_ptxas_report(log, "a");
  EXPECT_EQ(a.registers, 96);
  EXPECT_EQ(a.shared_bytes, 16384);
  EXPECT_EQ(a.stack_bytes, 8);
  EXPECT_TRUE(a.spills());
  EXPECT_EQ(parse_ptxas_report(log, "b").registers, 32);
  EXPECT_EQ(parse_ptxas_report(log, "missing").registers, -1);
  // Unnamed: the most any entry uses, whichever ptxas reports first.
  const std::string reversed =
      log.substr(log.find("ptxas info    : Compiling entry function 'b'")) +
      log.substr(0, log.find("ptxas info    : Compiling entry function 'b'"));
  for (const std::string& text : {log, reversed}) {
    const ResourceUsage worst = parse_ptxas_report(text, "");
    EXPECT_EQ(worst.registers, 96);
    EXPECT_EQ(worst.spill_load_bytes, 12);
  }
}

TEST(Compile, GeneratorVersionHashesTheTemplates) {
  EXPECT_EQ(generator_version().rfind("gen-", 0), 0u);
  EXPECT_EQ(generator_version().size(), 16u);
}

}  // namespace
}  // namespace deconvtune

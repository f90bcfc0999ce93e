#include "gpu/nvrtc_compiler.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nvrtc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <thread>

#include "codegen/sha256.hpp"

namespace deconvtune {
namespace {

void check_nvrtc(nvrtcResult result, const char* call) {
  if (result != NVRTC_SUCCESS) {
    throw std::runtime_error(fmt::format("{} failed: {}", call, nvrtcGetErrorString(result)));
  }
}

struct ProgramDeleter {
  void operator()(nvrtcProgram* program) const {
    nvrtcDestroyProgram(program);
    delete program;
  }
};

}  // namespace

std::string nvrtc_version() {
  int major = 0;
  int minor = 0;
  check_nvrtc(nvrtcVersion(&major, &minor), "nvrtcVersion");
  return fmt::format("{}.{}", major, minor);
}

std::vector<int> supported_archs() {
  static const std::vector<int> archs = [] {
    int count = 0;
    check_nvrtc(nvrtcGetNumSupportedArchs(&count), "nvrtcGetNumSupportedArchs");
    std::vector<int> list(static_cast<size_t>(std::max(count, 0)));
    check_nvrtc(nvrtcGetSupportedArchs(list.data()), "nvrtcGetSupportedArchs");
    return list;
  }();
  return archs;
}

int arch_number(const std::string& arch) {
  static const std::regex kArch("(sm|compute)_([0-9]{2,4})a?");
  std::smatch match;
  return std::regex_match(arch, match, kArch) ? std::stoi(match[2]) : -1;
}

std::vector<std::string> nvrtc_flags(const CompileOptions& options) {
  const int number = arch_number(options.arch);
  if (number < 0) {
    throw std::invalid_argument(
        fmt::format("arch '{}' is not of the form sm_90, sm_90a or compute_90", options.arch));
  }
  // A well-formed arch NVRTC cannot target is the caller's mistake too, not a failed compile.
  const std::vector<int> supported = supported_archs();
  if (std::find(supported.begin(), supported.end(), number) == supported.end()) {
    throw std::invalid_argument(fmt::format("arch '{}': NVRTC {} compiles for {} only",
                                            options.arch, nvrtc_version(),
                                            fmt::join(supported, ", ")));
  }
  std::vector<std::string> flags = {"--gpu-architecture=" + options.arch, "--std=c++17",
                                    "-default-device", "--device-int128", "-lineinfo"};
  if (options.arch.rfind("sm_", 0) == 0) flags.push_back("--ptxas-options=-v");
  flags.insert(flags.end(), options.extra.begin(), options.extra.end());
  return flags;
}

CompileResult compile_cuda(const std::string& source, const CompileOptions& options) {
  const bool real_arch = options.arch.rfind("sm_", 0) == 0;
  CompileResult result;
  result.options = nvrtc_flags(options);

  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<nvrtcProgram, ProgramDeleter> program(new nvrtcProgram(nullptr));
  check_nvrtc(nvrtcCreateProgram(program.get(), source.c_str(), options.program_name.c_str(), 0,
                                 nullptr, nullptr),
              "nvrtcCreateProgram");
  std::vector<const char*> argv;
  for (const std::string& option : result.options) argv.push_back(option.c_str());
  nvrtcResult compiled = nvrtcCompileProgram(*program, static_cast<int>(argv.size()), argv.data());

  size_t log_size = 0;
  check_nvrtc(nvrtcGetProgramLogSize(*program, &log_size), "nvrtcGetProgramLogSize");
  result.log.resize(log_size);
  if (log_size > 0) {
    check_nvrtc(nvrtcGetProgramLog(*program, result.log.data()), "nvrtcGetProgramLog");
    if (!result.log.empty() && result.log.back() == '\0') result.log.pop_back();
  }
  result.ok = compiled == NVRTC_SUCCESS;
  if (!result.ok) {
    result.log = fmt::format("{}\n{}", nvrtcGetErrorString(compiled), result.log);
  } else {
    if (real_arch) {
      size_t size = 0;
      check_nvrtc(nvrtcGetCUBINSize(*program, &size), "nvrtcGetCUBINSize");
      result.cubin.resize(size);
      check_nvrtc(nvrtcGetCUBIN(*program, result.cubin.data()), "nvrtcGetCUBIN");
    }
    if (options.want_ptx || !real_arch) {
      size_t size = 0;
      check_nvrtc(nvrtcGetPTXSize(*program, &size), "nvrtcGetPTXSize");
      result.ptx.resize(size);
      check_nvrtc(nvrtcGetPTX(*program, result.ptx.data()), "nvrtcGetPTX");
      if (!result.ptx.empty() && result.ptx.back() == '\0') result.ptx.pop_back();
    }
    result.resources = real_arch ? compiled_resources(result.log, result.cubin)
                                 : parse_ptxas_report(result.log, "");
  }
  result.milliseconds =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

std::vector<CompileResult> compile_cuda_parallel(const std::vector<std::string>& sources,
                                                 const CompileOptions& options, unsigned threads) {
  std::vector<CompileResult> results(sources.size());
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto worker = [&] {
    for (size_t i; (i = next++) < sources.size();) {
      try {
        results[i] = compile_cuda(sources[i], options);
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        failure = std::current_exception();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < std::min<size_t>(threads, sources.size()); ++t)
    pool.emplace_back(worker);
  for (std::thread& thread : pool) thread.join();
  if (failure) std::rethrow_exception(failure);
  return results;
}

namespace {
// One entry's report: from its "Compiling entry function" line to the next.
ResourceUsage parse_entry_report(const std::string& section) {
  ResourceUsage usage;
  std::smatch match;
  if (std::regex_search(section, match, std::regex(R"(Used (\d+) registers)"))) {
    usage.registers = std::stoi(match[1]);
  }
  if (std::regex_search(section, match, std::regex(R"((\d+) bytes smem)"))) {
    usage.shared_bytes = std::stoi(match[1]);
  }
  if (std::regex_search(section, match,
                        std::regex(R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) )"
                                   R"(bytes spill loads)"))) {
    usage.stack_bytes = std::stoi(match[1]);
    usage.spill_store_bytes = std::stoi(match[2]);
    usage.spill_load_bytes = std::stoi(match[3]);
  }
  return usage;
}
}  // namespace

ResourceUsage parse_ptxas_report(const std::string& log, const std::string& kernel) {
  static const std::string kEntry = "Compiling entry function";
  const std::string wanted = kernel.empty() ? kEntry : fmt::format("{} '{}'", kEntry, kernel);
  ResourceUsage usage;
  for (size_t begin = log.find(wanted); begin != std::string::npos;) {
    const size_t end = log.find(kEntry, begin + 1);
    const ResourceUsage entry = parse_entry_report(
        log.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (!kernel.empty()) return entry;
    usage.registers = std::max(usage.registers, entry.registers);
    usage.shared_bytes = std::max(usage.shared_bytes, entry.shared_bytes);
    usage.stack_bytes = std::max(usage.stack_bytes, entry.stack_bytes);
    usage.spill_store_bytes = std::max(usage.spill_store_bytes, entry.spill_store_bytes);
    usage.spill_load_bytes = std::max(usage.spill_load_bytes, entry.spill_load_bytes);
    begin = end;
  }
  return usage;
}

ResourceUsage compiled_resources(const std::string& log, const std::vector<char>& cubin) {
  // No report: NVRTC took the cubin from its cache and ptxas did not run. The cubin still says
  // what its kernels use (all but spills beside a stack frame).
  if (log.find("Compiling entry function") != std::string::npos) {
    return parse_ptxas_report(log, "");
  }
  return cubin_resources(cubin, "");
}

std::string cubin_cache_key(const std::string& source, const CompileOptions& options) {
  return cubin_cache_key(source, nvrtc_flags(options), options.arch, nvrtc_version());
}

std::string cubin_cache_key(const std::string& source, const std::vector<std::string>& flags,
                            const std::string& arch, const std::string& nvrtc_version) {
  Sha256 sha;
  sha.add_part("deconvtune-cubin-v1");
  sha.add_part(source);
  sha.add_part(std::to_string(flags.size()));
  for (const std::string& flag : flags) sha.add_part(flag);
  sha.add_part(arch);
  sha.add_part(nvrtc_version);
  return sha.hex();
}

}  // namespace deconvtune

#include "tuner/compile_pipeline.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "tuner/run_control.hpp"
#include "tuner/simulate.hpp"

namespace deconvtune::tuner {
namespace {

std::string cache_key_of(const std::string& source, const std::string& arch) {
  CompileOptions options;
  options.arch = arch;
  return cubin_cache_key(source, options);
}

// A compiled module's resources (ptxas's report, else what its cubin says; any may be unknown,
// -1, spills beside a stack frame in particular) onto its candidate, whose shared memory so far
// is the launch's dynamic part.
void take_resources(Candidate& candidate, const ResourceUsage& r) {
  candidate.registers = r.registers;
  candidate.shared_bytes = r.shared_bytes >= 0 ? candidate.shared_bytes + r.shared_bytes : -1;
  candidate.spill_bytes = r.spill_bytes();
}

}  // namespace

CompilePipeline::CompilePipeline(const Problem& problem, std::vector<Config> order,
                                 CompileSettings settings)
    : problem_(problem), order_(std::move(order)), settings_(settings) {
  thread_ = std::thread([this] { run(); });
}

void CompilePipeline::finish() {
  stop();
  if (thread_.joinable()) thread_.join();
}

std::optional<Candidate> CompilePipeline::next(const std::atomic<bool>* stop) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!ready_.wait_for(lock, std::chrono::milliseconds(100),
                          [&] { return !queue_.empty() || finished_ || error_; })) {
    if (stop && stop->load()) throw Interrupted{};
  }
  if (error_) std::rethrow_exception(error_);
  if (queue_.empty()) return std::nullopt;
  Candidate candidate = std::move(queue_.front());
  queue_.pop_front();
  space_.notify_all();
  return candidate;
}

void CompilePipeline::stop() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopped_ = true;
  space_.notify_all();
}

void CompilePipeline::run() {
  try {
    for (size_t begin = 0; begin < order_.size(); begin += chunk_size()) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        // At most two chunks ahead of the measuring loop: a stopped run wastes little.
        space_.wait(lock, [&] { return stopped_ || queue_.size() < chunk_size(); });
        if (stopped_) break;
      }
      const size_t end = std::min(order_.size(), begin + chunk_size());
      std::vector<Candidate> chunk = compile_chunk(begin, end);
      std::lock_guard<std::mutex> lock(mutex_);
      for (Candidate& candidate : chunk) queue_.push_back(std::move(candidate));
      ready_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  ready_.notify_all();
}

std::vector<Candidate> CompilePipeline::compile_chunk(size_t begin, size_t end) {
  const Clock::time_point start = Clock::now();
  std::vector<Candidate> chunk;
  std::vector<size_t> misses;
  std::vector<std::string> keys;
  for (size_t i = begin; i < end; ++i) {
    Candidate candidate;
    candidate.config = order_[i];
    candidate.name = order_[i].name();
    try {
      candidate.kernel = generate_kernel(problem_, candidate.config, settings_.limits);
      candidate.shared_bytes = static_cast<int>(candidate.kernel.launch.shared_bytes);
    } catch (const std::exception& e) {
      candidate.failure = fmt::format("generation failed: {}", e.what());
      chunk.push_back(std::move(candidate));
      continue;
    }
    if (settings_.simulate) {  // TEST SEAM
      SimulatedCompile compiled = simulated_compile(candidate.config, problem_);
      candidate.ok = compiled.ok;
      candidate.failure = compiled.log;
      candidate.registers = compiled.registers;
    } else {
      const std::string key = cache_key_of(candidate.kernel.source, settings_.arch);
      if (std::optional<std::vector<char>> cubin = settings_.db->cached_cubin(key)) {
        candidate.ok = true;
        candidate.from_cache = true;
        candidate.cubin = std::move(*cubin);
        take_resources(candidate, cubin_resources(candidate.cubin, ""));
        ++cache_hits_;
      } else {
        misses.push_back(chunk.size());
        keys.push_back(key);
      }
    }
    chunk.push_back(std::move(candidate));
  }
  if (!misses.empty()) compile_misses(chunk, misses, keys);
  busy_seconds_ += seconds_since(start);
  return chunk;
}

void CompilePipeline::compile_misses(std::vector<Candidate>& chunk,
                                     const std::vector<size_t>& misses,
                                     const std::vector<std::string>& keys) {
  std::vector<std::string> sources;
  for (size_t miss : misses) sources.push_back(chunk[miss].kernel.source);
  CompileOptions options;
  options.arch = settings_.arch;
  std::vector<CompileResult> results = compile_cuda_parallel(sources, options, settings_.threads);
  for (size_t j = 0; j < misses.size(); ++j) {
    Candidate& candidate = chunk[misses[j]];
    CompileResult& result = results[j];
    candidate.compile_ms = result.milliseconds;
    candidate.ok = result.ok;
    ++compiled_;
    if (!result.ok) {
      candidate.failure = result.log;
      continue;
    }
    take_resources(candidate, result.resources);
    candidate.cubin = std::move(result.cubin);
    settings_.db->store_cubin(keys[j], candidate.cubin, generator_version());
  }
}

}  // namespace deconvtune::tuner

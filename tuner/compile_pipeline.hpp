#pragma once
// Internal to tuner/: the compile pipeline. A producer thread generates and compiles candidates
// chunk by chunk, at most two chunks ahead of the measuring loop (a stopped run wastes little),
// through the DB's cubin cache: hits are loaded, misses compiled with NVRTC in parallel and stored.
// Candidates come out in the order they went in; one that did not generate or compile comes out
// with ok == false and the reason.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "codegen/config.hpp"
#include "codegen/generator.hpp"
#include "codegen/problem.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {

struct Candidate {
  Config config;
  std::string name;
  GeneratedKernel kernel;
  bool ok = false;
  std::string failure;  // why it did not compile
  std::vector<char> cubin;
  bool from_cache = false;
  double compile_ms = 0;
  int registers = -1, shared_bytes = -1, spill_bytes = -1;
};

struct CompileSettings {
  db::TuningDb* db = nullptr;
  std::string arch;
  DeviceLimits limits;  // the launch geometry's device
  unsigned threads = 1;
  bool simulate = false;  // TEST SEAM: tuner/simulate.hpp's compile instead of NVRTC
};

class CompilePipeline {
 public:
  CompilePipeline(const Problem& problem, std::vector<Config> order, CompileSettings settings);
  ~CompilePipeline() { finish(); }
  CompilePipeline(const CompilePipeline&) = delete;
  CompilePipeline& operator=(const CompilePipeline&) = delete;

  // Stops and waits for the producer; the counters below are final afterwards.
  void finish();

  // The next candidate in order; nullopt when all are done or the pipeline was stopped. Throws
  // Interrupted when `*stop` becomes true while it waits (polled: a signal handler sets it).
  std::optional<Candidate> next(const std::atomic<bool>* stop);

  void stop();

  double busy_seconds() const { return busy_seconds_; }
  int compiled() const { return compiled_; }
  int cache_hits() const { return cache_hits_; }

 private:
  size_t chunk_size() const { return std::max<size_t>(4, 2 * settings_.threads); }
  void run();
  std::vector<Candidate> compile_chunk(size_t begin, size_t end);
  // The chunk's cache misses, compiled together; `misses` indexes `chunk`.
  void compile_misses(std::vector<Candidate>& chunk, const std::vector<size_t>& misses,
                      const std::vector<std::string>& keys);

  Problem problem_;
  std::vector<Config> order_;
  CompileSettings settings_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::deque<Candidate> queue_;
  bool stopped_ = false, finished_ = false;
  std::exception_ptr error_;
  // Written by the producer only, read after finish().
  double busy_seconds_ = 0;
  int compiled_ = 0, cache_hits_ = 0;
};

}  // namespace deconvtune::tuner

// The C++ API (include/deconvtune/deconvtune.hpp) through libdeconvtune.so. CPU tests: version,
// options, problem errors naming the field, database errors, no GPU. GPU tests (skipped without a
// GPU): every plan's output against the float64 reference, the plan and cubin caches, threads,
// the caller's current context kept, run()'s argument checks, and where each plan's config comes
// from (tuned winner, nearest winner, rule, fail, tune now).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "deconvtune/deconvtune.hpp"
// Internals, only to set up DB contents and to check outputs against the float64 reference.
#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "tests/api_test_util.hpp"
#include "tests/unprivileged.hpp"
#include "trial/verifier.hpp"
#include "tuner/tuner.hpp"

// GCC sees malloc'ed memory reach free() through inlined allocators and warns; it is the pairing
// of this replacement itself.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Every operator new of the process (the library's included) is counted while counting is on: a
// cached plan's run() must not allocate.
namespace {
std::atomic<bool> counting_allocations{false};
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  if (counting_allocations.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

namespace fs = std::filesystem;
using deconvtune::Engine;
using deconvtune::EngineOptions;
using deconvtune::Error;
using deconvtune::OnMiss;
using deconvtune::Plan;
using deconvtune::PrecisionMode;
using deconvtune::ProblemSpec;
using deconvtune::Status;

// A fresh database path per test, removed afterwards.
class TempDb {
 public:
  TempDb() {
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("deconvtune-api-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  ~TempDb() { fs::remove_all(dir_); }
  std::string path() const { return (dir_ / "tuning.db").string(); }
  EngineOptions options(OnMiss on_miss = OnMiss::kHeuristic) const {
    EngineOptions options;
    options.db_path = path();
    options.on_miss = on_miss;
    return options;
  }

 private:
  fs::path dir_;
};

std::string contents_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs `body` and returns the Error it throws (failing the test when it throws none).
template <typename Body>
Error error_of(Body&& body) {
  try {
    body();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no deconvtune::Error was thrown";
  return Error(Status::kOk, "");
}

ProblemSpec small_spec() {
  ProblemSpec spec = ProblemSpec::seed();
  spec.batch = 2;
  spec.in_channels = 16;
  spec.out_channels = 16;
  spec.height = spec.width = 16;
  return spec;
}

TEST(Api, VersionIsTheProjectVersion) {
  EXPECT_EQ(deconvtune::version(), DECONVTUNE_EXPECTED_VERSION);
  EXPECT_STREQ(deconvtune_version(), DECONVTUNE_EXPECTED_VERSION);
}

TEST(Api, SpecJsonIsWhatTheProblemParserReads) {
  const deconvtune::Problem parsed =
      deconvtune::Problem::from_json(nlohmann::json::parse(ProblemSpec::seed().to_json()));
  EXPECT_EQ(parsed.key(), deconvtune::Problem::seed().key());
  ProblemSpec tf32 = ProblemSpec::seed();
  tf32.precision = PrecisionMode::kTf32;
  EXPECT_EQ(nlohmann::json::parse(tf32.to_json())["precision"], "tf32");
  const nlohmann::json seed = nlohmann::json::parse(ProblemSpec::seed().to_json());
  EXPECT_EQ(seed["dtype"], "float32");
  EXPECT_EQ(seed["layout"], "NCHW");
  ProblemSpec half = ProblemSpec::seed();
  half.dtype = deconvtune::DataType::kBFloat16;
  half.layout = deconvtune::MemoryLayout::kNhwc;
  const deconvtune::Problem parsed_half =
      deconvtune::Problem::from_json(nlohmann::json::parse(half.to_json()));
  EXPECT_EQ(parsed_half.dtype, deconvtune::DType::kBFloat16);
  EXPECT_EQ(parsed_half.layout, deconvtune::Layout::kNhwc);
  half.dtype = deconvtune::DataType::kFloat16;
  EXPECT_EQ(nlohmann::json::parse(half.to_json())["dtype"], "float16");
}

TEST(Api, EngineCreatesItsDatabaseWithoutTouchingTheGpu) {
  TempDb db;
  Engine engine(db.options());
  EXPECT_TRUE(fs::exists(db.path()));
  EXPECT_EQ(engine.cached_plans(), 0u);
  EXPECT_EQ(engine.options().db_path, db.path());
}

TEST(Api, MovedFromEngineRefusesClearly) {
  TempDb db;
  Engine engine(db.options());
  Engine moved(std::move(engine));
  Error e = error_of([&] { engine.plan(small_spec()); });  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(e.status(), Status::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("moved-from"), std::string::npos) << e.what();
  EXPECT_EQ(engine.cached_plans(), 0u);
  EXPECT_EQ(moved.options().db_path, db.path());
}

TEST(Api, BadOptionsAreRefused) {
  TempDb db;
  EngineOptions options = db.options();
  options.device = -1;
  Error e = error_of([&] { Engine engine(options); });
  EXPECT_EQ(e.status(), Status::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("device"), std::string::npos) << e.what();
}

TEST(Api, NotADatabaseIsRefusedAndLeftAlone) {
  TempDb db;
  const std::string garbage = "this is not an SQLite file, and it must stay as it is\n";
  std::ofstream(db.path()) << garbage;
  Error e = error_of([&] { Engine engine(db.options()); });
  EXPECT_EQ(e.status(), Status::kDatabase);
  EXPECT_NE(std::string(e.what()).find(db.path()), std::string::npos) << e.what();
  EXPECT_EQ(contents_of(db.path()), garbage);
}

// A database the process may read but not write (here: its folder is 0555; as root the Engine is
// made by nobody) still gives an Engine, through the read-only open (issue 14).
TEST(Api, DatabaseInAReadOnlyFolderIsOpenedReadOnly) {
  TempDb db;
  { Engine engine(db.options()); }
  const fs::path folder = fs::path(db.path()).parent_path();
  if (geteuid() == 0) {
    ASSERT_EQ(chown(db.path().c_str(), deconvtune::testing::kNobody, deconvtune::testing::kNobody),
              0);
  }
  fs::permissions(folder, fs::perms(0555));
  std::string report = deconvtune::testing::in_unprivileged_child([&] {
    try {
      Engine engine(db.options());
      return std::string("opened");
    } catch (const Error& e) {
      return std::string("error: ") + e.what();
    }
  });
  fs::permissions(folder, fs::perms(0755));
  if (report == "cannot drop to nobody") {
    GTEST_SKIP() << "running as root without CAP_SETUID: permissions cannot be tested here";
  }
  EXPECT_EQ(report, "opened");
  EXPECT_FALSE(fs::exists(db.path() + "-shm"));
}

// A DB file the process may not write, in a folder it may (issue 14): the Engine reads it
// through the read-only open and leaves it as it was.
TEST(Api, DatabaseFileWithoutWritePermissionIsOpenedReadOnly) {
  TempDb db;
  { Engine engine(db.options()); }
  const fs::path folder = fs::path(db.path()).parent_path();
  if (geteuid() == 0) {
    ASSERT_EQ(chown(folder.c_str(), deconvtune::testing::kNobody, deconvtune::testing::kNobody), 0);
  }
  fs::permissions(db.path(), fs::perms(0444));
  const std::string before = contents_of(db.path());
  const std::string report = deconvtune::testing::in_unprivileged_child([&] {
    try {
      Engine engine(db.options());
      return std::string("opened");
    } catch (const Error& e) {
      return std::string("error: ") + e.what();
    }
  });
  fs::permissions(db.path(), fs::perms(0644));
  if (report == "cannot drop to nobody") {
    GTEST_SKIP() << "running as root without CAP_SETUID: permissions cannot be tested here";
  }
  EXPECT_EQ(report, "opened");
  EXPECT_EQ(contents_of(db.path()), before);
}

// A DB on a read-only mount (issue 14.5): the Engine's read-only fallback opens it.
TEST(Api, DatabaseOnAReadOnlyMountIsOpenedReadOnly) {
  TempDb db;
  { Engine engine(db.options()); }
  const std::string folder = fs::path(db.path()).parent_path().string();
  const std::string report = deconvtune::testing::on_read_only_mount(folder, [&] {
    try {
      Engine engine(db.options());
      return std::string("opened");
    } catch (const Error& e) {
      return std::string("error: ") + e.what();
    }
  });
  if (report.rfind("cannot mount read-only", 0) == 0) GTEST_SKIP() << report;
  EXPECT_EQ(report, "opened");
}

TEST(Api, BadProblemsNameTheField) {
  TempDb db;
  Engine engine(db.options());
  struct Case {
    const char* json;
    const char* mention;
  } cases[] = {
      {"{", "malformed JSON"},
      {"[1, 2]", "problem: must be a JSON object"},
      {R"({"batch": 1, "in_channels": 4, "out_channels": 4, "height": 8, "width": 8})",
       "kernel_size"},
      {R"({"batch": 1, "in_channels": 4, "out_channels": 4, "height": 8, "width": 8,
           "kernel_size": 3, "stride": 2, "output_padding": 2})",
       "output_padding"},
      {R"({"batch": 1, "in_channels": 4, "out_channels": 4, "height": 8, "width": 8,
           "kernel_size": 3, "strides": 2})",
       "strides"},
      {R"({"batch": 1, "in_channels": 4, "out_channels": 4, "height": 8, "width": 8,
           "kernel_size": 3, "precision": "fp16"})",
       "precision"},
      {R"({"batch": 1, "in_channels": 4, "out_channels": 4, "height": 8, "width": 8,
           "kernel_size": 3, "epilogue": "mish,frobnicate"})",
       "epilogue"},
      // nlohmann keeps the last of two equal keys: the spec would say two things at once.
      {R"({"batch": 1, "in_channels": 4, "out_channels": 4, "height": 8, "width": 8,
           "kernel_size": 3, "stride": 1, "stride": 2})",
       "duplicate key 'stride'"},
  };
  // 120 KB of nesting overflowed the stack on the error path (a recursive dump).
  const std::string deep = std::string(60000, '[') + std::string(60000, ']');
  Error deep_error = error_of([&] { engine.plan_json(deep); });
  EXPECT_EQ(deep_error.status(), Status::kBadProblem);
  EXPECT_NE(std::string(deep_error.what()).find("nested deeper"), std::string::npos)
      << deep_error.what();
  for (const Case& c : cases) {
    Error e = error_of([&] { engine.plan_json(c.json); });
    EXPECT_EQ(e.status(), Status::kBadProblem) << c.json;
    EXPECT_NE(std::string(e.what()).find(c.mention), std::string::npos)
        << c.json << " -> " << e.what();
  }
  ProblemSpec negative = small_spec();
  negative.batch = -3;
  Error e = error_of([&] { engine.plan(negative); });
  EXPECT_EQ(e.status(), Status::kBadProblem);
  EXPECT_NE(std::string(e.what()).find("batch"), std::string::npos) << e.what();
  EXPECT_EQ(engine.cached_plans(), 0u);
}

TEST(Api, EmptyPlanRefusesToRun) {
  Plan plan;
  EXPECT_FALSE(plan);
  Error e = error_of([&] { plan.run(nullptr, nullptr, nullptr, nullptr); });
  EXPECT_EQ(e.status(), Status::kInvalidArgument);
  EXPECT_EQ(plan.config_name(), "");
}

TEST(Api, WithoutAGpuPlanSaysSo) {
  std::string reason;
  if (deconvtune::gpu_available(&reason)) GTEST_SKIP() << "a GPU is present";
  TempDb db;
  Engine engine(db.options());
  Error e = error_of([&] { engine.plan(small_spec()); });
  EXPECT_EQ(e.status(), Status::kNoGpu);
  EXPECT_NE(std::string(e.what()).find("GPU"), std::string::npos) << e.what();
  EXPECT_EQ(engine.cached_plans(), 0u);
}

// ------------------------------------------------------------------------------------------------
// GPU

#define REQUIRE_GPU()                                          \
  do {                                                         \
    std::string why;                                           \
    if (!deconvtune::gpu_available(&why)) GTEST_SKIP() << why; \
  } while (0)

const deconvtune::Context& gpu() {
  static deconvtune::Context context(0);
  return context;
}

deconvtune::Problem internal(const ProblemSpec& spec, PrecisionMode default_precision) {
  nlohmann::json json = nlohmann::json::parse(spec.to_json());
  if (!json.contains("precision"))
    json["precision"] = default_precision == PrecisionMode::kTf32 ? "tf32" : "fp32";
  return deconvtune::Problem::from_json(json);
}

// Runs the plan on the verifier's inputs (NaN-poisoned output first) and checks it vs float64.
void expect_correct(const Plan& plan, const ProblemSpec& spec, PrecisionMode precision) {
  const deconvtune::Problem problem = internal(spec, precision);
  ASSERT_EQ(plan.problem_key(), problem.key());
  gpu().make_current();
  deconvtune::Verifier verifier(gpu(), problem);
  verifier.randomize_inputs(7);
  verifier.poison_output();
  plan.run(verifier.x(), verifier.w(), problem.bias ? verifier.bias() : 0, verifier.y());
  gpu().synchronize();
  deconvtune::Verification check = verifier.check_output();
  EXPECT_TRUE(check.passed()) << plan.config_name() << " (" << plan.source() << ") on "
                              << problem.key() << ": " << check.summary();
}

TEST(ApiGpu, PlansMatchTheFloat64Reference) {
  REQUIRE_GPU();
  TempDb db;
  std::vector<ProblemSpec> specs;
  specs.push_back(small_spec());
  ProblemSpec odd = small_spec();  // odd sizes: the igemm family's edges, or the direct kernel
  odd.in_channels = 13;
  odd.out_channels = 19;
  odd.height = 11;
  odd.width = 15;
  specs.push_back(odd);
  ProblemSpec nobias = small_spec();
  nobias.bias = false;
  nobias.epilogue = "gelu,add:0.1,clamp:-0.5:1.5";
  specs.push_back(nobias);
  // 16-bit and channels_last (the general kernel or the Hopper family; 16-bit x, w and bias of
  // 2-byte alignment where the kernel reads no 16-byte vector of x).
  for (auto [dtype, layout] :
       {std::pair{deconvtune::DataType::kBFloat16, deconvtune::MemoryLayout::kNchw},
        {deconvtune::DataType::kFloat16, deconvtune::MemoryLayout::kNhwc},
        {deconvtune::DataType::kFloat32, deconvtune::MemoryLayout::kNhwc}}) {
    ProblemSpec other = odd;
    other.dtype = dtype;
    other.layout = layout;
    specs.push_back(other);
  }
  for (PrecisionMode precision : {PrecisionMode::kFp32, PrecisionMode::kTf32}) {
    EngineOptions options = db.options();
    options.precision = precision;
    Engine engine(options);
    for (const ProblemSpec& spec : specs) {
      Plan plan = engine.plan(spec);
      EXPECT_EQ(plan.source(), "rule");  // an empty DB
      // Staged windows (xl2) read x in tensor map boxes; every other kernel one element at least.
      const int64_t element = spec.dtype == deconvtune::DataType::kFloat32 ? 4 : 2;
      EXPECT_EQ(plan.x_alignment(),
                plan.config_name().find("_xl2_") != std::string::npos ? 16 : element)
          << plan.config_name();
      expect_correct(plan, spec, precision);
    }
  }
}

TEST(ApiGpu, PlansAreCachedAndCubinsStored) {
  REQUIRE_GPU();
  TempDb db;
  {
    Engine engine(db.options());
    Plan first = engine.plan(small_spec());
    Plan second = engine.plan(small_spec());
    EXPECT_EQ(engine.cached_plans(), 1u);
    EXPECT_EQ(first.config_name(), second.config_name());
    EXPECT_EQ(&first.config_name(), &second.config_name()) << "the same cached state";
    ProblemSpec tf32 = small_spec();
    tf32.precision = PrecisionMode::kTf32;
    engine.plan(tf32);
    EXPECT_EQ(engine.cached_plans(), 2u);
  }
  deconvtune::db::TuningDb tuning_db(db.path(), /*read_only=*/true);
  EXPECT_EQ(tuning_db.cubin_cache_stats().entries, 2);
  // A second engine (another process, in real use) finds the cubins and stores none anew.
  Engine engine(db.options());
  expect_correct(engine.plan(small_spec()), small_spec(), PrecisionMode::kFp32);
  EXPECT_EQ(deconvtune::db::TuningDb(db.path(), true).cubin_cache_stats().entries, 2);
}

TEST(ApiGpu, ThreadsShareOnePlanPerProblem) {
  REQUIRE_GPU();
  TempDb db;
  Engine engine(db.options());
  ProblemSpec other = small_spec();
  other.batch = 3;
  std::vector<Plan> plans(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { plans[i] = engine.plan(i % 2 ? other : small_spec()); });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(engine.cached_plans(), 2u);
  for (int i = 2; i < 8; ++i) EXPECT_EQ(&plans[i].config_name(), &plans[i % 2].config_name());
  expect_correct(plans[1], other, PrecisionMode::kFp32);
}

TEST(ApiGpu, CallersCurrentContextIsKept) {
  REQUIRE_GPU();
  TempDb db;
  Engine engine(db.options());
  const deconvtune::DriverApi& api = deconvtune::DriverApi::get();
  ASSERT_EQ(api.cuCtxSetCurrent(nullptr), CUDA_SUCCESS);
  Plan plan = engine.plan(small_spec());
  CUcontext current = reinterpret_cast<CUcontext>(1);
  ASSERT_EQ(api.cuCtxGetCurrent(&current), CUDA_SUCCESS);
  EXPECT_EQ(current, nullptr) << "plan() left a context current";

  const deconvtune::Problem problem = internal(small_spec(), PrecisionMode::kFp32);
  gpu().make_current();
  deconvtune::Verifier verifier(gpu(), problem);
  verifier.randomize_inputs(3);
  verifier.poison_output();
  ASSERT_EQ(api.cuCtxSetCurrent(nullptr), CUDA_SUCCESS);
  plan.run(verifier.x(), verifier.w(), verifier.bias(), verifier.y());
  ASSERT_EQ(api.cuCtxGetCurrent(&current), CUDA_SUCCESS);
  EXPECT_EQ(current, nullptr) << "run() left a context current";
  gpu().make_current();
  gpu().synchronize();
  EXPECT_TRUE(verifier.check_output().passed());
}

TEST(ApiGpu, RunChecksItsArguments) {
  REQUIRE_GPU();
  TempDb db;
  Engine engine(db.options());
  ProblemSpec spec = small_spec();
  Plan plan = engine.plan(spec);
  const deconvtune::Problem problem = internal(spec, PrecisionMode::kFp32);
  gpu().make_current();
  deconvtune::Verifier verifier(gpu(), problem);
  const auto x = verifier.x(), w = verifier.w(), b = verifier.bias(), y = verifier.y();
  struct Case {
    Plan::DevicePtr x, w, bias, y;
    const char* mention;
  } cases[] = {
      {0, w, b, y, "x is a null pointer"},
      {x, 0, b, y, "w is a null pointer"},
      {x, w, b, 0, "y is a null pointer"},
      {x, w, 0, y, "bias is null"},
      {x + 2, w, b, y, "not 4-byte aligned"},
      {x, w, b, y + 1, "aligned"},
      {x, w, b, x, "overlaps"},
  };
  for (const Case& c : cases) {
    Error e = error_of([&] { plan.run(c.x, c.w, c.bias, c.y); });
    EXPECT_EQ(e.status(), Status::kInvalidArgument) << c.mention;
    EXPECT_NE(std::string(e.what()).find(c.mention), std::string::npos) << e.what();
  }
  ProblemSpec nobias = spec;
  nobias.bias = false;
  Error e = error_of([&] { engine.plan(nobias).run(x, w, b, y); });
  EXPECT_NE(std::string(e.what()).find("bias was given"), std::string::npos) << e.what();
}

TEST(ApiGpu, CachedPlanRunDoesNotAllocate) {
  REQUIRE_GPU();
  TempDb db;
  Engine engine(db.options());
  const ProblemSpec spec = small_spec();
  Plan plan = engine.plan(spec);
  const deconvtune::Problem problem = internal(spec, PrecisionMode::kFp32);
  gpu().make_current();
  deconvtune::Verifier verifier(gpu(), problem);
  verifier.randomize_inputs(5);
  plan.run(verifier.x(), verifier.w(), verifier.bias(), verifier.y());  // the first launch
  allocations = 0;
  counting_allocations = true;
  for (int i = 0; i < 100; ++i) plan.run(verifier.x(), verifier.w(), verifier.bias(), verifier.y());
  counting_allocations = false;
  EXPECT_EQ(allocations.load(), 0) << "allocations in 100 calls of a cached plan's run()";
  // The counter works: a plan lookup (JSON parsing, the cache's mutex and map) does allocate.
  counting_allocations = true;
  engine.plan(spec);
  counting_allocations = false;
  EXPECT_GT(allocations.load(), 0);
  gpu().synchronize();
  verifier.poison_output();
  plan.run(verifier.x(), verifier.w(), verifier.bias(), verifier.y());
  gpu().synchronize();
  EXPECT_TRUE(verifier.check_output().passed());
}

deconvtune::db::DeviceRecord this_gpu() { return deconvtune::tuner::device_record(gpu().info()); }

TEST(ApiGpu, ConfigComesFromTheWinnerTheNearestOrTheRule) {
  REQUIRE_GPU();
  TempDb db;
  const ProblemSpec spec = small_spec();
  const deconvtune::Problem problem = internal(spec, PrecisionMode::kFp32);
  const std::string rule = deconvtune::default_config(problem).name();
  // Two legal configs that differ from the rule's pick.
  std::vector<std::string> others;
  for (const deconvtune::Config& config : deconvtune::enumerate_space(problem)) {
    if (config.name() != rule) others.push_back(config.name());
  }
  ASSERT_GE(others.size(), 2u);
  {
    Engine fail(db.options(OnMiss::kFail));
    Error e = error_of([&] { fail.plan(spec); });
    EXPECT_EQ(e.status(), Status::kNotTuned);
    EXPECT_NE(std::string(e.what()).find(problem.key()), std::string::npos) << e.what();
  }
  {
    deconvtune::db::TuningDb tuning_db(db.path());
    ProblemSpec neighbour_spec = spec;
    neighbour_spec.batch = 4;
    deconvtune::testing_api::record_winner(
        tuning_db, internal(neighbour_spec, PrecisionMode::kFp32), others[0], 0.1, this_gpu());
  }
  {
    Engine engine(db.options());
    Plan plan = engine.plan(spec);
    EXPECT_EQ(plan.config_name(), others[0]);
    EXPECT_EQ(plan.source().rfind("nearest:", 0), 0u) << plan.source();
    expect_correct(plan, spec, PrecisionMode::kFp32);
  }
  {
    deconvtune::db::TuningDb tuning_db(db.path());
    deconvtune::testing_api::record_winner(tuning_db, problem, others[1], 0.1, this_gpu());
  }
  for (OnMiss on_miss : {OnMiss::kHeuristic, OnMiss::kFail}) {
    Engine engine(db.options(on_miss));
    Plan plan = engine.plan(spec);
    EXPECT_EQ(plan.config_name(), others[1]);
    EXPECT_EQ(plan.source(), "tuned");
    expect_correct(plan, spec, PrecisionMode::kFp32);
  }
}

TEST(ApiGpu, TuneOnMissTunesStoresAndUsesTheWinner) {
  REQUIRE_GPU();
  TempDb db;
  EngineOptions options = db.options(OnMiss::kTune);
  options.tune_budget_seconds = 10;
  // The CLI runs the tuner's measurement workers; on the device it is not where the build put it.
  const char* cli = std::getenv("DECONVTUNE_BINARY");
  options.tuner_binary = cli && *cli ? cli : DECONVTUNE_CLI;
  ProblemSpec spec = small_spec();
  spec.batch = 1;
  spec.precision = PrecisionMode::kTf32;
  Engine engine(options);
  Plan plan = engine.plan(spec);
  EXPECT_EQ(plan.source(), "tuned-now");
  expect_correct(plan, spec, PrecisionMode::kTf32);
  // The winner is in the DB: a fresh engine with on_miss = fail takes it.
  Engine again(db.options(OnMiss::kFail));
  Plan tuned = again.plan(spec);
  EXPECT_EQ(tuned.source(), "tuned");
  EXPECT_EQ(tuned.config_name(), plan.config_name());
}

}  // namespace

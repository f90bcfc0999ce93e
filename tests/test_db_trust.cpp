// What is read back from the tuning DB is checked (issue 14): cubins against their SHA-256,
// imported rows against the rules the tuner's own rows follow (a backed winner, no test-only
// kernel, a plausible time and error), unbacked winners replaced by a retune, fault configs never
// served by the heuristic, and imported winners treated as hints until measured here. Each test
// fails on the code before issue 14: it names what that code did.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "deconvtune/deconvtune.hpp"
#include "gpu/driver_api.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tests/db_test_support.hpp"
#include "tuner/heuristic.hpp"
#include "tuner/simulate.hpp"
#include "tuner/tuner.hpp"
#include "tuning_db/exchange.hpp"

namespace deconvtune::db {
namespace {

using json = nlohmann::json;
using testing::CliResult;
using testing::run_cli;
using testing::TempDir;

constexpr const char* kConfig = "direct_ffma_t256_c4_mishexact";
constexpr const char* kFaultConfig = "fault_ffma_kind0_mishexact";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string shell_quoted(const std::string& path) { return "'" + path + "'"; }

// Raw SQL on the file, as a hostile writer (or a damaged disk) would change it; `bind` sets the
// statement's parameters.
void raw_sql(
    const std::string& path, const std::string& sql,
    const std::function<void(sqlite3_stmt*)>& bind = [](sqlite3_stmt*) {}) {
  sqlite3* handle = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &handle), SQLITE_OK);
  sqlite3_stmt* statement = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(handle, sql.c_str(), -1, &statement, nullptr), SQLITE_OK)
      << sqlite3_errmsg(handle);
  bind(statement);
  EXPECT_EQ(sqlite3_step(statement), SQLITE_DONE) << sqlite3_errmsg(handle);
  sqlite3_finalize(statement);
  sqlite3_close(handle);
}

// A winner row written straight into the file, with no trial behind it.
void forge_winner(const std::string& path, const WinnerKey& key, const std::string& config,
                  double median_ms) {
  raw_sql(path,
          "INSERT OR REPLACE INTO winners (problem_key, device_key, generator_version, precision, "
          "config_name, median_ms, max_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, "
          "'2026-11-24T18:37:05.123456Z')",
          [&](sqlite3_stmt* s) {
            sqlite3_bind_text(s, 1, key.problem_key.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 2, key.device_key.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 3, key.generator_version.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 4, std::string(to_string(key.precision)).c_str(), -1,
                              SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 5, config.c_str(), -1, SQLITE_TRANSIENT);
            sqlite3_bind_double(s, 6, median_ms);
          });
}

std::vector<char> fake_cubin(char fill) { return std::vector<char>(4096, fill); }

// ---------------------------------------------------------------------------------------------
// 1. The cubin cache

// The child's half of the test below; its exit code and stderr are the verdict.
int flipped_cubin_child() {
  TempDir dir;
  const std::string path = dir.file("t.db");
  const std::string a(64, 'a'), b(64, 'b'), c(64, 'c');
  {
    TuningDb db(path);
    db.store_cubin(a, fake_cubin('x'), generator_version());
    db.store_cubin(b, fake_cubin('y'), generator_version());
    db.store_cubin(c, fake_cubin('z'), generator_version());
  }
  // One byte flipped in two of the three cubins, in the file.
  for (const std::string& key : {a, b}) {
    raw_sql(path, "UPDATE cubin_cache SET cubin = ? WHERE key = ?", [&](sqlite3_stmt* s) {
      std::vector<char> bytes = fake_cubin(key == a ? 'x' : 'y');
      bytes[1000] ^= 0x01;
      sqlite3_bind_blob(s, 1, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(s, 2, key.c_str(), -1, SQLITE_TRANSIENT);
    });
  }
  ::testing::internal::CaptureStderr();
  TuningDb db(path);
  int failures = 0;
  failures += db.cached_cubin(a).has_value();
  failures += db.cached_cubin(a).has_value();
  failures += db.cached_cubin(b).has_value();
  failures += db.cached_cubin(c) != fake_cubin('z');  // a sound entry still loads
  failures += db.cubin_cache_stats().entries != 1;    // both damaged ones dropped
  const std::string said = ::testing::internal::GetCapturedStderr();
  size_t times = 0;
  for (size_t at = said.find("does not match its SHA-256"); at != std::string::npos;
       at = said.find("does not match its SHA-256", at + 1)) {
    ++times;
  }
  failures += times != 1;
  std::fprintf(stderr, "failures %d, said %zu times: %s", failures, times, said.c_str());
  return failures == 0 ? 0 : 1;
}

// The old code returned the flipped bytes as they were, and the Engine and the tuner loaded them.
TEST(DbTrust, FlippedCubinByteIsAbsentDroppedAndSaidOncePerProcess) {
  // In a fresh process (a re-executed binary), so that "once per process" is this test's alone.
  const std::string style = ::testing::GTEST_FLAG(death_test_style);
  ::testing::GTEST_FLAG(death_test_style) = "threadsafe";
  EXPECT_EXIT(std::exit(flipped_cubin_child()), ::testing::ExitedWithCode(0),
              "failures 0, said 1 times");
  ::testing::GTEST_FLAG(death_test_style) = style;
}

// A read-only DB cannot drop the entry, but refuses it all the same.
TEST(DbTrust, FlippedCubinInAReadOnlyDbIsAbsentAndKept) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  const std::string key(64, 'd');
  { TuningDb(path).store_cubin(key, fake_cubin('q'), generator_version()); }
  raw_sql(path, "UPDATE cubin_cache SET sha256 = ?", [&](sqlite3_stmt* s) {
    sqlite3_bind_text(s, 1, std::string(64, '0').c_str(), -1, SQLITE_TRANSIENT);
  });
  TuningDb db(path, /*read_only=*/true);
  EXPECT_FALSE(db.cached_cubin(key).has_value());
  EXPECT_EQ(db.cubin_cache_stats().entries, 1);
}

// A v2 DB's cubins carry no digest: migrating drops them (the old code had no version 3).
TEST(DbTrust, V2CubinsAreDroppedByTheMigration) {
  TempDir dir;
  const std::string path = dir.file("v2.db");
  testing::write_bytes(path, testing::read_bytes(std::string(DECONVTUNE_TEST_DATA_DIR) +
                                                 "/../../fuzz/corpus/db_import/v2_db_file.db"));
  raw_sql(path,
          "INSERT INTO cubin_cache (key, cubin, generator_version, created_at) VALUES "
          "(?, x'00ff', 'gen', '2026-11-24T18:37:05.123456Z')",
          [](sqlite3_stmt* s) {
            sqlite3_bind_text(s, 1, std::string(64, 'e').c_str(), -1, SQLITE_TRANSIENT);
          });
  TuningDb db(path);
  EXPECT_EQ(db.schema_version(), 4);
  EXPECT_EQ(db.cubin_cache_stats().entries, 0);
  EXPECT_FALSE(db.cached_cubin(std::string(64, 'e')).has_value());
}

// ---------------------------------------------------------------------------------------------
// 2. Import: the same rules as the tuner's own rows

// A DB with one backed winner of a real config, exported with every trial.
json valid_export() {
  TuningDb db(":memory:");
  db.upsert_device(testing::h100());
  const Problem problem = testing::small_problem();
  db.upsert_problem(problem);
  db.record_trial(testing::ok_trial(testing::key_of(problem, testing::h100()), kConfig, 0.25));
  return json::parse(export_db(db, {ExportFormat::kJson, /*all=*/true}));
}

// Each hostile document is refused by `deconvtune db import` (exit 2) naming the field, and the
// target DB is left byte for byte as it was. The old code imported every one of them.
TEST(DbTrust, ImportRefusesUnbackedFaultAndImplausibleRowsNamingTheField) {
  TempDir dir;
  const std::string target = dir.file("target.db");
  { TuningDb db(target); }
  const std::string before = testing::read_bytes(target);
  struct Case {
    const char* name;
    std::function<void(json&)> mutate;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"a winner without a trial", [](json& d) { d["trials"] = json::array(); }, "winners[0]:"},
      {"a fault_* winner",
       [](json& d) {
         d["winners"][0]["config_name"] = kFaultConfig;
         d["trials"][0]["config_name"] = kFaultConfig;
       },
       "winners[0].config_name"},
      {"an ok trial with max_error 1e30", [](json& d) { d["trials"][0]["max_error"] = 1e30; },
       "trials[0].max_error"},
      {"an ok trial alone with max_error 1e30",
       [](json& d) {
         d["winners"] = json::array();
         d["trials"][0]["max_error"] = 1e30;
       },
       "trials[0].max_error"},
      {"a 1e-9 ms winner",
       [](json& d) {
         d["winners"][0]["median_ms"] = 1e-9;
         for (const char* time : {"median_ms", "min_ms", "max_ms"}) d["trials"][0][time] = 1e-9;
       },
       "winners[0].median_ms"},
      {"a 1e-9 ms trial alone",
       [](json& d) {
         d["winners"] = json::array();
         for (const char* time : {"median_ms", "min_ms", "max_ms"}) d["trials"][0][time] = 1e-9;
       },
       "trials[0].median_ms"},
      {"a winner faster than its trial", [](json& d) { d["winners"][0]["median_ms"] = 0.125; },
       "winners[0]:"},
  };
  for (const Case& c : cases) {
    json document = valid_export();
    c.mutate(document);
    const std::string file = dir.file("hostile.json");
    testing::write_bytes(file, document.dump(2));
    CliResult result = run_cli("db import " + shell_quoted(file) + " --db " + shell_quoted(target));
    EXPECT_EQ(result.exit_code, 2) << c.name << ": " << result.output;
    EXPECT_TRUE(contains(result.output, c.field)) << c.name << ": " << result.output;
    EXPECT_EQ(testing::read_bytes(target), before) << c.name << ": the DB changed";
  }
  // The unmutated document imports: the refusals are the rules, not a broken fixture.
  const std::string file = dir.file("valid.json");
  testing::write_bytes(file, valid_export().dump(2));
  CliResult ok = run_cli("db import " + shell_quoted(file) + " --db " + shell_quoted(target));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  TuningDb db(target, true);
  ASSERT_EQ(db.winners().size(), 1u);
  EXPECT_TRUE(db.winners()[0].imported);
}

// A winners-only export carries the trials that back its winners, so it still imports.
TEST(DbTrust, WinnersExportCarriesItsBackingTrials) {
  json all = valid_export();
  TuningDb source(":memory:");
  import_document(source, parse_exchange_json(all.dump()));
  json winners = json::parse(export_db(source));
  EXPECT_EQ(winners["content"], "winners");
  ASSERT_EQ(winners["trials"].size(), 1u);
  TuningDb target(":memory:");
  EXPECT_EQ(import_document(target, parse_exchange_json(winners.dump())).winners_added, 1);
}

// The tuner's own path: an ok fault trial is recorded but never wins (the old code made it the
// winner), and an implausible ok trial is refused naming the field.
TEST(DbTrust, RecordTrialKeepsFaultKernelsAndImplausibleTimesFromWinning) {
  TuningDb db(":memory:");
  db.upsert_device(testing::h100());
  const Problem problem = testing::small_problem();
  db.upsert_problem(problem);
  const WinnerKey key = testing::key_of(problem, testing::h100());
  EXPECT_TRUE(db.record_trial(testing::ok_trial(key, kFaultConfig, 0.1)));
  EXPECT_FALSE(db.winner(key).has_value());
  TrialRecord fast = testing::ok_trial(key, kConfig, 1e-6);  // the floor: 3.5e-6 ms
  try {
    db.record_trial(fast);
    ADD_FAILURE() << "a 1e-6 ms trial was recorded";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "median_ms") << e.what();
  }
  db.record_trial(testing::ok_trial(key, kConfig, 0.3));
  ASSERT_TRUE(db.winner(key).has_value());
  EXPECT_EQ(db.winner(key)->config_name, kConfig);
}

// The bound is the verifier's, widened only as far as the problem's outputs can reach.
TEST(DbTrust, ErrorCeilingFollowsTheVerifiersBound) {
  const Problem seed = Problem::seed();
  EXPECT_DOUBLE_EQ(verified_error_ceiling(seed), error_bound(seed)) << "|y| <= 2 by hardtanh * 2";
  Problem scaled = seed;
  scaled.epilogue = Epilogue::parse("mish,add:0.5,hardtanh:-1:1,mul:200");
  EXPECT_DOUBLE_EQ(verified_error_ceiling(scaled), error_bound(seed) * 100);
  EXPECT_GT(time_floor_ms(seed), 1e-3) << "the seed's x alone is 0.5 GB";
}

// ---------------------------------------------------------------------------------------------
// 3. A retune replaces a winner no trial backs

// The old code kept a forged 1e-9 ms winner through a full --retune: only a faster trial replaced
// a winner.
TEST(DbTrust, RetuneReplacesAnUnbackedWinnerWithTheFastestVerifiedTrial) {
  for (bool with_implausible_trial : {false, true}) {
    TempDir dir;
    const std::string path = dir.file("t.db");
    const Problem problem = testing::small_problem();
    const DeviceRecord device = tuner::simulated_device();
    const WinnerKey key{problem.key(), device.key(), generator_version(), problem.precision};
    {
      TuningDb db(path);
      db.upsert_device(device);
      db.upsert_problem(problem);
    }
    const std::string forged = enumerate_space(problem).front().name();
    forge_winner(path, key, forged, 1e-9);
    if (with_implausible_trial) {
      // A trial row of an older build, below the time floor, "backing" the forged winner.
      raw_sql(path,
              "INSERT INTO trials (problem_key, device_key, generator_version, precision, "
              "config_name, status, median_ms, min_ms, max_ms, max_error, registers, "
              "shared_bytes, measured_at) SELECT problem_key, device_key, generator_version, "
              "precision, config_name, 'ok', 1e-9, 1e-9, 1e-9, 0, 32, 0, "
              "'2026-11-24T18:37:05.123456Z' FROM winners");
    }
    EXPECT_FALSE(TuningDb(path).winner(key).has_value()) << "an unbacked winner is not served";

    tuner::TuneRequest request;
    request.problem = problem;
    request.db_path = path;
    request.simulation = tuner::Simulation{};
    request.retune = true;
    request.worker_binary = DECONVTUNE_BINARY;
    request.kernel_deadline_seconds = 1;
    request.setup_deadline_seconds = 30;
    request.max_trials = 12;
    tuner::TuneReport report = tuner::autotune(request);
    const TrialRecord* fastest = nullptr;
    for (const TrialRecord& trial : report.trials) {
      if (trial.status == Disposition::kOk && (!fastest || trial.median_ms < fastest->median_ms)) {
        fastest = &trial;
      }
    }
    ASSERT_NE(fastest, nullptr);
    std::optional<WinnerRecord> winner = TuningDb(path).winner(key);
    ASSERT_TRUE(winner.has_value());
    EXPECT_EQ(winner->config_name, fastest->config_name) << with_implausible_trial;
    EXPECT_EQ(winner->median_ms, fastest->median_ms) << with_implausible_trial;
    EXPECT_FALSE(winner->imported);
  }
}

// ---------------------------------------------------------------------------------------------
// The heuristic

Problem seed_with(int64_t batch) {
  Problem problem = Problem::seed();
  problem.batch = batch;
  return problem;
}

// A fault kernel is legal everywhere (its family declares no rule), so the old heuristic served a
// fault neighbour's winner to an untuned problem.
TEST(DbTrust, HeuristicRefusesAFaultOrUnbackedNeighbour) {
  TempDir dir;
  const std::string path = dir.file("t.db");
  const DeviceRecord device = testing::h100();
  const Problem neighbour = seed_with(64), other = seed_with(8);
  const WinnerKey neighbour_key{neighbour.key(), device.key(), generator_version(),
                                neighbour.precision};
  {
    TuningDb db(path);
    db.upsert_device(device);
    db.upsert_problem(neighbour);
    db.upsert_problem(other);
    db.record_trial(testing::ok_trial(neighbour_key, kFaultConfig, 0.5));
  }
  // The fault trial is backed (an ok trial of the same time and error): only its family bars it.
  forge_winner(path, neighbour_key, kFaultConfig, 0.5);
  raw_sql(path, "UPDATE winners SET max_error = 3.5e-7");
  // A winner of a legal config that no trial backs, on the other neighbour.
  const std::string unbacked = enumerate_space(other).back().name();
  forge_winner(path, {other.key(), device.key(), generator_version(), other.precision}, unbacked,
               0.5);
  TuningDb db(path, true);
  const Problem problem = Problem::seed();
  ASSERT_TRUE(why_illegal(problem, Config::from_name(kFaultConfig), DeviceLimits{}).empty());
  UntunedChoice choice =
      choose_untuned_config(problem, DeviceLimits{}, db, device.key(), generator_version());
  EXPECT_EQ(choice.source(), "rule");
  EXPECT_NE(choice.config.family, Family::kFault);
  EXPECT_FALSE(may_win(kFaultConfig));
  EXPECT_TRUE(may_win(kConfig));
}

// ---------------------------------------------------------------------------------------------
// 4. Imported winners are hints (choice (b)): the seam that decides, and the launch path

TEST(DbTrust, ImportedWinnerIsAHintUntilATrialMeasuredHereReplacesIt) {
  TuningDb source(":memory:");
  import_document(source, parse_exchange_json(valid_export().dump()));  // an imported winner
  const Problem problem = testing::small_problem();
  const WinnerKey key = testing::key_of(problem, testing::h100());
  ASSERT_TRUE(source.winner(key).has_value());
  EXPECT_TRUE(source.winner(key)->imported);
  EXPECT_FALSE(serves_as_tuned(*source.winner(key)));
  EXPECT_TRUE(source.measured_configs(key).empty()) << "an autotune measures it here";
  // A trial measured here replaces it, even a slower one: it is the first fact about this GPU.
  source.record_trial(testing::ok_trial(key, "direct_ffma_t128_c1_mishexact", 0.5));
  ASSERT_TRUE(source.winner(key).has_value());
  EXPECT_FALSE(source.winner(key)->imported);
  EXPECT_TRUE(serves_as_tuned(*source.winner(key)));
  WinnerRecord fault = *source.winner(key);
  fault.config_name = kFaultConfig;
  EXPECT_FALSE(serves_as_tuned(fault));
}

// On a GPU: the Engine does not plan an imported winner as tuned; once measured here, it does.
TEST(DbTrustGpu, EnginePlansAnImportedWinnerAsUntuned) {
  std::string why;
  if (!deconvtune::gpu_available(&why)) GTEST_SKIP() << why;
  TempDir dir;
  const std::string path = dir.file("t.db");
  deconvtune::EngineOptions options;
  options.db_path = path;
  options.on_miss = deconvtune::OnMiss::kHeuristic;
  const Problem problem = Problem::seed();
  // The device record the engine keys winners by (engine/engine.cpp's DeviceState).
  DeviceRecord device;
  {
    Context context(0);
    const DeviceInfo& info = context.info();
    device = {info.name, info.arch(), info.sm_count, info.driver_version, nvrtc_version()};
  }
  const WinnerKey key{problem.key(), device.key(), generator_version(), problem.precision};
  const std::string config = default_config(problem).name();
  {
    TuningDb other(":memory:");
    other.upsert_device(device);
    other.upsert_problem(problem);
    TrialRecord trial = testing::ok_trial(key, config, 5.0);
    other.record_trial(trial);
    TuningDb db(path);
    import_document(db, parse_exchange_json(export_db(other)));
    ASSERT_TRUE(db.winner(key)->imported);
  }
  EXPECT_NE(deconvtune::Engine(options).plan(deconvtune::ProblemSpec::seed()).source(), "tuned");
  {
    TuningDb db(path);
    db.record_trial(testing::ok_trial(key, config, 6.0));
  }
  EXPECT_EQ(deconvtune::Engine(options).plan(deconvtune::ProblemSpec::seed()).source(), "tuned");
}

}  // namespace
}  // namespace deconvtune::db

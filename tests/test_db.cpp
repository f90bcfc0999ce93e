// The tuning DB (tuning_db/): schema and migrations, validation, winners, the cubin cache, the
// default path, and files that are not (sound) tuning DBs. Concurrency and crash tests are in
// test_db_processes.cpp, export/import in test_db_exchange.cpp, the CLI in test_db_cli.cpp.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "codegen/generator.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tests/db_test_support.hpp"
#include "tuning_db/exchange.hpp"

namespace deconvtune::db {
namespace {

using testing::TempDir;

using testing::error_of;
using testing::RawDb;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(tuning_db, SchemaIsCreatedWithVersionWalAndParentFolders) {
  TempDir dir;
  std::string path = dir.file("a/b/c/tuning.db");
  {
    TuningDb db(path);
    EXPECT_EQ(db.schema_version(), TuningDb::kSchemaVersion);
    EXPECT_EQ(TuningDb::kSchemaVersion, 4);
    EXPECT_EQ(db.path(), path);
    EXPECT_EQ(db.integrity_check(), "ok");
    EXPECT_EQ(db.trial_count(), 0);
    EXPECT_TRUE(db.winners().empty());
  }
  RawDb raw(path);
  EXPECT_EQ(raw.text("PRAGMA user_version"), "4");
  EXPECT_EQ(raw.text("PRAGMA application_id"), std::to_string(TuningDb::kApplicationId));
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
  for (const char* table : {"devices", "problems", "trials", "winners", "cubin_cache"}) {
    EXPECT_EQ(raw.text(std::string("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                   "name = '") +
                       table + "'"),
              "1")
        << table;
  }
  // Reopening neither migrates again nor loses anything.
  TuningDb again(path);
  EXPECT_EQ(again.schema_version(), 4);
  TuningDb reader(path, /*read_only=*/true);
  EXPECT_TRUE(reader.read_only());
  EXPECT_EQ(reader.schema_version(), 4);
}

// Issue 14.4: $DECONVTUNE_DB and the Engine's db_path reach the same constructor as --db.
TEST(tuning_db, SqliteUrisAreRefusedAndCreateNothing) {
  TempDir dir;
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  for (const std::string uri : {"file:x.db", "file:sub/y.db?mode=rwc", "file:///tmp/z.db"}) {
    try {
      TuningDb db(uri);
      ADD_FAILURE() << uri << " was opened";
    } catch (const DbError& e) {
      EXPECT_NE(std::string(e.what()).find("SQLite URI"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "nothing created in the working folder";
  std::filesystem::current_path(cwd);
}

TEST(tuning_db, MigratesTheCommittedVersion1FileAndKeepsItsRows) {
  TempDir dir;
  const std::string original = std::string(DECONVTUNE_TEST_DATA_DIR) + "/tuning_db_v1.db";
  const std::string before = testing::read_bytes(original);
  ASSERT_FALSE(before.empty()) << original;
  std::string path = dir.file("v1.db");
  testing::write_bytes(path, before);
  {
    RawDb raw(path);
    ASSERT_EQ(raw.text("PRAGMA user_version"), "1");
  }
  // Read-only cannot migrate: a clear refusal, the file untouched.
  std::string refusal = error_of([&] { TuningDb db(path, true); });
  EXPECT_TRUE(contains(refusal, "schema version 1")) << refusal;
  EXPECT_EQ(testing::read_bytes(path), before);

  TuningDb db(path);
  EXPECT_EQ(db.schema_version(), 4);
  EXPECT_EQ(db.integrity_check(), "ok");
  // tests/data/tuning_db_v1.sql: 2 devices, 2 problems, 5 trials, 2 winners.
  EXPECT_EQ(db.devices().size(), 2u);
  for (const DeviceRecord& device : db.devices()) {
    EXPECT_EQ(device.copy_gbps, 0) << "version 4 adds the copy bandwidth as not measured";
  }
  EXPECT_EQ(db.problems().size(), 2u);
  ASSERT_EQ(db.trial_count(), 5);
  std::vector<WinnerRecord> winners = db.winners();
  ASSERT_EQ(winners.size(), 2u);
  for (const WinnerRecord& winner : winners) {
    EXPECT_NO_THROW(validate_winner(winner));
    // Version 1 already spelled dtype and layout in its keys (float32:NCHW), as the fields of the
    // problem read them now: the keys need no migration.
    const Problem problem = parse_problem_key(winner.problem_key);
    EXPECT_EQ(problem.dtype, DType::kFloat32) << winner.problem_key;
    EXPECT_EQ(problem.layout, Layout::kNchw) << winner.problem_key;
    EXPECT_EQ(problem.key(), winner.problem_key);
  }
  std::vector<TrialRecord> trials = db.all_trials();
  for (const TrialRecord& trial : trials) {
    EXPECT_EQ(trial.spill_bytes, -1) << "v1 had no spills column: unknown";
    EXPECT_EQ(trial.compile_ms, 0);
    EXPECT_NO_THROW(validate_trial(trial)) << trial.config_name;
  }
  EXPECT_EQ(trials.front().config_name, "igemm_tf32_bn32_rp2_cp64_wm4_wn4_st1_v4_mishfast");
  EXPECT_DOUBLE_EQ(trials.front().median_ms, 5.22);
  EXPECT_EQ(trials.front().registers, 168);
  bool saw_wrong = false;
  for (const TrialRecord& trial : trials) {
    if (trial.status == Disposition::kWrong) {
      saw_wrong = true;
      EXPECT_TRUE(std::isnan(trial.max_error)) << "NULL error of a wrong kernel reads as NaN";
    }
  }
  EXPECT_TRUE(saw_wrong);
  for (const DeviceRecord& device : db.devices()) EXPECT_EQ(device.nvrtc_version, "");
  // Version 2's additions work on the migrated file.
  std::string cache_key = cubin_cache_key("src", {}, "sm_90", "13.0");
  db.store_cubin(cache_key, {'c', 'u', 'b'}, generator_version());
  EXPECT_TRUE(db.cached_cubin(cache_key).has_value());
  WinnerKey key{winners[0].problem_key, winners[0].device_key, winners[0].generator_version,
                winners[0].precision};
  TrialRecord faster = testing::ok_trial(key, "igemm_new", winners[0].median_ms / 2);
  EXPECT_TRUE(db.record_trial(faster));
  EXPECT_EQ(db.winner(key)->config_name, "igemm_new");
  // The committed file itself is untouched (the test worked on a copy).
  EXPECT_EQ(testing::read_bytes(original), before);
}

// Everything in an SQLite file as text: header fields, schema, and every row of every table.
std::string dump(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  std::string out;
  auto each_row = [&](const std::string& sql, const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* statement = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr), SQLITE_OK) << sql;
    while (sqlite3_step(statement) == SQLITE_ROW) row(statement);
    sqlite3_finalize(statement);
  };
  auto text = [](sqlite3_stmt* statement, int column) {
    const unsigned char* value = sqlite3_column_text(statement, column);
    return value ? std::string(reinterpret_cast<const char*>(value)) : std::string("NULL");
  };
  std::vector<std::string> tables;
  for (const char* pragma : {"PRAGMA user_version", "PRAGMA application_id"}) {
    each_row(pragma,
             [&](sqlite3_stmt* s) { out += std::string(pragma) + " " + text(s, 0) + "\n"; });
  }
  each_row("SELECT type, name, sql FROM sqlite_master ORDER BY name", [&](sqlite3_stmt* s) {
    out += text(s, 0) + " " + text(s, 1) + ": " + text(s, 2) + "\n";
    if (text(s, 0) == "table") tables.push_back(text(s, 1));
  });
  for (const std::string& table : tables) {
    each_row("SELECT * FROM " + table + " ORDER BY rowid", [&](sqlite3_stmt* s) {
      out += table + ":";
      for (int c = 0; c < sqlite3_column_count(s); ++c) {
        out += fmt::format(" {}={}", sqlite3_column_type(s, c), text(s, c));
      }
      out += "\n";
    });
  }
  sqlite3_close(db);
  return out;
}

TEST(tuning_db, CommittedVersion1FileIsWhatItsSqlScriptBuilds) {
  TempDir dir;
  std::string rebuilt = dir.file("rebuilt.db");
  std::string script =
      testing::read_bytes(std::string(DECONVTUNE_TEST_DATA_DIR) + "/tuning_db_v1.sql");
  ASSERT_FALSE(script.empty());
  RawDb(rebuilt).exec(script);
  std::string committed = dump(std::string(DECONVTUNE_TEST_DATA_DIR) + "/tuning_db_v1.db");
  EXPECT_EQ(dump(rebuilt), committed);
  EXPECT_NE(committed.find("PRAGMA user_version 1"), std::string::npos) << committed;
  // Version 1's schema is what this build's first migration creates: a fresh DB migrated only to
  // version 1 is not reachable through the API, so compare the tables that version 2 leaves alone.
  std::string fresh = dir.file("fresh.db");
  { TuningDb db(fresh); }
  std::string current = dump(fresh);
  for (const char* line : {"table problems: CREATE TABLE problems (\n  key TEXT PRIMARY KEY NOT "
                           "NULL,\n  spec TEXT NOT "
                           "NULL)",
                           "table winners: CREATE TABLE winners ("}) {
    EXPECT_NE(committed.find(line), std::string::npos) << line;
    EXPECT_NE(current.find(line), std::string::npos) << line;
  }
}

TEST(tuning_db, NewerSchemaIsRefusedAndNotDowngraded) {
  TempDir dir;
  std::string path = dir.file("newer.db");
  { TuningDb db(path); }
  {
    RawDb raw(path);
    raw.exec("PRAGMA user_version = 7");
    raw.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  std::string before = testing::read_bytes(path);
  for (bool read_only : {false, true}) {
    std::string message = error_of([&] { TuningDb db(path, read_only); });
    EXPECT_TRUE(contains(message, path)) << message;
    EXPECT_TRUE(contains(message, "schema version 7")) << message;
    EXPECT_TRUE(contains(message, "newer deconvtune")) << message;
  }
  EXPECT_EQ(testing::read_bytes(path), before);
  EXPECT_EQ(RawDb(path).text("PRAGMA user_version"), "7");
}

TEST(tuning_db, FilesThatAreNotSoundTuningDbsGiveClearErrorsAndStayUnchanged) {
  TempDir dir;
  // A sound DB to break in several ways.
  std::string good = dir.file("good.db");
  {
    TuningDb db(good);
    testing::fill_sample(db);
    for (int i = 0; i < 40; ++i) {
      db.store_cubin(cubin_cache_key(std::to_string(i), {}, "sm_90", "13.0"),
                     std::vector<char>(3000, static_cast<char>(i)), generator_version());
    }
  }
  { RawDb(good).exec("PRAGMA wal_checkpoint(TRUNCATE)"); }
  std::string sound = testing::read_bytes(good);
  ASSERT_GT(sound.size(), 8 * 4096u);

  std::string garbage_pages = sound;
  for (size_t i = 4096 + 17; i < garbage_pages.size(); i += 7) garbage_pages[i] = '\x5a';
  std::string foreign = dir.file("foreign.db");
  {
    RawDb raw(foreign);
    raw.exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)");
    raw.exec("INSERT INTO accounts (owner) VALUES ('alice')");
  }
  struct Case {
    std::string name;
    std::string bytes;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"text.db", "this is a shopping list, not a database\n", "not an SQLite database"},
      {"short.db", "SQLite format 3", "not an SQLite database"},
      {"garbage_pages.db", garbage_pages, "corrupt"},
      {"truncated.db", sound.substr(0, sound.size() / 2 + 100), "corrupt"},
      {"foreign.db", testing::read_bytes(foreign), "not a deconvtune tuning DB"},
  };
  for (const Case& bad : cases) {
    std::string path = dir.file("bad-" + bad.name);
    testing::write_bytes(path, bad.bytes);
    for (bool read_only : {false, true}) {
      std::string message = error_of([&] {
        TuningDb db(path, read_only);
        // A read-only open skips the full check; its first read must then fail cleanly.
        db.all_trials();
        db.winners();
        db.cached_cubin(cubin_cache_key("7", {}, "sm_90", "13.0"));
        for (int i = 0; i < 40; ++i) {
          db.cached_cubin(cubin_cache_key(std::to_string(i), {}, "sm_90", "13.0"));
        }
      });
      EXPECT_TRUE(contains(message, path)) << bad.name << ": " << message;
      if (!read_only) {
        EXPECT_TRUE(contains(message, bad.expected)) << bad.name << ": " << message;
      }
      EXPECT_EQ(testing::read_bytes(path), bad.bytes) << bad.name << " was modified";
    }
  }
  // A folder where the file should be.
  std::string message = error_of([&] { TuningDb db(dir.path().string()); });
  EXPECT_TRUE(contains(message, "not a regular file")) << message;
  // Missing and read-only.
  message = error_of([&] { TuningDb db(dir.file("missing.db"), true); });
  EXPECT_TRUE(contains(message, "no tuning DB here")) << message;
  EXPECT_FALSE(std::filesystem::exists(dir.file("missing.db")));
}

TEST(tuning_db, WinnerIsReplacedOnlyByAFasterVerifiedTrial) {
  TuningDb db(":memory:");
  DeviceRecord device = testing::h100();
  Problem problem = testing::small_problem();
  db.upsert_device(device);
  db.upsert_problem(problem);
  WinnerKey key = testing::key_of(problem, device);
  EXPECT_FALSE(db.winner(key).has_value());

  db.record_trial(testing::failed_trial(key, "c_fault", Disposition::kFaulted, "illegal address"));
  EXPECT_FALSE(db.winner(key).has_value()) << "a failed trial never wins";
  db.record_trial(testing::ok_trial(key, "c_two", 2.0));
  ASSERT_TRUE(db.winner(key).has_value());
  EXPECT_EQ(db.winner(key)->config_name, "c_two");
  db.record_trial(testing::ok_trial(key, "c_slower", 2.5));
  db.record_trial(testing::ok_trial(key, "c_equal", 2.0));
  EXPECT_EQ(db.winner(key)->config_name, "c_two") << "slower or equal does not replace";
  // A failed trial with a tiny time still does not win.
  TrialRecord wrong = testing::ok_trial(key, "c_wrong_fast", 0.01);
  wrong.status = Disposition::kWrong;
  wrong.reason = "y[17] = 3 but the reference says 1";
  db.record_trial(wrong);
  EXPECT_EQ(db.winner(key)->config_name, "c_two");
  TrialRecord faster = testing::ok_trial(key, "c_one", 1.0);
  faster.measured_at = "2026-11-24T18:00:00.000001Z";
  db.record_trial(faster);
  std::optional<WinnerRecord> winner = db.winner(key);
  ASSERT_TRUE(winner.has_value());
  EXPECT_EQ(winner->config_name, "c_one");
  EXPECT_DOUBLE_EQ(winner->median_ms, 1.0);
  EXPECT_DOUBLE_EQ(winner->max_error, 3.5e-7);
  EXPECT_EQ(winner->updated_at, faster.measured_at);
  // Recording the same trial again changes nothing.
  EXPECT_FALSE(db.record_trial(faster));
  EXPECT_EQ(db.trial_count(), 6);
  // Other keys are separate.
  WinnerKey other_generator = key;
  other_generator.generator_version = "gen-other";
  EXPECT_FALSE(db.winner(other_generator).has_value());
  std::vector<std::string> measured = db.measured_configs(key);
  EXPECT_EQ(measured, (std::vector<std::string>{"c_equal", "c_fault", "c_one", "c_slower", "c_two",
                                                "c_wrong_fast"}));
  // Best first: ok by time, then the failed ones.
  std::vector<TrialRecord> ranked = db.trials_matching({problem.key(), "", "", std::nullopt});
  ASSERT_EQ(ranked.size(), 6u);
  EXPECT_EQ(ranked[0].config_name, "c_one");
  EXPECT_EQ(ranked[3].config_name, "c_slower");
  EXPECT_EQ(ranked[4].status, Disposition::kFaulted);
  EXPECT_EQ(ranked[5].status, Disposition::kWrong);
  // In the order recorded.
  EXPECT_EQ(db.trials(key).front().config_name, "c_fault");
  EXPECT_EQ(db.all_trials().back().config_name, "c_one");
}

TEST(tuning_db, RecordsAreValidatedAndTheFieldIsNamed) {
  TuningDb db(":memory:");
  DeviceRecord device = testing::h100();
  Problem problem = testing::small_problem();
  db.upsert_device(device);
  db.upsert_problem(problem);
  WinnerKey key = testing::key_of(problem, device);
  auto field_of = [&](const TrialRecord& trial) {
    try {
      db.record_trial(trial);
    } catch (const FieldError& e) {
      return e.field();
    }
    return std::string("(accepted)");
  };
  const double nan = std::nan("");
  struct Case {
    std::function<void(TrialRecord&)> spoil;
    std::string field;
  };
  std::vector<Case> cases = {
      {[&](TrialRecord& t) { t.median_ms = -1; }, "median_ms"},
      {[&](TrialRecord& t) { t.median_ms = nan; }, "median_ms"},
      {[&](TrialRecord& t) { t.max_ms = INFINITY; }, "max_ms"},
      {[&](TrialRecord& t) { t.min_ms = 5; }, "median_ms"},
      {[&](TrialRecord& t) { t.max_error = nan; }, "max_error"},
      {[&](TrialRecord& t) { t.max_error = -1; }, "max_error"},
      {[&](TrialRecord& t) { t.registers = 9000; }, "registers"},
      {[&](TrialRecord& t) { t.spill_bytes = -2; }, "spill_bytes"},
      {[&](TrialRecord& t) { t.compile_ms = nan; }, "compile_ms"},
      {[&](TrialRecord& t) { t.config_name = "x; DROP TABLE trials"; }, "config_name"},
      {[&](TrialRecord& t) { t.config_name = std::string(300, 'a'); }, "config_name"},
      {[&](TrialRecord& t) { t.generator_version = ""; }, "generator_version"},
      {[&](TrialRecord& t) { t.problem_key = "convT2d:n1"; }, "problem_key"},
      {[&](TrialRecord& t) { t.precision = Precision::kTf32; }, "precision"},
      {[&](TrialRecord& t) { t.device_key = "unknown|sm_90|1"; }, "device_key"},
      {[&](TrialRecord& t) { t.measured_at = "yesterday"; }, "measured_at"},
      {[&](TrialRecord& t) { t.measured_at = "2026-13-01T00:00:00Z"; }, "measured_at"},
      {[&](TrialRecord& t) { t.status = static_cast<Disposition>(42); }, "(none)"},
  };
  for (const Case& bad : cases) {
    TrialRecord trial = testing::ok_trial(key, "c_valid", 1.0);
    bad.spoil(trial);
    if (bad.field == "(none)") {
      EXPECT_THROW(db.record_trial(trial), std::exception);
    } else {
      EXPECT_EQ(field_of(trial), bad.field);
    }
  }
  EXPECT_EQ(db.trial_count(), 0);
  // A problem that was never upserted.
  Problem other = testing::small_problem(Precision::kFp32, 3);
  EXPECT_EQ(field_of(testing::ok_trial(testing::key_of(other, device), "c", 1)), "problem_key");
  // A failed trial may carry a NaN error and zero times; an invalid UTF-8 reason is repaired.
  TrialRecord wrong = testing::failed_trial(key, "c_nan", Disposition::kWrong, "bad \xff byte");
  wrong.max_error = nan;
  EXPECT_TRUE(db.record_trial(wrong));
  TrialRecord stored = db.all_trials().at(0);
  EXPECT_TRUE(std::isnan(stored.max_error));
  EXPECT_EQ(stored.reason, "bad \xef\xbf\xbd byte");
  EXPECT_FALSE(stored.measured_at.empty());
  // A failed trial is kept even with a huge log as its reason (cut, still UTF-8) or NaN times.
  TrialRecord hung = testing::failed_trial(key, "c_hung", Disposition::kTimedOut,
                                           std::string(70000, 'x') + "\xc3\xa9");
  hung.median_ms = std::nan("");
  hung.max_ms = INFINITY;
  EXPECT_TRUE(db.record_trial(hung));
  TrialRecord kept = db.trials(key).back();
  EXPECT_EQ(kept.config_name, "c_hung");
  EXPECT_LE(kept.reason.size(), 65536u);
  EXPECT_NE(kept.reason.find("70002 bytes cut"), std::string::npos);
  EXPECT_EQ(kept.median_ms, 0);
  EXPECT_EQ(kept.max_ms, 0);
  // Devices too.
  DeviceRecord bad_device = device;
  bad_device.arch = "hopper";
  EXPECT_THROW(db.upsert_device(bad_device), FieldError);
  bad_device = device;
  bad_device.name = "a|b";
  EXPECT_THROW(db.upsert_device(bad_device), FieldError);
  // Updating a device's versions keeps its key.
  DeviceRecord updated = device;
  updated.driver_version = 13010;
  db.upsert_device(updated);
  ASSERT_EQ(db.devices().size(), 1u);
  EXPECT_EQ(db.device(device.key())->driver_version, 13010);
}

// Schema version 4: the tuner measures a GPU's copy bandwidth once; later records without a
// measurement keep it, and export and import carry it (an older export has none: not measured).
TEST(tuning_db, CopyBandwidthIsKeptOnceMeasuredValidatedAndExchanged) {
  TempDir dir;
  TuningDb db(dir.file("t.db"));
  DeviceRecord device = testing::h100();
  db.upsert_device(device);
  EXPECT_EQ(db.device(device.key())->copy_gbps, 0) << "not measured";
  device.copy_gbps = 3350.5;
  db.upsert_device(device);
  EXPECT_DOUBLE_EQ(db.device(device.key())->copy_gbps, 3350.5);
  DeviceRecord unmeasured = device;
  unmeasured.copy_gbps = 0;
  unmeasured.driver_version += 1;
  db.upsert_device(unmeasured);
  EXPECT_DOUBLE_EQ(db.device(device.key())->copy_gbps, 3350.5) << "a measurement is kept";
  EXPECT_EQ(db.device(device.key())->driver_version, unmeasured.driver_version);
  for (double bad : {-1.0, 1e9, std::nan("")}) {
    DeviceRecord wrong = device;
    wrong.copy_gbps = bad;
    try {
      db.upsert_device(wrong);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const FieldError& e) {
      EXPECT_EQ(e.field(), "copy_gbps") << e.what();
    }
  }

  nlohmann::json exported = nlohmann::json::parse(export_db(db, {ExportFormat::kJson, true}));
  ASSERT_EQ(exported["devices"].size(), 1u);
  EXPECT_DOUBLE_EQ(exported["devices"][0]["copy_gbps"].get<double>(), 3350.5);
  TuningDb copy(dir.file("copy.db"));
  import_document(copy, parse_exchange_json(exported.dump()), "export");
  EXPECT_DOUBLE_EQ(copy.device(device.key())->copy_gbps, 3350.5);
  exported["devices"][0].erase("copy_gbps");  // as schema version 3 exported it
  TuningDb older(dir.file("older.db"));
  import_document(older, parse_exchange_json(exported.dump()), "old export");
  EXPECT_EQ(older.device(device.key())->copy_gbps, 0);
}

TEST(tuning_db, ProblemKeysParseBackAndOthersAreRefused) {
  for (const Problem& problem :
       {Problem::seed(), testing::small_problem(Precision::kTf32), testing::small_problem()}) {
    EXPECT_EQ(parse_problem_key(problem.key()).key(), problem.key());
    EXPECT_EQ(parse_problem_key(problem.key()).to_json(), problem.to_json());
  }
  for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
    for (Layout layout : {Layout::kNchw, Layout::kNhwc}) {
      Problem problem = testing::small_problem();
      problem.dtype = dtype;
      problem.layout = layout;
      const Problem parsed = parse_problem_key(problem.key());
      EXPECT_EQ(parsed.dtype, dtype) << problem.key();
      EXPECT_EQ(parsed.layout, layout) << problem.key();
      EXPECT_EQ(parsed.key(), problem.key());
    }
  }
  std::string seed = Problem::seed().key();
  std::vector<std::string> bad = {
      "",
      "convT2d",
      seed.substr(0, seed.find('|')),
      "x" + seed,
      std::string(seed).replace(seed.find(":n128"), 5, ":n-12"),
      std::string(seed).replace(seed.find(":n128"), 5, ":n+12"),
      std::string(seed).replace(seed.find(":n128"), 5, ":n0"),
      std::string(seed).replace(seed.find(":n128"), 5, ":n99999999999999999999"),
      std::string(seed).replace(seed.find("float32"), 7, "float64"),
      std::string(seed).replace(seed.find("NCHW"), 4, "NWHC"),
      std::string(seed).replace(seed.find(":float32:NCHW"), 13, ":NCHW:float32"),
      std::string(seed).replace(seed.find(":float32:NCHW"), 13, ""),
      seed + "garbage",
      std::string(2000, 'k')};
  for (const std::string& key : bad) {
    try {
      parse_problem_key(key);
      ADD_FAILURE() << "accepted " << key;
    } catch (const FieldError& e) {
      EXPECT_EQ(e.field(), "problem_key");
    }
  }
}

TEST(tuning_db, DispositionTextParsesBack) {
  for (Disposition d : {Disposition::kOk, Disposition::kCompileFailed, Disposition::kLaunchFailed,
                        Disposition::kFaulted, Disposition::kTimedOut, Disposition::kWrong}) {
    EXPECT_EQ(parse_disposition(to_string(d)), d);
  }
  EXPECT_THROW(parse_disposition("OK"), std::invalid_argument);
  EXPECT_THROW(parse_disposition(""), std::invalid_argument);
}

TEST(tuning_db, CubinCacheStoresAndLoadsByContentKey) {
  std::string key = cubin_cache_key("source", {"--std=c++17", "-arch"}, "sm_90", "13.0");
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(key, cubin_cache_key("source", {"--std=c++17", "-arch"}, "sm_90", "13.0"));
  // Every input matters, and the parts cannot run into each other.
  std::set<std::string> keys = {
      key,
      cubin_cache_key("source2", {"--std=c++17", "-arch"}, "sm_90", "13.0"),
      cubin_cache_key("source", {"--std=c++17"}, "sm_90", "13.0"),
      cubin_cache_key("source", {"--std=c++17", "-arch"}, "sm_80", "13.0"),
      cubin_cache_key("source", {"--std=c++17", "-arch"}, "sm_90", "12.8"),
      cubin_cache_key("sourc", {"e--std=c++17", "-arch"}, "sm_90", "13.0"),
      cubin_cache_key("source", {"--std=c++17-arch"}, "sm_90", "13.0"),
  };
  EXPECT_EQ(keys.size(), 7u);
  // The key of a compile is that of compile_cuda's own flags; an extra flag is another cubin.
  CompileOptions options;
  options.arch = "sm_90";
  EXPECT_EQ(cubin_cache_key("source", options),
            cubin_cache_key("source", nvrtc_flags(options), "sm_90", nvrtc_version()));
  CompileOptions fast_math = options;
  fast_math.extra = {"--use_fast_math"};
  EXPECT_NE(cubin_cache_key("source", options), cubin_cache_key("source", fast_math));

  TempDir dir;
  std::string path = dir.file("cache.db");
  std::vector<char> cubin(100000);
  for (size_t i = 0; i < cubin.size(); ++i) cubin[i] = static_cast<char>(i * 31 + 7);
  cubin[10] = '\0';  // binary, with zero bytes
  {
    TuningDb db(path);
    EXPECT_FALSE(db.cached_cubin(key).has_value());
    db.store_cubin(key, cubin, generator_version());
    EXPECT_EQ(db.cached_cubin(key), cubin);
    std::vector<char> replaced(cubin.begin(), cubin.begin() + 10);
    db.store_cubin(key, replaced, generator_version());
    EXPECT_EQ(db.cached_cubin(key), replaced);
    db.store_cubin(key, cubin, generator_version());
    EXPECT_THROW(db.store_cubin("not-a-key", cubin, generator_version()), FieldError);
    EXPECT_THROW(db.store_cubin(key, {}, generator_version()), FieldError);
    CubinCacheStats stats = db.cubin_cache_stats();
    EXPECT_EQ(stats.entries, 1);
    EXPECT_EQ(stats.bytes, 100000);
  }
  // Another process (here: connection) reads it back, read-only.
  TuningDb reader(path, true);
  EXPECT_EQ(reader.cached_cubin(key), cubin);
  EXPECT_THROW(reader.store_cubin(key, cubin, generator_version()), DbError);
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(tuning_db, DefaultPathFollowsDeconvtuneDbThenXdgThenHome) {
  ScopedEnv home("HOME", "/home/tester");
  {
    ScopedEnv db("DECONVTUNE_DB", "/data/my.db");
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(TuningDb::default_path(), "/data/my.db");
  }
  {
    ScopedEnv db("DECONVTUNE_DB", "");
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(TuningDb::default_path(), "/xdg/deconvtune/tuning.db");
  }
  {
    ScopedEnv db("DECONVTUNE_DB", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", "relative/ignored");
    EXPECT_EQ(TuningDb::default_path(), "/home/tester/.cache/deconvtune/tuning.db");
  }
  {
    ScopedEnv db("DECONVTUNE_DB", nullptr);
    ScopedEnv xdg("XDG_CACHE_HOME", nullptr);
    EXPECT_EQ(TuningDb::default_path(), "/home/tester/.cache/deconvtune/tuning.db");
    // And the folders are created on first use.
    TempDir dir;
    ScopedEnv real_home("HOME", dir.path().c_str());
    TuningDb created(TuningDb::default_path());
    EXPECT_TRUE(std::filesystem::exists(dir.file(".cache/deconvtune/tuning.db")));
  }
}

TEST(tuning_db, PruneDropsOtherGeneratorVersionsOrOldRowsAndDryRunCountsOnly) {
  TuningDb db(":memory:");
  DeviceRecord device = testing::h100();
  Problem problem = testing::small_problem();
  db.upsert_device(device);
  db.upsert_problem(problem);
  const std::string current = generator_version();
  WinnerKey now_key = testing::key_of(problem, device, current);
  WinnerKey old_key = testing::key_of(problem, device, "gen-000000");
  db.record_trial(testing::ok_trial(now_key, "c_now", 1.0));
  TrialRecord old_trial = testing::ok_trial(old_key, "c_old", 2.0);
  old_trial.measured_at = "2020-01-01T00:00:00.000000Z";
  db.record_trial(old_trial);
  db.record_trial(testing::failed_trial(old_key, "c_old_failed", Disposition::kTimedOut, "3 s"));
  db.store_cubin(cubin_cache_key("x", {}, "sm_90", "13.0"), {'a', 'b'}, generator_version());

  PruneOptions dry;
  dry.keep_generator_version = current;
  dry.dry_run = true;
  PruneReport preview = db.prune(dry);
  EXPECT_EQ(preview.trials, 2);
  EXPECT_EQ(preview.winners, 1);
  EXPECT_EQ(preview.cubins, 0) << "the cubin was stored by this build";
  ASSERT_EQ(preview.removed_winners.size(), 1u);
  EXPECT_EQ(preview.removed_winners[0].config_name, "c_old");
  EXPECT_EQ(preview.generator_versions, std::vector<std::string>{"gen-000000"});
  EXPECT_EQ(db.trial_count(), 3) << "a dry run removes nothing";

  PruneOptions by_age;
  by_age.older_than_days = 365;
  by_age.dry_run = true;
  PruneReport old_rows = db.prune(by_age);
  EXPECT_EQ(old_rows.trials, 1) << "only the trial from 2020";
  EXPECT_EQ(old_rows.winners, 1);

  PruneOptions others;
  others.keep_generator_version = current;
  EXPECT_THROW(db.prune(PruneOptions{}), FieldError)
      << "the version to keep is a value it is given";
  PruneReport done = db.prune(others);
  EXPECT_EQ(done.trials, 2);
  EXPECT_EQ(db.trial_count(), 1);
  EXPECT_FALSE(db.winner(old_key).has_value());
  EXPECT_TRUE(db.winner(now_key).has_value());
  EXPECT_EQ(db.cubin_cache_stats().entries, 1);
  PruneOptions everything;
  everything.keep_generator_version = "gen-none";
  EXPECT_EQ(db.prune(everything).cubins, 1);
  EXPECT_EQ(db.cubin_cache_stats().entries, 0);
  EXPECT_THROW(db.prune({"", -1.0, false}), FieldError);
}

}  // namespace
}  // namespace deconvtune::db

// Export and import of the tuning DB (tuning_db/exchange.hpp): exact round trips, the merge rule,
// and hostile input refused with the field named and the DB unchanged.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "tests/db_test_support.hpp"
#include "tuning_db/exchange.hpp"

namespace deconvtune::db {
namespace {

using json = nlohmann::json;
using testing::TempDir;

// A sample with every kind of value export must carry: NaN errors, quotes, commas, newlines and
// non-ASCII text in reasons, two devices, both precisions.
void fill_rich_sample(TuningDb& db) {
  testing::fill_sample(db);
  DeviceRecord a100{"NVIDIA A100-SXM4-80GB", "sm_80", 108, 12080, "12.8"};
  db.upsert_device(a100);
  Problem problem = testing::small_problem(Precision::kFp32, 5);
  db.upsert_problem(problem);
  WinnerKey key = testing::key_of(problem, a100, "gen-abc123");
  db.record_trial(testing::ok_trial(key, "igemm_a", 0.1 + 0.2));  // 0.30000000000000004
  TrialRecord wrong = testing::failed_trial(key, "igemm_b", Disposition::kWrong,
                                            "y[3] = nan, \"ref\" = 0.5 \xc3\xa9\t\x01");
  wrong.max_error = std::nan("");
  db.record_trial(wrong);
  db.record_trial(testing::failed_trial(key, "igemm_c", Disposition::kCompileFailed,
                                        std::string(5000, 'e') + "\nerror: expected ';'"));
}

TEST(tuning_db_exchange, ExportImportRoundTripsByteExactly) {
  TuningDb source(":memory:");
  fill_rich_sample(source);
  for (bool all : {false, true}) {
    for (ExportFormat format : {ExportFormat::kJson, ExportFormat::kCsv}) {
      std::string first = export_db(source, {format, all});
      TuningDb target(":memory:");
      import_document(target, parse_exchange_json(export_db(source, {ExportFormat::kJson, all})));
      std::string second = export_db(target, {format, all});
      EXPECT_EQ(first, second) << "all=" << all << " csv=" << (format == ExportFormat::kCsv);
    }
  }
  std::string winners = export_db(source);
  json document = json::parse(winners);
  EXPECT_EQ(document["format"], "deconvtune-tuning-db");
  EXPECT_EQ(document["version"], 1);
  EXPECT_EQ(document["content"], "winners");
  EXPECT_EQ(document["winners"].size(), 3u);
  // With the trials that back them (import refuses a winner without one): one per winner here.
  EXPECT_EQ(document["trials"].size(), 3u);
  json all = json::parse(export_db(source, {ExportFormat::kJson, true}));
  EXPECT_EQ(all["trials"].size(), 9u);
  EXPECT_EQ(all["devices"].size(), 2u);
  EXPECT_EQ(all["problems"].size(), 3u);
  EXPECT_NE(winners.find("0.30000000000000004"), std::string::npos) << "shortest exact doubles";
  // CSV: a header, one line per row, quoted where needed.
  std::string csv = export_db(source, {ExportFormat::kCsv, false});
  EXPECT_EQ(csv.substr(0, csv.find('\n')),
            "problem_key,device_key,generator_version,precision,config_name,median_ms,max_error,"
            "updated_at");
  std::string trials_csv = export_db(source, {ExportFormat::kCsv, true});
  EXPECT_NE(trials_csv.find("\"y[3] = nan, \"\"ref\"\" = 0.5"), std::string::npos) << trials_csv;
  // And through a file, as `db import` reads it; importing it again adds nothing.
  TempDir dir;
  std::string file = dir.file("export.json");
  testing::write_bytes(file, export_db(source, {ExportFormat::kJson, true}));
  TuningDb target(dir.file("target.db"));
  ImportReport report = import_file(target, file);
  EXPECT_EQ(report.trials_added, 9);
  EXPECT_EQ(report.winners_added, 3);
  EXPECT_EQ(report.devices_added, 2);
  EXPECT_EQ(report.problems_added, 3);
  ImportReport again = import_file(target, file);
  EXPECT_EQ(again.trials_added, 0);
  EXPECT_EQ(again.trials_already_present, 9);
  EXPECT_EQ(again.winners_kept, 3);
  EXPECT_EQ(export_db(target, {ExportFormat::kJson, true}),
            export_db(source, {ExportFormat::kJson, true}));
}

TEST(tuning_db_exchange, ExportAndImportCarryTheDtypeAndLayout) {
  TuningDb source(":memory:");
  const DeviceRecord device = testing::h100();
  source.upsert_device(device);
  Problem half = testing::small_problem();
  half.dtype = DType::kBFloat16;
  half.layout = Layout::kNhwc;
  source.upsert_problem(half);
  source.record_trial(
      testing::ok_trial(testing::key_of(half, device), "direct_ffma_t256_c4_mishexact", 0.5));
  json all = json::parse(export_db(source, {ExportFormat::kJson, true}));
  ASSERT_EQ(all["problems"].size(), 1u);
  EXPECT_EQ(all["problems"][0]["key"], half.key());
  EXPECT_EQ(all["problems"][0]["spec"]["dtype"], "bfloat16");
  EXPECT_EQ(all["problems"][0]["spec"]["layout"], "NHWC");
  TuningDb target(":memory:");
  import_document(target, parse_exchange_json(all.dump()));
  EXPECT_EQ(export_db(target, {ExportFormat::kJson, true}),
            export_db(source, {ExportFormat::kJson, true}));
  // An export from before the fields: specs without them, keys with float32:NCHW.
  TuningDb older_source(":memory:");
  testing::fill_sample(older_source);
  json older = json::parse(export_db(older_source, {ExportFormat::kJson, true}));
  for (json& problem : older["problems"]) {
    problem["spec"].erase("dtype");
    problem["spec"].erase("layout");
  }
  TuningDb older_target(":memory:");
  import_document(older_target, parse_exchange_json(older.dump()));
  EXPECT_EQ(export_db(older_target, {ExportFormat::kJson, true}),
            export_db(older_source, {ExportFormat::kJson, true}));
}

TEST(tuning_db_exchange, ImportKeepsTheFasterWinnerPerKeyAndMergesDbFiles) {
  TempDir dir;
  DeviceRecord device = testing::h100();
  Problem p1 = testing::small_problem(Precision::kFp32, 1);
  Problem p2 = testing::small_problem(Precision::kFp32, 2);
  Problem p3 = testing::small_problem(Precision::kFp32, 3);
  std::string mine_path = dir.file("mine.db"), theirs_path = dir.file("theirs.db");
  TuningDb mine(mine_path);
  {
    TuningDb theirs(theirs_path);
    for (TuningDb* db : {&mine, &theirs}) {
      db->upsert_device(device);
      db->upsert_problem(p1);
      db->upsert_problem(p2);
    }
    theirs.upsert_problem(p3);
    // p1: mine is faster. p2: theirs is faster. p3: only theirs.
    mine.record_trial(testing::ok_trial(testing::key_of(p1, device), "mine_p1", 1.0));
    theirs.record_trial(testing::ok_trial(testing::key_of(p1, device), "theirs_p1", 1.5));
    mine.record_trial(testing::ok_trial(testing::key_of(p2, device), "mine_p2", 2.0));
    theirs.record_trial(testing::ok_trial(testing::key_of(p2, device), "theirs_p2", 1.0));
    theirs.record_trial(testing::ok_trial(testing::key_of(p3, device), "theirs_p3", 3.0));
  }
  std::string theirs_bytes = testing::read_bytes(theirs_path);
  ImportReport report = import_file(mine, theirs_path);
  EXPECT_EQ(testing::read_bytes(theirs_path), theirs_bytes) << "the imported file is not touched";
  EXPECT_EQ(report.winners_kept, 1);
  EXPECT_EQ(report.winners_replaced, 1);
  EXPECT_EQ(report.winners_added, 1);
  EXPECT_EQ(report.trials_added, 3);
  EXPECT_EQ(report.problems_added, 1);
  EXPECT_EQ(mine.winner(testing::key_of(p1, device))->config_name, "mine_p1");
  EXPECT_EQ(mine.winner(testing::key_of(p2, device))->config_name, "theirs_p2");
  EXPECT_EQ(mine.winner(testing::key_of(p3, device))->config_name, "theirs_p3");
  EXPECT_EQ(mine.trial_count(), 5);
  EXPECT_EQ(import_file(mine, theirs_path).trials_added, 0) << "no duplicates on a second import";
  EXPECT_EQ(mine.trial_count(), 5);

  // An older-schema DB file imports too (its copy is migrated, the file itself stays v1).
  std::string v1 = dir.file("v1.db");
  testing::write_bytes(
      v1, testing::read_bytes(std::string(DECONVTUNE_TEST_DATA_DIR) + "/tuning_db_v1.db"));
  std::string v1_bytes = testing::read_bytes(v1);
  ImportReport from_v1 = import_file(mine, v1);
  EXPECT_EQ(from_v1.trials_added, 5);
  EXPECT_EQ(from_v1.winners_added, 2);
  EXPECT_EQ(testing::read_bytes(v1), v1_bytes);
  EXPECT_EQ(mine.integrity_check(), "ok");
}

// Imports `bytes` as a file into a DB with content, expecting refusal naming `expected` and no
// change at all.
void expect_refused(TuningDb& db, const std::string& bytes, const std::string& expected,
                    const std::string& label) {
  TempDir dir;
  std::string file = dir.file("import.json");
  testing::write_bytes(file, bytes);
  std::string before = export_db(db, {ExportFormat::kJson, true});
  int64_t trials_before = db.trial_count();
  try {
    import_file(db, file);
    ADD_FAILURE() << label << ": accepted";
  } catch (const ImportError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find(expected), std::string::npos)
        << label << ": expected '" << expected << "' in: " << message;
    EXPECT_NE(message.find(file), std::string::npos) << label << ": " << message;
    EXPECT_LT(message.size(), 2000u) << label << ": the message quotes too much";
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": not an ImportError: " << e.what();
  }
  EXPECT_EQ(db.trial_count(), trials_before) << label;
  EXPECT_EQ(export_db(db, {ExportFormat::kJson, true}), before) << label << " changed the DB";
}

TEST(tuning_db_exchange, GarbledOrHostileImportIsRefusedNamingTheFieldAndChangesNothing) {
  TuningDb source(":memory:");
  fill_rich_sample(source);
  const json valid = json::parse(export_db(source, {ExportFormat::kJson, true}));
  // The target already holds something; a valid import would add rows to it.
  TuningDb target(":memory:");
  {
    target.upsert_device(testing::h100());
    Problem problem = testing::small_problem(Precision::kFp32, 9);
    target.upsert_problem(problem);
    target.record_trial(testing::ok_trial(testing::key_of(problem, testing::h100()), "own", 9.0));
  }
  struct Case {
    std::string label;
    std::function<void(json&)> spoil;
    std::string expected;
  };
  const size_t last = valid["trials"].size() - 1;
  std::vector<Case> cases = {
      {"wrong format", [](json& d) { d["format"] = "something-else"; }, "format"},
      {"newer version", [](json& d) { d["version"] = 2; }, "newer than this build"},
      {"version as text", [](json& d) { d["version"] = "1"; }, "version: must be an integer"},
      {"no winners", [](json& d) { d.erase("winners"); }, "winners: is missing"},
      {"winners not array", [](json& d) { d["winners"] = json::object(); }, "must be an array"},
      {"unknown content", [](json& d) { d["content"] = "everything"; }, "content"},
      {"extra top field", [](json& d) { d["hack"] = 1; }, "hack: is not a known field"},
      {"negative time", [&](json& d) { d["trials"][last]["median_ms"] = -1; },
       fmt::format("trials[{}].median_ms", last)},
      {"time as text", [](json& d) { d["trials"][0]["median_ms"] = "fast"; },
       "trials[0].median_ms: must be a number"},
      {"absurd time", [](json& d) { d["winners"][0]["median_ms"] = 1e300; },
       "winners[0].median_ms"},
      {"zero winner time", [](json& d) { d["winners"][1]["median_ms"] = 0; },
       "winners[1].median_ms"},
      {"null error on ok", [](json& d) { d["winners"][0]["max_error"] = nullptr; },
       "winners[0].max_error"},
      {"unknown status", [](json& d) { d["trials"][2]["status"] = "excellent"; },
       "trials[2].status: 'excellent' is not a trial status"},
      {"overlong config", [](json& d) { d["trials"][0]["config_name"] = std::string(100000, 'c'); },
       "trials[0].config_name"},
      {"overlong reason", [](json& d) { d["trials"][1]["reason"] = std::string(70000, 'r'); },
       "trials[1].reason"},
      {"missing field", [](json& d) { d["trials"][3].erase("registers"); },
       "trials[3].registers: is missing"},
      {"extra field", [](json& d) { d["trials"][3]["evil"] = true; }, "trials[3].evil"},
      {"huge integer", [](json& d) { d["trials"][0]["registers"] = 1180591620717411303424.0; },
       "trials[0].registers"},
      {"float integer", [](json& d) { d["devices"][0]["sm_count"] = 132.5; },
       "devices[0].sm_count: must be an integer"},
      {"bad device key", [](json& d) { d["devices"][0]["key"] = "x"; }, "devices[0].key"},
      {"bad arch", [](json& d) { d["devices"][0]["arch"] = "sm_90'; DROP TABLE trials; --"; },
       "devices[0].arch"},
      {"problem key not a problem",
       [](json& d) { d["winners"][0]["problem_key"] = "convT2d:garbage|mish"; },
       "winners[0].problem_key"},
      {"problem key of other spec", [](json& d) { d["problems"][0]["spec"]["batch"] = 77; },
       "problems[0].key"},
      {"invalid spec", [](json& d) { d["problems"][1]["spec"]["batch"] = -5; },
       "problems[1].spec.batch"},
      {"precision mismatch", [](json& d) { d["winners"][0]["precision"] = "tf32"; },
       "winners[0].precision"},
      {"unknown precision", [](json& d) { d["winners"][0]["precision"] = "fp8"; },
       "winners[0].precision"},
      {"bad timestamp", [](json& d) { d["trials"][0]["measured_at"] = "2026-02-30 noon"; },
       "trials[0].measured_at"},
      {"duplicate winner", [](json& d) { d["winners"].push_back(d["winners"][0]); },
       "a second winner"},
      {"duplicate trial", [](json& d) { d["trials"].push_back(d["trials"][0]); }, "appears twice"},
      {"unknown device reference",
       [&](json& d) { d["trials"][last]["device_key"] = "NVIDIA B200|sm_100|148"; },
       fmt::format("trials[{}].device_key", last)},
      {"row not an object", [](json& d) { d["trials"][4] = 42; }, "trials[4]: must be an object"},
  };
  for (const Case& bad : cases) {
    json document = valid;
    bad.spoil(document);
    expect_refused(target, document.dump(), bad.expected, bad.label);
  }
  // Text that is not a valid document at all.
  expect_refused(target, "", "malformed JSON", "empty");
  expect_refused(target, "{\"format\": ", "malformed JSON", "truncated");
  expect_refused(target, valid.dump().substr(0, valid.dump().size() / 2), "malformed JSON", "half");
  expect_refused(target, "[1, 2, 3]", "must be an object", "array");
  std::string twice = valid.dump();  // the same winners under one key twice: which is meant?
  twice.insert(twice.rfind('}'), ",\"winners\":[]");
  expect_refused(target, twice, "duplicate key 'winners'", "duplicate key");
  expect_refused(target, std::string(100000, '[') + std::string(100000, ']'), "nested deeper",
                 "deep");
  std::string nan_text = valid.dump();
  nan_text.replace(nan_text.find("\"median_ms\":") + 12, 1, "NaN,\"x\":");
  expect_refused(target, nan_text, "malformed JSON", "NaN literal");
  expect_refused(target, std::string("\x00\x01\x02garbage", 10), "malformed JSON", "binary");
  std::string bad_utf8 = valid.dump();
  bad_utf8.replace(bad_utf8.find("\"reason\":\"") + 10, 0, "\xff\xfe");
  expect_refused(target, bad_utf8, "ill-formed UTF-8", "invalid UTF-8 in a string");

  // SQLite files that are not deconvtune DBs, or deconvtune DBs holding hostile rows.
  TempDir dir;
  std::string foreign = dir.file("foreign.db");
  {
    sqlite3* raw = nullptr;
    sqlite3_open(foreign.c_str(), &raw);
    sqlite3_exec(raw, "CREATE TABLE trials (x); INSERT INTO trials VALUES (1);", nullptr, nullptr,
                 nullptr);
    sqlite3_close(raw);
  }
  expect_refused(target, testing::read_bytes(foreign), "not a deconvtune tuning DB", "foreign db");
  expect_refused(target, "SQLite format 3" + std::string(1, '\0') + std::string(5000, 'x'),
                 "corrupt", "corrupt db");
  const std::pair<const char*, const char*> hostile_rows[] = {
      {"UPDATE trials SET status = 'banana' WHERE config_name = 'igemm_b'", "status"},
      {"UPDATE trials SET median_ms = 'slow' WHERE config_name = 'igemm_a'", "median_ms"},
      {"UPDATE trials SET median_ms = -4 WHERE config_name = 'igemm_a'", "median_ms"},
      {"UPDATE winners SET median_ms = 1e308 * 10", "median_ms"},
      {"UPDATE winners SET config_name = 'a b c'", "config_name"},
      {"UPDATE devices SET sm_count = 'many'", "sm_count"},
      {"UPDATE problems SET spec = '{not json'", "spec"},
      {"UPDATE trials SET reason = x'c0c1' WHERE config_name = 'igemm_b'", "reason"},
  };
  for (const auto& [sql, field] : hostile_rows) {
    std::string path = dir.file("hostile.db");
    std::filesystem::remove(path);
    {
      TuningDb hostile(path);
      fill_rich_sample(hostile);
    }
    sqlite3* raw = nullptr;
    sqlite3_open(path.c_str(), &raw);
    ASSERT_EQ(sqlite3_exec(raw, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sql;
    sqlite3_exec(raw, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
    sqlite3_close(raw);
    expect_refused(target, testing::read_bytes(path), field, sql);
  }
}

TEST(tuning_db_exchange, ParsesExportFormatNames) {
  EXPECT_EQ(parse_export_format("json"), ExportFormat::kJson);
  EXPECT_EQ(parse_export_format("csv"), ExportFormat::kCsv);
  EXPECT_THROW(parse_export_format("xml"), std::invalid_argument);
}

}  // namespace
}  // namespace deconvtune::db

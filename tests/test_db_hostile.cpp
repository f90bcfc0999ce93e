// Hostile and read-only tuning DB files (issue 14): a file whose schema is not exactly ours
// (triggers, views, indexes, tables, virtual tables, changed definitions) is refused naming the
// object and left byte-identical, by the DB API, the `deconvtune db` commands and autotune; a
// query that runs too long is stopped; a subtly corrupted file is reported or read correctly,
// never written into and never a crash; a DB that this process may not write (read-only folder
// or file) is read by every read-only path, and a write attempt says read-only.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <optional>

#include "codegen/generator.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tests/db_test_support.hpp"
#include "tests/unprivileged.hpp"
#include "tuning_db/exchange.hpp"
#include "tuning_db/sqlite.hpp"

namespace deconvtune::db {
namespace {

using testing::CliResult;
using testing::error_of;
using testing::RawDb;
using testing::run_cli;
using testing::shell_quoted;
using testing::TempDir;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string cubin_key(int i) { return cubin_cache_key(std::to_string(i), {}, "sm_90", ""); }

std::vector<char> cubin_bytes(int i, size_t size) {
  std::vector<char> bytes(size);
  for (size_t j = 0; j < size; ++j) bytes[j] = static_cast<char>(i * 31 + j * 7);
  return bytes;
}

// A sound DB of the current schema; closing the last connection checkpoints, so the file alone is
// the whole DB (no -wal or -shm beside it).
void make_sound_db(const std::string& path, int extra_trials = 0, int cubins = 0,
                   size_t cubin_size = 0) {
  TuningDb db(path);
  testing::fill_sample(db);
  WinnerKey key = testing::key_of(testing::small_problem(), testing::h100());
  for (int i = 0; i < extra_trials; ++i) {
    db.record_trial(testing::ok_trial(key, fmt::format("igemm_extra_{}", i), 2.0 + 0.01 * i));
  }
  for (int i = 0; i < cubins; ++i)
    db.store_cubin(cubin_key(i), cubin_bytes(i, cubin_size), generator_version());
}

// `sql` applied with a plain SQLite handle (what an attacker has), then closed and checkpointed.
void apply_raw(const std::string& path, const std::string& sql) {
  RawDb raw(path);
  raw.exec(sql);
}

bool has_fts5() { return sqlite3_compileoption_used("ENABLE_FTS5") == 1; }

struct HostileCase {
  std::string name;
  std::string sql;       // what the attacker adds to a sound DB
  std::string expected;  // what the refusal must say
};

std::vector<HostileCase> hostile_cases() {
  std::vector<HostileCase> cases = {
      {"winner_rewrite",
       "CREATE TRIGGER evil AFTER INSERT ON winners BEGIN "
       "UPDATE winners SET config_name = 'fault_kernel'; END",
       "trigger 'evil' is not part of a deconvtune DB"},
      {"raise_ignore",
       "CREATE TRIGGER swallow BEFORE INSERT ON trials BEGIN SELECT RAISE(IGNORE); END",
       "trigger 'swallow' is not part of a deconvtune DB"},
      {"forged_view",
       "ALTER TABLE winners RENAME TO winners_real; CREATE VIEW winners AS SELECT * FROM "
       "winners_real UNION ALL SELECT problem_key, device_key, generator_version, precision, "
       "'forged_config', 0.0001, 0, updated_at FROM winners_real",
       "view 'winners' is not part of a deconvtune DB"},
      {"cross_join_view",
       "ALTER TABLE trials RENAME TO trials_real; CREATE VIEW trials AS SELECT a.* FROM "
       "trials_real a, trials_real b, trials_real c, trials_real d, trials_real e, trials_real f",
       "view 'trials' is not part of a deconvtune DB"},
      {"extra_index", "CREATE INDEX trials_by_time ON trials (median_ms)",
       "index 'trials_by_time' is not part of a deconvtune DB"},
      {"extra_table", "CREATE TABLE notes (body TEXT)",
       "table 'notes' is not part of a deconvtune DB"},
      {"changed_definition", "ALTER TABLE trials ADD COLUMN note TEXT DEFAULT 'x'",
       "table 'trials' is not defined as in a deconvtune DB"},
      {"dropped_index", "DROP INDEX trials_identity", "index 'trials_identity' is missing"},
      {"statistics_table", "ANALYZE", "table 'sqlite_stat1' is not part of a deconvtune DB"},
  };
  if (has_fts5()) {
    cases.push_back({"virtual_table", "CREATE VIRTUAL TABLE search USING fts5(body)",
                     "table 'search' is not part of a deconvtune DB"});
  }
  return cases;
}

TEST(tuning_db_hostile, SchemaObjectsThatAreNotOursAreRefusedNamingThemAndFilesStayUnchanged) {
  if (!has_fts5()) std::fprintf(stderr, "note: this SQLite has no FTS5: no virtual-table case\n");
  TempDir dir;
  std::string sound = dir.file("sound.db");
  make_sound_db(sound, 34);  // 40 trials: the cross-join view would yield 40^6 rows
  const std::string sound_bytes = testing::read_bytes(sound);
  for (const HostileCase& hostile : hostile_cases()) {
    SCOPED_TRACE(hostile.name);
    std::string path = dir.file(hostile.name + ".db");
    testing::write_bytes(path, sound_bytes);
    apply_raw(path, hostile.sql);
    const std::string before = testing::read_bytes(path);
    for (bool read_only : {false, true}) {
      std::string message = error_of([&] {
        TuningDb db(path, read_only);
        db.winners();
      });
      EXPECT_TRUE(contains(message, path)) << message;
      EXPECT_TRUE(contains(message, hostile.expected)) << message;
      EXPECT_TRUE(contains(message, "left as it is")) << message;
    }
    // The same file offered to import.
    std::string message = error_of([&] { read_exchange_file(path); });
    EXPECT_TRUE(contains(message, hostile.expected)) << message;
    EXPECT_EQ(testing::read_bytes(path), before) << "the file was modified";
  }

  // A version-1 file is held to version 1's schema: refused, not migrated.
  std::string v1 = dir.file("v1.db");
  testing::write_bytes(
      v1, testing::read_bytes(std::string(DECONVTUNE_TEST_DATA_DIR) + "/tuning_db_v1.db"));
  apply_raw(v1, "CREATE TRIGGER evil_v1 AFTER INSERT ON trials BEGIN DELETE FROM winners; END");
  const std::string v1_before = testing::read_bytes(v1);
  std::string message = error_of([&] { TuningDb db(v1); });
  EXPECT_TRUE(contains(message, "schema version 1")) << message;
  EXPECT_TRUE(contains(message, "trigger 'evil_v1' is not part of a deconvtune DB")) << message;
  EXPECT_EQ(testing::read_bytes(v1), v1_before);

  // Whitespace in the stored SQL means nothing: a DB whose DDL differs only there is ours.
  std::string spaced = dir.file("spaced.db");
  testing::write_bytes(spaced, sound_bytes);
  {
    RawDb raw(spaced);
    raw.exec("PRAGMA writable_schema = ON");
    raw.exec(
        "UPDATE sqlite_schema SET sql = replace(sql, 'key TEXT PRIMARY KEY NOT NULL,', "
        "'key \t TEXT PRIMARY KEY   NOT NULL,') WHERE name = 'problems'");
  }
  EXPECT_EQ(error_of([&] { TuningDb(spaced, true).winners(); }), "(no DbError)");
  std::string quoted = dir.file("quoted.db");
  testing::write_bytes(quoted, sound_bytes);
  {
    RawDb raw(quoted);
    raw.exec("PRAGMA writable_schema = ON");
    raw.exec(
        "UPDATE sqlite_schema SET sql = replace(sql, 'DEFAULT ''''', 'DEFAULT '' ''') "
        "WHERE name = 'trials'");
  }
  message = error_of([&] { TuningDb(quoted, true).winners(); });
  EXPECT_TRUE(contains(message, "table 'trials' is not defined as in a deconvtune DB")) << message;
}

TEST(tuning_db_hostile, DbCommandsAndAutotuneRefuseAHostileFileAndLeaveItUnchanged) {
  TempDir dir;
  std::string sound = dir.file("sound.db");
  make_sound_db(sound, 34);
  const std::string sound_bytes = testing::read_bytes(sound);
  std::string export_file = dir.file("good.json");
  testing::write_bytes(export_file,
                       run_cli("db export --all --db " + shell_quoted(sound)).stdout_text);
  std::string problem_file = dir.file("problem.json");
  testing::write_bytes(problem_file, testing::small_problem().to_json().dump());
  std::string fresh = dir.file("fresh/target.db");
  for (const HostileCase& hostile : hostile_cases()) {
    if (hostile.name != "winner_rewrite" && hostile.name != "raise_ignore" &&
        hostile.name != "forged_view" && hostile.name != "cross_join_view") {
      continue;  // the API test covers the rest; these four are the attacks that worked
    }
    SCOPED_TRACE(hostile.name);
    std::string path = dir.file(hostile.name + ".db");
    testing::write_bytes(path, sound_bytes);
    apply_raw(path, hostile.sql);
    const std::string before = testing::read_bytes(path);
    const std::string db = shell_quoted(path);
    const std::string commands[] = {
        "db list --db " + db,
        "db show --db " + db,
        "db export --all --db " + db,
        "db import " + db + " --db " + shell_quoted(fresh),
        "db import " + shell_quoted(export_file) + " --db " + db,
        "db prune --db " + db,
        "autotune --simulate --simulate-trial-ms 1 --problem " + shell_quoted(problem_file) +
            " --db " + db,
    };
    for (const std::string& command : commands) {
      // A hang (the cross-join view on unguarded code) fails as exit 124 instead of blocking.
      CliResult result = run_cli(command, "timeout 120");
      EXPECT_TRUE(result.exit_code == 1 || result.exit_code == 2)
          << command << " exited " << result.exit_code << ": " << result.output;
      EXPECT_TRUE(contains(result.output, hostile.expected)) << command << ": " << result.output;
      EXPECT_EQ(testing::read_bytes(path), before) << command << " modified the file";
    }
    EXPECT_FALSE(std::filesystem::exists(fresh)) << "an import from a hostile file wrote a DB";
  }
}

TEST(tuning_db_hostile, AQueryThatRunsTooLongIsStoppedAsADbError) {
  // The mechanism: a query of minutes (finite, so that without a limit this fails rather than
  // hangs) on a connection with a 0.2 s limit.
  sqlite::Connection memory(":memory:", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  memory.set_query_limit(0.2);
  auto start = std::chrono::steady_clock::now();
  std::string message = error_of([&] {
    memory.query_int(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
        "SELECT count(*) FROM c");
  });
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(contains(message, "the query took too long")) << message;
  EXPECT_LT(seconds, 10);
  EXPECT_EQ(memory.query_int("SELECT 41 + 1"), 42) << "the next query runs normally";

  // Defence in depth: even a connection that skipped TuningDb's schema check runs no view.
  TempDir dir;
  std::string hostile = dir.file("cross_join.db");
  make_sound_db(hostile, 34);
  apply_raw(hostile, hostile_cases()[3].sql);
  sqlite::Connection raw(hostile, SQLITE_OPEN_READONLY);
  start = std::chrono::steady_clock::now();
  message = error_of([&] { raw.query_int("SELECT count(*) FROM trials"); });
  EXPECT_NE(message, "(no DbError)");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10);

  // Through TuningDb and the CLI: a big (sound) DB whose full read outlasts a 50 ms limit.
  std::string big = dir.file("big.db");
  make_sound_db(big);
  apply_raw(big,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000) "
            "INSERT INTO trials (problem_key, device_key, generator_version, precision, "
            "config_name, status, reason, median_ms, min_ms, max_ms, max_error, registers, "
            "shared_bytes, spill_bytes, compile_ms, measured_at) SELECT t.problem_key, "
            "t.device_key, t.generator_version, t.precision, 'bulk_' || i, 'ok', '', 5, 4, 6, 0, "
            "64, 0, 0, 1, t.measured_at FROM n, (SELECT * FROM trials LIMIT 1) t");
  ASSERT_EQ(setenv("DECONVTUNE_DB_QUERY_SECONDS", "0.05", 1), 0);
  message = error_of([&] { TuningDb(big, true).trials_matching({}); });
  CliResult cli =
      run_cli("db export --all --db " + shell_quoted(big), "DECONVTUNE_DB_QUERY_SECONDS=0.05");
  ASSERT_EQ(setenv("DECONVTUNE_DB_QUERY_SECONDS", "nan", 1), 0);
  std::string bad_limit = error_of([&] { TuningDb db(big, true); });
  unsetenv("DECONVTUNE_DB_QUERY_SECONDS");
  EXPECT_TRUE(contains(message, "the query took too long")) << message;
  EXPECT_TRUE(contains(message, big)) << message;
  EXPECT_EQ(cli.exit_code, 1) << cli.output;
  EXPECT_TRUE(contains(cli.output, "the query took too long")) << cli.output;
  EXPECT_TRUE(contains(bad_limit, "DECONVTUNE_DB_QUERY_SECONDS='nan'")) << bad_limit;
  // Under the default limit the same reads succeed: the limit, not the DB, stopped them.
  EXPECT_EQ(TuningDb(big, true).trials_matching({}).size(), 300006u);
}

// ---------------------------------------------------------------------------------------------
// Subtle corruption

struct Page {
  std::string name;  // table or index
  int64_t number = 0;
  std::string type;  // internal, leaf, overflow
};

std::vector<Page> pages_of(const std::string& path) {
  RawDb raw(path, SQLITE_OPEN_READONLY);
  sqlite3_stmt* statement = nullptr;
  if (sqlite3_prepare_v2(raw.handle(), "SELECT name, pageno, pagetype FROM dbstat ORDER BY pageno",
                         -1, &statement, nullptr) != SQLITE_OK) {
    throw std::runtime_error(sqlite3_errmsg(raw.handle()));
  }
  std::vector<Page> pages;
  while (sqlite3_step(statement) == SQLITE_ROW) {
    pages.push_back({reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)),
                     sqlite3_column_int64(statement, 1),
                     reinterpret_cast<const char*>(sqlite3_column_text(statement, 2))});
  }
  sqlite3_finalize(statement);
  return pages;
}

// integrity_check's first row, read without touching the file (immutable: no -wal, no -shm).
std::string integrity_of(const std::string& path) {
  try {
    RawDb raw("file:" + path + "?immutable=1", SQLITE_OPEN_READONLY);
    return raw.text("PRAGMA integrity_check");
  } catch (const std::exception& e) {
    return e.what();
  }
}

struct Flip {
  std::string label;
  size_t offset;  // in the file
  unsigned char mask;
};

// Single-byte flips in row payloads (the cell content at a leaf page's end), in page headers, in
// cubin overflow pages (the next-page pointer and the payload) and in index pages.
std::vector<Flip> flips_for(const std::vector<Page>& pages, size_t page_size) {
  std::vector<Flip> flips;
  auto add = [&](const std::string& name, const std::string& type, int count,
                 const std::vector<size_t>& offsets) {
    int taken = 0;
    for (const Page& page : pages) {
      if (page.name != name || page.type != type || page.number == 1 || taken == count) continue;
      ++taken;
      for (size_t offset : offsets) {
        for (unsigned char mask : {0x01, 0x5a}) {
          flips.push_back(
              {fmt::format("{} {} page {} byte {} ^{:#x}", name, type, page.number, offset, mask),
               static_cast<size_t>(page.number - 1) * page_size + offset, mask});
        }
      }
    }
  };
  add("trials", "leaf", 2, {page_size - 40, page_size - 333, 0, 4});
  add("cubin_cache", "overflow", 2, {0, 3, 700, page_size - 1});
  add("cubin_cache", "leaf", 1, {page_size - 20});
  add("trials_identity", "leaf", 2, {page_size - 60, page_size - 500, 3});
  add("sqlite_autoindex_winners_1", "leaf", 1, {page_size - 30});
  add("winners", "leaf", 1, {page_size - 30, page_size - 90});
  return flips;
}

void remove_beside(const std::string& path) {
  for (const char* suffix : {"-wal", "-shm", "-journal"}) std::filesystem::remove(path + suffix);
}

// What the reading side does with the file: a DbError, or rows; never another exception.
void read_everything(const std::string& path, const std::string& label) {
  try {
    TuningDb db(path, true);
    db.devices();
    db.problems();
    db.all_trials();
    db.trials_matching({});
    db.winners();
    db.cubin_cache_stats();
    for (int i = 0; i < 4; ++i) db.cached_cubin(cubin_key(i));
    export_db(db, {ExportFormat::kJson, true});
  } catch (const DbError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": reading threw a non-DbError: " << e.what();
  }
}

// Writes as the tuner and the runtime do; returns the DbError, or "" when they all went in.
std::string write_some(const std::string& path, const std::string& label) {
  try {
    TuningDb db(path);
    db.upsert_device(testing::h100());
    db.record_trial(testing::ok_trial(testing::key_of(testing::small_problem(), testing::h100()),
                                      "igemm_after_flip", 0.75));
    db.store_cubin(cubin_key(99), cubin_bytes(99, 5000), generator_version());
  } catch (const DbError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << label << ": writing threw a non-DbError: " << e.what();
  }
  return "";
}

TEST(tuning_db_hostile, SubtlyCorruptFilesAreReportedOrReadButNeverWrittenInto) {
  TempDir dir;
  std::string sound = dir.file("sound.db");
  make_sound_db(sound, 300, 4, 100 * 1024);
  const std::string sound_bytes = testing::read_bytes(sound);
  const size_t page_size = std::stoul(RawDb(sound).text("PRAGMA page_size"));
  std::vector<Flip> flips = flips_for(pages_of(sound), page_size);
  ASSERT_GE(flips.size(), 40u);
  std::string problem_file = dir.file("problem.json");
  testing::write_bytes(problem_file, testing::small_problem().to_json().dump());

  int corrupt = 0, refused_writes = 0;
  std::string path = dir.file("flipped.db");
  for (size_t i = 0; i < flips.size(); ++i) {
    const Flip& flip = flips[i];
    SCOPED_TRACE(flip.label);
    std::string bytes = sound_bytes;
    bytes[flip.offset] = static_cast<char>(bytes[flip.offset] ^ flip.mask);
    remove_beside(path);
    testing::write_bytes(path, bytes);
    const bool sound_file = integrity_of(path) == "ok";
    corrupt += !sound_file;

    read_everything(path, flip.label);
    std::string import_error = error_of([&] { read_exchange_file(path); });
    if (!sound_file) {
      EXPECT_TRUE(contains(import_error, "corrupt")) << import_error;
    }
    std::string write_error = write_some(path, flip.label);
    if (!sound_file) {
      ++refused_writes;
      EXPECT_TRUE(contains(write_error, "corrupt")) << write_error;
      EXPECT_TRUE(testing::read_bytes(path) == bytes) << "a corrupt file was written into";
      EXPECT_EQ(
          std::filesystem::exists(path + "-wal") ? std::filesystem::file_size(path + "-wal") : 0u,
          0u)
          << "writes went to the -wal";
    } else {
      EXPECT_EQ(integrity_of(path), "ok")
          << "writing into a sound file damaged it: " << write_error;
    }

    // The commands, for every fourth flip (each is a process start).
    if (i % 4 != 0) continue;
    remove_beside(path);
    testing::write_bytes(path, bytes);
    const std::string db = shell_quoted(path);
    for (const std::string& command :
         {"db list --db " + db, "db export --all --db " + db,
          "db import " + db + " --db " + shell_quoted(dir.file("target.db")),
          "autotune --simulate --simulate-trial-ms 1 --problem " + shell_quoted(problem_file) +
              " --db " + db}) {
      CliResult result = run_cli(command, "timeout 120");
      EXPECT_TRUE(result.exit_code >= 0 && result.exit_code <= 2)
          << command << " exited " << result.exit_code << ": " << result.output;
      EXPECT_FALSE(contains(result.output, "terminate called")) << result.output;
      if (!sound_file) {
        EXPECT_TRUE(testing::read_bytes(path) == bytes) << command << " wrote into a corrupt file";
      }
    }
    if (sound_file) {
      EXPECT_EQ(integrity_of(path), "ok");
    }
  }
  std::fprintf(stderr, "%zu flips, %d of them corrupt by integrity_check (writes refused: %d)\n",
               flips.size(), corrupt, refused_writes);
  EXPECT_GE(corrupt, 10) << "the flips should reach pages integrity_check reads";
}

// ---------------------------------------------------------------------------------------------
// Read-only

using ::deconvtune::testing::in_unprivileged_child;
using ::deconvtune::testing::kNobody;
using ::deconvtune::testing::unprivileged_prefix;

// What a read-only reader sees, and what a write attempt says.
std::string read_and_try_writing(const std::string& path) {
  std::string report;
  try {
    TuningDb db(path, true);
    report += fmt::format("winners={} trials={} cubins={}\n", db.winners().size(),
                          db.all_trials().size(), db.cubin_cache_stats().entries);
    report += fmt::format("imported_trials={}\n", read_exchange_file(path).trials.size());
  } catch (const std::exception& e) {
    report += std::string("read failed: ") + e.what() + "\n";
  }
  report += "write: " + error_of([&] { TuningDb(path).upsert_device(testing::h100()); }) + "\n";
  return report;
}

TEST(tuning_db_hostile, ReadOnlyFolderOrFileIsReadByEveryReaderAndWritesSayReadOnly) {
  TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms(0755));
  std::string folder = dir.file("ro"), path = dir.file("ro/tuning.db");
  std::filesystem::create_directory(folder);
  make_sound_db(path, 3, 2, 1000);
  // What a reader must see, from a copy (a reader leaves a -shm beside a file it may write).
  std::string copy = dir.file("copy.db");
  std::filesystem::copy_file(path, copy);
  const std::string expected_export =
      run_cli("db export --all --db " + shell_quoted(copy)).stdout_text;
  ASSERT_FALSE(std::filesystem::exists(path + "-shm"));
  // The file itself writable by the reader, its folder not: SQLite cannot make the -shm.
  if (geteuid() == 0) {
    ASSERT_EQ(chown(path.c_str(), kNobody, kNobody), 0);
  }
  std::filesystem::permissions(folder, std::filesystem::perms(0555));

  // A -wal that holds committed transactions, its -shm gone, in a read-only folder.
  std::string wal_folder = dir.file("ro_wal"), wal_path = dir.file("ro_wal/tuning.db");
  std::filesystem::create_directory(wal_folder);
  make_sound_db(wal_path);
  {
    RawDb raw(wal_path);
    sqlite3_db_config(raw.handle(), SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
    raw.exec("UPDATE winners SET median_ms = median_ms / 2");
  }
  std::filesystem::remove(wal_path + "-shm");
  ASSERT_GT(std::filesystem::file_size(wal_path + "-wal"), 0u);
  std::filesystem::permissions(wal_folder, std::filesystem::perms(0555));

  // A read-only file in a folder the reader may write.
  std::string rw_folder = dir.file("rw"), ro_file = dir.file("rw/tuning.db");
  std::filesystem::create_directory(rw_folder);
  make_sound_db(ro_file, 3);
  std::filesystem::permissions(rw_folder, std::filesystem::perms(0777));
  std::filesystem::permissions(ro_file, std::filesystem::perms(0444));

  const std::string before = testing::read_bytes(path);
  std::string report = in_unprivileged_child([&] {
    return read_and_try_writing(path) +
           "ro_wal: " + error_of([&] { TuningDb(wal_path, true).winners(); }) +
           "\nrw: " + read_and_try_writing(ro_file);
  });
  if (contains(report, "cannot drop to nobody")) {
    GTEST_SKIP() << "running as root without CAP_SETUID: permissions cannot be tested here";
  }
  SCOPED_TRACE(report);
  EXPECT_TRUE(contains(report, "winners=2 trials=9 cubins=2\nimported_trials=9\n"));
  EXPECT_TRUE(contains(report, "write: " + path + ": the tuning DB is read-only here: the folder " +
                                   folder + " is not writable"));
  EXPECT_FALSE(contains(report, "corrupt"));
  EXPECT_TRUE(contains(report, "ro_wal: " + wal_path + ": cannot read the tuning DB: " + wal_path +
                                   "-wal holds transactions that are not in the file yet"));
  EXPECT_TRUE(contains(report, "rw: winners=2 trials=9 cubins=0\n"));
  EXPECT_TRUE(contains(
      report, "write: " + ro_file + ": the tuning DB is read-only here: the file is not writable"));
  EXPECT_EQ(testing::read_bytes(path), before);
  EXPECT_FALSE(std::filesystem::exists(path + "-shm"));

  // The commands, as the same unprivileged user.
  const std::string as_reader = unprivileged_prefix();
  const std::string db = shell_quoted(path);
  CliResult list = run_cli("db list --db " + db, as_reader);
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(contains(list.output, "igemm_tf32_bn32")) << list.output;
  CliResult show = run_cli("db show --db " + db, as_reader);
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_TRUE(contains(show.output, "CUDA_ERROR_ILLEGAL_ADDRESS")) << show.output;
  CliResult exported = run_cli("db export --all --db " + db, as_reader);
  EXPECT_EQ(exported.exit_code, 0);
  EXPECT_EQ(exported.stdout_text, expected_export);
  CliResult listed_file = run_cli("db list --db " + shell_quoted(ro_file), as_reader);
  EXPECT_EQ(listed_file.exit_code, 0) << listed_file.output;
  // The read-only open's reason, not the read-write retry's ("read-only here").
  CliResult listed_wal = run_cli("db list --db " + shell_quoted(wal_path), as_reader);
  EXPECT_EQ(listed_wal.exit_code, 1) << listed_wal.output;
  EXPECT_TRUE(contains(listed_wal.output, "-wal holds transactions")) << listed_wal.output;
  std::string export_file = dir.file("export.json");
  testing::write_bytes(export_file, expected_export);
  std::filesystem::permissions(export_file, std::filesystem::perms(0644));
  CliResult import = run_cli("db import " + shell_quoted(export_file) + " --db " + db, as_reader);
  EXPECT_EQ(import.exit_code, 1) << import.output;
  EXPECT_TRUE(contains(import.output, "read-only here")) << import.output;
  EXPECT_FALSE(contains(import.output, "corrupt")) << import.output;
  EXPECT_EQ(testing::read_bytes(path), before);
  // The other readers of a DB: `db show --json`, `db import` from it into a DB of the reader's,
  // and `default-report`, which without a GPU reports the times the DB holds.
  CliResult show_json = run_cli("db show --json --db " + db, as_reader);
  EXPECT_EQ(show_json.exit_code, 0) << show_json.output;
  EXPECT_TRUE(contains(show_json.stdout_text, "igemm_extra_2")) << show_json.output;
  const std::string fresh = dir.file("rw/fresh.db");
  CliResult import_from = run_cli("db import " + db + " --db " + shell_quoted(fresh), as_reader);
  EXPECT_EQ(import_from.exit_code, 0) << import_from.output;
  EXPECT_EQ(run_cli("db list --db " + shell_quoted(fresh)).exit_code, 0);
  const std::string problems = dir.file("rw/problems.jsonl");
  testing::write_bytes(problems, testing::small_problem().to_json().dump() + "\n");
  std::filesystem::permissions(problems, std::filesystem::perms(0644));
  CliResult report_cmd = run_cli(
      "default-report --precisions fp32 --problems " + shell_quoted(problems) + " --db " + db,
      as_reader);
  EXPECT_EQ(report_cmd.exit_code, 0) << report_cmd.output;
  EXPECT_FALSE(contains(report_cmd.output, "corrupt")) << report_cmd.output;
  EXPECT_FALSE(contains(report_cmd.output, "read-only")) << report_cmd.output;
  EXPECT_EQ(testing::read_bytes(path), before);
  EXPECT_FALSE(std::filesystem::exists(path + "-shm"));

  for (const std::string& sub : {folder, wal_folder, rw_folder}) {
    std::filesystem::permissions(sub, std::filesystem::perms(0755));  // so TempDir can clean up
  }
}

}  // namespace
}  // namespace deconvtune::db

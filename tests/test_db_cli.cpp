// `deconvtune db ...` as a user meets it, through the built binary: output, exit codes (0 ok,
// 1 failure, 2 bad input) and files left as they were on refusal.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "codegen/generator.hpp"
#include "tests/db_test_support.hpp"
#include "tests/unprivileged.hpp"
#include "tuning_db/exchange.hpp"

namespace deconvtune::db {
namespace {

using testing::TempDir;

using testing::CliResult;
using testing::run_cli;
using testing::shell_quoted;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A DB on a read-only mount (issue 14.5): every read command reads it (the immutable open, as a
// read-only mount cannot hold the -shm file WAL wants) and says nothing of corruption; a write
// says read-only and leaves it as it was.
TEST(tuning_db_cli, EveryReadCommandReadsADbOnAReadOnlyMount) {
  TempDir dir;
  const std::string folder = dir.file("mounted");
  std::filesystem::create_directories(folder);
  const std::string path = folder + "/tuning.db";
  {
    TuningDb db(path);
    testing::fill_sample(db);
  }
  const std::string before = testing::read_bytes(path);
  const std::string report = deconvtune::testing::on_read_only_mount(folder, [&] {
    std::string failures;
    for (const char* command : {"db list", "db show", "db export --all"}) {
      const CliResult result = run_cli(std::string(command) + " --db " + shell_quoted(path));
      if (result.exit_code != 0 || contains(result.output, "corrupt"))
        failures += std::string(command) + ": " + result.output + "\n";
    }
    const CliResult write = run_cli("db prune --older-than 0 --db " + shell_quoted(path));
    if (write.exit_code == 0 || !contains(write.output, "read-only"))
      failures += "db prune: exit " + std::to_string(write.exit_code) + ": " + write.output;
    return failures.empty() ? std::string("read") : failures;
  });
  if (report.rfind("cannot mount read-only", 0) == 0) GTEST_SKIP() << report;
  EXPECT_EQ(report, "read");
  EXPECT_EQ(testing::read_bytes(path), before);
}

TEST(tuning_db_cli, ExportImportListShowPruneThroughTheBinary) {
  TempDir dir;
  std::string a = dir.file("a.db"), b = dir.file("b.db");
  DeviceRecord device = testing::h100();
  Problem problem = testing::small_problem();
  {
    TuningDb db(a);
    testing::fill_sample(db);
    // One key of this build's generator, the rest stale.
    WinnerKey current = testing::key_of(problem, device, generator_version());
    db.record_trial(testing::ok_trial(current, "igemm_current", 0.5));
  }
  CliResult exported = run_cli("db export --all --db " + shell_quoted(a));
  ASSERT_EQ(exported.exit_code, 0);
  std::string file = dir.file("a.json");
  testing::write_bytes(file, exported.stdout_text);
  CliResult imported = run_cli("db import " + shell_quoted(file) + " --db " + shell_quoted(b));
  ASSERT_EQ(imported.exit_code, 0) << imported.output;
  EXPECT_TRUE(contains(imported.output, "7 added")) << imported.output;
  EXPECT_EQ(run_cli("db export --all --db " + shell_quoted(b)).stdout_text, exported.stdout_text)
      << "export -> import -> export is exact";
  EXPECT_EQ(run_cli("db export --format csv --db " + shell_quoted(b)).stdout_text,
            run_cli("db export --format csv --db " + shell_quoted(a)).stdout_text);
  // Importing another DB file directly.
  std::string c = dir.file("c.db");
  ASSERT_EQ(run_cli("db import " + shell_quoted(a) + " --db " + shell_quoted(c)).exit_code, 0);
  EXPECT_EQ(run_cli("db export --all --db " + shell_quoted(c)).stdout_text, exported.stdout_text);

  CliResult list = run_cli("db list --wide --db " + shell_quoted(b));  // with the generator column
  EXPECT_EQ(list.exit_code, 0);
  EXPECT_TRUE(contains(list.output, "igemm_current")) << list.output;
  EXPECT_TRUE(contains(list.output, "1.2500")) << list.output;
  EXPECT_TRUE(contains(list.output, "(stale)")) << list.output;
  // The default path comes from DECONVTUNE_DB when --db is absent.
  CliResult env_list = run_cli("db list --wide", "DECONVTUNE_DB=" + shell_quoted(b));
  EXPECT_EQ(env_list.output, list.output);

  CliResult show =
      run_cli("db show --problem " + shell_quoted(problem.key()) + " --db " + shell_quoted(b));
  EXPECT_EQ(show.exit_code, 0) << show.output;
  size_t fast = show.output.find("igemm_tf32_bn32"), slow = show.output.find("direct_ffma_t256"),
         failed = show.output.find("CUDA_ERROR_ILLEGAL_ADDRESS");
  ASSERT_NE(fast, std::string::npos) << show.output;
  EXPECT_LT(fast, slow) << "best first";
  EXPECT_LT(slow, failed) << "failed ones last, with their reason";
  EXPECT_TRUE(contains(show.output, "faulted"));
  CliResult tf32 = run_cli("db show --precision tf32 --db " + shell_quoted(b));
  EXPECT_FALSE(contains(tf32.output, ":fp32|")) << tf32.output;

  CliResult dry = run_cli("db prune --dry-run --db " + shell_quoted(b));
  EXPECT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_TRUE(contains(dry.output, "would remove")) << dry.output;
  EXPECT_TRUE(contains(dry.output, "trials: 6")) << dry.output;
  EXPECT_EQ(run_cli("db export --all --db " + shell_quoted(b)).stdout_text, exported.stdout_text);
  CliResult pruned = run_cli("db prune --db " + shell_quoted(b));
  EXPECT_EQ(pruned.exit_code, 0);
  EXPECT_TRUE(contains(pruned.output, "removed")) << pruned.output;
  TuningDb after(b, true);
  EXPECT_EQ(after.trial_count(), 1);
  ASSERT_EQ(after.winners().size(), 1u);
  EXPECT_EQ(after.winners()[0].config_name, "igemm_current");
}

TEST(tuning_db_cli, BadInputExitsTwoFailuresExitOneAndFilesStayUnchanged) {
  TempDir dir;
  std::string good = dir.file("good.db");
  {
    TuningDb db(good);
    testing::fill_sample(db);
  }
  std::string good_export = run_cli("db export --all --db " + shell_quoted(good)).stdout_text;
  std::string before = run_cli("db export --all --db " + shell_quoted(good)).stdout_text;
  ASSERT_FALSE(before.empty());

  // A garbled import: refused with the field named, exit 2, nothing changed.
  std::string garbled = dir.file("garbled.json");
  std::string text = good_export;
  text.insert(text.find("\"median_ms\": ") + 13, "-");
  testing::write_bytes(garbled, text);
  CliResult refused = run_cli("db import " + shell_quoted(garbled) + " --db " + shell_quoted(good));
  EXPECT_EQ(refused.exit_code, 2) << refused.output;
  EXPECT_TRUE(contains(refused.output, "median_ms")) << refused.output;
  EXPECT_TRUE(contains(refused.output, "nothing was imported")) << refused.output;
  EXPECT_FALSE(contains(refused.output, "terminate called")) << refused.output;
  EXPECT_EQ(run_cli("db export --all --db " + shell_quoted(good)).stdout_text, before);
  // ... and does not create a DB where there was none.
  std::string fresh = dir.file("fresh/new.db");
  EXPECT_EQ(
      run_cli("db import " + shell_quoted(garbled) + " --db " + shell_quoted(fresh)).exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(fresh));
  testing::write_bytes(dir.file("not.json"), "{\"format\": \"deconvtune-tuning-db\", \"version\"");
  EXPECT_EQ(
      run_cli("db import " + shell_quoted(dir.file("not.json")) + " --db " + shell_quoted(good))
          .exit_code,
      2);
  EXPECT_EQ(
      run_cli("db import " + shell_quoted(dir.file("missing.json")) + " --db " + shell_quoted(good))
          .exit_code,
      2);

  // A --db file that is not a tuning DB: exit 1, named, untouched.
  std::string text_file = dir.file("notes.txt");
  testing::write_bytes(text_file, "shopping list\n");
  for (const char* command : {"db list", "db show", "db export", "db prune"}) {
    CliResult result = run_cli(std::string(command) + " --db " + shell_quoted(text_file));
    EXPECT_EQ(result.exit_code, 1) << command << ": " << result.output;
    EXPECT_TRUE(contains(result.output, text_file)) << result.output;
    EXPECT_TRUE(contains(result.output, "not an SQLite database")) << result.output;
  }
  CliResult into_text =
      run_cli("db import " + shell_quoted(garbled) + " --db " + shell_quoted(text_file));
  EXPECT_NE(into_text.exit_code, 0);
  CliResult valid_into_text =
      run_cli("db import " + shell_quoted(good) + " --db " + shell_quoted(text_file));
  EXPECT_EQ(valid_into_text.exit_code, 1) << valid_into_text.output;
  EXPECT_EQ(testing::read_bytes(text_file), "shopping list\n");

  // Bad arguments.
  EXPECT_EQ(run_cli("db export --format xml --db " + shell_quoted(good)).exit_code, 2);
  EXPECT_EQ(run_cli("db prune --older-than -3 --db " + shell_quoted(good)).exit_code, 2);
  EXPECT_EQ(run_cli("db").exit_code, 2);
  EXPECT_EQ(run_cli("db frobnicate").exit_code, 2);
  CliResult bad_problem = run_cli("db show --problem '{\"batch\": 0}' --db " + shell_quoted(good));
  EXPECT_EQ(bad_problem.exit_code, 2) << bad_problem.output;
  EXPECT_EQ(run_cli("db show --problem convT2d:nonsense --db " + shell_quoted(good)).exit_code, 2);

  // No DB yet: the read commands say so and succeed; nothing is created.
  std::string missing = dir.file("nothing/here.db");
  CliResult list = run_cli("db list --db " + shell_quoted(missing));
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(contains(list.output, "no tuning DB")) << list.output;
  CliResult empty_export = run_cli("db export --db " + shell_quoted(missing));
  EXPECT_EQ(empty_export.exit_code, 0);
  EXPECT_NO_THROW(parse_exchange_json(empty_export.stdout_text));
  EXPECT_FALSE(std::filesystem::exists(missing));
}

}  // namespace
}  // namespace deconvtune::db

// What the commands print (issue 17.2-17.4): the one table printer fitted to the width, the
// compact problem label, the trials' figures (% of best, speedup over the rule default, GB/s), a
// winner's origin in `db list`, and --json: stdout holds one JSON document and nothing else.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "tests/db_test_support.hpp"
#include "tools/commands.hpp"
#include "tools/table.hpp"
#include "tools/trial_report.hpp"
#include "tuner/simulate.hpp"
#include "tuner/tuner.hpp"

namespace deconvtune::tools {
namespace {

using nlohmann::json;
namespace dbt = db::testing;
using dbt::TempDir;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

const std::string kLongConfig = "pgemm_3xtf32_bn32_bm64_bk16_wm32_wn32_stages3_mishexact_x";

Table sample_table() {
  Table table({{"#", Align::kRight, 5},
               {"config"},
               {"median ms", Align::kRight},
               {"speedup", Align::kRight, 1},
               {"% best", Align::kRight, 2},
               {"regs", Align::kRight, 8},
               {"reason", Align::kLeft, 0, /*truncatable=*/true}});
  table.add_row({"1", kLongConfig, "1.2345", "1.21x", "100%", "128", ""});
  table.add_row({"2", "direct_ffma_t256", "12.0000", "0.12x", "10%", "-",
                 "CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access was encountered while "
                 "running the kernel"});
  return table;
}

TEST(CliTable, EightyColumnsLeaveOutOptionalColumnsInOrderThenCutFreeText) {
  const Table::Rendered rendered = sample_table().render(80);
  ASSERT_EQ(rendered.lines.size(), 3u);
  for (const std::string& line : rendered.lines) EXPECT_LE(line.size(), 80u) << line;
  EXPECT_EQ(rendered.omitted_columns, (std::vector<std::string>{"regs", "#", "% best", "speedup"}));
  EXPECT_TRUE(contains(rendered.lines[1], kLongConfig)) << "identifiers are never cut";
  EXPECT_EQ(rendered.lines[2].size(), 80u) << "the reason is cut to the width left";
  EXPECT_TRUE(contains(rendered.lines[2], "  CUDA_")) << rendered.lines[2];
  EXPECT_EQ(rendered.lines[2].substr(rendered.lines[2].size() - 3), "...") << rendered.lines[2];
  // The right-aligned column ends at one place on every line.
  const size_t end = rendered.lines[0].find("median ms") + std::string("median ms").size();
  EXPECT_EQ(rendered.lines[1].find("1.2345") + 6, end);
  EXPECT_EQ(rendered.lines[2].find("12.0000") + 7, end);
}

TEST(CliTable, NoLimitShowsEverythingWhole) {
  const Table::Rendered rendered = sample_table().render(0);
  EXPECT_TRUE(rendered.omitted_columns.empty());
  EXPECT_TRUE(contains(rendered.lines[2], "while running the kernel")) << rendered.lines[2];
  EXPECT_EQ(rendered.lines[0].rfind("reason"), rendered.lines[0].size() - 6)
      << "no line ends in spaces";
  for (const std::string& line : rendered.lines) EXPECT_NE(line.back(), ' ') << line;
}

TEST(CliTable, FixedColumnsWiderThanTheWindowOverflowRatherThanCut) {
  Table table({{"config"}, {"ms", Align::kRight}});
  table.add_row({kLongConfig, "1.0000"});
  const Table::Rendered rendered = table.render(40);
  EXPECT_TRUE(contains(rendered.lines[1], kLongConfig));
  EXPECT_TRUE(rendered.omitted_columns.empty());
}

TEST(CliTable, ARowMustHaveACellPerColumn) {
  Table table({{"a"}, {"b"}});
  EXPECT_THROW(table.add_row({"only one"}), std::logic_error);
}

TEST(CliTable, MarkdownKeepsEveryColumnAndAlignment) {
  const std::vector<std::string> lines = lines_of(sample_table().markdown());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "| # | config | median ms | speedup | % best | regs | reason |");
  EXPECT_EQ(lines[1], "| ---: | --- | ---: | ---: | ---: | ---: | --- |");
  EXPECT_EQ(lines[2], "| 1 | " + kLongConfig + " | 1.2345 | 1.21x | 100% | 128 |  |");
}

TEST(CliLabel, CompactLabelNamesTheShapeAndWideTheWholeKey) {
  Problem seed = Problem::seed();
  EXPECT_EQ(compact_label(seed), "n128 64->64 128x128 k3x3 s2x2 g1");
  EXPECT_EQ(problem_text(seed, /*wide=*/false), "seed: n128 64->64 128x128 k3x3 s2x2 g1");
  EXPECT_EQ(problem_text(seed, /*wide=*/true), "seed: " + seed.key());
  seed.bias = false;
  seed.name.clear();
  EXPECT_EQ(problem_text(seed, false), "n128 64->64 128x128 k3x3 s2x2 g1 nobias");
  seed.dtype = DType::kBFloat16;
  seed.layout = Layout::kNhwc;
  EXPECT_EQ(compact_label(seed), "n128 64->64 128x128 k3x3 s2x2 g1 nobias bfloat16 NHWC");
  const Output output(/*json=*/false, /*wide=*/false);
  EXPECT_EQ(output.problem_text("not a key", "mine"), "mine: not a key") << "shown as it is";
}

TEST(CliFigures, PercentOfBestSpeedupOverTheRuleDefaultAndGigabytesPerSecond) {
  const Problem problem = dbt::small_problem();
  const std::string rule = default_config(problem).name();
  db::TrialRecord best, the_default, failed;
  best.config_name = "igemm_fast";
  best.median_ms = 0.5;
  the_default.config_name = rule;
  the_default.median_ms = 2.0;
  failed.config_name = "direct_broken";
  failed.status = Disposition::kFaulted;
  failed.median_ms = 0;
  failed.registers = -1;
  const KeyFigures figures = key_figures(problem, std::nullopt, {best, the_default, failed});
  EXPECT_EQ(figures.rule_default, rule);
  EXPECT_DOUBLE_EQ(figures.best_ms, 0.5);
  EXPECT_DOUBLE_EQ(figures.rule_default_ms, 2.0);
  const json fast = trial_json(best, figures);
  EXPECT_DOUBLE_EQ(fast["percent_of_best"].get<double>(), 100.0);
  EXPECT_DOUBLE_EQ(fast["speedup_over_default"].get<double>(), 4.0);
  EXPECT_DOUBLE_EQ(fast["gbps"].get<double>(),
                   static_cast<double>(problem.io_bytes()) / (0.5 * 1e6));
  EXPECT_TRUE(fast["fraction_of_copy"].is_null()) << "no copy bandwidth is measured";
  EXPECT_DOUBLE_EQ(trial_json(the_default, figures)["percent_of_best"].get<double>(), 25.0);
  const json broken = trial_json(failed, figures);
  for (const char* field : {"median_ms", "speedup_over_default", "gbps", "registers"}) {
    EXPECT_TRUE(broken[field].is_null()) << field << ": a failed trial has no time";
  }
  EXPECT_TRUE(contains(bandwidth_text(figures, 0.5), "copy bandwidth not measured"));
  EXPECT_EQ(rule_default_text(figures), rule + ": 2.0000 ms; the best is 4.00x faster");
  EXPECT_EQ(rule_default_text(key_figures(problem, std::nullopt, {best})), rule + ": not measured");
  db::TrialRecord wrong_default = the_default;
  wrong_default.status = Disposition::kWrong;
  EXPECT_EQ(rule_default_text(key_figures(problem, std::nullopt, {best, wrong_default})),
            rule + ": wrong, no verified time");
}

// ---------------------------------------------------------------------------------------------
// Through the binary

using Ran = deconvtune::testing::CliResult;

// At 80 columns unless told otherwise: the tables' fitting is part of what is checked.
Ran run_binary(const std::string& arguments, const std::string& environment = "COLUMNS=80") {
  return deconvtune::testing::run_cli(arguments, environment);
}

// stdout parsed as one JSON document; a test failure (and null) when it is anything else.
// The element of `array` whose "problem_key" is `key` (null when none is).
json of_problem(const json& array, const std::string& key) {
  for (const json& element : array) {
    if (element["problem_key"] == key) return element;
  }
  ADD_FAILURE() << "no element for " << key << " in " << array.dump();
  return nullptr;
}

Problem named(Problem problem, const std::string& name, int64_t stride) {
  problem.name = name;
  problem.stride = {stride, stride};
  problem.output_padding = {stride - 1, stride - 1};
  return problem;
}

json document_of(const Ran& run) {
  try {
    return json::parse(run.stdout_text);
  } catch (const json::parse_error& e) {
    ADD_FAILURE() << "stdout is not one JSON document: " << e.what() << "\n" << run.stdout_text;
    return nullptr;
  }
}

// A problems file of two named problems (the seed's shape and its stride-1 sibling, whose rule
// defaults verify under the simulated measurer), tuned with the simulated measurer.
struct TunedDb {
  TempDir dir;
  std::string problems = dir.file("problems.jsonl");
  std::string db = dir.file("t.db");
  Problem first = named(Problem::seed(), "headline", 2);
  Problem second = named(Problem::seed(), "stride1", 1);
  Ran autotune;

  TunedDb() {
    std::ofstream file(problems);
    for (const Problem& problem : {first, second}) {
      json spec = problem.to_json();
      spec["name"] = problem.name;
      file << spec.dump() << "\n";
    }
    file.close();
    autotune = run_binary("autotune --simulate --no-launch -q --json --problems '" + problems +
                          "' --db '" + db + "'");
  }
};

// --dtype and --layout override the problem's own in inspect, run and autotune, as --precision
// does; a file's lines that become one problem are tuned once; an unknown name is bad input.
TEST(CliOutput, DtypeAndLayoutFlagsOverrideTheProblemsOwn) {
  const Ran list =
      run_binary("inspect --problem seed --dtype bfloat16 --layout NHWC --list-configs --json");
  ASSERT_EQ(list.exit_code, 0) << list.stderr_text;
  const json configs = document_of(list);
  EXPECT_NE(configs["problem_key"].get<std::string>().find(":bias:bfloat16:NHWC:fp32|"),
            std::string::npos)
      << configs["problem_key"];
  ASSERT_FALSE(configs["configs"].empty());
  // The general kernel, and the Hopper family with x through registers (which widen 16-bit x).
  for (const json& config : configs["configs"]) {
    EXPECT_TRUE(config["family"] == "direct" ||
                (config["family"] == "wsgemm" &&
                 config["name"].get<std::string>().find("_xl1_") != std::string::npos))
        << config;
  }

  TempDir dir;
  const std::string problems = dir.file("problems.jsonl");
  {
    std::ofstream file(problems);
    json spec = Problem::seed().to_json();
    file << spec.dump() << "\n";
    spec["dtype"] = "bfloat16";
    file << spec.dump() << "\n";
  }
  const Ran tuned = run_binary(
      "autotune --simulate --no-launch -q --json --max-trials 2 --dtype float16 "
      "--layout NHWC --problems '" +
      problems + "' --db '" + dir.file("t.db") + "'");
  ASSERT_EQ(tuned.exit_code, 0) << tuned.stderr_text;
  const json document = document_of(tuned);
  ASSERT_EQ(document["problems"].size(), 1u) << tuned.stdout_text;
  Problem expected = Problem::seed();
  expected.dtype = DType::kFloat16;
  expected.layout = Layout::kNhwc;
  EXPECT_EQ(document["problems"][0]["problem_key"], expected.key());

  const Ran bad = run_binary("inspect --problem seed --dtype half");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.stderr_text.find("'half' is not a data type (float32, bfloat16 or float16)"),
            std::string::npos)
      << bad.stderr_text;
  const Ran bad_layout = run_binary("run --problem seed --layout channels_last");
  EXPECT_EQ(bad_layout.exit_code, 2);
  EXPECT_NE(bad_layout.stderr_text.find("is not a layout"), std::string::npos)
      << bad_layout.stderr_text;
}

TEST(CliOutput, AutotuneJsonIsOneDocumentWithFiguresAndNames) {
  TunedDb tuned;
  ASSERT_EQ(tuned.autotune.exit_code, 0) << tuned.autotune.stderr_text;
  const json document = document_of(tuned.autotune);
  ASSERT_EQ(document["problems"].size(), 2u) << tuned.autotune.stdout_text;
  const json& report = document["problems"][0];
  EXPECT_EQ(report["name"], "headline");
  EXPECT_EQ(report["problem_key"], tuned.first.key());
  EXPECT_EQ(report["label"], compact_label(tuned.first));
  EXPECT_EQ(report["figures"]["rule_default"]["config"], default_config(tuned.first).name());
  EXPECT_TRUE(report["figures"]["rule_default"]["median_ms"].is_number())
      << "the rule default is measured first";
  EXPECT_EQ(report["figures"]["copy_gbps"], tuner::kSimulatedCopyGbps) << "the device's, stored";
  ASSERT_FALSE(report["best"].empty());
  EXPECT_DOUBLE_EQ(report["best"][0]["percent_of_best"].get<double>(), 100.0);
  EXPECT_EQ(report["best"][0]["config"], report["winner"]);
  EXPECT_GE(report["best"][0]["speedup_over_default"].get<double>(), 1.0);
  EXPECT_GT(report["best"][0]["gbps"].get<double>(), 0.0);
  // The summary went to stderr, with the name, the default and the honest bandwidth line.
  EXPECT_TRUE(
      contains(tuned.autotune.stderr_text, "problem  headline: " + compact_label(tuned.first)))
      << tuned.autotune.stderr_text;
  EXPECT_TRUE(
      contains(tuned.autotune.stderr_text, "default  " + default_config(tuned.first).name() + ": "))
      << tuned.autotune.stderr_text;
  EXPECT_DOUBLE_EQ(report["best"][0]["fraction_of_copy"].get<double>(),
                   report["best"][0]["gbps"].get<double>() / tuner::kSimulatedCopyGbps);
  EXPECT_TRUE(contains(tuned.autotune.stderr_text, "% of the 10000 GB/s copy)"))
      << tuned.autotune.stderr_text;
}

// default-report under --json: one document on stdout with a row per problem and precision (the
// markdown to stderr); without a GPU the times are the ones the tuner recorded.
TEST(CliOutput, DefaultReportJsonHoldsARowPerProblem) {
  TunedDb tuned;
  ASSERT_EQ(tuned.autotune.exit_code, 0) << tuned.autotune.stderr_text;
  const Ran report = run_binary("default-report --json --precisions fp32 --reps 3 --problems '" +
                                tuned.problems + "' --db '" + tuned.db + "'");
  const json document = document_of(report);
  ASSERT_EQ(document["rows"].size(), 2u) << report.stdout_text << report.stderr_text;
  EXPECT_TRUE(contains(report.stderr_text, "| problem |")) << "the markdown goes to stderr";
  EXPECT_FALSE(contains(report.stdout_text, "| problem |"));
  for (const json& row : document["rows"]) {
    const Problem& problem = row["name"] == "headline" ? tuned.first : tuned.second;
    EXPECT_EQ(row["problem_key"], problem.key());
    EXPECT_EQ(row["precision"], "fp32");
    EXPECT_EQ(row["rule"]["config"], default_config(problem).name());
    EXPECT_TRUE(row["heuristic"]["source"] == "nearest" || row["heuristic"]["source"] == "rule");
  }
  if (document["times"] == "recorded") {  // no GPU: the simulated device's winners, as stored
    EXPECT_EQ(document["device_key"], tuner::simulated_device().key());
    EXPECT_EQ(document["summary"]["rows_with_winner"], 2);
    for (const json& row : document["rows"]) {
      EXPECT_TRUE(row["winner"]["config"].is_string()) << row.dump();
      EXPECT_TRUE(row["winner"]["median_ms"].is_number()) << row.dump();
    }
  }
}

// Without a GPU the report shows the winners of the DB's only device; a DB of none (or several)
// leaves it nothing to show, and --json still says so on stdout.
TEST(CliOutput, DefaultReportJsonSaysWhyItHasNoRows) {
  if (DriverApi::available()) GTEST_SKIP() << "a GPU is present: the report measures on it";
  TempDir dir;
  const std::string db = dir.file("empty.db");
  const std::string problems = dir.file("problems.jsonl");
  std::ofstream(problems) << Problem::seed().to_json().dump() << "\n";
  { db::TuningDb create(db); }
  const Ran report =
      run_binary("default-report --json --problems '" + problems + "' --db '" + db + "'");
  EXPECT_EQ(report.exit_code, kExitNoGpu) << report.stderr_text;
  const json document = document_of(report);
  EXPECT_TRUE(document["rows"].empty());
  EXPECT_TRUE(contains(document["error"].get<std::string>(), "holds 0 devices"))
      << report.stdout_text;
  EXPECT_TRUE(contains(report.stderr_text, "holds 0 devices"));
}

TEST(CliOutput, AutotuneSummaryTableFitsEightyColumns) {
  TunedDb tuned;
  const Ran again =
      run_binary("autotune --simulate --no-launch -q --problem seed --db '" + tuned.db + "'");
  ASSERT_EQ(again.exit_code, 0) << again.stderr_text;
  const std::vector<std::string> lines = lines_of(again.stdout_text);
  auto header = std::find_if(lines.begin(), lines.end(), [](const std::string& line) {
    return contains(line, "config") && contains(line, "median ms");
  });
  ASSERT_NE(header, lines.end()) << again.stdout_text;
  for (auto line = header; line != lines.end() && !contains(*line, "left out"); ++line) {
    EXPECT_LE(line->size(), 80u) << *line;
  }
  EXPECT_TRUE(contains(again.stdout_text, "columns left out to fit 80 columns; --wide shows them"))
      << again.stdout_text;
  const Ran wide = run_binary("autotune --simulate --no-launch -q --wide --problem seed --db '" +
                              tuned.db + "'");
  EXPECT_TRUE(contains(wide.stdout_text, Problem::seed().key())) << wide.stdout_text;
  EXPECT_TRUE(contains(wide.stdout_text, "max |err|")) << "every column under --wide";
}

TEST(CliOutput, DbListStatesOriginsAndLeavesOutDetailAtEightyColumns) {
  TunedDb tuned;
  ASSERT_EQ(tuned.autotune.exit_code, 0) << tuned.autotune.stderr_text;
  const std::string here = tuner::simulated_device().key();
  const std::string db = " --db '" + tuned.db + "'";
  const Ran listed = run_binary("db list --json --problems '" + tuned.problems +
                                "' --device-key '" + here + "'" + db);
  ASSERT_EQ(listed.exit_code, 0) << listed.stderr_text;
  json document = document_of(listed);
  ASSERT_EQ(document["winners"].size(), 2u) << listed.stdout_text;
  EXPECT_EQ(document["this_device"], here);
  for (const json& winner : document["winners"]) {
    EXPECT_EQ(winner["origin"], "this GPU");
    EXPECT_FALSE(winner["imported"].get<bool>());
  }
  EXPECT_EQ(of_problem(document["winners"], tuned.first.key())["name"], "headline");
  // Another GPU of the class (arch and SM count), another class.
  const std::string sibling = "NVIDIA H200|" + db::device_class(here);
  EXPECT_EQ(document_of(run_binary("db list --json --device-key '" + sibling + "'" +
                                   db))["winners"][0]["origin"],
            "same class");
  EXPECT_EQ(document_of(run_binary("db list --json --device-key 'NVIDIA A100|sm_80|108'" +
                                   db))["winners"][0]["origin"],
            "other GPU");
  // Imported into another DB: a hint there.
  TempDir other;
  const std::string exported = other.file("winners.json");
  dbt::write_bytes(exported, run_binary("db export --all" + db).stdout_text);
  ASSERT_EQ(run_binary("db import '" + exported + "' --db '" + other.file("b.db") + "'").exit_code,
            0);
  const json imported = document_of(
      run_binary("db list --json --device-key '" + here + "' --db '" + other.file("b.db") + "'"));
  EXPECT_EQ(imported["winners"][0]["origin"], "imported");
  EXPECT_TRUE(imported["winners"][0]["imported"].get<bool>());
  EXPECT_EQ(run_binary("db list --device-key nonsense" + db).exit_code, 2);
  // Import and prune report as JSON too.
  const json import_report = document_of(
      run_binary("db import --json '" + exported + "' --db '" + other.file("c.db") + "'"));
  EXPECT_EQ(import_report["winners_added"], 2) << import_report.dump();
  const json prune_report = document_of(run_binary("db prune --dry-run --json" + db));
  EXPECT_EQ(prune_report["dry_run"], true);
  EXPECT_EQ(prune_report["trials"], 0) << "every trial is of this build's generator";

  // The table: compact labels with names, and what each origin means.
  const Ran table =
      run_binary("db list --problems '" + tuned.problems + "' --device-key '" + here + "'" + db);
  ASSERT_EQ(table.exit_code, 0) << table.stderr_text;
  EXPECT_TRUE(contains(table.stdout_text, "headline: " + compact_label(tuned.first)))
      << table.stdout_text;
  EXPECT_FALSE(contains(table.stdout_text, tuned.first.key())) << "the full key only under --wide";
  EXPECT_TRUE(contains(table.stdout_text, "this GPU: tuned on this GPU")) << table.stdout_text;
  // At 80 columns the detail is left out (problem, precision, config, time and origin stay, and
  // overflow only when a config name is that long); --wide shows it.
  const std::string header = lines_of(table.stdout_text).at(0);
  EXPECT_TRUE(contains(header, "origin")) << header;
  EXPECT_FALSE(contains(header, "generator") || contains(header, "device")) << header;
  EXPECT_TRUE(contains(table.stdout_text, "columns left out to fit 80 columns"))
      << table.stdout_text;
  EXPECT_TRUE(contains(run_binary("db list --wide" + db).stdout_text, tuned.first.key()));
}

TEST(CliOutput, DbShowJsonCarriesEveryTrialWithFigures) {
  TunedDb tuned;
  ASSERT_EQ(tuned.autotune.exit_code, 0) << tuned.autotune.stderr_text;
  const Ran shown =
      run_binary("db show --json --problems '" + tuned.problems + "' --db '" + tuned.db + "'");
  ASSERT_EQ(shown.exit_code, 0) << shown.stderr_text;
  const json document = document_of(shown);
  ASSERT_EQ(document["problems"].size(), 2u) << shown.stdout_text;
  const json first = of_problem(document["problems"], tuned.first.key());
  EXPECT_EQ(first["name"], "headline");
  EXPECT_EQ(first["winner"]["config"], first["trials"][0]["config"]) << "best first";
  EXPECT_EQ(first["figures"]["rule_default"]["config"], default_config(tuned.first).name());
  bool saw_failure = false;
  for (const json& trial : first["trials"]) {
    if (trial["status"] == "ok") {
      EXPECT_GT(trial["percent_of_best"].get<double>(), 0.0);
      EXPECT_LE(trial["percent_of_best"].get<double>(), 100.0);
    } else {
      saw_failure = true;
      EXPECT_TRUE(trial["median_ms"].is_null()) << trial.dump();
      EXPECT_FALSE(trial["reason"].get<std::string>().empty());
    }
  }
  EXPECT_TRUE(saw_failure) << "the simulated measurer fails some configs on purpose";
  // Human text went to stderr, with the one word for unknown values and never "?" or "-1".
  EXPECT_TRUE(contains(shown.stderr_text, "headline: " + compact_label(tuned.first)))
      << shown.stderr_text;
  EXPECT_TRUE(contains(shown.stderr_text, "% of the 10000 GB/s copy)")) << shown.stderr_text;
  const Ran wide = run_binary("db show --wide --db '" + tuned.db + "'");
  EXPECT_TRUE(contains(wide.stdout_text, " - ")) << wide.stdout_text;
  EXPECT_FALSE(contains(wide.stdout_text, " ? ") || contains(wide.stdout_text, " -1 "))
      << wide.stdout_text;
  EXPECT_TRUE(contains(wide.stdout_text, "measured at")) << "every column under --wide";
}

TEST(CliOutput, InspectListConfigsJsonIsOnlyJson) {
  const Ran listed = run_binary("inspect --problem seed --list-configs --json");
  ASSERT_EQ(listed.exit_code, 0) << listed.stderr_text;
  const json document = document_of(listed);
  ASSERT_EQ(document["configs"].size(), enumerate_space(Problem::seed()).size());
  EXPECT_EQ(document["configs"][0]["name"], enumerate_space(Problem::seed())[0].name());
  EXPECT_TRUE(contains(listed.stderr_text, "family")) << "the table went to stderr";
  const Ran misplaced = run_binary("inspect --problem seed --json");
  EXPECT_EQ(misplaced.exit_code, 2);
  EXPECT_TRUE(contains(misplaced.stderr_text, "--json goes with --list-configs"))
      << misplaced.stderr_text;
  EXPECT_TRUE(misplaced.stdout_text.empty()) << misplaced.stdout_text;
  const Ran table = run_binary("inspect --problem seed --list-configs --wide");
  EXPECT_EQ(lines_of(table.stdout_text).size(), enumerate_space(Problem::seed()).size() + 1)
      << "a header and a row per config";
}

TEST(CliOutput, RunJsonWithoutAGpuHoldsTheCompileResults) {
  if (DriverApi::available()) GTEST_SKIP() << "a GPU is present: run launches";
  const std::string config = default_config(Problem::seed()).name();
  const Ran run = run_binary("run --problem seed --json --config " + config);
  ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
  const json document = document_of(run);
  EXPECT_EQ(document["problem_key"], Problem::seed().key());
  EXPECT_TRUE(document["device"].is_null());
  EXPECT_TRUE(document["no_gpu"].is_string());
  ASSERT_EQ(document["results"].size(), 1u);
  EXPECT_EQ(document["results"][0]["config"], config);
  EXPECT_EQ(document["results"][0]["status"], "compiled");
  EXPECT_TRUE(document["results"][0]["median_ms"].is_null()) << "not launched";
  EXPECT_TRUE(contains(run.stderr_text, "Not done without a GPU"));
}

}  // namespace
}  // namespace deconvtune::tools

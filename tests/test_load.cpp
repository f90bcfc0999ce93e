// Load (issue 6): eight `deconvtune autotune --simulate` processes tune into one tuning DB at
// once, over and over for a bounded time, while two reader processes look up winners as the
// runtime does. Every tuner exits 0 with nothing but progress on stderr (no SQLITE_BUSY or lock
// error escapes), every trial a tuner reported committed is in the DB exactly once and nothing
// else is, integrity_check is ok, and the readers never see a winner without its trial or a
// trial count going down.
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "codegen/problem.hpp"
#include "tests/db_test_support.hpp"
#include "tests/reliability_support.hpp"

namespace deconvtune::reliability {
namespace {

constexpr int kTuners = 8;
constexpr int kReaders = 2;
constexpr double kLoadSeconds = 20;
constexpr double kTrialMs = 1;

// Four small problems; two tuners share each, so their winners race for the same keys.
std::vector<std::string> load_problems() {
  std::vector<std::string> problems;
  for (int i = 0; i < 4; ++i) {
    problems.push_back(db::testing::small_problem_json(1 + i).dump());
  }
  return problems;
}

// A reader like the runtime: opens the DB read-only and looks winners up, again and again.
// Exit status 0 when everything it saw was consistent (and it saw something), 1 otherwise.
pid_t spawn_reader(const std::string& db_path, double seconds) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid != 0) return pid;
  int code = 1;
  try {
    const auto stop = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    int64_t last_count = 0, lookups = 0;
    bool consistent = true;
    while (consistent && std::chrono::steady_clock::now() < stop) {
      db::TuningDb db(db_path, /*read_only=*/true);  // a fresh connection now and then
      for (int i = 0; i < 20 && consistent; ++i) {
        const int64_t count = db.trial_count();
        if (count < last_count) {
          std::fprintf(stderr, "reader: trial count went down from %lld to %lld\n",
                       static_cast<long long>(last_count), static_cast<long long>(count));
          consistent = false;
        }
        last_count = count;
        if (std::string problem = winner_inconsistency(db); !problem.empty()) {
          std::fprintf(stderr, "reader: %s\n", problem.c_str());
          consistent = false;
        }
        for (const db::WinnerRecord& winner : db.winners()) {
          db.winner(
              {winner.problem_key, winner.device_key, winner.generator_version, winner.precision});
          ++lookups;
        }
      }
    }
    code = consistent && lookups > 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reader: %s\n", e.what());
  }
  std::fflush(nullptr);
  _exit(code);
}

TEST(ReliabilityLoad, EightTunersAndTwoReadersShareOneDb) {
  db::testing::TempDir dir;
  const std::string db_path = dir.file("load.db");
  { db::TuningDb create(db_path); }
  const std::vector<std::string> problems = load_problems();

  std::vector<pid_t> readers;
  for (int r = 0; r < kReaders; ++r) readers.push_back(spawn_reader(db_path, kLoadSeconds + 5));

  struct Run {
    int slot;
    std::string problem_key;
    Child child;
  };
  std::map<pid_t, Run> running;
  std::vector<Run> finished;
  std::vector<int> exit_codes;
  std::map<pid_t, int> reader_status;
  int started = 0;
  auto start_run = [&](int slot) {
    const std::string& problem = problems[slot % problems.size()];
    Child child = spawn_tuner(db_path, problem, kTrialMs,
                              dir.file("run" + std::to_string(started++)), /*retune=*/true);
    running[child.pid] = {slot, Problem::from_argument(problem).key(), child};
  };
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::duration<double>(kLoadSeconds);
  for (int slot = 0; slot < kTuners; ++slot) start_run(slot);
  while (!running.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    auto it = running.find(pid);
    if (it == running.end()) {  // a reader that finished early
      reader_status[pid] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      continue;
    }
    Run run = it->second;
    running.erase(it);
    exit_codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    EXPECT_EQ(exit_codes.back(), 0) << "tuner run " << run.child.stderr_path << " failed:\n"
                                    << read_text(run.child.stderr_path);
    finished.push_back(run);
    if (std::chrono::steady_clock::now() < deadline) start_run(run.slot);
  }
  for (pid_t reader : readers) {
    const int code = reader_status.count(reader) ? reader_status[reader] : wait_exit(reader, 60);
    EXPECT_EQ(code, 0) << "a reader saw an inconsistent DB (see stderr)";
  }

  // Every trial each run reported committed, per (problem, config); and its stderr clean.
  std::map<std::pair<std::string, std::string>, int> reported;
  int64_t reported_total = 0;
  for (const Run& run : finished) {
    const std::string text = read_text(run.child.stderr_path);
    for (const std::string& line : unexpected_lines(text)) {
      ADD_FAILURE() << run.child.stderr_path << ": unexpected stderr line: " << line;
    }
    for (const Committed& trial : committed_trials(text)) {
      ++reported[{run.problem_key, trial.config}];
      ++reported_total;
    }
  }
  RecordProperty("tuner_runs", static_cast<int>(finished.size()));
  RecordProperty("trials_committed", std::to_string(reported_total));
  std::printf("[ INFO     ] %zu tuner runs (%d at a time) over %.0f s committed %lld trials\n",
              finished.size(), kTuners, kLoadSeconds, static_cast<long long>(reported_total));
  EXPECT_GE(finished.size(), static_cast<size_t>(2 * kTuners)) << "the load was too light";

  db::TuningDb db(db_path);
  EXPECT_EQ(db.integrity_check(), "ok");
  const std::vector<db::TrialRecord> trials = db.all_trials();
  std::map<std::pair<std::string, std::string>, int> stored;
  std::set<std::string> identities;
  for (const db::TrialRecord& trial : trials) {
    ++stored[{trial.problem_key, trial.config_name}];
    EXPECT_TRUE(identities.insert(identity(trial)).second) << "duplicate row " << identity(trial);
  }
  EXPECT_EQ(static_cast<int64_t>(trials.size()), reported_total) << "lost or extra rows";
  EXPECT_EQ(stored, reported) << "rows per (problem, config) differ from what the tuners reported";
  EXPECT_EQ(winner_inconsistency(db), "");
  // Each key's winner is its fastest verified trial.
  for (const db::WinnerRecord& winner : db.winners()) {
    for (const db::TrialRecord& trial : db.trials(
             {winner.problem_key, winner.device_key, winner.generator_version, winner.precision})) {
      if (trial.status == Disposition::kOk) {
        EXPECT_LE(winner.median_ms, trial.median_ms);
      }
    }
  }
  EXPECT_EQ(db.winners().size(), problems.size());
}

}  // namespace
}  // namespace deconvtune::reliability

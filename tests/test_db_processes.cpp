// The tuning DB under several processes: 8 concurrent writers lose and duplicate nothing and never
// see SQLITE_BUSY, a reader never sees a half-written winner, and a writer killed with SIGKILL
// leaves a sound DB holding every trial it committed. Children are fork()ed; each opens its own
// connection after the fork (SQLite connections must not cross a fork).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "codegen/generator.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tests/db_test_support.hpp"

namespace deconvtune::db {
namespace {

using testing::TempDir;

// Runs `body` in a child process; its exit status is 0 when body returns true, 1 when false and
// 2 when it throws (the message goes to stderr).
pid_t spawn(const std::function<bool()>& body) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid != 0) return pid;
  int code = 2;
  try {
    code = body() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child %d: %s\n", getpid(), e.what());
  }
  std::fflush(nullptr);
  _exit(code);
}

// The exit code of `pid`, killing it when it takes longer than `seconds`.
int wait_for(pid_t pid, double seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int status = 0;
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

struct Fixture {
  DeviceRecord device = testing::h100();
  Problem problem = testing::small_problem();
  WinnerKey key = testing::key_of(problem, device);
  void prepare(const std::string& path) const {
    TuningDb db(path);
    db.upsert_device(device);
    db.upsert_problem(problem);
  }
};

// Each writer's trials get faster as it goes, so the winner changes hands constantly; a trial's
// time and error are a function of its config name, which lets a reader check a winner's fields
// belong together.
double time_of(int writer, int index) { return 1000.0 - index - writer * 1e-3; }
// Distinct per trial, and within the fp32 bound (2e-6): the DB refuses a verified error above it.
double error_of(int writer, int index) { return (writer * 1000 + index) * 1e-10; }

TEST(tuning_db_processes, ConcurrentWritersLoseNothingAndReadersNeverSeeAHalfWinner) {
  TempDir dir;
  std::string path = dir.file("shared.db");
  Fixture fixture;
  fixture.prepare(path);
  constexpr int kWriters = 8;  // as many as the load the issue names
  constexpr int kTrialsEach = 80;

  std::vector<pid_t> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(spawn([&, w] {
      TuningDb db(path);  // each process opens (and checks) the file itself
      for (int i = 0; i < kTrialsEach; ++i) {
        TrialRecord trial = testing::ok_trial(fixture.key, fmt::format("w{}_c{}", w, i), 0);
        trial.median_ms = time_of(w, i);
        trial.min_ms = trial.median_ms;
        trial.max_ms = trial.median_ms;
        trial.max_error = error_of(w, i);
        if (!db.record_trial(trial)) return false;
        if (i % 10 == 0) {
          // Other kinds of writes interleave too.
          db.upsert_device(fixture.device);
          db.store_cubin(cubin_cache_key(trial.config_name, {}, "sm_90", "13.0"),
                         std::vector<char>(4096, static_cast<char>(i)), generator_version());
        }
      }
      return true;
    }));
  }
  pid_t reader = spawn([&] {
    TuningDb db(path, /*read_only=*/true);
    double last = INFINITY;
    auto stop = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int seen = 0;
    while (std::chrono::steady_clock::now() < stop) {
      std::optional<WinnerRecord> winner = db.winner(fixture.key);
      if (winner) {
        int w = -1, i = -1;
        if (std::sscanf(winner->config_name.c_str(), "w%d_c%d", &w, &i) != 2) return false;
        if (winner->median_ms != time_of(w, i) || winner->max_error != error_of(w, i)) {
          std::fprintf(stderr, "torn winner %s %.17g %.17g\n", winner->config_name.c_str(),
                       winner->median_ms, winner->max_error);
          return false;
        }
        if (winner->median_ms > last) return false;  // a winner only ever gets faster
        last = winner->median_ms;
        ++seen;
        if (i == kTrialsEach - 1 && seen > 10) break;
      }
    }
    return seen > 0;
  });
  for (pid_t pid : writers) EXPECT_EQ(wait_for(pid, 120), 0) << "a writer failed (see stderr)";
  EXPECT_EQ(wait_for(reader, 120), 0) << "the reader saw an inconsistent winner";

  TuningDb db(path);
  EXPECT_EQ(db.integrity_check(), "ok");
  std::vector<TrialRecord> trials = db.all_trials();
  ASSERT_EQ(trials.size(), static_cast<size_t>(kWriters * kTrialsEach));
  std::set<std::string> names;
  for (const TrialRecord& trial : trials) names.insert(trial.config_name);
  EXPECT_EQ(names.size(), trials.size()) << "no duplicates";
  for (int w = 0; w < kWriters; ++w) {
    for (int i = 0; i < kTrialsEach; ++i) {
      EXPECT_TRUE(names.count(fmt::format("w{}_c{}", w, i))) << "lost w" << w << "_c" << i;
    }
  }
  std::optional<WinnerRecord> winner = db.winner(fixture.key);
  ASSERT_TRUE(winner);
  EXPECT_EQ(winner->config_name, fmt::format("w{}_c{}", kWriters - 1, kTrialsEach - 1));
  EXPECT_EQ(db.cubin_cache_stats().entries, kWriters * ((kTrialsEach + 9) / 10));
}

TEST(tuning_db_processes, KilledWriterLeavesASoundDbWithEveryCommittedTrial) {
  TempDir dir;
  std::string path = dir.file("killed.db");
  Fixture fixture;
  fixture.prepare(path);
  std::mt19937 random(12345);
  std::map<int, int> confirmed;  // round -> trials the child reported committed
  constexpr int kRounds = 8;
  for (int round = 0; round < kRounds; ++round) {
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    pid_t child = spawn([&, round] {
      close(pipe_fds[0]);
      TuningDb db(path);
      for (int i = 0;; ++i) {
        TrialRecord trial =
            testing::ok_trial(fixture.key, fmt::format("r{}_c{}", round, i), 1.0 + (i % 97));
        db.record_trial(trial);
        if (i % 7 == 0) {
          db.store_cubin(cubin_cache_key(trial.config_name, {}, "sm_90", "13.0"),
                         std::vector<char>(16384, 'k'), generator_version());
        }
        // Reported only after record_trial returned, i.e. after COMMIT.
        if (write(pipe_fds[1], &i, sizeof(i)) != sizeof(i)) return false;
      }
    });
    close(pipe_fds[1]);
    // Let it commit a random number of trials, then kill it at a random moment.
    int wanted = 20 + static_cast<int>(random() % 150);
    int last = -1, value = 0;
    while (last + 1 < wanted && read(pipe_fds[0], &value, sizeof(value)) == sizeof(value)) {
      last = value;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(random() % 3000));
    kill(child, SIGKILL);
    // Whatever it reported before dying was committed too.
    while (read(pipe_fds[0], &value, sizeof(value)) == sizeof(value)) last = value;
    close(pipe_fds[0]);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": the child ended on its own (status " << status << ")";
    confirmed[round] = last + 1;

    // Each time: the DB opens, is sound, and holds every confirmed trial.
    TuningDb db(path);
    ASSERT_EQ(db.integrity_check(), "ok") << "round " << round;
    std::map<int, std::set<int>> present;
    for (const TrialRecord& trial : db.all_trials()) {
      int r = -1, i = -1;
      ASSERT_EQ(std::sscanf(trial.config_name.c_str(), "r%d_c%d", &r, &i), 2);
      EXPECT_TRUE(present[r].insert(i).second) << "duplicate " << trial.config_name;
    }
    for (const auto& [r, count] : confirmed) {
      for (int i = 0; i < count; ++i) {
        EXPECT_TRUE(present[r].count(i)) << "round " << r << " lost committed trial " << i;
      }
      // At most the one in flight beyond what was confirmed.
      EXPECT_LE(present[r].size(), static_cast<size_t>(count + 1)) << "round " << r;
    }
    std::optional<WinnerRecord> winner = db.winner(fixture.key);
    ASSERT_TRUE(winner);
    EXPECT_DOUBLE_EQ(winner->median_ms, 1.0);
  }
}

}  // namespace
}  // namespace deconvtune::db

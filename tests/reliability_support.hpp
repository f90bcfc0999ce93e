#pragma once
// Shared by the load and crash tests (issue 6): start the real `deconvtune autotune --simulate`
// as a separate process with its output in files, read the progress lines it prints after each
// COMMIT, and check what any reader of the tuning DB must always see.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tuning_db/tuning_db.hpp"

extern char** environ;

namespace deconvtune::reliability {

inline std::string tuner_binary() {
  const char* from_env = std::getenv("DECONVTUNE_BINARY");
  return from_env ? from_env : DECONVTUNE_BINARY;
}

// A child process in its own process group (so the tuner's worker subprocess can be found and
// cleaned up), stdout and stderr in files.
struct Child {
  pid_t pid = -1;
  std::string stdout_path, stderr_path;
};

inline Child spawn_process(const std::vector<std::string>& argv, const std::string& output_prefix) {
  Child child;
  child.stdout_path = output_prefix + ".out";
  child.stderr_path = output_prefix + ".err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, child.stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, child.stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const int error = posix_spawn(&child.pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(error));
  return child;
}

// `deconvtune autotune --simulate` with a fake measurer of `trial_ms` per candidate.
inline Child spawn_tuner(const std::string& db_path, const std::string& problem, double trial_ms,
                         const std::string& output_prefix, bool retune) {
  std::vector<std::string> argv = {tuner_binary(),
                                   "autotune",
                                   "--simulate",
                                   "--simulate-trial-ms",
                                   std::to_string(trial_ms),
                                   "--db",
                                   db_path,
                                   "--problem",
                                   problem};
  if (retune) argv.push_back("--retune");
  return spawn_process(argv, output_prefix);
}

// Exit code, or 128 + signal; -1 when it had to be killed after `seconds`.
inline int wait_exit(pid_t pid, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// Whether any process of the group is still alive.
inline bool group_alive(pid_t group) { return kill(-group, 0) == 0; }

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// One line "[done/total] CONFIG STATUS ..." that the tuner prints on stderr after the trial's
// transaction committed (tuner/job_runner.cpp records, then reports progress).
struct Committed {
  std::string config;
  std::string status;
};

inline std::vector<Committed> committed_trials(const std::string& stderr_text) {
  static const std::regex line(R"(^\[\d+/\d+\] (\S+) (\S+))");
  std::vector<Committed> trials;
  std::istringstream in(stderr_text);
  std::string text;
  std::smatch match;
  while (std::getline(in, text)) {
    if (std::regex_search(text, match, line)) trials.push_back({match[1], match[2]});
  }
  return trials;
}

// Lines of stderr that are not progress lines: a clean run has none.
inline std::vector<std::string> unexpected_lines(const std::string& stderr_text) {
  static const std::regex progress(R"(^\[\d+/\d+\] \S+ \S+)");
  std::vector<std::string> lines;
  std::istringstream in(stderr_text);
  std::string text;
  while (std::getline(in, text)) {
    if (!text.empty() && !std::regex_search(text, progress)) lines.push_back(text);
  }
  return lines;
}

// What a reader must always see: each winner is one of the key's verified trials, with the same
// time, error and timestamp. Empty when so, else what is wrong.
inline std::string winner_inconsistency(const db::TuningDb& db) {
  for (const db::WinnerRecord& winner : db.winners()) {
    const db::WinnerKey key{winner.problem_key, winner.device_key, winner.generator_version,
                            winner.precision};
    bool found = false;
    for (const db::TrialRecord& trial : db.trials(key)) {
      found |= trial.config_name == winner.config_name && trial.status == Disposition::kOk &&
               trial.median_ms == winner.median_ms && trial.max_error == winner.max_error &&
               trial.measured_at == winner.updated_at;
    }
    if (!found) {
      return "winner " + winner.config_name + " (" + std::to_string(winner.median_ms) + " ms) of " +
             winner.problem_key + " has no matching verified trial";
    }
  }
  return "";
}

// A trial's identity in the DB (what import de-duplicates on).
inline std::string identity(const db::TrialRecord& trial) {
  return trial.problem_key + "|" + trial.device_key + "|" + trial.generator_version + "|" +
         std::string(to_string(trial.precision)) + "|" + trial.config_name + "|" +
         trial.measured_at;
}

}  // namespace deconvtune::reliability

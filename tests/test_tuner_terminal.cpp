// Progress on a terminal and interruption: the bar's formatting at several widths (pure functions),
// and `deconvtune autotune --simulate` run under a pseudo-terminal: redraws fit the window, -q
// draws nothing, SIGINT stops it with the "interrupted:" line, exit 130, the trials kept, no worker
// left, and the same command resumes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tuner/progress.hpp"
#include "tuner/tuner.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {
namespace {

using Clock = std::chrono::steady_clock;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

BarStatus sample_status() {
  BarStatus status;
  status.done = 12;
  status.total = 120;
  status.elapsed_seconds = 12;
  status.eta_seconds = 108;
  status.best_ms = 0.1234;
  status.candidate = "ct_bm64_bn64_bk16_tm4_tn8_vec4_split1_db";  // 40 characters
  return status;
}

// The fields in the order format_bar drops them, each by a text only it contains.
const std::vector<std::pair<std::string, std::string>> kDropOrder = {
    {"candidate", "now "}, {"rate", "trials/s"}, {"elapsed", "elapsed"},
    {"percent", "%"},      {"best", "best"},     {"ETA", "ETA"},
    {"bar", "["}};

TEST(TunerProgressFormat, AllFieldsAtTwoHundredColumns) {
  const BarStatus status = sample_status();
  const std::string line = format_bar(status, 200);
  EXPECT_LE(line.size(), 199u);
  EXPECT_TRUE(contains(line, "[###....") && contains(line, ".]"))
      << "12 of 120: 3 of 30 cells, " << line;
  for (const char* part :
       {"12/120", "10%", "elapsed 0:12", "1.0 trials/s", "ETA 1:48", "best 0.1234 ms"}) {
    EXPECT_TRUE(contains(line, part)) << part << " in " << line;
  }
  EXPECT_TRUE(contains(line, "now " + status.candidate)) << "the whole name fits: " << line;
  EXPECT_EQ(line.find('['), 0u);
  EXPECT_EQ(line.find(']'), 31u) << "the full bar is 30 cells: " << line;
}

TEST(TunerProgressFormat, EightyColumnsDropTheCandidateFortyKeepCountAndEta) {
  const std::string eighty = format_bar(sample_status(), 80);
  EXPECT_LE(eighty.size(), 79u) << eighty;
  EXPECT_GE(eighty.size(), 70u) << "the freed space goes back to the bar: " << eighty;
  EXPECT_FALSE(contains(eighty, "now ")) << eighty;
  for (const char* part :
       {"[", "12/120", "10%", "elapsed 0:12", "trials/s", "ETA 1:48", "best 0.1234 ms"}) {
    EXPECT_TRUE(contains(eighty, part)) << part << " in " << eighty;
  }
  const std::string forty = format_bar(sample_status(), 40);
  EXPECT_LE(forty.size(), 39u) << forty;
  EXPECT_TRUE(contains(forty, "[") && contains(forty, "12/120") && contains(forty, "ETA 1:48"))
      << forty;
  for (const char* gone : {"now ", "trials/s", "elapsed", "%", "best"}) {
    EXPECT_FALSE(contains(forty, gone)) << gone << " in " << forty;
  }
  // A shorter name is cut to fit where there is room for part of it.
  BarStatus status = sample_status();
  status.best_ms = -1;
  const std::string cut = format_bar(status, 100);
  EXPECT_LE(cut.size(), 99u) << cut;
  EXPECT_TRUE(contains(cut, "now ct_bm64") && contains(cut, "...")) << cut;
}

TEST(TunerProgressFormat, NoWidthOverflowsAndFieldsDropInOrder) {
  std::vector<BarStatus> statuses = {sample_status(), BarStatus{}};
  BarStatus huge = sample_status();
  huge.done = 123456789;
  huge.total = 987654321;
  huge.elapsed_seconds = 1e7;
  huge.eta_seconds = 1e9;
  huge.candidate = std::string(300, 'c');
  statuses.push_back(huge);
  for (const BarStatus& status : statuses) {
    size_t dropped = 0;  // how many of kDropOrder are gone at this width and all wider ones
    for (int width = 250; width >= 1; --width) {
      const std::string line = format_bar(status, width);
      ASSERT_LE(line.size(), static_cast<size_t>(std::max(0, width - 1)))
          << "width " << width << ": " << line;
      ASSERT_EQ(line.find_first_of("\r\n\x1b"), std::string::npos) << line;
      if (width < 12) continue;  // below the count's own size it is cut: nothing left to order
      EXPECT_TRUE(contains(line, std::to_string(status.done) + "/")) << width << ": " << line;
      // Fields present at this width: a prefix of kDropOrder is gone, never a later one first.
      size_t gone = 0;
      while (gone < kDropOrder.size() && !contains(line, kDropOrder[gone].second)) ++gone;
      for (size_t i = gone; i < kDropOrder.size(); ++i) {
        const bool absent_by_design = kDropOrder[i].first == "best" && status.best_ms < 0;
        const bool candidate_none = kDropOrder[i].first == "candidate" && status.candidate.empty();
        const bool rate_none = kDropOrder[i].first == "rate" && status.done == 0;
        if (absent_by_design || candidate_none || rate_none) continue;
        EXPECT_TRUE(contains(line, kDropOrder[i].second))
            << kDropOrder[i].first << " dropped before " << kDropOrder[gone].first << " at width "
            << width << ": " << line;
      }
      EXPECT_GE(gone, dropped) << "a field came back at a narrower width " << width << ": " << line;
      dropped = std::max(dropped, gone);
    }
  }
}

TEST(TunerProgressFormat, RateAndReasonLine) {
  EXPECT_EQ(rate_text(10, 5), "2.0 trials/s");
  EXPECT_EQ(rate_text(2, 5), "2.5 s/trial");
  EXPECT_EQ(rate_text(0, 5), "");
  EXPECT_EQ(reason_line("first\nsecond"), "first");
  EXPECT_EQ(reason_line(std::string(10, 'x'), 4), "xxxx...");
}

// Each '\r'-started redraw of `output`, escape sequences ("\x1b[K") removed. No std::regex: this
// runs at every read of a growing output, under ASan too.
std::vector<std::string> redraws(const std::string& output) {
  std::vector<std::string> lines;
  for (size_t at = output.find('\r'); at != std::string::npos; at = output.find('\r', at + 1)) {
    const size_t end = std::min(output.find_first_of("\r\n", at + 1), output.size());
    std::string line;
    for (size_t i = at + 1; i < end; ++i) {
      if (output[i] == '\x1b' && i + 1 < end && output[i + 1] == '[') {
        i += 2;
        while (i < end && !std::isalpha(static_cast<unsigned char>(output[i]))) ++i;
        continue;
      }
      line += output[i];
    }
    lines.push_back(line);
  }
  return lines;
}

TEST(TunerProgressFormat, PrinterRereadsTheWidthAtEachRedraw) {
  std::string out;
  int columns = 80;
  ProgressPrinter printer([&](const std::string& text) { out += text; }, ProgressStyle::kBar,
                          ProgressPrinter::Clock::now(), 0, 1, [&] { return columns; });
  db::TrialRecord trial;
  trial.problem_key = "p";
  trial.config_name = "cfg";
  trial.median_ms = 2;
  printer.started("p", std::string(100, 'n'));
  printer.update(1, 50, trial);
  const size_t before_resize = redraws(out).size();
  columns = 40;
  printer.started("p", std::string(100, 'n'));
  printer.update(2, 50, trial);
  printer.finish();
  const std::vector<std::string> lines = redraws(out);
  ASSERT_EQ(lines.size(), 4u) << out;
  for (size_t i = 0; i < lines.size(); ++i) {
    EXPECT_LE(lines[i].size(), i < before_resize ? 79u : 39u) << i << ": " << lines[i];
  }
  EXPECT_GT(lines[1].size(), 39u) << "80 columns are used: " << lines[1];
  EXPECT_TRUE(contains(lines[0], "now nnn")) << "the candidate in flight: " << lines[0];
  EXPECT_TRUE(contains(out, "\x1b[K")) << "a shorter redraw erases the rest of the line";
  EXPECT_EQ(out.back(), '\n');
}

TEST(TunerProgressFormat, VerboseLinesGiveReasonsQuietPrintsNothing) {
  db::TrialRecord failed;
  failed.problem_key = "p";
  failed.config_name = "cfg_bad";
  failed.status = Disposition::kWrong;
  failed.reason = "max |err| 3.5 at y[0]\nmore detail";
  db::TrialRecord ok = failed;
  ok.config_name = "cfg_ok";
  ok.status = Disposition::kOk;
  ok.median_ms = 0.5;
  std::string verbose, plain, quiet;
  ProgressPrinter v([&](const std::string& t) { verbose += t; }, ProgressStyle::kVerboseLines,
                    ProgressPrinter::Clock::now());
  ProgressPrinter p([&](const std::string& t) { plain += t; }, ProgressStyle::kLines,
                    ProgressPrinter::Clock::now());
  ProgressPrinter q([&](const std::string& t) { quiet += t; }, ProgressStyle::kQuiet,
                    ProgressPrinter::Clock::now());
  for (ProgressPrinter* printer : {&v, &p, &q}) {
    printer->started("p", "cfg_ok");
    printer->update(1, 3, ok);
    printer->update(2, 3, failed);
    printer->finish();
  }
  EXPECT_TRUE(contains(verbose, "[2/3] cfg_bad wrong")) << verbose;
  EXPECT_TRUE(contains(verbose, "    reason: max |err| 3.5 at y[0]\n")) << verbose;
  EXPECT_FALSE(contains(verbose, "more detail")) << verbose;
  EXPECT_TRUE(contains(plain, "[2/3] cfg_bad wrong")) << plain;
  EXPECT_FALSE(contains(plain, "reason")) << plain;
  EXPECT_EQ(quiet, "");
  EXPECT_EQ(q.done(), 2);
  EXPECT_EQ(q.total(), 3);
  EXPECT_EQ(q.best_so_far(), "cfg_ok 0.5000 ms");
}

std::string binary() {
  const char* path = std::getenv("DECONVTUNE_BINARY");
  return path ? path : DECONVTUNE_BINARY;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "deconvtune_terminal_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// ---------------------------------------------------------------------------------------------
// TuneRequest::stop through the library

TuneRequest stoppable_request(const std::string& db_path, std::atomic<bool>& stop) {
  TuneRequest request;
  request.problem = Problem::seed();
  request.db_path = db_path;
  request.simulation = Simulation{};
  request.simulation->trial_ms = 20;
  request.worker_binary = binary();
  request.setup_deadline_seconds = 60;
  request.stop = &stop;
  return request;
}

TEST(TunerStop, StopAfterATrialEndsTheRunWithWhatWasRecorded) {
  TempDir dir;
  std::atomic<bool> stop{false};
  TuneRequest request = stoppable_request(dir.file("t.db"), stop);
  int calls = 0;
  TuneReport report = autotune(request, [&](int done, int, const db::TrialRecord&) {
    ++calls;
    if (done == 3) stop = true;
  });
  EXPECT_TRUE(report.interrupted);
  EXPECT_EQ(calls, 3) << "no candidate starts after the stop";
  EXPECT_EQ(report.trials.size(), 3u);
  EXPECT_FALSE(report.first_launch_skipped.empty());
  db::TuningDb db(dir.file("t.db"), /*read_only=*/true);
  EXPECT_EQ(db.all_trials().size(), 3u);
}

TEST(TunerStop, TheCandidateInFlightIsAbandonedNotRecorded) {
  TempDir dir;
  std::atomic<bool> stop{false};
  TuneRequest request = stoppable_request(dir.file("t.db"), stop);
  request.simulation->trial_ms = 2000;  // far longer than the ~50 ms a stop takes to be seen
  std::vector<std::string> started;
  request.on_candidate_start = [&](const std::string&, const std::string& config) {
    started.push_back(config);
    if (started.size() == 2) stop = true;  // while the second is measured
  };
  TuneReport report = autotune(request);
  EXPECT_TRUE(report.interrupted);
  ASSERT_EQ(started.size(), 2u);
  db::TuningDb db(dir.file("t.db"), /*read_only=*/true);
  const std::vector<db::TrialRecord> trials = db.all_trials();
  EXPECT_EQ(trials.size(), report.trials.size());
  bool first_recorded = false;
  for (const db::TrialRecord& trial : trials) {
    // (Candidates that fail to compile are recorded without starting.)
    EXPECT_NE(trial.config_name, started[1]) << "the abandoned candidate is recorded";
    first_recorded = first_recorded || trial.config_name == started[0];
  }
  EXPECT_TRUE(first_recorded);
}

// ---------------------------------------------------------------------------------------------
// The command under a pseudo-terminal

// The seed problem: 63 configs, a run of ~5 s at 50 ms a trial.
const char* kProblem = "seed";

std::vector<std::string> autotune_args(const std::string& db, const std::string& extra = "") {
  std::vector<std::string> args = {"autotune", "--simulate", "--simulate-trial-ms",
                                   "50",       "--problem",  kProblem,
                                   "--db",     db,           "--json"};
  if (!extra.empty()) args.push_back(extra);
  return args;
}

// A child on the slave side of a pseudo-terminal (its stdin, stdout and stderr), the window
// `columns` wide. Output post-processing is off, so every '\r' in the output is the child's own.
class PtyChild {
 public:
  PtyChild(const std::vector<std::string>& args, int columns) {
    std::vector<std::string> strings = {binary()};
    strings.insert(strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    // $COLUMNS says otherwise: the window size (TIOCGWINSZ) must win.
    std::vector<std::string> env_strings = {"COLUMNS=200"};
    for (char** e = environ; *e; ++e) {
      if (std::string(*e).rfind("COLUMNS=", 0) != 0) env_strings.push_back(*e);
    }
    std::vector<char*> envp;
    for (std::string& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    termios mode{};
    cfmakeraw(&mode);
    winsize size{};
    size.ws_row = 24;
    size.ws_col = static_cast<unsigned short>(columns);
    pid_ = forkpty(&master_, nullptr, &mode, &size);
    if (pid_ == 0) {
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
  }
  ~PtyChild() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) close(master_);
  }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }

  // Reads until `done(output)` or the end of the output or `seconds`; true when `done` held.
  bool read_until(const std::function<bool(const std::string&)>& done, double seconds) {
    const Clock::time_point start = Clock::now();
    while (!done(output_)) {
      if (closed_ || std::chrono::duration<double>(Clock::now() - start).count() > seconds) {
        return false;
      }
      pollfd fd{master_, POLLIN, 0};
      if (poll(&fd, 1, 100) <= 0) continue;
      char buffer[4096];
      const ssize_t n = read(master_, buffer, sizeof(buffer));
      if (n > 0) {
        output_.append(buffer, static_cast<size_t>(n));
      } else if (!(n < 0 && errno == EINTR)) {
        closed_ = true;  // EIO: every slave descriptor is closed
      }
    }
    return true;
  }

  void resize(int columns) {
    winsize size{};
    size.ws_row = 24;
    size.ws_col = static_cast<unsigned short>(columns);
    ioctl(master_, TIOCSWINSZ, &size);
  }

  // Reads the rest of the output, then the exit status: the code, or -signal.
  int finish(double seconds) {
    read_until([](const std::string&) { return false; }, seconds);
    int status = 0;
    const Clock::time_point start = Clock::now();
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::duration<double>(Clock::now() - start).count() > seconds) return -1000;
      usleep(10000);
    }
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int master_ = -1;
  bool closed_ = false, reaped_ = false;
  std::string output_;
};

// The highest "done" of the redraws so far ("12/63" -> 12); -1 before the first trial.
int latest_done(const std::string& output) {
  int done = -1;
  for (const std::string& line : redraws(output)) {
    const size_t slash = line.find('/');
    if (slash == std::string::npos) continue;
    size_t digits = slash;
    while (digits > 0 && std::isdigit(static_cast<unsigned char>(line[digits - 1]))) --digits;
    if (digits < slash) done = std::max(done, std::stoi(line.substr(digits, slash - digits)));
  }
  return done;
}

// The processes whose parent is `parent` (from /proc).
std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> children;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream file(entry.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(file)), {});
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    std::string state;
    pid_t ppid = 0;
    if (fields >> state >> ppid && ppid == parent) children.push_back(std::stoi(name));
  }
  return children;
}

void expect_gone(const std::vector<pid_t>& workers) {
  for (pid_t worker : workers) {
    EXPECT_FALSE(std::filesystem::exists("/proc/" + std::to_string(worker)))
        << "worker " << worker << " is left (running, or not reaped) after the interruption";
  }
}

size_t trials_in(const std::string& db_path) {
  db::TuningDb db(db_path, /*read_only=*/true);
  return db.all_trials().size();
}

nlohmann::json last_json_line(const std::string& output) {
  nlohmann::json last;
  std::istringstream stream(output);
  std::string line;
  while (std::getline(stream, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line.front() == '{') last = nlohmann::json::parse(line);
  }
  return last;
}

TEST(TunerCliTerminal, EveryRedrawFitsAnEightyColumnWindow) {
  TempDir dir;
  PtyChild child(autotune_args(dir.file("t.db")), 80);
  ASSERT_TRUE(child.started());
  EXPECT_EQ(child.finish(120), 0) << child.output();
  const std::vector<std::string> lines = redraws(child.output());
  ASSERT_GE(lines.size(), 20u) << "a redraw per trial and per start: " << child.output();
  size_t widest = 0;
  for (const std::string& line : lines) {
    EXPECT_LE(line.size(), 79u) << line;
    widest = std::max(widest, line.size());
  }
  EXPECT_GE(widest, 60u) << "the bar uses the window's width, not $COLUMNS or a fixed size";
  EXPECT_TRUE(contains(child.output(), "ETA")) << child.output();
  EXPECT_TRUE(contains(child.output(), "winner")) << child.output();
}

TEST(TunerCliTerminal, QuietDrawsNoProgressVerboseALinePerTrial) {
  TempDir dir;
  PtyChild quiet(autotune_args(dir.file("q.db"), "-q"), 80);
  ASSERT_TRUE(quiet.started());
  EXPECT_EQ(quiet.finish(120), 0) << quiet.output();
  EXPECT_EQ(quiet.output().find('\r'), std::string::npos) << quiet.output();
  EXPECT_FALSE(contains(quiet.output(), "ETA ") || contains(quiet.output(), "[1/"))
      << "neither a bar nor trial lines: " << quiet.output();
  EXPECT_FALSE(contains(quiet.output(), "tuning 1 problem(s)")) << quiet.output();
  EXPECT_TRUE(contains(quiet.output(), "winner")) << "the summary stays: " << quiet.output();

  PtyChild verbose(autotune_args(dir.file("v.db"), "-v"), 80);
  ASSERT_TRUE(verbose.started());
  EXPECT_EQ(verbose.finish(120), 0) << verbose.output();
  EXPECT_EQ(verbose.output().find('\r'), std::string::npos) << "lines, not a bar, on a terminal";
  EXPECT_TRUE(contains(verbose.output(), "[1/")) << verbose.output();
  EXPECT_TRUE(std::regex_search(verbose.output(), std::regex(R"(\n\[(\d+)/\1\] )")))
      << "up to the last trial: " << verbose.output();

  // Exclusive: a usage error.
  PtyChild both_v(
      {"autotune", "--simulate", "--problem", kProblem, "--db", dir.file("b.db"), "-q", "-v"}, 80);
  ASSERT_TRUE(both_v.started());
  EXPECT_EQ(both_v.finish(60), 2) << both_v.output();
  EXPECT_TRUE(contains(both_v.output(), "exclude")) << both_v.output();
}

TEST(TunerCliTerminal, SigintStopsKeepsTheTrialsAndTheSameCommandResumes) {
  TempDir dir;
  const std::string db = dir.file("t.db");
  PtyChild child(autotune_args(db), 80);
  ASSERT_TRUE(child.started());
  // Interrupt once a few trials are recorded (not after a fixed time: a loaded machine starts the
  // worker slowly), after a resize to 40 columns has shown in a few redraws.
  ASSERT_TRUE(child.read_until([](const std::string& out) { return latest_done(out) >= 3; }, 120))
      << child.output();
  const std::vector<pid_t> workers = children_of(child.pid());
  ASSERT_FALSE(workers.empty()) << "the worker subprocess runs while trials are measured";
  for (const std::string& line : redraws(child.output())) EXPECT_LE(line.size(), 79u) << line;
  child.resize(40);
  const int at_resize = latest_done(child.output());
  ASSERT_TRUE(child.read_until(
      [&](const std::string& out) { return latest_done(out) >= at_resize + 3; }, 60))
      << child.output();
  ASSERT_EQ(kill(child.pid(), SIGINT), 0);
  ASSERT_TRUE(
      child.read_until([](const std::string& out) { return contains(out, "resume\n"); }, 60))
      << child.output();
  const std::string output = child.output();
  expect_gone(workers);
  EXPECT_EQ(child.finish(60), 130) << output;

  std::smatch match;
  ASSERT_TRUE(std::regex_search(
      output, match,
      std::regex(R"(interrupted: (\d+) of (\d+) measured, best so far \S+ [0-9.]+ ms, )"
                 R"(rerun the same command to resume\n)")))
      << output;
  const int measured = std::stoi(match[1]);
  EXPECT_GE(measured, at_resize + 3);
  EXPECT_LT(measured, std::stoi(match[2])) << "the run was stopped early";
  EXPECT_EQ(trials_in(db), static_cast<size_t>(measured)) << "the DB holds what was reported";
  EXPECT_FALSE(contains(output, "winner   ")) << "no summary after an interruption";
  // The last redraw came after the resize.
  const size_t interrupted_at = output.find("interrupted:");
  const std::vector<std::string> before = redraws(output.substr(0, interrupted_at));
  ASSERT_FALSE(before.empty());
  EXPECT_LE(before.back().size(), 39u) << before.back();

  PtyChild rerun(autotune_args(db), 80);
  ASSERT_TRUE(rerun.started());
  EXPECT_EQ(rerun.finish(120), 0) << rerun.output();
  const nlohmann::json document = last_json_line(rerun.output());
  ASSERT_TRUE(document.is_object()) << rerun.output();
  const nlohmann::json report = document["problems"][0];
  EXPECT_EQ(report["skipped"], measured) << rerun.output();
  EXPECT_EQ(report["trials"].get<int>() + measured, report["space"].get<int>()) << rerun.output();
  EXPECT_TRUE(contains(rerun.output(), std::to_string(measured) + " skipped as already measured"))
      << rerun.output();
  EXPECT_EQ(trials_in(db), report["space"].get<size_t>());
}

// Sent to the process alone (kill) or, as Ctrl-C does, to its whole process group, workers
// included: either way exit 130, the trials reported are the DB's, and no worker killed by the
// signal is recorded as a faulting candidate.
void expect_interrupted_by(int signal, bool whole_group, const std::string& extra) {
  TempDir dir;
  const std::string db = dir.file("t.db");
  PtyChild child(autotune_args(db, extra), 80);
  ASSERT_TRUE(child.started());
  ASSERT_TRUE(child.read_until([](const std::string& out) { return contains(out, "[3/"); }, 120))
      << child.output();
  const std::vector<pid_t> workers = children_of(child.pid());
  ASSERT_FALSE(workers.empty());
  // forkpty made the child a session and process group leader; its workers are in its group.
  ASSERT_EQ(kill(whole_group ? -child.pid() : child.pid(), signal), 0);
  EXPECT_EQ(child.finish(60), 130) << child.output();
  expect_gone(workers);
  std::smatch match;
  ASSERT_TRUE(std::regex_search(child.output(), match,
                                std::regex(R"(interrupted: (\d+) of \d+ measured, .*, rerun the )"
                                           R"(same command to resume\n)")))
      << child.output();
  const int measured = std::stoi(match[1]);
  EXPECT_GE(measured, 3);
  db::TuningDb read(db, /*read_only=*/true);
  const std::vector<db::TrialRecord> trials = read.all_trials();
  EXPECT_EQ(trials.size(), static_cast<size_t>(measured)) << child.output();
  for (const db::TrialRecord& trial : trials) {
    EXPECT_FALSE(contains(trial.reason, "signal")) << trial.config_name << ": " << trial.reason;
  }
}

TEST(TunerCliTerminal, SigtermStopsLikeSigint) {
  // -v: plain lines; the interruption does not depend on the bar.
  expect_interrupted_by(SIGTERM, /*whole_group=*/false, "-v");
}

TEST(TunerCliTerminal, CtrlCToTheProcessGroupRecordsNoKilledWorkerAsAFault) {
  expect_interrupted_by(SIGINT, /*whole_group=*/true, "-v");
}

}  // namespace
}  // namespace deconvtune::tuner

// The tuner on the CPU: strategies and budgets, the halving schedule, the worker protocol (in
// memory and over a real worker subprocess), shards, problems files, progress output, and whole
// simulated tuning runs through the DB (resume, retune, faults, several devices, shard merge).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "codegen/generator.hpp"
#include "codegen/search_space.hpp"
#include "gpu/driver_api.hpp"
#include "tests/cli_runner.hpp"
#include "tuner/job_runner.hpp"
#include "tuner/problem_set.hpp"
#include "tuner/progress.hpp"
#include "tuner/schedule.hpp"
#include "tuner/simulate.hpp"
#include "tuner/tuner.hpp"
#include "tuner/worker_process.hpp"
#include "tuner/worker_protocol.hpp"
#include "tuning_db/tuning_db.hpp"

namespace deconvtune::tuner {
namespace {

using nlohmann::json;

using deconvtune::testing::CliResult;
using deconvtune::testing::run_cli;
std::string binary() { return deconvtune::testing::cli_binary(); }

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "deconvtune_tuner_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

Problem small_problem(int64_t batch = 2, int64_t channels = 8) {
  return Problem::from_json(json{{"batch", batch},
                                 {"in_channels", 4},
                                 {"out_channels", channels},
                                 {"height", 5},
                                 {"width", 7},
                                 {"kernel_size", 3},
                                 {"stride", 2},
                                 {"padding", 1},
                                 {"output_padding", 1}});
}

Config fault(int kind) {
  return Config::from_name("fault_ffma_kind" + std::to_string(kind) + "_mishexact");
}

// The first config of the space that the simulation verifies: its trial is kOk and makes a winner.
Config verified_config(const Problem& problem) {
  for (const Config& config : enumerate_space(problem)) {
    SimulatedBehaviour behaviour;
    if (simulated_trial(config, problem, &behaviour).status == Disposition::kOk) return config;
  }
  throw std::logic_error("the simulation verifies no config of " + problem.key());
}

TuneRequest simulated_request(const std::string& db_path, const Problem& problem) {
  TuneRequest request;
  request.problem = problem;
  request.db_path = db_path;
  request.simulation = Simulation{};
  request.worker_binary = binary();
  request.kernel_deadline_seconds = 1;
  request.setup_deadline_seconds = 30;
  return request;
}

db::WinnerKey key_of(const Problem& problem) {
  return {problem.key(), simulated_device().key(), generator_version(), problem.precision};
}

// ---------------------------------------------------------------------------------------------

TEST(Tuner, ABudgetIsSharedFairlyAmongTheProblemsLeft) {
  using std::chrono::seconds;
  const tuner::Clock::time_point start{};
  auto at = [&](tuner::Clock::time_point t) {
    return std::chrono::duration<double>(t - start).count();
  };
  // Three problems, 30 s, one GPU: the first gets 10 s; one that took 4 leaves 26 for two.
  EXPECT_DOUBLE_EQ(at(tuner::fair_share_deadline(start, 30, start, 3, 1)), 10);
  EXPECT_DOUBLE_EQ(at(tuner::fair_share_deadline(start, 30, start + seconds(4), 2, 1)), 17);
  EXPECT_DOUBLE_EQ(at(tuner::fair_share_deadline(start, 30, start + seconds(17), 1, 1)), 30);
  // Two GPUs run two of four problems at once: each of those gets half of what is left.
  EXPECT_DOUBLE_EQ(at(tuner::fair_share_deadline(start, 30, start, 4, 2)), 15);
  // More GPUs than problems left, or the budget spent: the run's own end.
  EXPECT_DOUBLE_EQ(at(tuner::fair_share_deadline(start, 30, start + seconds(20), 1, 4)), 30);
  EXPECT_DOUBLE_EQ(at(tuner::fair_share_deadline(start, 30, start + seconds(31), 3, 1)), 30);
}

TEST(TunerStrategy, PickedBySpaceSizeAndBudget) {
  EXPECT_EQ(pick_strategy(54, 0, 0), Strategy::kExhaustive);
  EXPECT_EQ(pick_strategy(kSmallSpace, 30, 0), Strategy::kExhaustive);
  EXPECT_EQ(pick_strategy(kSmallSpace + 1, 30, 0), Strategy::kRandom);
  EXPECT_EQ(pick_strategy(kSmallSpace + 1, 0, 10), Strategy::kRandom);
  EXPECT_EQ(pick_strategy(kSmallSpace + 1, 0, 0), Strategy::kSuccessiveHalving);
  for (Strategy s : {Strategy::kExhaustive, Strategy::kRandom, Strategy::kSuccessiveHalving}) {
    EXPECT_EQ(parse_strategy(to_string(s)), s);
  }
  try {
    parse_strategy("greedy");
    FAIL() << "an unknown strategy must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "greedy")) << e.what();
  }
}

TEST(TunerRequest, NonFiniteOrNegativeDurationsAreRefusedNamingTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::string db = ::testing::TempDir() + "/deconvtune_request_durations.db";
  std::remove(db.c_str());
  struct Case {
    const char* field;
    double TuneRequest::*member;
    double value;
  };
  for (const Case& c :
       {Case{"budget_seconds", &TuneRequest::budget_seconds, nan},
        Case{"budget_seconds", &TuneRequest::budget_seconds, -1},
        Case{"budget_seconds", &TuneRequest::budget_seconds, inf},
        Case{"kernel_deadline_seconds", &TuneRequest::kernel_deadline_seconds, nan},
        Case{"kernel_deadline_seconds", &TuneRequest::kernel_deadline_seconds, 0},
        Case{"setup_deadline_seconds", &TuneRequest::setup_deadline_seconds, 1e300}}) {
    TuneRequest request = simulated_request(db, small_problem());
    request.*c.member = c.value;
    try {
      autotune(request);
      ADD_FAILURE() << c.field << " = " << c.value << " was accepted";
    } catch (const TuneError& e) {
      EXPECT_TRUE(contains(e.what(), c.field)) << e.what();
    }
  }
  // Refused before anything was written: no DB file was created.
  EXPECT_FALSE(std::ifstream(db).good());
}

TEST(TunerSchedule, HalvingHalvesCandidatesAndDoublesRunsUpToTheFullCount) {
  TrialOptions full;
  full.timed_runs = 20;
  full.warmup_runs = 3;
  std::vector<HalvingRound> rounds = halving_rounds(50, full);
  std::vector<size_t> counts;
  std::vector<int> runs;
  for (const HalvingRound& round : rounds) {
    counts.push_back(round.candidates);
    runs.push_back(round.options.timed_runs);
  }
  EXPECT_EQ(counts, (std::vector<size_t>{50, 25, 13, 7, 4}));
  EXPECT_EQ(runs, (std::vector<int>{2, 4, 8, 16, 20}));
  EXPECT_EQ(rounds.back().options.warmup_runs, 3);
  EXPECT_EQ(rounds.front().options.warmup_runs, 1);
  EXPECT_EQ(planned_trials(Strategy::kSuccessiveHalving, 50, full, 0), 99);
  EXPECT_EQ(planned_trials(Strategy::kSuccessiveHalving, 50, full, 30), 30);
  EXPECT_EQ(planned_trials(Strategy::kExhaustive, 50, full, 0), 50);
  EXPECT_EQ(planned_trials(Strategy::kRandom, 50, full, 7), 7);
  // Two or fewer candidates: one round at the full count.
  ASSERT_EQ(halving_rounds(2, full).size(), 1u);
  EXPECT_EQ(halving_rounds(2, full)[0].options.timed_runs, 20);
  EXPECT_TRUE(halving_rounds(0, full).empty());
}

TEST(TunerSchedule, MeasuringOrderPutsTheUntunedChoicesFirstAndShufflesTheRest) {
  const std::vector<Config> space = enumerate_space(small_problem());
  ASSERT_GE(space.size(), 8u);
  const std::vector<Config> first{space[5], space[2], space[5]};
  std::vector<Config> shuffled = measuring_order(space, first, true, 7);
  ASSERT_EQ(shuffled.size(), space.size()) << "a duplicate in `first` is measured once";
  EXPECT_EQ(shuffled[0], space[5]);
  EXPECT_EQ(shuffled[1], space[2]);
  std::vector<std::string> rest, lexical;
  for (size_t i = 2; i < shuffled.size(); ++i) rest.push_back(shuffled[i].name());
  for (const Config& config : space) {
    if (!(config == space[5]) && !(config == space[2])) lexical.push_back(config.name());
  }
  EXPECT_NE(rest, lexical) << "shuffled";
  std::sort(rest.begin(), rest.end());
  std::sort(lexical.begin(), lexical.end());
  EXPECT_EQ(rest, lexical) << "every other config exactly once";
  EXPECT_EQ(measuring_order(space, first, true, 7), shuffled) << "the same seed, the same order";
  EXPECT_NE(measuring_order(space, first, true, 8), shuffled);
  // Unshuffled: the enumeration order after the first ones; a first config not pending is skipped.
  const std::vector<Config> pending(space.begin() + 3, space.end());
  std::vector<Config> plain = measuring_order(pending, first, false, 7);
  ASSERT_EQ(plain.size(), pending.size());
  EXPECT_EQ(plain[0], space[5]);
  EXPECT_EQ(plain[1], space[3]);
  EXPECT_EQ(plain[2], space[4]);
  EXPECT_EQ(plain[3], space[6]);
  EXPECT_NE(order_seed(1, "a"), order_seed(1, "b"));
}

TEST(TunerFaults, NeverInAnEnumeratedSpaceButNamesParse) {
  for (const Problem& problem : {small_problem(), Problem::seed()}) {
    for (Precision precision : {Precision::kFp32, Precision::kTf32}) {
      Problem p = problem;
      p.precision = precision;
      for (const Config& config : enumerate_space(p)) {
        EXPECT_NE(config.family, Family::kFault) << config.name();
      }
      EXPECT_NE(default_config(p).family, Family::kFault);
    }
  }
  for (int kind = 0; kind <= 5; ++kind) EXPECT_EQ(fault(kind).param("kind"), kind);
  EXPECT_THROW(Config::from_name("fault_ffma_kind6_mishexact"), std::invalid_argument);
}

// NVRTC needs no GPU: every fault kernel compiles for sm_90, except the one that must not.
TEST(TunerFaults, TemplatesCompileExceptTheDeliberateCompileError) {
  const Problem problem = small_problem();
  std::vector<Config> configs;
  for (int kind = 0; kind <= 5; ++kind) configs.push_back(fault(kind));
  std::vector<CompileResult> results = compile_configs(problem, configs, "sm_90");
  for (int kind = 0; kind <= 5; ++kind) {
    EXPECT_EQ(results[kind].ok, kind != 1) << "kind " << kind << ":\n" << results[kind].log;
  }
  EXPECT_TRUE(contains(results[1].log, "deliberate compile error")) << results[1].log;
}

// ---------------------------------------------------------------------------------------------

TEST(TunerProtocol, Base64MatchesRfc4648AndRoundTripsEveryByte) {
  const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(std::vector<char>(plain.begin(), plain.end())), encoded);
    std::vector<char> decoded = base64_decode(encoded);
    EXPECT_EQ(std::string(decoded.begin(), decoded.end()), plain);
  }
  std::vector<char> all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
  for (const char* bad : {"Zg=", "Z===", "Zm9v!A==", "=Zm9", "Zg==Zg=="}) {
    EXPECT_THROW(base64_decode(bad), ProtocolError) << bad;
  }
}

TEST(TunerProtocol, RequestAndReplyRoundTrip) {
  TrialRequest request;
  request.problem = small_problem();
  request.config_name = "direct_ffma_t256_c4_mishexact";
  request.cubin = {'\0', '\x7f', '\xff', 'a'};
  request.options.timed_runs = 33;
  request.options.warmup_runs = 2;
  request.options.flush_l2 = false;
  request.input_seed = 1234567890123ull;
  TrialRequest back = trial_request_from_json(parse_message(to_json(request).dump()));
  EXPECT_EQ(back.problem.key(), request.problem.key());
  EXPECT_EQ(back.config_name, request.config_name);
  EXPECT_EQ(back.cubin, request.cubin);
  EXPECT_EQ(back.options.timed_runs, 33);
  EXPECT_EQ(back.options.warmup_runs, 2);
  EXPECT_FALSE(back.options.flush_l2);
  EXPECT_EQ(back.input_seed, request.input_seed);

  TrialReply reply;
  reply.config_name = "x";
  reply.status = Disposition::kWrong;
  reply.reason = "max |err| nan";
  reply.max_error = std::nan("");
  reply.registers = 96;
  reply.context_lost = true;
  TrialReply reply_back = trial_reply_from_json(parse_message(to_json(reply).dump()));
  EXPECT_EQ(reply_back.status, Disposition::kWrong);
  EXPECT_EQ(reply_back.reason, reply.reason);
  EXPECT_TRUE(std::isnan(reply_back.max_error)) << "NaN travels as null";
  EXPECT_EQ(reply_back.registers, 96);
  EXPECT_TRUE(reply_back.context_lost);
}

TEST(TunerProtocol, MalformedMessagesNameTheField) {
  EXPECT_THROW(parse_message("not json"), ProtocolError);
  EXPECT_THROW(parse_message("[1, 2]"), ProtocolError);
  EXPECT_THROW(parse_message(R"({"kind": "trial"})"), ProtocolError);
  json reply = to_json(TrialReply{});
  reply["status"] = "exploded";
  try {
    trial_reply_from_json(reply);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_TRUE(contains(e.what(), "status")) << e.what();
  }
  reply = to_json(TrialReply{});
  reply.erase("median_ms");
  try {
    trial_reply_from_json(reply);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_TRUE(contains(e.what(), "median_ms")) << e.what();
  }
  TrialRequest request;
  request.problem = small_problem();
  request.config_name = "c";
  json message = to_json(request);
  message["options"]["timed_runs"] = "twenty";
  try {
    trial_request_from_json(message);
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_TRUE(contains(e.what(), "timed_runs")) << e.what();
  }
  message = to_json(request);
  message["problem"]["batch"] = 0;
  EXPECT_THROW(trial_request_from_json(message), ProtocolError);
  // A broken worker's line: nested past the parser's stack, or a key twice (which one counts?).
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  try {
    parse_message(R"({"type": "reply", "x": )" + deep + "}");
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_TRUE(contains(e.what(), "nested deeper")) << e.what();
    EXPECT_LT(std::string(e.what()).size(), 500u) << "the line is quoted cut";
  }
  try {
    parse_message(R"({"type": "reply", "median_ms": 1, "median_ms": 1e-9})");
    FAIL();
  } catch (const ProtocolError& e) {
    EXPECT_TRUE(contains(e.what(), "duplicate key 'median_ms'")) << e.what();
  }
}

// The real worker subcommand, in simulate mode, spoken to through WorkerProcess.
TEST(TunerProtocol, WorkerSubprocessAnswersInOrderAndExitsAfterAFault) {
  WorkerProcess worker({binary(), "worker", "--simulate"});
  TrialRequest request;
  request.problem = small_problem();
  request.options.timed_runs = 25;
  const Config ok_config = verified_config(request.problem);
  request.config_name = ok_config.name();
  ASSERT_TRUE(worker.send_line(to_json(request).dump()));
  std::vector<std::string> types;
  json result;
  for (int i = 0; i < 3; ++i) {
    std::string line;
    ASSERT_EQ(worker.read_line(line, 10), WorkerProcess::Read::kLine);
    json message = parse_message(line);
    types.push_back(message["type"]);
    result = message;
  }
  EXPECT_EQ(types, (std::vector<std::string>{"ready", "verified", "result"}));
  TrialReply reply = trial_reply_from_json(result);
  SimulatedBehaviour behaviour;
  TrialReply expected = simulated_trial(ok_config, request.problem, &behaviour);
  EXPECT_EQ(reply.status, Disposition::kOk);
  EXPECT_DOUBLE_EQ(reply.median_ms, expected.median_ms);
  EXPECT_EQ(reply.runs, 25);

  // A name that is not a config is that trial's failure, and the worker goes on.
  request.config_name = "pgemm_not_a_config";
  ASSERT_TRUE(worker.send_line(to_json(request).dump()));
  for (const char* type : {"ready", "result"}) {
    std::string line;
    ASSERT_EQ(worker.read_line(line, 10), WorkerProcess::Read::kLine);
    result = parse_message(line);
    EXPECT_EQ(result["type"], type) << line;
  }
  const TrialReply misnamed = trial_reply_from_json(result);
  EXPECT_EQ(misnamed.status, Disposition::kLaunchFailed);
  EXPECT_EQ(misnamed.config_name, "pgemm_not_a_config");
  EXPECT_FALSE(misnamed.context_lost);

  // An out-of-bounds kernel loses the context: reply, then exit.
  request.config_name = fault(2).name();
  ASSERT_TRUE(worker.send_line(to_json(request).dump()));
  std::string line;
  ASSERT_EQ(worker.read_line(line, 10), WorkerProcess::Read::kLine);  // ready
  ASSERT_EQ(worker.read_line(line, 10), WorkerProcess::Read::kLine);
  TrialReply faulted = trial_reply_from_json(parse_message(line));
  EXPECT_EQ(faulted.status, Disposition::kFaulted);
  EXPECT_TRUE(faulted.context_lost);
  EXPECT_EQ(worker.read_line(line, 10), WorkerProcess::Read::kClosed);
  ASSERT_TRUE(worker.wait_exit(10));
  EXPECT_EQ(worker.exit_description(), "exited with code 1");
}

TEST(TunerProtocol, WorkerRefusesGarbageAndADeadlineIsReported) {
  WorkerProcess garbage({binary(), "worker", "--simulate"});
  ASSERT_TRUE(garbage.send_line("{\"type\": \"trial\", \"config\": 5}"));
  std::string line;
  ASSERT_EQ(garbage.read_line(line, 10), WorkerProcess::Read::kLine);
  json message = parse_message(line);
  EXPECT_EQ(message["type"], "error");
  EXPECT_TRUE(contains(message["message"].get<std::string>(), "problem")) << line;
  ASSERT_TRUE(garbage.wait_exit(10));
  EXPECT_EQ(garbage.exit_description(), "exited with code 2");

  WorkerProcess hang({binary(), "worker", "--simulate"});
  TrialRequest request;
  request.problem = small_problem();
  request.config_name = fault(3).name();
  ASSERT_TRUE(hang.send_line(to_json(request).dump()));
  ASSERT_EQ(hang.read_line(line, 10), WorkerProcess::Read::kLine);  // ready
  EXPECT_EQ(hang.read_line(line, 0.3), WorkerProcess::Read::kTimedOut);
  hang.kill();
  EXPECT_TRUE(contains(hang.exit_description(), "signal 9")) << hang.exit_description();
}

// ---------------------------------------------------------------------------------------------

TEST(TunerShard, ParseAcceptsIOfNAndNamesWhatIsWrong) {
  Shard shard = parse_shard("2/5");
  EXPECT_EQ(shard.index, 2);
  EXPECT_EQ(shard.count, 5);
  const std::pair<const char*, const char*> bad[] = {
      {"5/5", "[0, 4]"}, {"-1/3", "index"}, {"1/0", "at least 1"}, {"1", "i/n"}, {"a/3", "index"},
      {"1/3x", "count"}, {"", "i/n"}};
  for (const auto& [text, expected] : bad) {
    try {
      parse_shard(text);
      FAIL() << text;
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), expected)) << text << ": " << e.what();
    }
  }
}

TEST(TunerShard, PartitionIsStableDisjointAndCoversEverything) {
  std::vector<Problem> problems;
  for (int64_t batch = 1; batch <= 20; ++batch) {
    for (int64_t channels : {4, 8, 12}) problems.push_back(small_problem(batch, channels));
  }
  std::vector<Problem> shuffled = problems;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  for (int count : {1, 2, 3, 7}) {
    std::multiset<std::string> union_keys;
    std::vector<size_t> sizes;
    for (int index = 0; index < count; ++index) {
      std::vector<Problem> part = select_shard(problems, {index, count});
      std::vector<Problem> part_shuffled = select_shard(shuffled, {index, count});
      std::set<std::string> a, b;
      for (const Problem& p : part) {
        a.insert(p.key());
        union_keys.insert(p.key());
      }
      for (const Problem& p : part_shuffled) b.insert(p.key());
      EXPECT_EQ(a, b) << "the partition must not depend on the order of the file";
      sizes.push_back(part.size());
    }
    std::multiset<std::string> all;
    for (const Problem& p : problems) all.insert(p.key());
    EXPECT_EQ(union_keys, all) << "every problem in exactly one of " << count << " shards";
    if (count > 1) {
      // 60 problems: a hash that put them all in one shard would be no partition at all.
      EXPECT_LT(*std::max_element(sizes.begin(), sizes.end()), problems.size());
    }
  }
  // The same key lands in the same shard every time (stable across runs and machines).
  EXPECT_EQ(shard_of(problems[5].key(), 7), shard_of(problems[5].key(), 7));
  EXPECT_EQ(shard_of("anything", 1), 0);
}

TEST(TunerProblemsFile, ReadsLinesCommentsFilesAndDuplicates) {
  TempDir dir;
  {
    std::ofstream spec(dir.file("one.json"));
    spec << small_problem(3).to_json().dump();
    std::ofstream file(dir.file("problems.jsonl"));
    file << "# a comment\n\n"
         << small_problem(1).to_json().dump() << "\n"
         << "one.json\n"
         << "  seed  \n"
         << small_problem(1).to_json().dump() << "\n";
  }
  std::vector<Problem> problems = read_problems_file(dir.file("problems.jsonl"));
  ASSERT_EQ(problems.size(), 3u) << "the duplicate is kept once";
  EXPECT_EQ(problems[0].batch, 1);
  EXPECT_EQ(problems[1].batch, 3) << "a file name is relative to the problems file";
  EXPECT_EQ(problems[2].key(), Problem::seed().key());
  std::vector<Problem> tf32 = read_problems_file(dir.file("problems.jsonl"), Precision::kTf32);
  EXPECT_EQ(tf32[0].precision, Precision::kTf32);
}

TEST(TunerProblemsFile, ErrorsNameTheFileAndLine) {
  TempDir dir;
  {
    std::ofstream file(dir.file("bad.jsonl"));
    file
        << small_problem().to_json().dump() << "\n"
        << "# fine\n"
        << R"({"batch": 1, "in_channels": 4, "out_channels": 4, "height": 4, "width": 4, "kernel_size": 3, "stride": 2, "output_padding": 2})"
        << "\n";
    std::ofstream empty(dir.file("empty.jsonl"));
    empty << "# nothing\n\n";
  }
  try {
    read_problems_file(dir.file("bad.jsonl"));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "bad.jsonl:3:")) << e.what();
    EXPECT_TRUE(contains(e.what(), "output_padding")) << e.what();
  }
  try {
    read_problems_file(dir.file("empty.jsonl"));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "no problems")) << e.what();
  }
  EXPECT_THROW(read_problems_file(dir.file("missing.jsonl")), std::invalid_argument);
  // Issue 14.3: a FIFO would block the read forever, /dev/zero would never end, a folder is no
  // file.
  ASSERT_EQ(mkfifo(dir.file("fifo").c_str(), 0600), 0);
  for (const std::string& path : {dir.file("fifo"), std::string("/dev/zero"), dir.file("")}) {
    try {
      read_problems_file(path);
      ADD_FAILURE() << path << " was read";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), "not a regular file")) << e.what();
    }
  }
  {
    std::ofstream big(dir.file("big.jsonl"));
    big << "# " << std::string(kMaxProblemsFileBytes, 'x') << "\n";
  }
  try {
    read_problems_file(dir.file("big.jsonl"));
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(contains(e.what(), "larger than")) << e.what();
  }
  // The command line: exit 2, the line named.
  CliResult cli = run_cli("autotune --simulate --db " + dir.file("x.db") + " --problems " +
                          dir.file("bad.jsonl"));
  EXPECT_EQ(cli.exit_code, 2) << cli.output;
  EXPECT_TRUE(contains(cli.output, "bad.jsonl:3:")) << cli.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.db"))) << "bad input must not create a DB";
}

TEST(TunerCli, BadOptionsExitTwoAndSayWhy) {
  TempDir dir;
  const std::string db = " --db " + dir.file("x.db");
  const std::pair<std::string, std::string> cases[] = {
      {"autotune --simulate --problem seed --shard 3/3" + db, "[0, 2]"},
      {"autotune --simulate --problem seed --devices 0,x" + db, "'x'"},
      {"autotune --simulate --problem seed --problems f.jsonl" + db, "exactly one"},
      {"autotune --simulate" + db, "exactly one"},
      {"autotune --simulate --problem seed --strategy greedy" + db, "strategy"},
      {"autotune --simulate --problem seed --inject-faults 9" + db, "kind"},
  };
  for (const auto& [arguments, expected] : cases) {
    CliResult result = run_cli(arguments);
    EXPECT_EQ(result.exit_code, 2) << arguments << "\n" << result.output;
    EXPECT_TRUE(contains(result.output, expected)) << arguments << "\n" << result.output;
  }
}

TEST(TunerCli, WithoutAGpuAutotuneExitsThreeUnlessSimulated) {
  if (DriverApi::available()) GTEST_SKIP() << "this machine has a GPU: autotune would tune";
  TempDir dir;
  CliResult result = run_cli("autotune --problem seed --db " + dir.file("x.db"));
  EXPECT_EQ(result.exit_code, 3) << result.output;
  EXPECT_TRUE(contains(result.output, "GPU")) << result.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("x.db")));
}

// ---------------------------------------------------------------------------------------------

TEST(TunerProgress, PlainLinesWithoutATerminal) {
  std::string out;
  ProgressPrinter printer([&](const std::string& text) { out += text; }, ProgressStyle::kLines,
                          ProgressPrinter::Clock::now());
  db::TrialRecord trial;
  trial.problem_key = "p";
  trial.config_name = "cfg_a";
  trial.median_ms = 1.5;
  printer.update(1, 3, trial);
  trial.config_name = "cfg_b";
  trial.status = Disposition::kWrong;
  printer.update(2, 3, trial);
  printer.finish();
  EXPECT_EQ(out.find('\r'), std::string::npos) << "no redraws in a log";
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_TRUE(contains(out, "[1/3] cfg_a ok 1.5000 ms | best 1.5000 ms cfg_a")) << out;
  EXPECT_TRUE(contains(out, "[2/3] cfg_b wrong | best 1.5000 ms cfg_a")) << out;
  EXPECT_TRUE(contains(out, "eta")) << out;
  EXPECT_FALSE(contains(out, "problem 1")) << "one problem: no label";
  std::string many;
  ProgressPrinter labelled([&](const std::string& text) { many += text; }, ProgressStyle::kLines,
                           ProgressPrinter::Clock::now(), 0, 2);
  trial.status = Disposition::kOk;
  labelled.update(1, 2, trial);
  trial.problem_key = "q";
  labelled.update(2, 2, trial);
  EXPECT_TRUE(contains(many, "[1/2] problem 1 cfg_b ok")) << many;
  EXPECT_TRUE(contains(many, "[2/2] problem 2 cfg_b ok")) << many;
}

TEST(TunerProgress, BarOnATerminalAndEtaArithmetic) {
  std::string out;
  ProgressPrinter printer([&](const std::string& text) { out += text; }, ProgressStyle::kBar,
                          ProgressPrinter::Clock::now());
  db::TrialRecord trial;
  trial.problem_key = "p";
  trial.config_name = "cfg";
  trial.median_ms = 2;
  printer.update(1, 2, trial);
  EXPECT_EQ(out.front(), '\r');
  EXPECT_TRUE(contains(out, "1/2")) << out;
  EXPECT_TRUE(contains(out, "ETA")) << out;
  EXPECT_EQ(out.find('\n'), std::string::npos);
  printer.finish();
  EXPECT_EQ(out.back(), '\n');
  EXPECT_DOUBLE_EQ(ProgressPrinter::eta_seconds(10, 40, 5, 0), 15);
  EXPECT_DOUBLE_EQ(ProgressPrinter::eta_seconds(10, 40, 5, 8), 3) << "capped by the budget";
  EXPECT_LT(ProgressPrinter::eta_seconds(0, 40, 5, 0), 0);
  EXPECT_EQ(ProgressPrinter::clock_text(65), "1:05");
  EXPECT_EQ(ProgressPrinter::clock_text(3723), "1:02:03");
  EXPECT_EQ(ProgressPrinter::clock_text(-1), "?");
}

// ---------------------------------------------------------------------------------------------
// Whole simulated runs: workers are real subprocesses, the DB is real, only measuring is fake.

TEST(TunerSimulate, FaultsAreRecordedWithTheirStatusAndTuningGoesOn) {
  TempDir dir;
  TuneRequest request = simulated_request(dir.file("t.db"), small_problem());
  for (int kind : {1, 2, 3, 4, 5}) request.extra_candidates.push_back(fault(kind));
  std::vector<std::pair<int, int>> progress;
  TuneReport report = autotune(request, [&](int done, int total, const db::TrialRecord&) {
    progress.emplace_back(done, total);
  });
  std::map<std::string, db::TrialRecord> by_config;
  for (const db::TrialRecord& trial : report.trials) by_config[trial.config_name] = trial;
  const std::pair<int, Disposition> expected[] = {{1, Disposition::kCompileFailed},
                                                  {2, Disposition::kFaulted},
                                                  {3, Disposition::kTimedOut},
                                                  {4, Disposition::kWrong},
                                                  {5, Disposition::kWrong}};
  for (const auto& [kind, status] : expected) {
    const db::TrialRecord& trial = by_config.at(fault(kind).name());
    EXPECT_EQ(trial.status, status) << "kind " << kind << ": " << trial.reason;
    EXPECT_FALSE(trial.reason.empty()) << "kind " << kind;
  }
  EXPECT_TRUE(contains(by_config.at(fault(5).name()).reason, "PAST THE END OF y"));
  EXPECT_TRUE(contains(by_config.at(fault(3).name()).reason, "killed"));
  EXPECT_EQ(report.worker_restarts, 2) << "after the fault and after the hang";
  ASSERT_TRUE(report.winner);
  EXPECT_NE(Config::from_name(report.winner->config_name).family, Family::kFault);
  // Every candidate is recorded, the ones after the faults included, and the DB agrees.
  EXPECT_EQ(static_cast<int>(report.trials.size()), report.space_size);
  db::TuningDb db(request.db_path, true);
  EXPECT_EQ(static_cast<int>(db.trials(key_of(request.problem)).size()), report.space_size);
  // The winner is the fastest verified trial.
  double best = 1e30;
  for (const db::TrialRecord& trial : report.trials) {
    if (trial.status == Disposition::kOk) best = std::min(best, trial.median_ms);
  }
  EXPECT_DOUBLE_EQ(report.winner->median_ms, best);
  ASSERT_EQ(progress.size(), report.trials.size());
  EXPECT_EQ(progress.back().first, report.space_size);
  EXPECT_EQ(progress.back().second, report.space_size);
}

TEST(TunerSimulate, ResumeSkipsMeasuredConfigsAndRetuneMeasuresAgain) {
  TempDir dir;
  TuneRequest request = simulated_request(dir.file("t.db"), small_problem());
  request.max_trials = 10;
  TuneReport first = autotune(request);
  EXPECT_EQ(first.trials.size(), 10u);
  EXPECT_TRUE(first.stopped_by_budget);
  request.max_trials = 0;
  TuneReport second = autotune(request);
  EXPECT_EQ(second.skipped_already_measured, 10);
  EXPECT_EQ(static_cast<int>(second.trials.size()), second.space_size - 10);
  std::set<std::string> first_names, second_names;
  for (const auto& t : first.trials) first_names.insert(t.config_name);
  for (const auto& t : second.trials) second_names.insert(t.config_name);
  for (const std::string& name : first_names) EXPECT_EQ(second_names.count(name), 0u) << name;
  TuneReport third = autotune(request);
  EXPECT_TRUE(third.trials.empty());
  EXPECT_EQ(third.skipped_already_measured, third.space_size);
  ASSERT_TRUE(third.winner);
  EXPECT_EQ(third.winner->config_name, second.winner->config_name);
  request.retune = true;
  TuneReport retuned = autotune(request);
  EXPECT_EQ(static_cast<int>(retuned.trials.size()), retuned.space_size);
  EXPECT_EQ(retuned.skipped_already_measured, 0);
  db::TuningDb db(request.db_path, true);
  EXPECT_EQ(static_cast<int>(db.trials(key_of(request.problem)).size()), 2 * retuned.space_size);
}

TEST(TunerSimulate, BudgetStopsStartingCandidates) {
  TempDir dir;
  TuneRequest request = simulated_request(dir.file("t.db"), small_problem());
  // The whole space takes over 3 s of simulated trials; the budget is 1 s. How many trials
  // fit depends on how long the worker takes to start (seconds under a sanitizer on a loaded
  // machine), so the test asserts only that some ran, not all, and that none began past the budget.
  request.simulation->trial_ms = 100;
  request.budget_seconds = 1.0;
  TuneReport report = autotune(request);
  EXPECT_TRUE(report.stopped_by_budget);
  EXPECT_GE(report.trials.size(), 1u);
  ASSERT_GT(report.space_size * request.simulation->trial_ms / 1000.0, 3 * request.budget_seconds);
  EXPECT_LT(static_cast<int>(report.trials.size()), report.space_size);
  EXPECT_LT(report.wall_seconds, request.budget_seconds + 1.5);
}

// Issue 17: under a trial cap the rule's default is measured first, so whatever a budget leaves
// measured, the recorded winner is never slower than the config the runtime would run untuned; and
// a tuned neighbour's winner (what the runtime would pick next) comes right after it.
TEST(TunerSimulate, ABudgetedWinnerIsNeverSlowerThanTheUntunedChoice) {
  TempDir dir;
  int compared = 0;
  for (int64_t batch : {1, 2, 3, 5, 8, 13}) {
    const Problem problem = small_problem(batch, 8 + 4 * batch);
    TuneRequest request = simulated_request(dir.file("b.db"), problem);
    request.pick_strategy = true;
    request.max_trials = 3;
    const TuneReport report = autotune(request);
    ASSERT_FALSE(report.trials.empty());
    const Config untuned = default_config(problem);
    EXPECT_EQ(report.trials.front().config_name, untuned.name()) << problem.key();
    if (report.trials.front().status != Disposition::kOk) continue;  // the simulation's 2 in 23
    ASSERT_TRUE(report.winner) << problem.key();
    EXPECT_LE(report.winner->median_ms, report.trials.front().median_ms) << problem.key();
    ++compared;
  }
  EXPECT_GE(compared, 4);

  // A neighbour tuned in full, then a problem one size step away under a cap of two trials.
  TuneRequest neighbour = simulated_request(dir.file("n.db"), small_problem(4, 8));
  const TuneReport tuned = autotune(neighbour);
  ASSERT_TRUE(tuned.winner);
  const Problem near = small_problem(4, 16);
  ASSERT_NE(tuned.winner->config_name, default_config(near).name())
      << "pick sizes whose winner differs from the rule's default";
  TuneRequest request = simulated_request(dir.file("n.db"), near);
  request.max_trials = 2;
  const TuneReport report = autotune(request);
  ASSERT_EQ(report.trials.size(), 2u);
  EXPECT_EQ(report.trials[0].config_name, default_config(near).name());
  EXPECT_EQ(report.trials[1].config_name, tuned.winner->config_name);
}

// Kills (SIGKILL, as the OOM killer does) the first `kills` worker subprocesses of this process,
// each once it has been running `after_ms`: by then a simulated trial is in flight.
class WorkerKiller {
 public:
  WorkerKiller(int kills, int after_ms)
      : thread_([this, kills, after_ms] { run(kills, after_ms); }) {}
  ~WorkerKiller() {
    done_ = true;
    thread_.join();
  }
  int killed() const { return killed_; }

 private:
  void run(int kills, int after_ms) {
    std::map<pid_t, std::chrono::steady_clock::time_point> seen;
    while (!done_ && killed_ < kills) {
      for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(entry.path() / "stat");
        std::string pid, comm, state;
        pid_t parent = 0;
        if (!(stat >> pid >> comm >> state >> parent) || parent != getpid()) continue;
        const pid_t child = std::stoi(name);
        auto [it, fresh] = seen.emplace(child, std::chrono::steady_clock::now());
        if (!fresh &&
            std::chrono::steady_clock::now() - it->second > std::chrono::milliseconds(after_ms)) {
          if (::kill(child, SIGKILL) == 0) ++killed_;
          it->second = std::chrono::steady_clock::time_point::max();
          if (killed_ >= kills) break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::atomic<bool> done_{false};
  std::atomic<int> killed_{0};
  std::thread thread_;
};

// Issue 14.6: a worker killed from outside says nothing about its candidate. Killed once, the
// candidate is measured again and gets its own verdict; killed twice in a row, it is faulted.
TEST(TunerSimulate, AWorkerKilledFromOutsideIsRetriedOnceThenMarkedFaulted) {
  TempDir dir;
  const Problem problem = small_problem();
  TuneRequest request = simulated_request(dir.file("plain.db"), problem);
  // A trial lasts 1.5 s and the killer strikes 0.7 s into a worker's life: past its start (fast
  // even under a sanitizer), inside its first trial.
  request.max_trials = 3;
  request.simulation->trial_ms = 1500;
  const TuneReport plain = autotune(request);

  request.db_path = dir.file("once.db");
  TuneReport once;
  {
    WorkerKiller killer(1, 700);
    once = autotune(request);
    ASSERT_EQ(killer.killed(), 1);
  }
  EXPECT_EQ(once.retried_after_kill, 1);
  ASSERT_EQ(once.trials.size(), plain.trials.size());
  for (size_t i = 0; i < plain.trials.size(); ++i) {
    EXPECT_EQ(once.trials[i].config_name, plain.trials[i].config_name);
    EXPECT_EQ(once.trials[i].status, plain.trials[i].status) << once.trials[i].reason;
  }

  request.db_path = dir.file("twice.db");
  TuneReport twice;
  {
    WorkerKiller killer(2, 700);
    twice = autotune(request);
    ASSERT_EQ(killer.killed(), 2);
  }
  EXPECT_EQ(twice.retried_after_kill, 1);
  ASSERT_FALSE(twice.trials.empty());
  const db::TrialRecord& faulted = twice.trials.front();
  EXPECT_EQ(faulted.status, Disposition::kFaulted);
  EXPECT_TRUE(contains(faulted.reason, "killed from outside twice")) << faulted.reason;
  EXPECT_TRUE(contains(faulted.reason, "signal 9")) << faulted.reason;
}

TEST(TunerSimulate, RandomIsSeededAndHalvingFindsTheExhaustiveWinner) {
  TempDir dir;
  const Problem problem = small_problem();
  TuneRequest exhaustive = simulated_request(dir.file("e.db"), problem);
  TuneReport e = autotune(exhaustive);

  TuneRequest random = simulated_request(dir.file("r.db"), problem);
  random.strategy = Strategy::kRandom;
  random.max_trials = 12;
  TuneReport r1 = autotune(random);
  random.db_path = dir.file("r2.db");
  TuneReport r2 = autotune(random);
  std::vector<std::string> order1, order2, enumeration;
  for (const auto& t : r1.trials) order1.push_back(t.config_name);
  for (const auto& t : r2.trials) order2.push_back(t.config_name);
  for (size_t i = 0; i < 12; ++i) enumeration.push_back(e.trials[i].config_name);
  EXPECT_EQ(order1, order2) << "the same seed gives the same order";
  EXPECT_NE(order1, enumeration) << "random is not the enumeration order";
  EXPECT_EQ(r1.strategy, Strategy::kRandom);

  TuneRequest halving = simulated_request(dir.file("h.db"), problem);
  halving.strategy = Strategy::kSuccessiveHalving;
  TuneReport h = autotune(halving);
  EXPECT_EQ(h.strategy, Strategy::kSuccessiveHalving);
  ASSERT_TRUE(h.winner && e.winner);
  // Simulated times do not depend on the number of runs, so halving must keep the best one.
  EXPECT_EQ(h.winner->config_name, e.winner->config_name);
  int ok = 0;
  for (const auto& t : e.trials) ok += t.status == Disposition::kOk;
  std::vector<HalvingRound> rounds = halving_rounds(e.trials.size(), halving.trial);
  ASSERT_GE(rounds.size(), 3u);
  // Round one measures everything; each later round the better half of the round before, among
  // those that verified (the simulation verifies a config in every round or in none).
  size_t expected = e.trials.size(), survivors = static_cast<size_t>(ok);
  for (size_t r = 1; r < rounds.size(); ++r) {
    survivors = std::min(survivors, rounds[r].candidates);
    expected += survivors;
  }
  EXPECT_EQ(h.trials.size(), expected);
  std::map<std::string, int> times_measured;
  for (const auto& t : h.trials) ++times_measured[t.config_name];
  EXPECT_EQ(times_measured[h.winner->config_name], static_cast<int>(rounds.size()));
}

// The real compile path on a CPU (NVRTC needs no GPU), measured by the simulation: cubins go to
// the DB's cache on the first run and come from it on the second.
TEST(TunerSimulate, CompiledCubinsFillTheCacheAndARetuneUsesIt) {
  TempDir dir;
  TuneRequest request = simulated_request(dir.file("t.db"), small_problem());
  request.simulation->compile_for_real = true;
  request.extra_candidates_only = true;
  request.extra_candidates = {Config::from_name("direct_ffma_t128_c1_mishexact"),
                              Config::from_name("direct_ffma_t256_c2_mishexact"), fault(0),
                              fault(1)};
  TuneReport first = autotune(request);
  EXPECT_EQ(first.compiled, 4);
  EXPECT_EQ(first.cubin_cache_hits, 0);
  std::map<std::string, db::TrialRecord> by_config;
  for (const db::TrialRecord& trial : first.trials) by_config[trial.config_name] = trial;
  EXPECT_EQ(by_config.at(fault(1).name()).status, Disposition::kCompileFailed);
  EXPECT_TRUE(contains(by_config.at(fault(1).name()).reason, "deliberate compile error"));
  for (const Config& config : {request.extra_candidates[0], request.extra_candidates[2]}) {
    const db::TrialRecord& trial = by_config.at(config.name());
    EXPECT_GT(trial.registers, 0) << config.name() << ": from ptxas's report";
    EXPECT_GE(trial.spill_bytes, 0) << config.name();
    EXPECT_GT(trial.compile_ms, 0) << config.name();
  }
  {
    db::TuningDb db(request.db_path, true);
    EXPECT_EQ(db.cubin_cache_stats().entries, 3) << "every cubin that compiled";
  }
  request.retune = true;
  TuneReport second = autotune(request);
  EXPECT_EQ(second.compiled, 1) << "only the one that does not compile is compiled again";
  EXPECT_EQ(second.cubin_cache_hits, 3);
  for (const db::TrialRecord& trial : second.trials) {
    if (trial.status == Disposition::kOk) {
      EXPECT_EQ(trial.compile_ms, 0) << trial.config_name;
      // Read from the cached cubin: what ptxas reported the first time (spills where no stack
      // frame proves them 0 are unknown).
      const db::TrialRecord& compiled = by_config.at(trial.config_name);
      EXPECT_EQ(trial.registers, compiled.registers) << trial.config_name;
      EXPECT_EQ(trial.shared_bytes, compiled.shared_bytes) << trial.config_name;
      EXPECT_TRUE(trial.spill_bytes == compiled.spill_bytes || trial.spill_bytes == -1)
          << trial.config_name;
    }
  }
}

TEST(TunerSimulate, TwoDevicesShareTheProblemQueue) {
  TempDir dir;
  std::vector<Problem> problems;
  for (int64_t batch = 1; batch <= 4; ++batch) problems.push_back(small_problem(batch));
  TuneRequest request = simulated_request(dir.file("t.db"), problems.front());
  request.devices = {0, 1};
  request.simulation->trial_ms = 2;
  std::vector<TuneReport> reports = autotune_batch(problems, request);
  ASSERT_EQ(reports.size(), 4u) << "both simulated GPUs are one model: each problem tuned once";
  db::TuningDb db(request.db_path, true);
  for (size_t i = 0; i < problems.size(); ++i) {
    EXPECT_EQ(reports[i].problem_key, problems[i].key());
    EXPECT_EQ(static_cast<int>(reports[i].trials.size()), reports[i].space_size);
    EXPECT_TRUE(db.winner(key_of(problems[i])));
    EXPECT_EQ(db.trials(key_of(problems[i])).size(), reports[i].trials.size());
  }
}

// A budget spent before a problem's turn (here by the first problem's trials) still leaves each
// later problem its rule default measured, so every problem has a verified winner (the H200: a
// 24 s budget over the seed and k4s2_wide left k4s2_wide none, its first compile taking 13 s).
TEST(TunerSimulate, ABudgetSpentEarlyStillMeasuresEachProblemsDefault) {
  TempDir dir;
  std::vector<Problem> problems;
  for (int64_t batch : {1, 2, 3}) problems.push_back(small_problem(batch, 8 + 4 * batch));
  TuneRequest request = simulated_request(dir.file("t.db"), problems.front());
  request.simulation->trial_ms = 400;
  request.budget_seconds = 0.2;
  const std::vector<TuneReport> reports = autotune_batch(problems, request);
  ASSERT_EQ(reports.size(), problems.size());
  for (size_t i = 0; i < problems.size(); ++i) {
    ASSERT_EQ(reports[i].trials.size(), 1u) << problems[i].key();
    EXPECT_EQ(reports[i].trials.front().config_name, default_config(problems[i]).name());
    EXPECT_TRUE(reports[i].stopped_by_budget);
    if (reports[i].trials.front().status == Disposition::kOk) {
      EXPECT_TRUE(reports[i].winner) << problems[i].key();
    }
  }
}

TEST(TunerSimulate, AProblemTheWorkerCannotSetUpIsReportedAndTheOthersGoOn) {
  TempDir dir;
  // y of 4096 x 64 x 512 x 512 floats: 256 GiB, more than any GPU (the simulated one has 80).
  const Problem huge = Problem::from_json(json{{"batch", 4096},
                                               {"in_channels", 4},
                                               {"out_channels", 64},
                                               {"height", 256},
                                               {"width", 256},
                                               {"kernel_size", 2},
                                               {"stride", 2}});
  std::vector<Problem> problems = {small_problem(1), huge, small_problem(2)};
  TuneRequest request = simulated_request(dir.file("t.db"), problems.front());
  std::vector<TuneReport> reports = autotune_batch(problems, request);
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_TRUE(reports[0].winner);
  EXPECT_TRUE(reports[2].winner);
  EXPECT_FALSE(reports[1].winner);
  EXPECT_TRUE(contains(reports[1].error, "GiB")) << reports[1].error;
  EXPECT_TRUE(reports[1].trials.empty()) << "no candidate is to blame for the problem's size";
  EXPECT_TRUE(reports[0].error.empty());
}

// The command line end to end: autotune twice; the second run measures nothing.
TEST(TunerSimulate, CliTwiceSecondRunSkipsEverything) {
  TempDir dir;
  const std::string arguments =
      "autotune --simulate --problem seed --json --db " + dir.file("t.db");
  CliResult first = run_cli(arguments);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const json first_document = json::parse(first.stdout_text);  // stdout holds only JSON
  ASSERT_EQ(first_document["problems"].size(), 1u) << first.output;
  json a = first_document["problems"][0];
  EXPECT_EQ(a["trials"], a["space"]);
  EXPECT_EQ(a["skipped"], 0);
  EXPECT_TRUE(contains(first.output, "speedup")) << "the table of the best candidates";
  // Not a terminal: plain progress lines, one per trial.
  EXPECT_TRUE(contains(first.output, "[1/")) << first.output;
  EXPECT_EQ(first.output.find('\r'), std::string::npos);
  CliResult second = run_cli(arguments);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  json b = json::parse(second.stdout_text)["problems"][0];
  EXPECT_EQ(b["trials"], 0);
  EXPECT_EQ(b["skipped"], a["space"]);
  EXPECT_EQ(b["winner"], a["winner"]);
}

// ---------------------------------------------------------------------------------------------
// A trial's identity includes measured_at, so a tuner of the same problem in another process can
// take the stamp first. These runs hand the tuner its stamps (Simulation::stamp_clock) so that the
// collision happens every time instead of once in a load test's thousand trials.

// Distinct valid stamps, one microsecond apart: 2026-12-01T00:00:00.000001Z for 1.
std::string fake_stamp(int microsecond) {
  char text[32];
  std::snprintf(text, sizeof text, "2026-12-01T00:00:00.%06dZ", microsecond);
  return text;
}

// Alone in the space, and measured again although the DB already holds a trial of it (the other
// tuner's).
TuneRequest lone_candidate_request(const std::string& db_path, const Problem& problem,
                                   const Config& config) {
  TuneRequest request = simulated_request(db_path, problem);
  request.extra_candidates = {config};
  request.extra_candidates_only = true;
  request.retune = true;
  return request;
}

// What another tuner recorded for `config` under `stamp` before this one ran: a failed trial, so
// that it makes no winner and is told from this tuner's (verified) one.
db::TrialRecord record_other_tuners_trial(const TuneRequest& request, const Config& config,
                                          const std::string& stamp) {
  db::TrialRecord trial;
  trial.config_name = config.name();
  trial.status = Disposition::kLaunchFailed;
  trial.reason = "measured by another tuner";
  trial.problem_key = request.problem.key();
  trial.device_key = simulated_device().key();
  trial.generator_version = generator_version();
  trial.precision = request.problem.precision;
  trial.measured_at = stamp;
  db::TuningDb db(request.db_path);
  db.upsert_device(simulated_device());
  db.upsert_problem(request.problem);
  EXPECT_TRUE(db.record_trial(trial));
  return trial;
}

void expect_same_row(const db::TrialRecord& stored, const db::TrialRecord& expected) {
  EXPECT_EQ(stored.config_name, expected.config_name);
  EXPECT_EQ(stored.status, expected.status);
  EXPECT_EQ(stored.reason, expected.reason);
  EXPECT_EQ(stored.measured_at, expected.measured_at);
  EXPECT_DOUBLE_EQ(stored.median_ms, expected.median_ms);
}

TEST(TunerStamp, ATrialWhoseFirstStampIsTakenIsStoredUnderAFreshOneAndReported) {
  TempDir dir;
  const Problem problem = small_problem();
  const Config config = verified_config(problem);
  TuneRequest request = lone_candidate_request(dir.file("t.db"), problem, config);
  std::atomic<int> stamps{0};
  request.simulation->stamp_clock = [&stamps] { return fake_stamp(++stamps); };
  const db::TrialRecord others = record_other_tuners_trial(request, config, fake_stamp(1));
  std::vector<db::TrialRecord> progressed;
  const TuneReport report = autotune(
      request, [&](int, int, const db::TrialRecord& trial) { progressed.push_back(trial); });

  EXPECT_EQ(stamps.load(), 2) << "the taken stamp, then one fresh stamp that the DB stores";
  ASSERT_EQ(report.trials.size(), 1u);
  const db::TrialRecord& mine = report.trials.front();
  EXPECT_EQ(mine.config_name, config.name());
  EXPECT_EQ(mine.status, Disposition::kOk) << mine.reason;
  EXPECT_EQ(mine.measured_at, fake_stamp(2));
  ASSERT_EQ(progressed.size(), 1u);
  EXPECT_EQ(progressed.front().measured_at, fake_stamp(2));
  ASSERT_TRUE(report.winner);
  EXPECT_EQ(report.winner->config_name, config.name());
  EXPECT_EQ(report.winner->updated_at, fake_stamp(2)) << "the winner is backed by the stored row";

  // Both trials are in the DB: the other tuner's as it was, then this tuner's as reported.
  db::TuningDb db(request.db_path, true);
  const std::vector<db::TrialRecord> stored = db.trials(key_of(problem));
  ASSERT_EQ(stored.size(), 2u);
  expect_same_row(stored[0], others);
  expect_same_row(stored[1], mine);
  EXPECT_EQ(db.integrity_check(), "ok");
}

TEST(TunerStamp, WhenEveryStampIsTakenTheTunerStopsNamingTheConfigAndTheProblem) {
  TempDir dir;
  const Problem problem = small_problem();
  const Config config = verified_config(problem);
  TuneRequest request = lone_candidate_request(dir.file("t.db"), problem, config);
  std::atomic<int> stamps{0};
  request.simulation->stamp_clock = [&stamps] {
    ++stamps;
    return fake_stamp(1);
  };
  const db::TrialRecord others = record_other_tuners_trial(request, config, fake_stamp(1));
  int progressed = 0;
  try {
    autotune(request, [&](int, int, const db::TrialRecord&) { ++progressed; });
    ADD_FAILURE() << "a trial the DB never stores was not reported as an error";
  } catch (const TuneError& e) {
    EXPECT_TRUE(contains(e.what(), "kept refusing")) << e.what();
    EXPECT_TRUE(contains(e.what(), config.name())) << e.what();
    EXPECT_TRUE(contains(e.what(), problem.key())) << e.what();
  }
  EXPECT_EQ(stamps.load(), 1 + kStampAttempts) << "the first stamp and every fresh one";
  EXPECT_EQ(progressed, 0) << "a trial not stored is not reported as done";

  // Only the other tuner's trial, as it was, and no winner made from a trial that is not there.
  db::TuningDb db(request.db_path, true);
  EXPECT_EQ(db.trial_count(), 1);
  const std::vector<db::TrialRecord> stored = db.trials(key_of(problem));
  ASSERT_EQ(stored.size(), 1u);
  expect_same_row(stored[0], others);
  EXPECT_FALSE(db.winner(key_of(problem)));
  EXPECT_EQ(db.integrity_check(), "ok");
}

// Issue 7: n shards into n DBs, merged with `db import`, give the unsharded run's winners.
TEST(TunerShard, ShardDbsImportedGiveTheUnshardedWinners) {
  if (!contains(run_cli("--help").output, "\n  db ")) {
    GTEST_SKIP() << "this build has no `db import` command (tuning_db's CLI) to merge with";
  }
  TempDir dir;
  {
    std::ofstream file(dir.file("zoo.jsonl"));
    for (int64_t batch = 1; batch <= 3; ++batch) {
      for (int64_t channels : {4, 8})
        file << small_problem(batch, channels).to_json().dump() << "\n";
    }
  }
  const std::string common = "autotune --simulate --problems " + dir.file("zoo.jsonl");
  CliResult whole = run_cli(common + " --db " + dir.file("whole.db"));
  ASSERT_EQ(whole.exit_code, 0) << whole.output;
  constexpr int kShards = 3;
  for (int i = 0; i < kShards; ++i) {
    const std::string shard_db = dir.file("shard" + std::to_string(i) + ".db");
    CliResult shard = run_cli(common + " --shard " + std::to_string(i) + "/" +
                              std::to_string(kShards) + " --db " + shard_db);
    ASSERT_EQ(shard.exit_code, 0) << shard.output;
    if (!std::filesystem::exists(shard_db)) continue;  // an empty shard writes nothing
    CliResult merge = run_cli("db import " + shard_db + " --db " + dir.file("merged.db"));
    ASSERT_EQ(merge.exit_code, 0) << merge.output;
  }
  db::TuningDb a(dir.file("whole.db"), true), b(dir.file("merged.db"), true);
  std::vector<db::WinnerRecord> wa = a.winners(), wb = b.winners();
  ASSERT_EQ(wa.size(), 6u);
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) {
    EXPECT_EQ(wa[i].problem_key, wb[i].problem_key);
    EXPECT_EQ(wa[i].device_key, wb[i].device_key);
    EXPECT_EQ(wa[i].config_name, wb[i].config_name);
    EXPECT_DOUBLE_EQ(wa[i].median_ms, wb[i].median_ms);
  }
  EXPECT_EQ(a.all_trials().size(), b.all_trials().size());
}

}  // namespace
}  // namespace deconvtune::tuner

// I/O faults and power loss under the tuning DB (issue 14.7), through tests/fault_vfs.hpp, a
// SQLite VFS that wraps the real one:
// - every write, sync, truncate and delete of a tuner-style transaction (a trial that becomes the
//   winner) and of an import (a JSON export, another DB file) fails in turn, once or from then on:
//   the operation reports a DbError or has committed, never crashes or hangs, and the reopened DB
//   passes integrity_check and holds the state before or after it, never a mix;
// - the DB file set (file, -wal, -shm, -journal) is copied as it is on the disk before every
//   write, sync, truncate and delete of a tuner session that creates the DB, and with that write
//   torn in half: every copy opens through the normal open paths (or is refused, saying why),
//   passes integrity_check and holds every transaction committed before that moment, at most the
//   one in flight besides, nothing else.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "codegen/generator.hpp"
#include "gpu/nvrtc_compiler.hpp"
#include "tests/db_test_support.hpp"
#include "tests/fault_vfs.hpp"
#include "tuning_db/exchange.hpp"

namespace deconvtune::db {
namespace {

namespace fs = std::filesystem;
using testing::FaultVfs;
using testing::FileOp;
using testing::TempDir;

constexpr const char* kSuffixes[] = {"", "-wal", "-shm", "-journal"};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

void remove_file_set(const std::string& path) {
  for (const char* suffix : kSuffixes) fs::remove(path + suffix);
}

void copy_file_set(const std::string& from, const std::string& to) {
  remove_file_set(to);
  for (const char* suffix : kSuffixes) {
    if (fs::exists(from + suffix)) fs::copy_file(from + suffix, to + suffix);
  }
}

// What a DB holds, as one text: every row export carries, and the cubin cache.
std::string content_of(const TuningDb& db) {
  CubinCacheStats cubins = db.cubin_cache_stats();
  return export_db(db, {ExportFormat::kJson, /*all=*/true}) +
         fmt::format("cubins: {} entries, {} bytes\n", cubins.entries, cubins.bytes);
}

struct Reopened {
  std::string integrity;  // "ok", or what is wrong
  std::string content;
  std::string error;  // the DbError of the open or the read, if any
};

// Through the normal read-write open path, as the tuner and `db import` open it.
Reopened reopen(const std::string& path, bool read_only = false) {
  Reopened reopened;
  try {
    TuningDb db(path, read_only);
    reopened.integrity = db.integrity_check();
    reopened.content = content_of(db);
  } catch (const DbError& e) {
    reopened.error = e.what();
  }
  return reopened;
}

TrialRecord trial_at(const WinnerKey& key, const std::string& config, double median_ms, int i) {
  TrialRecord trial = testing::ok_trial(key, config, median_ms);
  trial.measured_at = fmt::format("2026-12-01T10:00:{:02d}.000000Z", i);  // the same every run
  return trial;
}

// A DB of the current schema with two problems, trials and winners, a few more trials and a
// cubin; checkpointed on close, so the file alone is the whole DB.
void make_base_db(const std::string& path) {
  TuningDb db(path);
  testing::fill_sample(db);
  WinnerKey key = testing::key_of(testing::small_problem(), testing::h100());
  for (int i = 0; i < 8; ++i) {
    db.record_trial(trial_at(key, fmt::format("igemm_base_{}", i), 2.0 + 0.01 * i, i));
  }
  db.store_cubin(cubin_cache_key("base", {}, "sm_90", ""), std::vector<char>(20000, 'c'),
                 generator_version());
}

struct FaultSummary {
  int runs = 0, reported = 0, committed_anyway = 0;
};

// Runs `operation` on a copy of `base` once per write, sync, truncate and delete it makes, that one
// failing (once, then from it on). Each run must end in a DbError or a commit, and the reopened
// DB must pass integrity_check and hold the state before or after the operation. `names`: what
// an error must name (the DB's path, or an import's source).
FaultSummary every_fault_is_reported_and_leaves_old_or_new(
    const std::string& base, const std::string& work,
    const std::function<void(const std::string&)>& operation,
    const std::vector<std::string>& names) {
  FaultVfs vfs;
  const Reopened old_state = reopen(base);
  EXPECT_EQ(old_state.integrity, "ok") << old_state.error;
  if (old_state.integrity != "ok") return {};
  copy_file_set(base, work);
  vfs.arm();
  operation(work);
  std::map<FileOp, int64_t> counts;
  for (FileOp op : testing::kFileOps) counts[op] = vfs.count(op);
  vfs.disarm();
  const Reopened new_state = reopen(work);
  EXPECT_EQ(new_state.integrity, "ok");
  EXPECT_NE(new_state.content, old_state.content) << "the operation changed nothing";
  EXPECT_GT(counts[FileOp::kWrite], 0);
  EXPECT_GT(counts[FileOp::kSync], 0);

  FaultSummary summary;
  for (FileOp op : testing::kFileOps) {
    for (int64_t nth = 1; nth <= counts[op]; ++nth) {
      for (bool sticky : {false, true}) {
        SCOPED_TRACE(fmt::format("{} #{} of {} fails{}", testing::op_name(op), nth, counts[op],
                                 sticky ? ", and every later one" : ""));
        copy_file_set(base, work);
        vfs.fail_at(op, nth, sticky);
        vfs.arm();
        std::string error;
        try {
          operation(work);
        } catch (const DbError& e) {
          error = e.what();
        }
        const int64_t failures = vfs.failures();
        vfs.disarm();
        ++summary.runs;
        // The operations before the nth are the dry run's, so the nth is reached.
        EXPECT_GE(failures, 1);
        const Reopened after = reopen(work);
        EXPECT_EQ(after.error, "");
        EXPECT_EQ(after.integrity, "ok");
        const bool is_old = after.content == old_state.content;
        const bool is_new = after.content == new_state.content;
        EXPECT_TRUE(is_old || is_new) << "a mix of before and after:\n" << after.content;
        if (error.empty()) {
          // Nothing said: then it must all be there (SQLite may ignore a fault once the commit is
          // written, as in the checkpoint on close).
          EXPECT_TRUE(is_new) << "the operation reported success but its changes are gone";
          ++summary.committed_anyway;
        } else {
          ++summary.reported;
          bool named = false;
          for (const std::string& name : names) named = named || contains(error, name);
          EXPECT_TRUE(named) << error;
          EXPECT_FALSE(contains(error, "corrupt")) << error;
        }
      }
    }
  }
  EXPECT_GT(summary.reported, 0);
  return summary;
}

TEST(DbFaults, EveryFailedWriteSyncOrTruncateOfATrialIsReportedAndLeavesTheOldOrNewState) {
  TempDir dir;
  const std::string base = dir.file("base.db"), work = dir.file("tuning.db");
  make_base_db(base);
  const WinnerKey key = testing::key_of(testing::small_problem(), testing::h100());
  // The tuner's transaction: a trial faster than the winner, recorded with its winner update.
  auto record_winner = [&](const std::string& path) {
    TuningDb db(path);
    db.record_trial(trial_at(key, "igemm_new_winner", 1.0, 59));
  };
  FaultSummary summary =
      every_fault_is_reported_and_leaves_old_or_new(base, work, record_winner, {work});
  std::printf("record_trial: %d faulted runs, %d reported, %d committed before the fault\n",
              summary.runs, summary.reported, summary.committed_anyway);
}

TEST(DbFaults, EveryFailedWriteSyncOrTruncateOfAnImportIsReportedAndLeavesTheOldOrNewState) {
  TempDir dir;
  const std::string base = dir.file("base.db"), work = dir.file("tuning.db");
  make_base_db(base);
  // The source: another machine's DB with faster trials of the same keys (winners replaced) and
  // trials of a second device (winners added).
  const std::string source_db = dir.file("source.db"), source_json = dir.file("source.json");
  {
    TuningDb source(source_db);
    testing::fill_sample(source);
    DeviceRecord h200 = {"NVIDIA H200", "sm_90", 132, 13000, "13.0"};
    source.upsert_device(h200);
    for (Precision precision : {Precision::kFp32, Precision::kTf32}) {
      WinnerKey h100_key = testing::key_of(testing::small_problem(precision), testing::h100());
      WinnerKey h200_key = testing::key_of(testing::small_problem(precision), h200);
      for (int i = 0; i < 6; ++i) {
        source.record_trial(trial_at(h100_key, fmt::format("pgemm_src_{}", i), 1.0 - 0.1 * i, i));
        source.record_trial(trial_at(h200_key, fmt::format("pgemm_src_{}", i), 0.9 + 0.1 * i, i));
      }
    }
    testing::write_bytes(source_json, export_db(source, {ExportFormat::kJson, /*all=*/true}));
  }
  for (const std::string& source : {source_json, source_db}) {
    SCOPED_TRACE("importing " + source);
    auto import = [&](const std::string& path) {
      TuningDb db(path);
      import_file(db, source);
    };
    FaultSummary summary =
        every_fault_is_reported_and_leaves_old_or_new(base, work, import, {work, source});
    std::printf("import of %s: %d faulted runs, %d reported, %d committed before the fault\n",
                fs::path(source).filename().c_str(), summary.runs, summary.reported,
                summary.committed_anyway);
  }
}

// The DB file set as it is on the disk, suffix -> bytes.
using FileSet = std::map<std::string, std::string>;

FileSet read_file_set(const std::string& path) {
  FileSet files;
  for (const char* suffix : kSuffixes) {
    if (fs::exists(path + suffix)) files[suffix] = testing::read_bytes(path + suffix);
  }
  return files;
}

struct PowerLoss {
  std::string moment;  // "before write #12 (tuning.db-wal), torn in half"
  int committed;       // transactions of the session committed by then (-1: while creating)
  FileSet files;
};

TEST(DbFaults, PowerLossAtAnyWriteOrSyncLeavesEveryCommittedTransaction) {
  TempDir dir;
  const std::string path = dir.file("tuning.db");
  const Problem problem = testing::small_problem();
  const WinnerKey key = testing::key_of(problem, testing::h100());
  // A tuner's session on a new DB: creation and migrations, the device and the problem, trials
  // (each faster than the last, so each moves the winner), a failed one, a 100 KB cubin.
  std::vector<std::function<void(TuningDb&)>> steps = {
      [&](TuningDb& db) { db.upsert_device(testing::h100()); },
      [&](TuningDb& db) { db.upsert_problem(problem); },
  };
  for (int i = 0; i < 5; ++i) {
    steps.push_back([&, i](TuningDb& db) {
      db.record_trial(trial_at(key, fmt::format("igemm_step_{}", i), 2.0 - 0.25 * i, i));
    });
  }
  steps.push_back([&](TuningDb& db) {
    TrialRecord failed = testing::failed_trial(key, "igemm_bad", Disposition::kFaulted, "faulted");
    failed.measured_at = "2026-12-01T10:00:30.000000Z";
    db.record_trial(failed);
  });
  steps.push_back([](TuningDb& db) {
    std::vector<char> cubin(100000);
    for (size_t i = 0; i < cubin.size(); ++i) cubin[i] = static_cast<char>(i * 7 + i / 4096);
    db.store_cubin(cubin_cache_key("session", {}, "sm_90", ""), cubin, generator_version());
  });

  // states[i]: what the DB holds once i steps are committed.
  FaultVfs vfs;
  std::vector<PowerLoss> losses;
  std::vector<std::string> states;
  int committed = -1;
  vfs.on_operation([&](const testing::PendingOp& op) {
    std::string name = fs::path(op.path).filename().string();
    if (op.path.empty() || (op.path != path && op.path.rfind(path + "-", 0) != 0)) return;
    const std::string moment =
        fmt::format("before {} #{} ({})", testing::op_name(op.op), vfs.count(op.op), name);
    losses.push_back({moment, committed, read_file_set(path)});
    if (op.op == FileOp::kWrite && op.size > 1) {
      // Power lost halfway through the write: its first half on the disk.
      PowerLoss torn = losses.back();
      torn.moment += ", torn in half";
      std::string& bytes = torn.files[op.path.substr(path.size())];
      const size_t offset = static_cast<size_t>(op.offset), half = static_cast<size_t>(op.size) / 2;
      if (bytes.size() < offset + half) bytes.resize(offset + half, '\0');
      bytes.replace(offset, half, static_cast<const char*>(op.data), half);
      losses.push_back(std::move(torn));
    }
  });
  vfs.arm();
  {
    TuningDb db(path);
    committed = 0;
    states.push_back(content_of(db));
    for (const auto& step : steps) {
      step(db);
      ++committed;
      states.push_back(content_of(db));
    }
  }
  losses.push_back({"after the session", committed, read_file_set(path)});
  vfs.disarm();
  std::printf("%zu moments of power loss over %zu writes, %zu syncs, %zu truncates, %zu deletes\n",
              losses.size(), static_cast<size_t>(vfs.count(FileOp::kWrite)),
              static_cast<size_t>(vfs.count(FileOp::kSync)),
              static_cast<size_t>(vfs.count(FileOp::kTruncate)),
              static_cast<size_t>(vfs.count(FileOp::kDelete)));
  ASSERT_EQ(states.size(), steps.size() + 1);
  EXPECT_EQ(std::set<std::string>(states.begin(), states.end()).size(), states.size());

  const std::string copy = dir.file("after-power-loss.db");
  int refused_read_only = 0;
  std::set<std::string> refusals;
  for (const PowerLoss& loss : losses) {
    SCOPED_TRACE(loss.moment + fmt::format(", {} step(s) committed", loss.committed));
    // What may be there: every committed step, and the one in flight if its commit reached the
    // disk. While the DB is being created, an open makes (or finishes) an empty DB.
    std::set<std::string> allowed = {states[std::max(loss.committed, 0)]};
    if (loss.committed >= 0 && loss.committed + 1 < static_cast<int>(states.size())) {
      allowed.insert(states[loss.committed + 1]);
    }
    for (bool read_only : {true, false}) {
      remove_file_set(copy);
      for (const auto& [suffix, bytes] : loss.files) testing::write_bytes(copy + suffix, bytes);
      const Reopened reopened = reopen(copy, read_only);
      if (read_only && !reopened.error.empty()) {
        // A file that is empty or mid-migration is not readable as it is; the read-write open
        // below must make it whole.
        ++refused_read_only;
        refusals.insert(reopened.error.substr(reopened.error.find(": ") + 2));
        EXPECT_EQ(loss.committed, -1) << reopened.error;
        EXPECT_TRUE(contains(reopened.error, copy)) << reopened.error;
        EXPECT_FALSE(contains(reopened.error, "corrupt")) << reopened.error;
        continue;
      }
      EXPECT_EQ(reopened.error, "") << (read_only ? "read-only" : "read-write");
      EXPECT_EQ(reopened.integrity, "ok");
      EXPECT_EQ(allowed.count(reopened.content), 1u)
          << (read_only ? "read-only" : "read-write") << " open holds:\n"
          << reopened.content;
    }
  }
  std::printf("%d of them refused by the read-only open (the DB not made yet):\n",
              refused_read_only);
  for (const std::string& refusal : refusals) std::printf("  %s\n", refusal.c_str());
}

}  // namespace
}  // namespace deconvtune::db

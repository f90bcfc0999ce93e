#pragma once
// A SQLite VFS for the I/O fault and power-loss tests (issue 14.7). While a FaultVfs lives it is
// SQLite's default VFS, wrapping the one that was (unix), so every connection this process opens
// goes through it: TuningDb's, import's temporary copy, a raw handle. That is the test seam; the
// library has no hook of its own. It counts, per kind, the operations that change a file (write,
// sync, truncate, delete) made while it is armed, and can
// - fail the Nth operation of one kind with SQLite's I/O error for it (SQLITE_IOERR_WRITE,
//   _FSYNC, _TRUNCATE, _DELETE), once, or that one and every later one of its kind (a disk that
//   went away; a failing write then says SQLITE_FULL, a full disk);
// - call a hook before each such operation is passed on (the power-loss test copies the file set
//   there, as it would be on the disk if the power went then).
// One at a time per process, used from one thread.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace deconvtune::db::testing {

enum class FileOp { kWrite, kSync, kTruncate, kDelete };
inline constexpr std::array<FileOp, 4> kFileOps = {FileOp::kWrite, FileOp::kSync, FileOp::kTruncate,
                                                   FileOp::kDelete};
const char* op_name(FileOp op);

// An operation about to be passed on to the real VFS.
struct PendingOp {
  FileOp op;
  std::string path;            // the file's full path; empty for a temporary file
  const void* data = nullptr;  // kWrite: the bytes to be written
  int64_t size = 0;            // kWrite: their count; kTruncate: the new size
  int64_t offset = 0;          // kWrite
};

class FaultVfs {
 public:
  FaultVfs();   // registers itself as the default VFS (throws std::runtime_error if it cannot)
  ~FaultVfs();  // the previous default again; every connection must be closed by then
  FaultVfs(const FaultVfs&) = delete;
  FaultVfs& operator=(const FaultVfs&) = delete;

  // From arm() on, operations are counted from zero, the fault and hook apply; disarm() stops
  // both (and clears the fault and the hook).
  void arm();
  void disarm();
  // The `nth` (from 1) operation of kind `op` after arm() fails; `sticky`: every later one too.
  void fail_at(FileOp op, int64_t nth, bool sticky = false);
  void on_operation(std::function<void(const PendingOp&)> hook);

  int64_t count(FileOp op) const;
  int64_t failures() const;  // operations failed since arm()
};

}  // namespace deconvtune::db::testing

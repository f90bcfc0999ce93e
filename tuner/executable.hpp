#pragma once
// Finding and running other programs without a shell. The tuner starts its measuring workers and
// `inspect --sass` starts the CUDA disassembler; both are found by one rule that never picks a file
// from the current directory (posix_spawn does not search PATH, so a bare name would run whatever
// file of that name the working directory holds).
#include <string>
#include <vector>

namespace deconvtune::tuner {

// The absolute path of `name` on $PATH, searched explicitly: empty and relative entries (which
// stand for the current directory) are skipped. Empty when not found.
std::string find_on_path(const std::string& name);

// The absolute path of what the user named: a name without '/' is searched with find_on_path, a
// path is made absolute. Empty when it is not an executable regular file.
std::string resolve_executable(const std::string& named);

// The deconvtune executable that runs `deconvtune worker`: `requested`
// (TuneRequest::worker_binary), else $DECONVTUNE_WORKER, else this process when it is the
// deconvtune CLI, else `deconvtune` in the install's bin folder beside the library or beside this
// executable, else on PATH. Absolute, never from the current directory. Throws TuneError naming
// what was tried.
std::string worker_executable(const std::string& requested);

struct CapturedRun {
  int exit_code = -1;  // -1: it did not exit normally (killed, or could not start)
  std::string output;  // stdout and stderr together
};

// Runs argv[0] (an absolute path) with the arguments, no shell, and captures its output. Throws
// std::runtime_error when it cannot start.
CapturedRun run_capturing(const std::vector<std::string>& argv);

// A private folder (mode 0700, a fresh name under $TMPDIR or /tmp from mkdtemp) removed with its
// contents on destruction: files written there cannot be swapped for links by another user.
class PrivateTempDir {
 public:
  PrivateTempDir();  // throws std::runtime_error when it cannot be made
  ~PrivateTempDir();
  PrivateTempDir(const PrivateTempDir&) = delete;
  PrivateTempDir& operator=(const PrivateTempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes `bytes` to a new file `name` inside it (O_EXCL, never following a link).
  std::string write_file(const std::string& name, const std::vector<char>& bytes) const;

 private:
  std::string path_;
};

}  // namespace deconvtune::tuner

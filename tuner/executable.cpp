#include "tuner/executable.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "tuner/tuner.hpp"

namespace deconvtune::tuner {
namespace {

namespace fs = std::filesystem;

bool is_executable_file(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error) && access(path.c_str(), X_OK) == 0;
}

// The file this code was loaded from: libdeconvtune.so for the library, else the executable.
fs::path loaded_from() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&loaded_from), &info) == 0 || !info.dli_fname) return {};
  std::error_code error;
  fs::path path = fs::canonical(info.dli_fname, error);
  return error ? fs::path() : path;
}

}  // namespace

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (!path || name.empty() || name.find('/') != std::string::npos) return {};
  std::stringstream folders(path);
  std::string folder;
  while (std::getline(folders, folder, ':')) {
    if (folder.empty() || folder.front() != '/') continue;  // the current directory
    const fs::path candidate = fs::path(folder) / name;
    if (is_executable_file(candidate)) return candidate.string();
  }
  return {};
}

std::string resolve_executable(const std::string& named) {
  if (named.empty()) return {};
  if (named.find('/') == std::string::npos) return find_on_path(named);
  std::error_code error;
  const fs::path absolute = fs::absolute(named, error);
  if (error || !is_executable_file(absolute)) return {};
  return absolute.lexically_normal().string();
}

std::string worker_executable(const std::string& requested) {
  auto named = [](const std::string& what, const std::string& value) {
    std::string found = resolve_executable(value);
    if (found.empty()) {
      throw TuneError(fmt::format("{} '{}' is not an executable file{}", what, value,
                                  value.find('/') == std::string::npos ? " on PATH" : ""));
    }
    return found;
  };
  if (!requested.empty()) return named("the worker binary", requested);
  if (const char* env = std::getenv("DECONVTUNE_WORKER"); env && *env) {
    return named("DECONVTUNE_WORKER", env);
  }
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (!error && self.filename() == "deconvtune") return self.string();
  std::vector<fs::path> beside;
  if (const fs::path library = loaded_from(); !library.empty()) {
    beside.push_back(library.parent_path().parent_path() / "bin" / "deconvtune");
    beside.push_back(library.parent_path() / "deconvtune");
  }
  if (!error) beside.push_back(self.parent_path() / "deconvtune");
  for (const fs::path& candidate : beside) {
    if (is_executable_file(candidate)) return candidate.string();
  }
  if (std::string on_path = find_on_path("deconvtune"); !on_path.empty()) return on_path;
  throw TuneError(
      "cannot find the deconvtune executable to run measuring workers (looked beside the library "
      "and this program, and on PATH): set DECONVTUNE_WORKER (or TuneRequest::worker_binary) to "
      "its path");
}

CapturedRun run_capturing(const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::invalid_argument("run_capturing: empty argv");
  int pipe_ends[2];
  if (pipe2(pipe_ends, O_CLOEXEC) != 0) {
    throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_ends[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_ends[1], STDERR_FILENO);
  pid_t pid = -1;
  const int error = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_ends[1]);
  if (error != 0) {
    close(pipe_ends[0]);
    throw std::runtime_error(fmt::format("cannot start {}: {}", argv[0], std::strerror(error)));
  }
  CapturedRun run;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(pipe_ends[0], buffer, sizeof(buffer));
    if (n > 0) {
      run.output.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(pipe_ends[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) run.exit_code = WEXITSTATUS(status);
  return run;
}

PrivateTempDir::PrivateTempDir() {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string base = tmpdir && tmpdir[0] == '/' ? tmpdir : "/tmp";
  std::string pattern = base + "/deconvtune-XXXXXX";
  if (!mkdtemp(pattern.data())) {
    throw std::runtime_error(
        fmt::format("cannot make a private folder under {}: {}", base, std::strerror(errno)));
  }
  path_ = pattern;
}

PrivateTempDir::~PrivateTempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

std::string PrivateTempDir::write_file(const std::string& name,
                                       const std::vector<char>& bytes) const {
  const std::string path = path_ + "/" + name;
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    throw std::runtime_error(fmt::format("cannot create {}: {}", path, std::strerror(errno)));
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = errno;
      close(fd);
      throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(saved)));
    }
    written += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    throw std::runtime_error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  }
  return path;
}

}  // namespace deconvtune::tuner

#include "tuner/worker_process.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace deconvtune::tuner {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

WorkerProcess::WorkerProcess(const std::vector<std::string>& argv) {
  if (argv.empty()) throw std::invalid_argument("WorkerProcess: empty argv");
  int sockets[2];
  // CLOEXEC: a worker started later must not inherit another worker's socket (it would keep that
  // worker's stdin open after the tuner closed it).
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets) != 0) {
    throw std::runtime_error(fmt::format("socketpair: {}", std::strerror(errno)));
  }
  // posix_spawn, not fork: the tuner may hold a CUDA context and run threads, and the child must
  // do nothing but exec. The dup2 actions clear CLOEXEC on the child's stdin and stdout. The
  // worker leads a process group of its own, so that killing it kills whatever it started too (a
  // child left behind would hold the worker's stdout and the tuner's caller's pipes open), and a
  // Ctrl-C at the terminal reaches the tuner, which stops its workers itself.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, sockets[1], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, sockets[1], STDOUT_FILENO);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  const int error = posix_spawn(&pid_, args[0], &actions, &attributes, args.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    close(sockets[0]);
    close(sockets[1]);
    pid_ = -1;
    throw std::runtime_error(
        fmt::format("cannot start the worker {}: {}", argv[0], std::strerror(error)));
  }
  close(sockets[1]);
  socket_ = sockets[0];
}

WorkerProcess::~WorkerProcess() {
  // Closing the socket is the worker's end of input: it exits on its own; a stuck one is killed.
  if (socket_ >= 0) close(socket_);
  if (!wait_exit(2.0)) kill();
}

bool WorkerProcess::send_line(const std::string& line) {
  std::string data = line + "\n";
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(socket_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

WorkerProcess::Read WorkerProcess::read_line(std::string& line, double timeout_seconds,
                                             const std::atomic<bool>* cancel) {
  const Clock::time_point start = Clock::now();
  while (true) {
    if (cancel && cancel->load()) return Read::kCancelled;
    if (size_t newline = buffer_.find('\n'); newline != std::string::npos) {
      line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return Read::kLine;
    }
    const double left = timeout_seconds - seconds_since(start);
    if (left <= 0) return Read::kTimedOut;
    pollfd fd{socket_, POLLIN, 0};
    // A cancel flag is polled: it may be set by a signal handler, which cannot wake this poll.
    const double slice_ms = cancel ? 50.0 : 1e9;
    int ready = poll(&fd, 1, static_cast<int>(std::min(left * 1000.0 + 1, slice_ms)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Read::kClosed;
    if (ready == 0) continue;  // the loop re-checks the deadline
    char chunk[65536];
    ssize_t n = recv(socket_, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Read::kClosed;
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

void WorkerProcess::kill() {
  if (pid_ <= 0 || reaped_) return;
  reap();
}

bool WorkerProcess::wait_exit(double timeout_seconds) {
  if (pid_ <= 0 || reaped_) return true;
  const Clock::time_point start = Clock::now();
  while (true) {
    // WNOWAIT: seen, not reaped; reap() takes the worker's group down first.
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid_) {
      reap();
      return true;
    }
    if (seconds_since(start) >= timeout_seconds) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void WorkerProcess::reap() {
  // The worker's process group: it and whatever it started (left behind, a child would hold the
  // worker's stdout, and with it its caller's pipes, open). Until the worker is reaped its pid
  // cannot be handed out again, so the group's id names only the worker's own group.
  ::kill(-pid_, SIGKILL);
  while (waitpid(pid_, &wait_status_, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
}

int WorkerProcess::term_signal() const {
  return reaped_ && WIFSIGNALED(wait_status_) ? WTERMSIG(wait_status_) : 0;
}

std::string WorkerProcess::exit_description() const {
  if (!reaped_) return "running";
  if (WIFEXITED(wait_status_)) return fmt::format("exited with code {}", WEXITSTATUS(wait_status_));
  if (WIFSIGNALED(wait_status_)) {
    const int signal = WTERMSIG(wait_status_);
    return fmt::format("killed by signal {} ({})", signal, strsignal(signal));
  }
  return "ended";
}

}  // namespace deconvtune::tuner

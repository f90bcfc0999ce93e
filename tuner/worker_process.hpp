#pragma once
// A worker subprocess with its stdin and stdout connected to this process by a socket pair, so
// writing to a dead worker is an error, never a SIGPIPE. Lines are read with a deadline: a worker
// that does not answer in time is the caller's to kill. The worker leads its own process group, and
// whatever it started goes when it goes: once reaped, nothing of it is left running.
#include <sys/types.h>

#include <atomic>
#include <string>
#include <vector>

namespace deconvtune::tuner {

class WorkerProcess {
 public:
  // Starts argv[0] (a path) with the given arguments. Throws std::runtime_error when it cannot.
  explicit WorkerProcess(const std::vector<std::string>& argv);
  ~WorkerProcess();  // kills the worker when it still runs
  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  // Writes one line (a newline is appended). False when the worker is gone.
  bool send_line(const std::string& line);

  enum class Read { kLine, kTimedOut, kClosed, kCancelled };
  // The next line (without its newline), waiting at most `timeout_seconds`; kCancelled within
  // ~50 ms of `*cancel` becoming true (the worker is left as it is).
  Read read_line(std::string& line, double timeout_seconds,
                 const std::atomic<bool>* cancel = nullptr);

  // SIGKILL to it and what it started, then reaps it. Safe to call more than once.
  void kill();
  // Reaps it when it has exited (waiting up to `timeout_seconds`); true when it has.
  bool wait_exit(double timeout_seconds);
  // "exited with code 3", "killed by signal 9 (Killed)", or "running".
  std::string exit_description() const;
  // The signal that ended it, once reaped; 0 when it exited or still runs. Only this class's kill()
  // and the outside world (the OOM killer, a scheduler, a user) send a worker SIGKILL.
  int term_signal() const;
  pid_t pid() const { return pid_; }

 private:
  void reap();  // kills the worker's process group, then reaps the worker

  pid_t pid_ = -1;
  int socket_ = -1;
  bool reaped_ = false;
  int wait_status_ = 0;
  std::string buffer_;
};

}  // namespace deconvtune::tuner

#pragma once
// Permission tests that also hold as root (CI runs as root in a container, and root ignores file
// modes): the body runs in a forked child that, when root, first drops to nobody (uid/gid 65534).
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <exception>
#include <functional>
#include <string>

namespace deconvtune::testing {

inline constexpr uid_t kNobody = 65534;

// What `body` returned in the child, or why it could not run ("cannot drop to nobody": root
// without CAP_SETUID; the caller should skip, saying so). A child that dies adds "(the child
// crashed)".
inline std::string in_unprivileged_child(const std::function<std::string()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string report;
    if (geteuid() == 0 &&
        (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 ||
         setresuid(kNobody, kNobody, kNobody) != 0)) {
      report = "cannot drop to nobody";
    } else {
      try {
        report = body();
      } catch (const std::exception& e) {
        report = std::string("exception: ") + e.what();
      }
    }
    for (size_t done = 0; done < report.size();) {
      ssize_t n = write(fds[1], report.data() + done, report.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string report;
  char buffer[4096];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof(buffer))) > 0;) {
    report.append(buffer, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) report += " (the child crashed)";
  return report;
}

// A shell prefix that runs a command as the same unprivileged user (setpriv, util-linux).
inline std::string unprivileged_prefix() {
  return geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups" : "";
}

}  // namespace deconvtune::testing

#pragma once
// Permission tests that also hold as root (CI runs as root in a container, and root ignores file
// modes): the body runs in a forked child that, when root, first drops to nobody (uid/gid 65534),
// or that sees a folder as a read-only mount.
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <exception>
#include <functional>
#include <string>

namespace deconvtune::testing {

inline constexpr uid_t kNobody = 65534;

// What `body` returned in a forked child once `enter` (run in the child first) returned "", else
// what `enter` returned: why the child could not be set up. A child that dies adds "(the child
// crashed)".
inline std::string in_child(const std::function<std::string()>& enter,
                            const std::function<std::string()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string report = enter();
    if (report.empty()) {
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

// `body` as nobody, or "cannot drop to nobody" (root without CAP_SETUID: the caller should skip,
// saying so).
inline std::string in_unprivileged_child(const std::function<std::string()>& body) {
  return in_child(
      [] {
        const bool dropped = geteuid() != 0 || (setgroups(0, nullptr) == 0 &&
                                                setresgid(kNobody, kNobody, kNobody) == 0 &&
                                                setresuid(kNobody, kNobody, kNobody) == 0);
        return dropped ? std::string() : std::string("cannot drop to nobody");
      },
      body);
}

// `body` in a child that sees `folder` as a read-only mount: a bind mount of it onto itself,
// remounted read-only, in the child's own mount namespace (so nothing outside the child sees it
// and it goes when the child does). "cannot mount read-only: ..." where the process may not
// (no CAP_SYS_ADMIN): the caller should skip, saying so.
inline std::string on_read_only_mount(const std::string& folder,
                                      const std::function<std::string()>& body) {
  return in_child(
      [&folder] {
        if (unshare(CLONE_NEWNS) != 0) return std::string("cannot mount read-only: unshare");
        if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            mount(folder.c_str(), folder.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
            mount(nullptr, folder.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) !=
                0) {
          return std::string("cannot mount read-only: mount");
        }
        return std::string();
      },
      body);
}

// A shell prefix that runs a command as the same unprivileged user (setpriv, util-linux).
inline std::string unprivileged_prefix() {
  return geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups" : "";
}

}  // namespace deconvtune::testing

#pragma once
// The one way the tests run the `deconvtune` binary: through the shell, with stdout and stderr
// kept apart (commands under --json promise that stdout holds only the JSON).
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>

namespace deconvtune::testing {

struct CliResult {
  int exit_code = -1;  // -1: killed by a signal (a crash) or not started
  std::string stdout_text;
  std::string stderr_text;
  std::string output;  // stdout, then stderr: for messages that may go to either
};

inline std::string cli_binary() {
  const char* binary = std::getenv("DECONVTUNE_BINARY");
  return binary ? binary : DECONVTUNE_BINARY;
}

// `environment` comes first on the command line: variables, or a wrapper such as `timeout 60`.
inline CliResult run_cli(const std::string& arguments, const std::string& environment = "") {
  CliResult result;
  char stderr_path[] = "/tmp/deconvtune-test-stderr-XXXXXX";
  const int stderr_file = mkstemp(stderr_path);
  if (stderr_file < 0) return result;
  close(stderr_file);
  const std::string command =
      environment + " " + cli_binary() + " " + arguments + " 2>'" + stderr_path + "'";
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.stdout_text.append(buffer, n);
    const int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::ifstream err(stderr_path, std::ios::binary);
  result.stderr_text.assign(std::istreambuf_iterator<char>(err), {});
  unlink(stderr_path);
  result.output = result.stdout_text + result.stderr_text;
  return result;
}

}  // namespace deconvtune::testing

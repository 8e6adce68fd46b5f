// Child processes for tests: servers started by a test and stopped with it.
#ifndef CALDERA_TESTS_SUPPORT_SUBPROCESS_H_
#define CALDERA_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace caldera::testing {

// A child process whose stdin and stdout are pipes to us (stderr is inherited).
// The destructor closes stdin, waits briefly, then kills the process group.
class Subprocess {
 public:
  // Starts argv[0] (searched in PATH) with the given arguments in its own
  // process group.
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv);

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  // Reads one line from the child's stdout (without the newline), waiting at
  // most `timeout`. DEADLINE_EXCEEDED or UNAVAILABLE (EOF) otherwise.
  absl::StatusOr<std::string> ReadLine(std::chrono::milliseconds timeout);

  pid_t pid() const { return pid_; }
  // Sends a signal to the child.
  void Signal(int sig) const;
  // Waits for exit; returns the exit status as from waitpid, or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);

 private:
  Subprocess() = default;
  void Stop();

  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string buffer_;
};

// Runs a command to completion and returns its exit code (and stdout in *out).
int RunCommand(const std::string& command, std::string* out = nullptr);

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
// released), for a server process a test starts.
int FreePort();

}  // namespace caldera::testing

#endif  // CALDERA_TESTS_SUPPORT_SUBPROCESS_H_

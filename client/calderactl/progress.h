// Progress display for long-running subcommands: a redrawn bar on a terminal,
// plain lines when stderr is not a terminal; both with the elapsed time and
// an estimate of the time left.
#ifndef CALDERA_CLIENT_CALDERACTL_PROGRESS_H_
#define CALDERA_CLIENT_CALDERACTL_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace caldera::cli {

// "45s", "3m05s", "2h07m": a duration for a progress line (negative and
// non-finite values read as 0s).
std::string FormatDuration(double seconds);

// The time left from the task counts seen so far: the rate of completions
// since the first observation (so a resumed job's finished tasks do not make
// it look fast), applied to the tasks left. Pure; thread-compatible.
class ProgressClock {
 public:
  // `done` of `total` tasks were finished `seconds` after the start.
  void Observe(int64_t done, int64_t total, double seconds);
  // "elapsed 12s" or "elapsed 12s, ETA 30s" (the ETA once a task has finished
  // since the first observation; "elapsed 1m40s, done" when done == total).
  std::string Summary() const;
  // Tasks finished between the previous observation and the last one.
  int64_t last_step() const { return last_step_; }

 private:
  bool seen_ = false;
  int64_t first_done_ = 0, done_ = 0, total_ = 0, last_step_ = 0;
  double first_seconds_ = 0, seconds_ = 0;
};

class ProgressDisplay {
 public:
  // `label` prefixes every line ("compress").
  explicit ProgressDisplay(std::string label);
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  // Shows `done` of `total` tasks; `what` names the last event. Line mode
  // prints a line per call, saying how many tasks finished since the last
  // one when the event stream coalesced several.
  void Update(int64_t done, int64_t total, const std::string& what);
  // Ends the bar's line (terminal mode).
  void Finish();

 private:
  std::string label_;
  bool tty_;
  bool open_line_ = false;
  std::chrono::steady_clock::time_point start_;
  ProgressClock clock_;
};

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_PROGRESS_H_

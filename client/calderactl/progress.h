// Progress display for long-running subcommands: a redrawn bar on a terminal,
// plain lines (one per step) when stderr is not a terminal.
#ifndef CALDERA_CLIENT_CALDERACTL_PROGRESS_H_
#define CALDERA_CLIENT_CALDERACTL_PROGRESS_H_

#include <cstdint>
#include <string>

namespace caldera::cli {

class ProgressDisplay {
 public:
  // `label` prefixes every line ("compress").
  explicit ProgressDisplay(std::string label);
  ~ProgressDisplay();
  ProgressDisplay(const ProgressDisplay&) = delete;
  ProgressDisplay& operator=(const ProgressDisplay&) = delete;

  // Shows `done` of `total` steps; `what` names the step just finished.
  void Update(int64_t done, int64_t total, const std::string& what);
  // Ends the bar's line (terminal mode).
  void Finish();

 private:
  std::string label_;
  bool tty_;
  bool open_line_ = false;
};

}  // namespace caldera::cli

#endif  // CALDERA_CLIENT_CALDERACTL_PROGRESS_H_

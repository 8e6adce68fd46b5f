#include "client/calderactl/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "absl/strings/str_format.h"

namespace caldera::cli {

std::string FormatDuration(double seconds) {
  const int64_t s = std::isfinite(seconds) && seconds > 0 ? std::llround(seconds) : 0;
  if (s < 60) return absl::StrFormat("%ds", s);
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

void ProgressClock::Observe(int64_t done, int64_t total, double seconds) {
  if (!seen_) {
    seen_ = true;
    first_done_ = done;
    first_seconds_ = seconds;
    done_ = done;
  }
  last_step_ = done > done_ ? done - done_ : 0;
  done_ = done;
  total_ = total;
  seconds_ = seconds;
}

std::string ProgressClock::Summary() const {
  std::string out = "elapsed " + FormatDuration(seconds_);
  if (total_ > 0 && done_ >= total_) return out + ", done";
  const int64_t finished = done_ - first_done_;
  const double span = seconds_ - first_seconds_;
  if (finished > 0 && span > 0 && total_ > done_) {
    const double rate = static_cast<double>(finished) / span;
    out += ", ETA " + FormatDuration(static_cast<double>(total_ - done_) / rate);
  }
  return out;
}

ProgressDisplay::ProgressDisplay(std::string label)
    : label_(std::move(label)),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

ProgressDisplay::~ProgressDisplay() { Finish(); }

void ProgressDisplay::Update(int64_t done, int64_t total, const std::string& what) {
  clock_.Observe(done, total,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0.0;
  const std::string times = clock_.Summary();
  if (!tty_) {
    const std::string step =
        clock_.last_step() > 1 ? absl::StrFormat(" (+%d)", clock_.last_step()) : "";
    std::fprintf(stderr, "%s: %lld/%lld%s [%s] %s\n", label_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), step.c_str(), times.c_str(), what.c_str());
    return;
  }
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  std::string shown = what.size() > 40 ? what.substr(what.size() - 40) : what;
  std::fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %lld/%lld %s %s", label_.c_str(), bar.c_str(),
               100 * frac, static_cast<long long>(done), static_cast<long long>(total),
               times.c_str(), shown.c_str());
  std::fflush(stderr);
  open_line_ = true;
}

void ProgressDisplay::Finish() {
  if (tty_ && open_line_) std::fputc('\n', stderr);
  open_line_ = false;
}

}  // namespace caldera::cli

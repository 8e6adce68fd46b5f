#include "client/calderactl/progress.h"

#include <unistd.h>

#include <cstdio>

namespace caldera::cli {

ProgressDisplay::ProgressDisplay(std::string label)
    : label_(std::move(label)), tty_(isatty(STDERR_FILENO) == 1) {}

ProgressDisplay::~ProgressDisplay() { Finish(); }

void ProgressDisplay::Update(int64_t done, int64_t total, const std::string& what) {
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0.0;
  if (!tty_) {
    std::fprintf(stderr, "%s: %lld/%lld %s\n", label_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), what.c_str());
    return;
  }
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  std::string shown = what.size() > 40 ? what.substr(what.size() - 40) : what;
  std::fprintf(stderr, "\r\033[K%s [%s] %3.0f%% %lld/%lld %s", label_.c_str(), bar.c_str(),
               100 * frac, static_cast<long long>(done), static_cast<long long>(total),
               shown.c_str());
  std::fflush(stderr);
  open_line_ = true;
}

void ProgressDisplay::Finish() {
  if (tty_ && open_line_) std::fputc('\n', stderr);
  open_line_ = false;
}

}  // namespace caldera::cli

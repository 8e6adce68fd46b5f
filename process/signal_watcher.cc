#include "process/signal_watcher.h"

#include <pthread.h>

#include <ctime>
#include <utility>

namespace caldera::process {
namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void BlockStopSignals() {
  const sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int WaitForStopSignal() {
  const sigset_t set = StopSignals();
  int sig = 0;
  (void)sigwait(&set, &sig);
  return sig;
}

SignalWatcher::SignalWatcher(std::function<void(int)> on_signal) {
  set_ = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set_, &old_);
  thread_ = std::thread([this, on_signal = std::move(on_signal)] {
    const timespec tick{0, 100 * 1000 * 1000};
    while (!stop_.load()) {
      const int sig = sigtimedwait(&set_, nullptr, &tick);
      if (sig > 0) on_signal(sig);
    }
  });
}

SignalWatcher::~SignalWatcher() {
  stop_.store(true);
  thread_.join();
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace caldera::process

// SignalWatcher: turns SIGINT/SIGTERM into a callback on a thread of its own,
// for binaries that stop gracefully (calderactl compress cancels its job,
// caldera-worker drains). Construct it in the main thread before any other
// thread starts: the constructor blocks both signals in the calling thread, so
// threads created afterwards inherit the mask and only the watcher sees them.
// The destructor stops the watcher and restores the old mask. Not copyable.
#ifndef CALDERA_PROCESS_SIGNAL_WATCHER_H_
#define CALDERA_PROCESS_SIGNAL_WATCHER_H_

#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

namespace caldera::process {

class SignalWatcher {
 public:
  // `on_signal(signo)` runs on the watcher's thread, once per signal received.
  explicit SignalWatcher(std::function<void(int)> on_signal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  sigset_t set_, old_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace caldera::process

#endif  // CALDERA_PROCESS_SIGNAL_WATCHER_H_

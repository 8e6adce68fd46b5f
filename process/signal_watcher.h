// The stop signals (SIGINT, SIGTERM) of our binaries, handled in one of two
// ways: a process whose main thread has nothing else to do blocks them first
// thing and waits for one (BlockStopSignals + WaitForStopSignal:
// caldera-coordinator); a process whose main thread works meanwhile gets them
// as a callback on a thread of its own (SignalWatcher: calderactl compress
// cancels its job, caldera-worker drains).
//
// SignalWatcher: Construct it in the main thread before any other
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

// Blocks SIGINT and SIGTERM in the calling thread; threads it starts later
// inherit the mask. Call it in main before any thread starts.
void BlockStopSignals();

// Waits until SIGINT or SIGTERM (blocked by BlockStopSignals) arrives; returns it.
int WaitForStopSignal();

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

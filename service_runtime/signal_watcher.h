// The stop signals (SIGINT, SIGTERM) of our binaries, handled in one of two
// ways: a process whose main thread has nothing else to do blocks them first
// thing and waits for one (BlockStopSignals + WaitForStopSignal:
// caldera-coordinator); a process whose main thread works meanwhile gets them
// as a callback on a thread of its own (SignalWatcher: calderactl compress
// cancels its job, caldera-worker drains).
//
// Threads that exist before main (OpenBLAS starts its pool when the library
// loads) do not block the signals, and the kernel may hand a process-directed
// signal to any such thread. So BlockStopSignals also installs a handler that,
// in whichever thread the signal lands, blocks the stop signals in that thread
// from then on and sends the signal to the process again; it then stays
// pending until the waiting thread takes it. The signal is never lost and
// never terminates the process. A stop signal ignored (SIG_IGN) when
// BlockStopSignals runs (a background job of a non-interactive shell) stays
// ignored.
//
// SignalWatcher: Construct it in the main thread before any other thread of
// ours starts: the constructor calls BlockStopSignals, so threads created
// afterwards inherit the mask. The destructor stops the watcher and restores
// the old mask and handlers. Not copyable.
#ifndef CALDERA_SERVICE_RUNTIME_SIGNAL_WATCHER_H_
#define CALDERA_SERVICE_RUNTIME_SIGNAL_WATCHER_H_

#include <signal.h>

#include <atomic>
#include <functional>
#include <thread>

namespace caldera::service_runtime {

// Blocks SIGINT and SIGTERM in the calling thread (threads it starts later
// inherit the mask) and installs the forwarding handler described above. Call
// it in main before any thread of ours starts.
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
  struct sigaction old_int_, old_term_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace caldera::service_runtime

#endif  // CALDERA_SERVICE_RUNTIME_SIGNAL_WATCHER_H_

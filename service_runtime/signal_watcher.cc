#include "service_runtime/signal_watcher.h"

#include <pthread.h>
#include <ucontext.h>
#include <unistd.h>

#include <ctime>
#include <utility>

namespace caldera::service_runtime {
namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

// Runs in a thread that did not block the stop signals (one started before
// main): block them in this thread once the handler returns, and send the
// signal to the process again so that a thread waiting for it gets it.
// Async-signal-safe (sigaddset, kill).
void ForwardStopSignal(int sig, siginfo_t*, void* context) {
  auto* uc = static_cast<ucontext_t*>(context);
  sigaddset(&uc->uc_sigmask, SIGINT);
  sigaddset(&uc->uc_sigmask, SIGTERM);
  (void)kill(getpid(), sig);
}

// Installs ForwardStopSignal for `sig` unless it is ignored; the old action
// goes to *old.
void InstallForwarder(int sig, struct sigaction* old) {
  struct sigaction current;
  sigaction(sig, nullptr, &current);
  *old = current;
  if (current.sa_handler == SIG_IGN) return;
  struct sigaction sa {};
  sa.sa_sigaction = ForwardStopSignal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

}  // namespace

void BlockStopSignals() {
  const sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  struct sigaction ignored;
  InstallForwarder(SIGINT, &ignored);
  InstallForwarder(SIGTERM, &ignored);
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
  InstallForwarder(SIGINT, &old_int_);
  InstallForwarder(SIGTERM, &old_term_);
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
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

}  // namespace caldera::service_runtime

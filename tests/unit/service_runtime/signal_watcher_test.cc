#include "service_runtime/signal_watcher.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace caldera::service_runtime {
namespace {

// A process-directed SIGTERM reaches the callback (on the watcher's thread)
// instead of terminating the test.
TEST(SignalWatcherTest, DeliversStopSignalsToTheCallback) {
  std::atomic<int> got{0};
  {
    SignalWatcher watcher([&](int sig) { got.store(sig); });
    ASSERT_EQ(kill(getpid(), SIGTERM), 0);
    for (int i = 0; i < 100 && got.load() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  EXPECT_EQ(got.load(), SIGTERM);
  // The old mask is back: SIGTERM is not blocked any more in this thread.
  sigset_t now;
  ASSERT_EQ(pthread_sigmask(SIG_SETMASK, nullptr, &now), 0);
  EXPECT_EQ(sigismember(&now, SIGTERM), 0);
}

// A thread started before the watcher (as OpenBLAS starts its pool when the
// library loads, before main) does not block the stop signals, and the kernel
// hands a process-directed signal to the first thread after main that does not
// block it: that thread. The signal must still reach the callback and never
// terminate the process.
TEST(SignalWatcherTest, ThreadsStartedBeforeTheWatcherDoNotTakeTheSignal) {
  for (const int sig : {SIGINT, SIGTERM, SIGINT, SIGTERM}) {
    std::atomic<bool> stop{false};
    std::thread early([&] {
      sigset_t none;
      sigemptyset(&none);
      pthread_sigmask(SIG_SETMASK, &none, nullptr);
      while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::atomic<int> got{0};
    {
      SignalWatcher watcher([&](int s) { got.store(s); });
      ASSERT_EQ(kill(getpid(), sig), 0);
      for (int w = 0; w < 200 && got.load() == 0; ++w) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    stop.store(true);
    early.join();
    EXPECT_EQ(got.load(), sig);
  }
}

}  // namespace
}  // namespace caldera::service_runtime

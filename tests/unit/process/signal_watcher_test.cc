#include "process/signal_watcher.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace caldera::process {
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

}  // namespace
}  // namespace caldera::process

#include "client/calderactl/progress.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace caldera::cli {
namespace {

TEST(ProgressTest, DurationsReadAsSecondsMinutesHours) {
  EXPECT_EQ(FormatDuration(0), "0s");
  EXPECT_EQ(FormatDuration(44.6), "45s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(7625), "2h07m");
  EXPECT_EQ(FormatDuration(-3), "0s");
  EXPECT_EQ(FormatDuration(std::numeric_limits<double>::infinity()), "0s");
}

TEST(ProgressTest, EtaIsTheRateSinceTheFirstObservationAppliedToWhatIsLeft) {
  ProgressClock c;
  c.Observe(10, 50, 2.0);                // a resumed job: 10 done before we looked
  EXPECT_EQ(c.Summary(), "elapsed 2s");  // no rate yet
  c.Observe(14, 50, 10.0);               // 4 tasks in 8 s: 0.5/s, 36 left -> 72 s
  EXPECT_EQ(c.Summary(), "elapsed 10s, ETA 1m12s");
  EXPECT_EQ(c.last_step(), 4);
  c.Observe(15, 50, 12.0);  // 5 in 10 s, 35 left -> 70 s
  EXPECT_EQ(c.Summary(), "elapsed 12s, ETA 1m10s");
  EXPECT_EQ(c.last_step(), 1);
  c.Observe(50, 50, 30.0);
  EXPECT_EQ(c.Summary(), "elapsed 30s, done");
  EXPECT_EQ(c.last_step(), 35);  // a coalesced stream's jump is counted
}

}  // namespace
}  // namespace caldera::cli

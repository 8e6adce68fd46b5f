#include "server/planner.h"

#include "gtest/gtest.h"

namespace caldera::server {
namespace {

TEST(PlannerTest, PlanOrderAndDependencies) {
  std::vector<TaskRecord> tasks = PlanJob("j-1", 2, {"q_proj", "down_proj"});
  ASSERT_EQ(tasks.size(), 7u);  // 2 x (calibrate + 2 decompose) + finalize
  EXPECT_EQ(tasks[0].id, "j-1/calibrate-0000");
  EXPECT_EQ(tasks[1].id, "j-1/decompose-0000-q_proj");
  EXPECT_EQ(tasks[3].id, "j-1/calibrate-0001");
  EXPECT_EQ(tasks[6].kind, v1::FINALIZE);
  std::vector<size_t> calib = CalibrateIndex(tasks);
  ASSERT_EQ(calib, (std::vector<size_t>{0, 3}));
  EXPECT_TRUE(TaskIsReady(tasks, calib, 0));
  EXPECT_FALSE(TaskIsReady(tasks, calib, 1));  // needs calibrate(0)
  EXPECT_FALSE(TaskIsReady(tasks, calib, 3));  // needs calibrate(0)'s hidden states
  tasks[0].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 1));
  EXPECT_TRUE(TaskIsReady(tasks, calib, 3));
  EXPECT_FALSE(TaskIsReady(tasks, calib, 4));
  EXPECT_FALSE(TaskIsReady(tasks, calib, 6));
  for (size_t i = 0; i < 6; ++i) tasks[i].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 6));
  EXPECT_EQ(DescribeTask(tasks[4]), "decompose layer 1 q_proj");
}

}  // namespace
}  // namespace caldera::server

#include "server/planner.h"

#include "gtest/gtest.h"
#include "job/task_plan.h"

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

// Sequential calibration: calibrate(l) also waits for every decompose(l-1, m),
// and its task names their artifacts (it runs the compressed block l-1).
TEST(PlannerTest, SequentialCalibrationWaitsForThePreviousLayersDecompositions) {
  std::vector<TaskRecord> tasks = PlanJob("j-1", 2, {"q_proj", "down_proj"});  // c0 d d c1 d d f
  std::vector<size_t> calib = CalibrateIndex(tasks);
  tasks[0].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 3, /*sequential=*/false));
  EXPECT_FALSE(TaskIsReady(tasks, calib, 3, /*sequential=*/true));
  tasks[1].state = v1::TASK_DONE;
  EXPECT_FALSE(TaskIsReady(tasks, calib, 3, /*sequential=*/true));
  tasks[2].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 3, /*sequential=*/true));

  JobRecord job;
  job.id = "j-1";
  job.spec.set_out("/o");
  job.spec.set_calibration("/c.safetensors");
  job.spec.set_calibration_mode("sequential");
  tasks[0].result_uris = {"/s/h0.safetensors", "/s/x0.safetensors"};
  tasks[1].result_uris = {"/s/q0.safetensors"};
  tasks[2].result_uris = {"/s/down0.safetensors"};
  tasks[0].lease_attempt = "j-1/calibrate-0000/a1-aa";
  v1::Task c0 = BuildTask(job, tasks, calib, tasks[0], 0);
  EXPECT_TRUE(c0.calibrate().sequential());
  EXPECT_EQ(c0.calibrate().previous_artifact_uris_size(), 0);
  tasks[3].lease_attempt = "j-1/calibrate-0001/a1-bb";
  v1::Task c1 = BuildTask(job, tasks, calib, tasks[3], 0);
  EXPECT_TRUE(c1.calibrate().sequential());
  EXPECT_EQ(c1.calibrate().input_uri(), "/s/x0.safetensors");
  ASSERT_EQ(c1.calibrate().previous_artifact_uris_size(), 2);
  EXPECT_EQ(c1.calibrate().previous_artifact_uris(0), "/s/q0.safetensors");
  EXPECT_EQ(c1.calibrate().previous_artifact_uris(1), "/s/down0.safetensors");
  // A job stored before calibration_mode existed runs as "original".
  job.spec.clear_calibration_mode();
  EXPECT_FALSE(BuildTask(job, tasks, calib, tasks[3], 0).calibrate().sequential());
}

// Finalize runs last: while any one other task (a decompose of any layer, or
// a calibrate) is not done, it is not ready.
TEST(PlannerTest, FinalizeWaitsForEveryOtherTask) {
  std::vector<TaskRecord> tasks = PlanJob("j-1", 2, {"q_proj", "down_proj"});
  const std::vector<size_t> calib = CalibrateIndex(tasks);
  const size_t finalize = tasks.size() - 1;
  ASSERT_EQ(tasks[finalize].kind, v1::FINALIZE);
  for (size_t missing = 0; missing < finalize; ++missing) {
    for (size_t i = 0; i < finalize; ++i) {
      tasks[i].state = i == missing ? v1::TASK_LEASED : v1::TASK_DONE;
    }
    EXPECT_FALSE(TaskIsReady(tasks, calib, finalize))
        << "ready with " << tasks[missing].id << " not done";
  }
  for (size_t i = 0; i < finalize; ++i) tasks[i].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, finalize));
}

// BuildTask reads the committed results of a task's dependencies in the stored
// layout (as an old state database holds them) and names them in the typed task.
TEST(PlannerTest, BuildTaskNamesInputsFromCommittedResults) {
  std::vector<TaskRecord> tasks = PlanJob("j-1", 2, {"q_proj"});  // c0 d0 c1 d1 f
  std::vector<size_t> calib = CalibrateIndex(tasks);
  JobRecord job;
  job.id = "j-1";
  job.spec.set_out("/o");
  job.spec.set_calibration("/c.safetensors");
  tasks[0].result_uris = {"/s/h0.safetensors", "/s/x0.safetensors"};
  tasks[1].result_uris = {"/s/q0.safetensors"};
  tasks[2].result_uris = {"/s/h1.safetensors", ""};
  tasks[3].result_uris = {"/s/q1.safetensors"};

  tasks[0].lease_attempt = "j-1/calibrate-0000/a1-aa";
  v1::Task c0 = BuildTask(job, tasks, calib, tasks[0], 0);
  ASSERT_TRUE(c0.has_calibrate());
  EXPECT_EQ(c0.calibrate().input_uri(), "/c.safetensors");
  EXPECT_EQ(c0.calibrate().hessians_uri(),
            "/o/.caldera-scratch/j-1/calibrate-0000/a1-aa/hessians.safetensors");
  EXPECT_EQ(c0.calibrate().hidden_states_uri(),
            "/o/.caldera-scratch/j-1/calibrate-0000/a1-aa/hidden_states.safetensors");

  tasks[2].lease_attempt = "j-1/calibrate-0001/a1-bb";
  v1::Task c1 = BuildTask(job, tasks, calib, tasks[2], 0);
  EXPECT_EQ(c1.calibrate().input_uri(), "/s/x0.safetensors");
  EXPECT_EQ(c1.calibrate().hidden_states_uri(), "");  // the last layer

  tasks[3].lease_attempt = "j-1/decompose-0001-q_proj/a2-cc";
  v1::Task d1 = BuildTask(job, tasks, calib, tasks[3], 0);
  ASSERT_TRUE(d1.has_decompose());
  EXPECT_EQ(d1.decompose().layer(), 1);
  EXPECT_EQ(d1.decompose().module(), "q_proj");
  EXPECT_EQ(d1.decompose().hessians_uri(), "/s/h1.safetensors");
  EXPECT_EQ(d1.decompose().artifact_uri(),
            "/o/.caldera-scratch/j-1/decompose-0001-q_proj/a2-cc/q_proj.safetensors");

  tasks[4].lease_attempt = "j-1/finalize/a1-dd";
  v1::Task f = BuildTask(job, tasks, calib, tasks[4], 12.5);
  ASSERT_TRUE(f.has_finalize());
  EXPECT_EQ(f.finalize().artifact_uris_size(), 2);
  EXPECT_EQ(f.finalize().artifact_uris(0), "/s/q0.safetensors");
  EXPECT_EQ(f.finalize().artifact_uris(1), "/s/q1.safetensors");
  EXPECT_EQ(f.finalize().job_elapsed_seconds(), 12.5);
  EXPECT_EQ(f.finalize().scratch_prefix(), "/o/.caldera-scratch/j-1");
}

// Sharded calibration: calibrate(l, s) per shard, shard s of layer l waiting
// for shard s of layer l-1 only (its own samples' states) and, in sequential
// mode, for decompose(l-1, *); decompose(l, m) waits for every shard and
// reads their Hessians in shard order.
TEST(PlannerTest, ShardedPlanDependenciesAndInputs) {
  std::vector<TaskRecord> tasks = PlanJob("j-1", 2, {"q_proj"}, 2);  // c00 c01 d0 c10 c11 d1 f
  ASSERT_EQ(tasks.size(), 7u);
  EXPECT_EQ(tasks[0].id, "j-1/calibrate-0000-s000");
  EXPECT_EQ(tasks[1].id, "j-1/calibrate-0000-s001");
  EXPECT_EQ(tasks[1].shard, 1);
  EXPECT_EQ(tasks[2].id, "j-1/decompose-0000-q_proj");
  EXPECT_EQ(tasks[4].id, "j-1/calibrate-0001-s001");
  const std::vector<size_t> calib = CalibrateIndex(tasks);
  ASSERT_EQ(calib, (std::vector<size_t>{0, 3}));
  EXPECT_EQ(ShardsOfLayer(tasks, calib, 1), 2);
  EXPECT_EQ(DescribeTask(tasks[4], 2), "calibrate layer 1 shard 2/2");
  EXPECT_TRUE(TaskIsReady(tasks, calib, 0));
  EXPECT_TRUE(TaskIsReady(tasks, calib, 1));
  tasks[1].state = v1::TASK_DONE;              // shard 1 of layer 0 only
  EXPECT_FALSE(TaskIsReady(tasks, calib, 2));  // decompose needs both shards
  EXPECT_FALSE(TaskIsReady(tasks, calib, 3));  // shard 0 of layer 1 needs shard 0 of layer 0
  EXPECT_TRUE(TaskIsReady(tasks, calib, 4, /*sequential=*/false));
  EXPECT_FALSE(TaskIsReady(tasks, calib, 4, /*sequential=*/true));  // needs decompose(0)
  tasks[0].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 2));
  EXPECT_TRUE(TaskIsReady(tasks, calib, 3));
  tasks[2].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 4, /*sequential=*/true));
  EXPECT_FALSE(TaskIsReady(tasks, calib, 5));

  JobRecord job;
  job.id = "j-1";
  job.spec.set_out("/o");
  job.spec.set_calibration("/c.safetensors");
  job.spec.set_calibration_shards(2);
  tasks[0].result_uris = {"/s/h00", "/s/x00"};
  tasks[1].result_uris = {"/s/h01", "/s/x01"};
  tasks[1].lease_attempt = "j-1/calibrate-0000-s001/a1-aa";
  const v1::Task c01 = BuildTask(job, tasks, calib, tasks[1], 0);
  EXPECT_EQ(c01.calibrate().input_uri(), "/c.safetensors");
  EXPECT_EQ(c01.calibrate().shard(), 1);
  EXPECT_EQ(c01.calibrate().num_shards(), 2);
  tasks[4].lease_attempt = "j-1/calibrate-0001-s001/a1-bb";
  const v1::Task c11 = BuildTask(job, tasks, calib, tasks[4], 0);
  EXPECT_EQ(c11.calibrate().input_uri(), "/s/x01");
  EXPECT_EQ(c11.calibrate().shard(), 1);
  tasks[2].lease_attempt = "j-1/decompose-0000-q_proj/a1-cc";
  const v1::Task d0 = BuildTask(job, tasks, calib, tasks[2], 0);
  EXPECT_EQ(d0.decompose().hessians_uri(), "");
  ASSERT_EQ(d0.decompose().hessians_shard_uris_size(), 2);
  EXPECT_EQ(d0.decompose().hessians_shard_uris(0), "/s/h00");
  EXPECT_EQ(d0.decompose().hessians_shard_uris(1), "/s/h01");
}

}  // namespace
}  // namespace caldera::server

namespace caldera::server {
namespace {

// Fine-tuning (JobSpec.finetune_steps > 0): finetune(l) after the layer's
// decompose tasks, waiting for them and for finetune(l-1); in sequential mode
// calibrate(l+1) waits for finetune(l) and runs block l with its tuned
// artifacts and block file; finalize reads every finetune task's results.
TEST(PlannerTest, FinetuneTasksFollowTheirLayerAndFeedTheNext) {
  // c0 d0 f0 c1 d1 f1 F
  std::vector<TaskRecord> tasks = PlanJob("j-1", 2, {"q_proj"}, 1, /*finetune=*/true);
  ASSERT_EQ(tasks.size(), 7u);
  EXPECT_EQ(tasks[2].id, "j-1/finetune-0000");
  EXPECT_EQ(tasks[2].kind, v1::FINETUNE);
  EXPECT_EQ(tasks[5].id, "j-1/finetune-0001");
  EXPECT_EQ(DescribeTask(tasks[5]), "finetune layer 1");
  EXPECT_EQ(LeasePriority(v1::FINETUNE), LeasePriority(v1::CALIBRATE));
  const std::vector<size_t> calib = CalibrateIndex(tasks);
  ASSERT_EQ(calib, (std::vector<size_t>{0, 3}));
  tasks[0].state = v1::TASK_DONE;
  EXPECT_FALSE(TaskIsReady(tasks, calib, 2, true));  // decompose(0) not done
  tasks[1].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 2, true));
  EXPECT_FALSE(TaskIsReady(tasks, calib, 3, true));  // calibrate(1) waits for finetune(0)
  EXPECT_TRUE(TaskIsReady(tasks, calib, 3, false));  // not in original mode
  tasks[2].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 3, true));
  tasks[2].state = v1::TASK_PENDING;
  tasks[3].state = tasks[4].state = v1::TASK_DONE;
  EXPECT_FALSE(TaskIsReady(tasks, calib, 5, false));  // finetune(1) waits for finetune(0)
  tasks[2].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 5, false));
  EXPECT_FALSE(TaskIsReady(tasks, calib, 6, true));
  tasks[5].state = v1::TASK_DONE;
  EXPECT_TRUE(TaskIsReady(tasks, calib, 6, true));

  JobRecord job;
  job.id = "j-1";
  job.spec.set_out("/o");
  job.spec.set_calibration("/c.safetensors");
  job.spec.set_calibration_mode("sequential");
  job.spec.set_finetune_steps(10);
  tasks[0].result_uris = {"/s/h0.safetensors", "/s/x0.safetensors"};
  tasks[1].result_uris = {"/s/q0.safetensors"};
  tasks[2].result_uris = {"/s/b0.safetensors", "/s/o1.safetensors", "/s/tq0.safetensors"};
  tasks[3].result_uris = {"/s/h1.safetensors", "/s/x1.safetensors"};
  tasks[4].result_uris = {"/s/q1.safetensors"};
  tasks[5].result_uris = {"/s/b1.safetensors", "", "/s/tq1.safetensors"};

  tasks[2].lease_attempt = "j-1/finetune-0000/a1-aa";
  v1::Task f0 = BuildTask(job, tasks, calib, tasks[2], 0);
  ASSERT_TRUE(f0.has_finetune());
  EXPECT_EQ(f0.finetune().layer(), 0);
  ASSERT_EQ(f0.finetune().modules_size(), 1);
  EXPECT_EQ(f0.finetune().modules(0), "q_proj");
  EXPECT_EQ(f0.finetune().artifact_uris(0), "/s/q0.safetensors");
  ASSERT_EQ(f0.finetune().input_uris_size(), 1);
  EXPECT_EQ(f0.finetune().input_uris(0), "/s/x0.safetensors");  // sequential: calibrate(0)'s
  EXPECT_EQ(f0.finetune().original_states_uri(), "");
  EXPECT_FALSE(f0.finetune().last_layer());
  EXPECT_EQ(job::FinetuneArtifactUri(f0.finetune(), "q_proj"),
            "/o/.caldera-scratch/j-1/finetune-0000/a1-aa/q_proj.safetensors");
  v1::CompleteTaskRequest done;
  job::SetResultOfTask(f0, &done);
  EXPECT_EQ(job::StoredResultUris(done),
            (std::vector<std::string>{
                "/o/.caldera-scratch/j-1/finetune-0000/a1-aa/block.safetensors",
                "/o/.caldera-scratch/j-1/finetune-0000/a1-aa/original_states.safetensors",
                "/o/.caldera-scratch/j-1/finetune-0000/a1-aa/q_proj.safetensors"}));

  tasks[3].lease_attempt = "j-1/calibrate-0001/a1-bb";
  v1::Task c1 = BuildTask(job, tasks, calib, tasks[3], 0);
  ASSERT_EQ(c1.calibrate().previous_tuned_artifact_uris_size(), 1);
  EXPECT_EQ(c1.calibrate().previous_tuned_artifact_uris(0), "/s/tq0.safetensors");
  EXPECT_EQ(c1.calibrate().previous_block_uri(), "/s/b0.safetensors");
  // The last layer writes its states for finetune(1).
  EXPECT_NE(c1.calibrate().hidden_states_uri(), "");

  tasks[5].lease_attempt = "j-1/finetune-0001/a1-cc";
  v1::Task f1 = BuildTask(job, tasks, calib, tasks[5], 0);
  EXPECT_EQ(f1.finetune().original_states_uri(), "/s/o1.safetensors");
  EXPECT_EQ(f1.finetune().input_uris(0), "/s/x1.safetensors");
  EXPECT_TRUE(f1.finetune().last_layer());
  // Original mode: the states entering l come from calibrate(l-1); none for l = 0.
  job.spec.set_calibration_mode("original");
  EXPECT_EQ(BuildTask(job, tasks, calib, tasks[2], 0).finetune().input_uris_size(), 0);
  EXPECT_EQ(BuildTask(job, tasks, calib, tasks[5], 0).finetune().input_uris(0),
            "/s/x0.safetensors");

  tasks[6].lease_attempt = "j-1/finalize/a1-dd";
  v1::Task fin = BuildTask(job, tasks, calib, tasks[6], 0);
  EXPECT_EQ(fin.finalize().artifact_uris_size(), 2);
  ASSERT_EQ(fin.finalize().tuned_artifact_uris_size(), 2);
  EXPECT_EQ(fin.finalize().tuned_artifact_uris(1), "/s/tq1.safetensors");
  ASSERT_EQ(fin.finalize().finetune_block_uris_size(), 2);
  EXPECT_EQ(fin.finalize().finetune_block_uris(0), "/s/b0.safetensors");
}

}  // namespace
}  // namespace caldera::server

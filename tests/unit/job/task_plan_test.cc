#include "job/task_plan.h"

#include "gtest/gtest.h"

namespace caldera::job {
namespace {

TEST(TaskPlanTest, ScratchKeysAreAttemptUnique) {
  const std::string scratch = ScratchPrefix("s3://b/out", "j-1");
  EXPECT_EQ(scratch, "s3://b/out/.caldera-scratch/j-1");
  EXPECT_EQ(AttemptDir(scratch, "j-1/calibrate-0000/a1-ff"),
            "s3://b/out/.caldera-scratch/j-1/calibrate-0000/a1-ff");
  EXPECT_NE(AttemptDir(scratch, "j-1/calibrate-0000/a1-ff"),
            AttemptDir(scratch, "j-1/calibrate-0000/a2-0e"));
}

TEST(TaskPlanTest, CalibrateNamesItsInputsAndOutputs) {
  const v1::CalibrateTask first = MakeCalibrateTask(0, 2, "tokens", "d");
  EXPECT_EQ(first.layer(), 0);
  EXPECT_EQ(first.num_shards(), 1);
  EXPECT_EQ(first.input_uri(), "tokens");
  EXPECT_EQ(first.hessians_uri(), "d/hessians.safetensors");
  EXPECT_EQ(first.hidden_states_uri(), "d/hidden_states.safetensors");
  // The last layer has no successor to feed.
  EXPECT_EQ(MakeCalibrateTask(1, 2, "h", "d").hidden_states_uri(), "");
  const v1::DecomposeTask d = MakeDecomposeTask(1, "q_proj", "h.safetensors", "d2");
  EXPECT_EQ(d.hessians_uri(), "h.safetensors");
  EXPECT_EQ(d.artifact_uri(), "d2/q_proj.safetensors");
  const v1::FinalizeTask f = MakeFinalizeTask({"a", "b"}, 3.5, "s");
  EXPECT_EQ(f.artifact_uris_size(), 2);
  EXPECT_EQ(f.job_elapsed_seconds(), 3.5);
  EXPECT_EQ(f.scratch_prefix(), "s");
}

TEST(TaskPlanTest, KindOfFollowsTheOneof) {
  v1::Task t;
  EXPECT_EQ(KindOf(t), v1::TASK_KIND_UNSPECIFIED);
  *t.mutable_calibrate() = MakeCalibrateTask(0, 1, "x", "d");
  EXPECT_EQ(KindOf(t), v1::CALIBRATE);
  *t.mutable_decompose() = MakeDecomposeTask(0, "o_proj", "h", "d");
  EXPECT_EQ(KindOf(t), v1::DECOMPOSE);
  t.mutable_finalize();
  EXPECT_EQ(KindOf(t), v1::FINALIZE);
}

// The stored layout is what old state databases hold: calibrate
// [hessians, hidden_states], decompose [artifact]. It must not change.
TEST(TaskPlanTest, StoredResultLayoutIsStable) {
  v1::Task calibrate;
  *calibrate.mutable_calibrate() = MakeCalibrateTask(0, 2, "tokens", "d");
  v1::CompleteTaskRequest done;
  SetResultOfTask(calibrate, &done);
  const std::vector<std::string> stored = StoredResultUris(done);
  ASSERT_EQ(stored,
            (std::vector<std::string>{"d/hessians.safetensors", "d/hidden_states.safetensors"}));
  EXPECT_EQ(StoredHessiansUri(stored), "d/hessians.safetensors");
  EXPECT_EQ(StoredHiddenStatesUri(stored), "d/hidden_states.safetensors");
  // A list written by the positional protocol reads the same way.
  const std::vector<std::string> old_row = {"old/h.safetensors", "old/x.safetensors"};
  EXPECT_EQ(StoredHessiansUri(old_row), "old/h.safetensors");
  EXPECT_EQ(StoredHiddenStatesUri(old_row), "old/x.safetensors");
  EXPECT_EQ(StoredArtifactUri({"old/q_proj.safetensors"}), "old/q_proj.safetensors");
  // Missing entries read as "".
  EXPECT_EQ(StoredHiddenStatesUri({"h"}), "");
  EXPECT_EQ(StoredArtifactUri({}), "");

  v1::Task decompose;
  *decompose.mutable_decompose() = MakeDecomposeTask(0, "q_proj", "h", "d");
  v1::CompleteTaskRequest d;
  SetResultOfTask(decompose, &d);
  EXPECT_EQ(StoredResultUris(d), (std::vector<std::string>{"d/q_proj.safetensors"}));
  v1::Task finalize;
  finalize.mutable_finalize();
  v1::CompleteTaskRequest f;
  SetResultOfTask(finalize, &f);
  EXPECT_TRUE(f.has_finalize());
  EXPECT_TRUE(StoredResultUris(f).empty());
}

TEST(TaskPlanTest, Describe) {
  EXPECT_EQ(DescribeTask(v1::CALIBRATE, 3, ""), "calibrate layer 3");
  EXPECT_EQ(DescribeTask(v1::DECOMPOSE, 3, "q_proj"), "decompose layer 3 q_proj");
  EXPECT_EQ(DescribeTask(v1::FINALIZE, -1, ""), "finalize");
}

}  // namespace
}  // namespace caldera::job

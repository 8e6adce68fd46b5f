#include "worker/task_confinement.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "job/job_spec_proto.h"
#include "job/task_plan.h"
#include "tests/support/fixtures.h"
#include "worker/task_runner.h"

namespace caldera::worker {
namespace {

namespace fs = std::filesystem;

// <tmp>/root holds the model, calibration and output; /etc/passwd and
// <tmp>/outside lie outside it.
class TaskConfinementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_.Join("root/model"));
    fs::create_directories(tmp_.Join("outside"));
    spec_.model = tmp_.Join("root/model");
    spec_.calibration = tmp_.Join("root/calib.safetensors");
    spec_.out = tmp_.Join("root/out");
    options_.allowed_roots = {tmp_.Join("root")};
  }
  v1::Task Calibrate(const std::string& input_uri) const {
    v1::Task t;
    t.set_task_id("calibrate-0001");
    *t.mutable_spec() = job::JobSpecToProto(spec_);
    const std::string dir = job::AttemptDir(job::ScratchPrefix(spec_.out, "j-1"), "j-1/c/a1");
    *t.mutable_calibrate() = job::MakeCalibrateTask(1, 4, input_uri, dir);
    return t;
  }
  absl::Status Check(const v1::Task& t) const {
    absl::StatusOr<job::JobSpec> spec = job::JobSpecFromProto(t.spec(), "");
    if (!spec.ok()) return spec.status();
    return CheckTaskConfined(t, *spec, options_);
  }

  testing::TempDir tmp_;
  job::JobSpec spec_;
  storage::StorageOptions options_;
};

TEST_F(TaskConfinementTest, APlannedTaskPasses) {
  const v1::Task t = Calibrate(spec_.out + "/.caldera-scratch/j-1/c0/a1/hidden.safetensors");
  EXPECT_TRUE(Check(t).ok()) << Check(t);
  EXPECT_TRUE(Check(Calibrate(spec_.calibration)).ok());
}

TEST_F(TaskConfinementTest, InputOutsideTheRootsIsRefusedBeforeAnythingIsRead) {
  const v1::Task t = Calibrate("/etc/passwd");
  const absl::Status s = Check(t);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find("input_uri"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("/etc/passwd"), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("outside the allowed storage roots"), absl::string_view::npos) << s;
  // Through the task runner: refused before the model is even opened (the
  // model directory is empty, which would otherwise be the error).
  TaskRunner runner(options_);
  absl::StatusOr<TaskResult> r = runner.Run(t, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_EQ(r.status().message().find("root:x"), absl::string_view::npos);
}

TEST_F(TaskConfinementTest, WithoutRootsATaskStillStaysInsideItsOutput) {
  options_.allowed_roots.clear();
  EXPECT_EQ(Check(Calibrate("/etc/passwd")).code(), absl::StatusCode::kPermissionDenied);
  // A write over the input model.
  v1::Task t = Calibrate(spec_.calibration);
  t.mutable_calibrate()->set_hessians_uri(spec_.model + "/model.safetensors");
  EXPECT_EQ(Check(t).code(), absl::StatusCode::kPermissionDenied);
  // Finalize reading an artifact outside, or removing a "scratch" elsewhere.
  v1::Task f;
  f.set_task_id("finalize");
  *f.mutable_spec() = job::JobSpecToProto(spec_);
  *f.mutable_finalize() =
      job::MakeFinalizeTask({spec_.out + "/.caldera-scratch/a"}, 1.0, tmp_.Join("outside"));
  EXPECT_EQ(Check(f).code(), absl::StatusCode::kPermissionDenied);
  f.mutable_finalize()->set_scratch_prefix(spec_.out + "/.caldera-scratch/j-1");
  EXPECT_TRUE(Check(f).ok());
  f.mutable_finalize()->add_artifact_uris(tmp_.Join("outside/a"));
  EXPECT_EQ(Check(f).code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(TaskConfinementTest, SpecOutsideTheRootsOrOutputOverTheModelIsRefused) {
  spec_.out = tmp_.Join("outside/out");
  EXPECT_EQ(Check(Calibrate(spec_.calibration)).code(), absl::StatusCode::kPermissionDenied);
  spec_.out = spec_.model;
  EXPECT_EQ(Check(Calibrate(spec_.calibration)).code(), absl::StatusCode::kPermissionDenied);
  // Through a symbolic link out of the root.
  fs::create_directory_symlink(tmp_.Join("outside"), tmp_.Join("root/link"));
  spec_.out = tmp_.Join("root/link/out");
  EXPECT_EQ(Check(Calibrate(spec_.calibration)).code(), absl::StatusCode::kPermissionDenied);
}

TEST(TaskLocationsTest, FindsEveryLocationFieldOfTheWork) {
  v1::Task t;
  *t.mutable_finalize() = job::MakeFinalizeTask({"a", "b"}, 1.0, "s");
  EXPECT_EQ(TaskLocations(t), (std::vector<std::string>{"a", "b", "s"}));
  v1::Task c;
  *c.mutable_calibrate() = job::MakeCalibrateTask(1, 2, "in", "d");
  // A std::string temporary: GCC 12 warns (-Wrestrict, a false positive) on
  // the char* overload after inlining.
  c.mutable_calibrate()->add_previous_artifact_uris(std::string("p"));
  const std::vector<std::string> got = TaskLocations(c);
  EXPECT_EQ(got.size(), 3u);  // input, hessians, previous (the last layer has no hidden states)
}

}  // namespace
}  // namespace caldera::worker

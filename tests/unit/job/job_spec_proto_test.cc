#include "job/job_spec_proto.h"

#include "caldera/v1/worker.pb.h"
#include "gtest/gtest.h"

namespace caldera::job {
namespace {

void ExpectSame(const JobSpec& a, const JobSpec& b) {
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.calibration, b.calibration);
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.method, b.method);
  EXPECT_EQ(a.rank, b.rank);
  EXPECT_EQ(a.q_bits, b.q_bits);
  EXPECT_EQ(a.lr_bits, b.lr_bits);
  EXPECT_EQ(a.quantizer, b.quantizer);
  EXPECT_EQ(a.q_group_size, b.q_group_size);
  EXPECT_EQ(a.incoherence, b.incoherence);
  EXPECT_EQ(a.iters, b.iters);
  EXPECT_EQ(a.lplr_iters, b.lplr_iters);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.ttlora_rank, b.ttlora_rank);
  EXPECT_EQ(a.ttlora_init, b.ttlora_init);
  EXPECT_EQ(a.ttlora_alpha, b.ttlora_alpha);
  EXPECT_EQ(a.modules, b.modules);
  EXPECT_EQ(a.calibration_mode, b.calibration_mode);
  EXPECT_EQ(a.calibration_shards, b.calibration_shards);
  EXPECT_EQ(a.hidden_dtype, b.hidden_dtype);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.overwrite, b.overwrite);
  EXPECT_EQ(a.finetune_steps, b.finetune_steps);
  EXPECT_EQ(a.finetune_lr, b.finetune_lr);
  EXPECT_EQ(a.finetune_holdout, b.finetune_holdout);
}

// A client that sends only the URIs gets every default.
TEST(JobSpecProtoTest, UnsetFieldsTakeTheDefaults) {
  v1::JobSpec p;
  p.set_model("s3://b/m");
  p.set_calibration("s3://b/c.safetensors");
  p.set_out("s3://b/o");
  JobSpec want;
  want.model = "s3://b/m";
  want.calibration = "s3://b/c.safetensors";
  want.out = "s3://b/o";
  want.request_id = "r1";
  ExpectSame(*JobSpecFromProto(p, "r1"), want);
  // An empty DecompositionSettings / TtLoraSettings too.
  p.mutable_decomposition();
  p.mutable_ttlora();
  ExpectSame(*JobSpecFromProto(p, "r1"), want);
}

// seed is optional: an explicit 0 is kept, unset is the default.
TEST(JobSpecProtoTest, ExplicitZeroSeedIsKept) {
  v1::JobSpec p;
  p.mutable_decomposition()->set_seed(0);
  EXPECT_EQ(JobSpecFromProto(p, "")->seed, 0u);
  p.mutable_decomposition()->clear_seed();
  EXPECT_EQ(JobSpecFromProto(p, "")->seed, JobSpec().seed);
}

TEST(JobSpecProtoTest, RoundTrip) {
  JobSpec s;
  s.model = std::string("m");
  s.calibration = std::string("c");
  s.out = std::string("o");
  s.method = decompose::Method::kLdlq;
  s.q_group_size = 32;
  s.incoherence = Incoherence::kRht;
  s.rank = 3;
  s.q_bits = 4;
  s.lr_bits = 16;
  s.quantizer = quant::Quantizer::kUniform;
  s.iters = 2;
  s.lplr_iters = 0;  // 0 on the wire means "default": lplr_iters 0 does not survive
  s.seed = 0;
  s.ttlora_rank = 5;
  s.ttlora_init = ttlora::InitMode::kResidual;
  s.ttlora_alpha = 8;
  s.modules = {"q_proj", "down_proj"};
  s.calibration_mode = CalibrationMode::kOriginal;
  s.calibration_shards = 3;
  s.hidden_dtype = DType::kBF16;
  s.request_id = "rid";
  s.overwrite = true;
  s.finetune_steps = 250;
  s.finetune_lr = 0.02;
  s.finetune_holdout = 0.25;
  const v1::JobSpec p = JobSpecToProto(s);
  EXPECT_EQ(p.finetune_steps(), 250);
  // The wire keeps the settings' names.
  EXPECT_EQ(p.decomposition().method(), "ldlq");
  EXPECT_EQ(p.decomposition().quantizer(), "uniform");
  EXPECT_EQ(p.decomposition().incoherence(), "rht");
  EXPECT_EQ(p.ttlora().init(), "residual");
  EXPECT_EQ(p.calibration_mode(), "original");
  EXPECT_EQ(p.hidden_dtype(), "bf16");
  EXPECT_EQ(JobSpecToProto(JobSpec()).decomposition().method(), "caldera");
  EXPECT_EQ(JobSpecToProto(JobSpec()).hidden_dtype(), "f32");
  EXPECT_EQ(p.decomposition().iters(), 2);
  EXPECT_TRUE(p.decomposition().has_seed());
  JobSpec back = *JobSpecFromProto(p, "rid");
  JobSpec want = s;
  want.lplr_iters = JobSpec().lplr_iters;
  ExpectSame(back, want);
  // Through the wire bytes as well.
  v1::JobSpec parsed;
  ASSERT_TRUE(parsed.ParseFromString(p.SerializeAsString()));
  ExpectSame(*JobSpecFromProto(parsed, "rid"), want);
  // What the coordinator stores (ToProto of FromProto) is a fixed point.
  const v1::JobSpec stored = JobSpecToProto(back);
  EXPECT_EQ(JobSpecToProto(*JobSpecFromProto(stored, "rid")).SerializeAsString(),
            stored.SerializeAsString());
}

// An unknown name on the wire is INVALID_ARGUMENT naming the flag, with
// ValidateJobSpec's message.
TEST(JobSpecProtoTest, UnknownNamesAreInvalidArgumentNamingTheFlag) {
  struct Case {
    void (*set)(v1::JobSpec*);
    const char* expected;
  };
  const Case cases[] = {
      {[](v1::JobSpec* p) { p->mutable_decomposition()->set_method("svd"); },
       "--method svd is unknown; use caldera, ldlq or rtn"},
      {[](v1::JobSpec* p) { p->mutable_decomposition()->set_quantizer("nf4"); },
       "--quantizer nf4 is unknown; use e8p, uniform, int or q4k"},
      {[](v1::JobSpec* p) { p->mutable_decomposition()->set_incoherence("dct"); },
       "--incoherence dct is unknown; use auto, rht or none"},
      {[](v1::JobSpec* p) { p->mutable_ttlora()->set_init("svd"); },
       "--ttlora-init svd is unknown; use zero or residual"},
      {[](v1::JobSpec* p) { p->set_calibration_mode("greedy"); },
       "--calibration-mode greedy is unknown; use original or sequential"},
      {[](v1::JobSpec* p) { p->set_hidden_dtype("f16"); },
       "--hidden-dtype f16 is unknown; use f32 or bf16"},
  };
  for (const Case& c : cases) {
    v1::JobSpec p;
    c.set(&p);
    absl::StatusOr<JobSpec> s = JobSpecFromProto(p, "");
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_EQ(s.status().message(), c.expected);
  }
}

// Fields were renamed to the CLI/JSON names; their numbers did not change, so
// old clients and stored specs still decode.
TEST(JobSpecProtoTest, RenamedFieldsKeepTheirNumbers) {
  EXPECT_EQ(v1::JobSpec::kModelFieldNumber, 1);
  EXPECT_EQ(v1::JobSpec::kCalibrationFieldNumber, 2);
  EXPECT_EQ(v1::JobSpec::kOutFieldNumber, 3);
  EXPECT_EQ(v1::DecompositionSettings::kItersFieldNumber, 6);
  EXPECT_EQ(v1::DecompositionSettings::kLplrItersFieldNumber, 7);
  EXPECT_EQ(v1::MatrixError::kWeightedRelativeErrorFieldNumber, 3);
  EXPECT_EQ(v1::Task::kAttemptNumberFieldNumber, 13);
}

}  // namespace
}  // namespace caldera::job

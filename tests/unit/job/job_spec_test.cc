#include "job/job_spec.h"

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace caldera::job {
namespace {

JobSpec Valid() {
  JobSpec s;
  // std::string temporaries: GCC 12 warns (-Wrestrict, a false positive) on
  // assigning these short literals after inlining.
  s.model = std::string("m");
  s.calibration = std::string("c");
  s.out = std::string("o");
  return s;
}

TEST(JobSpecTest, DefaultsAreTheDocumentedOnes) {
  const JobSpec d;
  EXPECT_EQ(d.method, decompose::Method::kCaldera);
  EXPECT_EQ(d.rank, kAutoRank);
  EXPECT_EQ(d.q_bits, 2);
  EXPECT_EQ(d.lr_bits, 4);
  EXPECT_EQ(d.quantizer, quant::Quantizer::kE8p);
  EXPECT_EQ(d.iters, 15);
  EXPECT_EQ(d.lplr_iters, 10);
  EXPECT_EQ(d.seed, 42u);
  EXPECT_EQ(d.ttlora_rank, 0);
  EXPECT_EQ(d.ttlora_init, ttlora::InitMode::kZero);
  EXPECT_TRUE(d.modules.empty());
  EXPECT_EQ(d.calibration_mode, CalibrationMode::kSequential);
  EXPECT_EQ(d.calibration_shards, 1);
  EXPECT_EQ(d.hidden_dtype, DType::kF32);
  EXPECT_TRUE(d.model.empty() && d.calibration.empty() && d.out.empty());
}

// The core's own DecomposeOptions defaults (for direct library use) agree with
// the job defaults, so a job with defaults decomposes like the core's default.
TEST(JobSpecTest, DecomposeOptionsOfTheDefaultsMatchTheCoreDefaults) {
  const decompose::DecomposeOptions core;
  const decompose::DecomposeOptions o = DecomposeOptionsFor(JobSpec());
  EXPECT_EQ(o.method, core.method);
  // The job's rank is per matrix; at the widths the core's default is meant
  // for (4096) it is the core's.
  EXPECT_EQ(o.rank, kAutoRank);
  EXPECT_EQ(RankFor(JobSpec(), 4096, 4096), core.rank);
  EXPECT_EQ(o.q_spec.kind, core.q_spec.kind);
  EXPECT_EQ(o.q_spec.bits, core.q_spec.bits);
  EXPECT_EQ(o.lr_spec.kind, core.lr_spec.kind);
  EXPECT_EQ(o.lr_spec.bits, core.lr_spec.bits);
  EXPECT_EQ(o.iters, core.iters);
  EXPECT_EQ(o.lplr_iters, core.lplr_iters);
  EXPECT_EQ(o.seed, core.seed);
}

TEST(JobSpecTest, DecomposeOptionsFollowTheSpec) {
  JobSpec s = Valid();
  s.method = decompose::Method::kLdlq;
  s.quantizer = quant::Quantizer::kUniform;
  s.q_bits = 3;
  s.iters = 2;
  s.lplr_iters = 1;
  s.seed = 7;
  s.q_group_size = 64;
  decompose::DecomposeOptions o = DecomposeOptionsFor(s);
  EXPECT_EQ(o.method, decompose::Method::kLdlq);
  EXPECT_EQ(o.rank, 0);  // only caldera has L and R
  EXPECT_EQ(o.q_spec.kind, quant::QuantizerSpec::Kind::kUniform);
  EXPECT_EQ(o.q_spec.bits, 3);
  EXPECT_EQ(o.q_spec.group_size, 64);
  EXPECT_EQ(o.iters, 2);
  EXPECT_EQ(o.lplr_iters, 1);
  EXPECT_EQ(o.seed, 7u);
  s.method = decompose::Method::kCaldera;
  s.rank = 12;
  EXPECT_EQ(DecomposeOptionsFor(s).rank, 12);
  EXPECT_EQ(DecomposeOptionsFor(s).lr_spec.group_size, 64);
  // Per-row scales for an E8P Q without L·R only (uniform has its groups).
  s.quantizer = quant::Quantizer::kE8p;
  EXPECT_FALSE(DecomposeOptionsFor(s).q_spec.row_scales);
  s.method = decompose::Method::kLdlq;
  EXPECT_TRUE(DecomposeOptionsFor(s).q_spec.row_scales);
  s.method = decompose::Method::kRtn;
  EXPECT_TRUE(DecomposeOptionsFor(s).q_spec.row_scales);
  s.quantizer = quant::Quantizer::kUniform;
  EXPECT_FALSE(DecomposeOptionsFor(s).q_spec.row_scales);
}

// incoherence auto: the Hadamard transform for E8P only; rht / none force it.
TEST(JobSpecTest, IncoherenceAutoDependsOnTheQuantizer) {
  JobSpec s = Valid();
  EXPECT_EQ(s.incoherence, Incoherence::kAuto);
  s.quantizer = quant::Quantizer::kE8p;
  EXPECT_TRUE(DecomposeOptionsFor(s).hadamard);
  s.quantizer = quant::Quantizer::kUniform;
  EXPECT_FALSE(DecomposeOptionsFor(s).hadamard);
  EXPECT_TRUE(DecomposeOptionsFor(s).act_order);
  s.incoherence = Incoherence::kRht;
  EXPECT_TRUE(DecomposeOptionsFor(s).hadamard);
  s.quantizer = quant::Quantizer::kE8p;
  s.incoherence = Incoherence::kNone;
  EXPECT_FALSE(DecomposeOptionsFor(s).hadamard);
}

// Each bad setting: INVALID_ARGUMENT naming the flag (and the fix).
TEST(JobSpecTest, ValidationNamesTheFlag) {
  EXPECT_TRUE(ValidateJobSpec(Valid()).ok());
  struct Case {
    void (*mutate)(JobSpec*);
    const char* expected;
  };
  const Case cases[] = {
      {[](JobSpec* s) { s->model.clear(); }, "--model is required"},
      {[](JobSpec* s) { s->calibration.clear(); }, "--calibration is required"},
      {[](JobSpec* s) { s->out.clear(); }, "--out is required"},
      {[](JobSpec* s) { s->rank = -1; }, "--rank -1 is negative; use a rank >= 1, or 0 for"},
      {[](JobSpec* s) { s->q_bits = 7; }, "--q-bits 7 is not supported by --quantizer e8p"},
      {[](JobSpec* s) { s->lr_bits = 1; }, "--lr-bits 1 is not supported by --quantizer e8p"},
      {[](JobSpec* s) { s->q_group_size = 0; }, "--q-group-size 0 is out of range; use 8 to"},
      {[](JobSpec* s) { s->q_group_size = 1 << 20; }, "--q-group-size 1048576 is out of range"},
      {[](JobSpec* s) { s->iters = 0; }, "--iters 0 is outside [1, 100]"},
      {[](JobSpec* s) { s->lplr_iters = -1; }, "--lplr-iters -1 is outside [0, 100]"},
      {[](JobSpec* s) { s->ttlora_rank = -1; }, "--ttlora-rank -1 is outside [0, 65536]"},
      {[](JobSpec* s) { s->calibration_shards = 0; }, "--calibration-shards 0 must be in [1, 256]"},
      {[](JobSpec* s) { s->hidden_dtype = DType::kF16; },
       "--hidden-dtype F16 is not supported; use f32 or bf16"},
      {[](JobSpec* s) { s->calibration_shards = 257; },
       "--calibration-shards 257 must be in [1, 256]"},
      {[](JobSpec* s) { s->finetune_steps = -1; }, "--finetune-steps -1 is outside [0, 100000]"},
      {[](JobSpec* s) { s->finetune_steps = 100001; },
       "--finetune-steps 100001 is outside [0, 100000]"},
      {[](JobSpec* s) { s->finetune_lr = 0; }, "--finetune-lr 0 is outside (0, 1]"},
      {[](JobSpec* s) { s->finetune_lr = 1.5; }, "--finetune-lr 1.5 is outside (0, 1]"},
      {[](JobSpec* s) { s->finetune_lr = std::nan(""); }, "--finetune-lr nan is outside (0, 1]"},
      {[](JobSpec* s) { s->finetune_holdout = 0; }, "--finetune-holdout 0 is outside (0, 0.5]"},
      {[](JobSpec* s) { s->finetune_holdout = 0.51; },
       "--finetune-holdout 0.51 is outside (0, 0.5]"},
      {[](JobSpec* s) {
         s->modules = {"q_proj", "lm_head"};
       },
       "--modules: 'lm_head' is not a linear module; use q_proj,k_proj"},
  };
  for (const Case& c : cases) {
    JobSpec s = Valid();
    c.mutate(&s);
    absl::Status st = ValidateJobSpec(s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_NE(st.message().find(c.expected), std::string::npos) << st;
  }
  // rank 0 is the per-matrix default.
  JobSpec rtn = Valid();
  rtn.rank = 0;
  EXPECT_TRUE(ValidateJobSpec(rtn).ok());
}

// Issue 35: the default rank scales to each matrix (a fixed 64 could not run
// on the bundled model's 32 x 64 k_proj): a sixteenth of the thinner side,
// between 1 and 64; an explicit rank is kept; only caldera has L and R.
TEST(JobSpecTest, TheDefaultRankScalesToEachMatrix) {
  EXPECT_EQ(AutoRank(32, 64), 2);
  EXPECT_EQ(AutoRank(64, 64), 4);
  EXPECT_EQ(AutoRank(64, 172), 4);
  EXPECT_EQ(AutoRank(8, 8), 1);
  EXPECT_EQ(AutoRank(512, 2048), 32);
  EXPECT_EQ(AutoRank(1024, 4096), 64);
  EXPECT_EQ(AutoRank(4096, 11008), 64);
  EXPECT_EQ(AutoRank(8192, 28672), 64);
  JobSpec s;
  EXPECT_EQ(RankFor(s, 32, 64), 2);
  s.rank = 12;
  EXPECT_EQ(RankFor(s, 32, 64), 12);
  s.method = decompose::Method::kLdlq;
  EXPECT_EQ(RankFor(s, 32, 64), 0);
  s.rank = kAutoRank;
  EXPECT_EQ(RankFor(s, 4096, 4096), 0);
}

// Issue 37, case 5: the fields that drive work have upper bounds (specs that
// could never finish were accepted), every module is named at most once, and
// no location holds a control character (a newline made a directory name).
TEST(JobSpecTest, WorkDrivingFieldsHaveUpperBounds) {
  struct Case {
    void (*mutate)(JobSpec*);
    const char* expected;
  };
  const Case cases[] = {
      {[](JobSpec* s) { s->iters = 2147483647; }, "--iters 2147483647 is outside [1, 100]"},
      {[](JobSpec* s) { s->iters = kMaxIters + 1; }, "--iters 101 is outside"},
      {[](JobSpec* s) { s->lplr_iters = 1000000000; }, "--lplr-iters 1000000000 is outside"},
      {[](JobSpec* s) { s->ttlora_rank = 1000000000000; }, "--ttlora-rank 1000000000000"},
      {[](JobSpec* s) { s->rank = 1000000000000; }, "--rank 1000000000000 is above 65536"},
      {[](JobSpec* s) { s->modules.assign(100000, "q_proj"); }, "--modules names q_proj twice"},
      {[](JobSpec* s) {
         s->modules = {"k_proj", "o_proj", "k_proj"};
       },
       "names k_proj twice"},
      {[](JobSpec* s) { s->out = std::string("out\nput", 7); },
       "--out holds a control character (byte 0x0a at offset 3)"},
      {[](JobSpec* s) { s->out = std::string("o\0p", 3); }, "--out holds a control character"},
      {[](JobSpec* s) { s->model = std::string("m\x7f"); }, "--model holds a control character"},
      {[](JobSpec* s) { s->calibration = std::string("c\t"); }, "--calibration holds a control"},
  };
  for (const Case& c : cases) {
    JobSpec s = Valid();
    c.mutate(&s);
    absl::Status st = ValidateJobSpec(s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_NE(st.message().find(c.expected), std::string::npos) << st;
  }
  JobSpec at_limits = Valid();
  at_limits.iters = kMaxIters;
  at_limits.lplr_iters = kMaxLplrIters;
  at_limits.rank = kMaxRank;
  at_limits.ttlora_rank = kMaxRank;
  at_limits.modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  EXPECT_TRUE(ValidateJobSpec(at_limits).ok()) << ValidateJobSpec(at_limits);
}

// The settings' names: each parser takes exactly the names its Name function
// writes, and an unknown one is INVALID_ARGUMENT naming the flag and the fix.
TEST(JobSpecTest, SettingNamesParseBackAndUnknownNamesNameTheFlag) {
  for (decompose::Method m :
       {decompose::Method::kCaldera, decompose::Method::kLdlq, decompose::Method::kRtn}) {
    EXPECT_EQ(*decompose::ParseMethod(decompose::MethodName(m)), m);
  }
  EXPECT_EQ(decompose::MethodName(decompose::Method::kLdlq), "ldlq");
  for (quant::Quantizer q : {quant::Quantizer::kE8p, quant::Quantizer::kUniform}) {
    EXPECT_EQ(*quant::ParseQuantizer(quant::QuantizerName(q)), q);
  }
  EXPECT_EQ(quant::QuantizerName(quant::Quantizer::kUniform), "uniform");
  for (Incoherence i : {Incoherence::kAuto, Incoherence::kRht, Incoherence::kNone}) {
    EXPECT_EQ(*ParseIncoherence(IncoherenceName(i)), i);
  }
  for (ttlora::InitMode i : {ttlora::InitMode::kZero, ttlora::InitMode::kResidual}) {
    EXPECT_EQ(*ttlora::ParseInitMode(ttlora::InitModeName(i)), i);
  }
  for (CalibrationMode m : {CalibrationMode::kSequential, CalibrationMode::kOriginal}) {
    EXPECT_EQ(*ParseCalibrationMode(CalibrationModeName(m)), m);
  }
  EXPECT_EQ(*ParseHiddenDType("f32"), DType::kF32);
  EXPECT_EQ(*ParseHiddenDType("bf16"), DType::kBF16);
  EXPECT_EQ(HiddenDTypeName(DType::kBF16), "bf16");
  const std::pair<absl::Status, const char*> cases[] = {
      {decompose::ParseMethod("svd").status(), "--method svd is unknown; use caldera, ldlq or rtn"},
      {quant::ParseQuantizer("nf4").status(),
       "--quantizer nf4 is unknown; use e8p, uniform, int or q4k"},
      {ParseIncoherence("dct").status(), "--incoherence dct is unknown; use auto, rht or none"},
      {ttlora::ParseInitMode("svd").status(), "--ttlora-init svd is unknown; use zero or residual"},
      {ParseCalibrationMode("greedy").status(),
       "--calibration-mode greedy is unknown; use original or sequential"},
      {ParseHiddenDType("f16").status(), "--hidden-dtype f16 is unknown; use f32 or bf16"},
      {ParseHiddenDType("F32").status(), "--hidden-dtype F32 is unknown; use f32 or bf16"},
  };
  for (const auto& [st, expected] : cases) {
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << expected;
    EXPECT_EQ(st.message(), expected);
  }
}

// The TT-LoRA scale: 16 by default, any finite value in (0, kMaxTtloraAlpha].
TEST(JobSpecTest, TtloraAlphaIsBoundedAndFinite) {
  EXPECT_EQ(JobSpec().ttlora_alpha, 16.0);
  JobSpec s;
  s.model = "m";
  s.calibration = "c";
  s.out = "o";
  for (double ok : {1e-3, 16.0, kMaxTtloraAlpha}) {
    s.ttlora_alpha = ok;
    EXPECT_TRUE(ValidateJobSpec(s).ok()) << ok;
    EXPECT_TRUE(ValidateDecompositionSettings(s).ok()) << ok;
  }
  for (double bad :
       {0.0, -1.0, kMaxTtloraAlpha * 2, std::nan(""), std::numeric_limits<double>::infinity()}) {
    s.ttlora_alpha = bad;
    const absl::Status st = ValidateJobSpec(s);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.message().find("--ttlora-alpha"), std::string::npos) << st;
    EXPECT_FALSE(ValidateDecompositionSettings(s).ok()) << bad;
  }
}

TEST(JobSpecTest, CompressesModule) {
  JobSpec s = Valid();
  EXPECT_TRUE(CompressesModule(s, "down_proj"));  // empty = all
  s.modules = {"q_proj"};
  EXPECT_TRUE(CompressesModule(s, "q_proj"));
  EXPECT_FALSE(CompressesModule(s, "k_proj"));
  // A mixture's expert matrices are selected by their kind.
  s.modules = {"down_proj"};
  EXPECT_TRUE(CompressesModule(s, "experts.3.down_proj"));
  EXPECT_FALSE(CompressesModule(s, "experts.3.up_proj"));
}

// #17: values from clients are never echoed unbounded, and URIs are bounded.
TEST(JobSpecTest, MessagesCapQuotedValuesAndUrisAreBounded) {
  absl::Status st = decompose::ParseMethod(std::string(100000, 'x')).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(st.message().size(), 1000u);
  EXPECT_NE(st.message().find("xxx\xE2\x80\xA6"), std::string::npos);
  st = ParseCalibrationMode(std::string(100000, 'x')).status();
  EXPECT_LT(st.message().size(), 1000u);
  JobSpec s = Valid();
  s.modules = {std::string(100000, 'q')};
  st = ValidateJobSpec(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(st.message().size(), 1000u);
  s = Valid();
  s.model = std::string(5000, 'm');
  st = ValidateJobSpec(s);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--model is 5000 bytes long, above the limit of 4096"),
            std::string::npos)
      << st.message().substr(0, 300);
}

// --serve vllm refuses every setting vLLM's int kernels cannot run, naming the
// flag that avoids it, and accepts the served ones.
TEST(JobSpecTest, ServeVllmRefusesWhatVllmCannotRun) {
  JobSpec ok;
  ok.model = "m";
  ok.calibration = "c";
  ok.out = "o";
  ok.serve = Serve::kVllm;
  ok.quantizer = quant::Quantizer::kInt;
  ok.q_bits = 4;
  ok.lr_bits = 16;
  ok.rank = 8;
  EXPECT_TRUE(ValidateJobSpec(ok).ok()) << ValidateJobSpec(ok);
  struct Case {
    std::function<void(JobSpec*)> edit;
    const char* flag;
  };
  const Case cases[] = {
      {[](JobSpec* s) {
         s->quantizer = quant::Quantizer::kE8p;
         s->q_bits = 2;
       },
       "--quantizer int"},
      {[](JobSpec* s) { s->quantizer = quant::Quantizer::kUniform; }, "--quantizer int"},
      {[](JobSpec* s) { s->lr_bits = 4; }, "--lr-bits 16"},
      {[](JobSpec* s) { s->q_group_size = 48; }, "--q-group-size"},
      {[](JobSpec* s) { s->incoherence = Incoherence::kRht; }, "--incoherence none"},
      {[](JobSpec* s) { s->ttlora_rank = 2; }, "--ttlora-rank"},
      {[](JobSpec* s) { s->share_heads = 0.5; }, "--share-heads"},
      {[](JobSpec* s) { s->rank = 600; }, "--rank 512"},
      {[](JobSpec* s) {
         s->target_bits = 4.5;
         s->lr_bits = 4;
       },
       "--lr-bits 16"},
  };
  for (const Case& c : cases) {
    JobSpec s = ok;
    c.edit(&s);
    const absl::Status st = ValidateJobSpec(s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_NE(st.message().find("--serve vllm"), std::string::npos) << st;
    EXPECT_NE(st.message().find(c.flag), std::string::npos) << st;
  }
  EXPECT_EQ(*ParseServe("vllm"), Serve::kVllm);
  EXPECT_FALSE(ParseServe("tgi").ok());
  // Shapes: a group that does not divide the row.
  EXPECT_FALSE(ValidateServeShape(ok, "down_proj", 64, 172).ok());
  JobSpec per_row = ok;
  per_row.q_group_size = kMaxQuantizerGroupSize;
  EXPECT_TRUE(ValidateServeShape(per_row, "down_proj", 64, 172).ok());
}

// --serve llamacpp: LDLQ on the int grid at 4 or 8 bits in groups of 32 (GGUF's
// Q4_0 / Q8_0) passes; everything else is refused naming the flag; a linear
// whose columns are no multiple of 32 is refused by name, also under
// --target-bits.
TEST(JobSpecTest, ServeLlamacppAllowsOnlyQ4_0AndQ8_0) {
  JobSpec ok;
  ok.model = "m";
  ok.calibration = "c";
  ok.out = "o";
  ok.serve = Serve::kLlamacpp;
  ok.method = decompose::Method::kLdlq;
  ok.quantizer = quant::Quantizer::kInt;
  ok.q_bits = 4;
  ok.q_group_size = 32;
  EXPECT_TRUE(ValidateJobSpec(ok).ok()) << ValidateJobSpec(ok);
  JobSpec q8 = ok;
  q8.q_bits = 8;
  EXPECT_TRUE(ValidateJobSpec(q8).ok()) << ValidateJobSpec(q8);
  struct Case {
    std::function<void(JobSpec*)> edit;
    const char* flag;
  };
  const Case cases[] = {
      {[](JobSpec* s) { s->method = decompose::Method::kCaldera; }, "--method ldlq"},
      {[](JobSpec* s) { s->quantizer = quant::Quantizer::kUniform; }, "--quantizer int"},
      {[](JobSpec* s) { s->q_bits = 16; }, "--q-bits 4"},
      {[](JobSpec* s) { s->q_group_size = 64; }, "--q-group-size 32"},
      {[](JobSpec* s) { s->incoherence = Incoherence::kRht; }, "--incoherence none"},
      {[](JobSpec* s) { s->ttlora_rank = 2; }, "--ttlora-rank"},
      {[](JobSpec* s) { s->share_heads = 0.5; }, "--share-heads"},
  };
  for (const Case& c : cases) {
    JobSpec s = ok;
    c.edit(&s);
    const absl::Status st = ValidateJobSpec(s);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_NE(st.message().find("--serve llamacpp"), std::string::npos) << st;
    EXPECT_NE(st.message().find(c.flag), std::string::npos) << st;
  }
  EXPECT_EQ(*ParseServe("llamacpp"), Serve::kLlamacpp);
  EXPECT_EQ(ServeName(Serve::kLlamacpp), "llamacpp");
  const absl::Status ragged = ValidateServeShape(ok, "model.layers.0.mlp.down_proj", 64, 172);
  EXPECT_NE(ragged.message().find("model.layers.0.mlp.down_proj"), std::string::npos) << ragged;
  EXPECT_NE(ragged.message().find("--modules"), std::string::npos) << ragged;
  JobSpec ladder = ok;
  ladder.target_bits = 5;
  EXPECT_FALSE(ValidateServeShape(ladder, "down_proj", 64, 172).ok());
  EXPECT_TRUE(ValidateServeShape(ladder, "down_proj", 172, 64).ok());
}

}  // namespace
}  // namespace caldera::job

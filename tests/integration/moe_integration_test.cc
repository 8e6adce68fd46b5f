// Mixtures of experts through calderactl (issue 38): make-test-model writes a
// Mixtral or Qwen3-MoE layout, compress plans each expert's matrices as their
// own decompose tasks (the router stays dense), report.json lists the experts
// with the calibration tokens each got, an expert the calibration never
// reaches falls back on the layer's mean Hessian, --target-bits allocates
// across experts, and eval / export agree.
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/subprocess.h"

namespace caldera {
namespace {

using testing::ReadFile;
using testing::RunCommand;
using testing::TempDir;

std::string Ctl() { return CALDERACTL_PATH; }

nlohmann::json ReadJson(const std::string& path) {
  return nlohmann::json::parse(ReadFile(path), nullptr, false);
}

double Perplexity(const std::string& model, const std::string& tokens) {
  std::string out;
  EXPECT_EQ(RunCommand(absl::StrCat(Ctl(), " eval --json --model ", model, " --tokens ", tokens,
                                    " 2>/dev/null"),
                       &out),
            0)
      << out;
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  return j.is_object() && j["perplexity"].is_number() ? j["perplexity"].get<double>() : -1;
}

// A two-layer Mixtral-layout model with 3 experts and top-1 routing whose last
// expert no token reaches (make-test-model --starve-last-expert).
struct StarvedMixtral {
  TempDir tmp;
  std::string model = tmp.Join("model"), tokens = tmp.Join("tokens.safetensors");
  StarvedMixtral() {
    std::string log;
    EXPECT_EQ(RunCommand(absl::StrCat(Ctl(), " make-test-model --out ", model,
                                      " --arch MixtralForCausalLM --experts 3"
                                      " --experts-per-token 1 --starve-last-expert --hidden 64"
                                      " --intermediate 96 --layers 2 --vocab 200 --tokens-out ",
                                      tokens, " --samples 8 --seq-len 48 2>&1"),
                         &log),
              0)
        << log;
  }
};

TEST(MoeIntegration, ExpertsAreTasksAndAStarvedExpertFallsBack) {
  StarvedMixtral m;
  const std::string out = m.tmp.Join("out");
  std::string log;
  ASSERT_EQ(RunCommand(
                absl::StrCat(Ctl(), " compress --model ", m.model, " --calibration ", m.tokens,
                             " --out ", out, " --rank 8 --iters 1 --lplr-iters 1 --workers 2 2>&1"),
                &log),
            0)
      << log;
  const nlohmann::json report = ReadJson(out + "/report.json");
  ASSERT_TRUE(report.is_object() && report["matrices"].is_array()) << report.dump();
  // 4 attention matrices and 3 experts × (gate, up, down) per layer.
  ASSERT_EQ(report["matrices"].size(), 2u * (4 + 3 * 3));
  std::map<int, int64_t> routed;  // layer -> tokens over experts (gate_proj entries)
  std::vector<std::string> layer0;
  for (const nlohmann::json& r : report["matrices"]) {
    const std::string module = r["module"].get<std::string>();
    if (r["layer"] == 0) layer0.push_back(module);
    if (module.rfind("experts.", 0) != 0) {
      EXPECT_FALSE(r.contains("expert_tokens")) << r.dump();
      continue;
    }
    ASSERT_TRUE(r["expert_tokens"].is_number_integer()) << r.dump();
    const int64_t n = r["expert_tokens"].get<int64_t>();
    const double share = r["hessian_prior_share"].get<double>();
    if (module.rfind("experts.2.", 0) == 0) {
      EXPECT_EQ(n, 0) << r.dump();
      EXPECT_EQ(share, 1.0) << r.dump();  // all of its Hessian is the layer's mean
    } else {
      EXPECT_GE(n, 16) << r.dump();
      EXPECT_EQ(share, 0.0) << r.dump();
    }
    if (module.find("gate_proj") != std::string::npos) routed[r["layer"].get<int>()] += n;
    EXPECT_EQ(r["name"].get<std::string>(),
              absl::StrCat("model.layers.", r["layer"].get<int>(), ".block_sparse_moe.",
                           module.substr(0, module.rfind('.')), ".",
                           module.find("gate_proj") != std::string::npos ? "w1"
                           : module.find("up_proj") != std::string::npos ? "w3"
                                                                         : "w2"));
  }
  // Top-1: every calibration token reached exactly one expert, in both layers.
  EXPECT_EQ(routed[0], 8 * 48);
  EXPECT_EQ(routed[1], 8 * 48);
  ASSERT_GE(layer0.size(), 7u);
  EXPECT_EQ(layer0[4], "experts.0.gate_proj");  // model order: attention, then experts
  EXPECT_EQ(layer0[6], "experts.0.down_proj");
  // The router is copied dense, never decomposed.
  const nlohmann::json index = ReadJson(out + "/model.safetensors.index.json");
  EXPECT_TRUE(index["weight_map"].contains("model.layers.1.block_sparse_moe.gate.weight"))
      << index.dump();
  EXPECT_FALSE(index["weight_map"].contains("model.layers.1.block_sparse_moe.experts.2.w2.weight"));

  const double ppl = Perplexity(out, m.tokens);
  ASSERT_GT(ppl, 1.0);
  const std::string hf = m.tmp.Join("hf");
  ASSERT_EQ(
      RunCommand(absl::StrCat(Ctl(), " export --format hf --model ", out, " --out ", hf, " 2>&1"),
                 &log),
      0)
      << log;
  EXPECT_TRUE(ReadJson(hf + "/model.safetensors.index.json")["weight_map"].contains(
      "model.layers.0.block_sparse_moe.experts.2.w3.weight"));
  EXPECT_NEAR(Perplexity(hf, m.tokens), ppl, 1e-4 * ppl);
  // No PEFT adapter for fused experts: refused, naming the format to use.
  EXPECT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format peft --model ", out, " --out ",
                                    m.tmp.Join("peft"), " 2>&1"),
                       &log),
            2)
      << log;
  EXPECT_NE(log.find("use --format hf"), std::string::npos) << log;
}

TEST(MoeIntegration, TargetBitsAllocatesAcrossExperts) {
  TempDir tmp;
  const std::string model = tmp.Join("model"), tokens = tmp.Join("tokens.safetensors");
  std::string log;
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " make-test-model --out ", model,
                                    " --arch Qwen3MoeForCausalLM --experts 4 --experts-per-token"
                                    " 2 --moe-intermediate 64 --hidden 64 --layers 1 --vocab 200"
                                    " --tokens-out ",
                                    tokens, " --samples 8 --seq-len 48 2>&1"),
                       &log),
            0)
      << log;
  const std::string out = tmp.Join("out");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " compress --model ", model, " --calibration ", tokens,
                                    " --out ", out,
                                    " --target-bits 3.5 --iters 1 --lplr-iters 1 --workers 2 2>&1"),
                       &log),
            0)
      << log;
  const nlohmann::json report = ReadJson(out + "/report.json");
  ASSERT_TRUE(report.is_object() && report["matrices"].is_array()) << report.dump();
  ASSERT_EQ(report["matrices"].size(), 4u + 4 * 3);
  double bits = 0, params = 0, max_expert_bits = 0, min_expert_bits = 99;
  for (const nlohmann::json& r : report["matrices"]) {
    const double p = r["rows"].get<double>() * r["cols"].get<double>();
    bits += r["bits_per_param"].get<double>() * p;
    params += p;
    if (r["module"].get<std::string>().rfind("experts.", 0) == 0) {
      max_expert_bits = std::max(max_expert_bits, r["bits_per_param"].get<double>());
      min_expert_bits = std::min(min_expert_bits, r["bits_per_param"].get<double>());
    }
  }
  // The block (experts included) within the budget, and the allocation moved
  // bits between the experts' matrices.
  EXPECT_LE(bits / params, 3.5 + 1e-9);
  EXPECT_GT(bits / params, 3.0);
  EXPECT_GT(max_expert_bits, min_expert_bits);
  EXPECT_GT(Perplexity(out, tokens), 1.0);
}

// compressed-tensors: experts quantised alone export (and read back with the
// same perplexity); an expert with L·R is refused, since transformers holds
// experts fused and a per-expert LoRA adapter has nothing to attach to.
TEST(MoeIntegration, CompressedTensorsExportsExpertsWithoutLowRank) {
  TempDir tmp;
  const std::string model = tmp.Join("model"), tokens = tmp.Join("tokens.safetensors");
  std::string log;
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " make-test-model --out ", model,
                                    " --arch Qwen3MoeForCausalLM --experts 4 --experts-per-token"
                                    " 2 --moe-intermediate 64 --hidden 64 --head-dim 16 --layers 1"
                                    " --vocab 200 --untied --tokens-out ",
                                    tokens, " --samples 8 --seq-len 48 2>&1"),
                       &log),
            0)
      << log;
  const std::string ldlq = tmp.Join("ldlq"), caldera = tmp.Join("caldera");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " compress --model ", model, " --calibration ", tokens,
                                    " --out ", ldlq,
                                    " --method ldlq --quantizer int --q-bits 4 --serve vllm 2>&1"),
                       &log),
            0)
      << log;
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format compressed-tensors --model ", ldlq,
                                    " --out ", tmp.Join("ct"), " 2>&1"),
                       &log),
            0)
      << log;
  const double ppl = Perplexity(ldlq, tokens);
  EXPECT_NEAR(Perplexity(tmp.Join("ct") + "/base", tokens), ppl, 1e-4 * ppl);
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " compress --model ", model, " --calibration ", tokens,
                                    " --out ", caldera,
                                    " --serve vllm --rank 8 --iters 1 --lplr-iters 1 2>&1"),
                       &log),
            0)
      << log;
  EXPECT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format compressed-tensors --model ", caldera,
                                    " --out ", tmp.Join("ct2"), " 2>&1"),
                       &log),
            2)
      << log;
  EXPECT_NE(log.find("an expert's L·R"), std::string::npos) << log;
}

TEST(MoeIntegration, ShardedCalibrationIsRefusedWithTheFix) {
  StarvedMixtral m;
  std::string log;
  const int rc =
      RunCommand(absl::StrCat(Ctl(), " compress --model ", m.model, " --calibration ", m.tokens,
                              " --out ", m.tmp.Join("out"), " --calibration-shards 2 2>&1"),
                 &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("use --calibration-shards 1"), std::string::npos) << log;
}

}  // namespace
}  // namespace caldera

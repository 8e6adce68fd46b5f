// calderactl export --format peft on a compressed stories260K: DIR/base (an hf
// checkpoint) plus DIR/adapter (a PEFT LoRA adapter of L and R) rebuild the
// compressed model's weights (base + B·A == export --format dense), with the
// full rank or --ft-rank K; ldlq checkpoints (no factors) are refused.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/format/safetensors.h"
#include "core/model/checkpoint.h"
#include "core/model/model_config.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/subprocess.h"

namespace caldera {
namespace {

using testing::FixturePath;
using testing::ReadFile;
using testing::RunCommand;
using testing::StoriesModelDir;
using testing::TempDir;

std::string Ctl() { return CALDERACTL_PATH; }

std::string Compress(const TempDir& tmp, const std::string& name, const std::string& extra) {
  const std::string out = tmp.Join(name);
  std::string log;
  EXPECT_EQ(
      RunCommand(absl::StrCat(Ctl(), " compress --model ", StoriesModelDir(), " --calibration ",
                              StoriesModelDir(), "/calibration.safetensors --out ", out,
                              " --iters 1 --lplr-iters 1 --workers 2", extra, " 2>&1"),
                 &log),
      0)
      << log;
  return out;
}

std::unique_ptr<model::Checkpoint> Open(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<model::Checkpoint>> c =
      model::Checkpoint::Open(model::LocalDirectoryOpener(dir), dir);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

// Checks DIR = export --format peft [--ft-rank k] against the dense export:
// every linear equals base + B·A (relative to the weight's largest entry),
// every other tensor is copied, adapter ranks are `want_rank`.
void ExpectPeftRebuildsDense(const std::string& dir, const std::string& dense_dir,
                             int64_t want_rank) {
  std::unique_ptr<model::Checkpoint> dense = Open(dense_dir);
  std::unique_ptr<model::Checkpoint> base = Open(dir + "/base");
  ASSERT_TRUE(dense && base);
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> adapter =
      SafetensorsReader::OpenFile(dir + "/adapter/adapter_model.safetensors");
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  EXPECT_EQ((*adapter)->tensors().size(), 2u * 35u);

  nlohmann::json cfg =
      nlohmann::json::parse(ReadFile(dir + "/adapter/adapter_config.json"), nullptr, false);
  ASSERT_TRUE(cfg.is_object());
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_EQ(cfg["r"], want_rank);
  EXPECT_EQ(cfg["lora_alpha"], want_rank);
  EXPECT_TRUE(cfg["rank_pattern"].is_object() && cfg["rank_pattern"].empty());
  EXPECT_TRUE(cfg["base_model_name_or_path"].is_string());
  std::set<std::string> targets;
  for (const auto& t : cfg["target_modules"]) targets.insert(t.get<std::string>());
  EXPECT_EQ(targets, (std::set<std::string>{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                            "up_proj", "down_proj"}));
  nlohmann::json base_cfg =
      nlohmann::json::parse(ReadFile(dir + "/base/config.json"), nullptr, false);
  ASSERT_TRUE(base_cfg.is_object());
  EXPECT_FALSE(base_cfg.contains("quantization_config"));
  EXPECT_EQ(ReadFile(dir + "/base/tokenizer_vocab.json"),
            ReadFile(StoriesModelDir() + "/tokenizer_vocab.json"));

  const model::ModelConfig& config = dense->config();
  double worst = 0;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    for (const model::LinearModule& m : model::kLinearModules) {
      const std::string module = config.LayerPrefix(layer) + m.suffix;
      absl::StatusOr<Tensor> w = dense->ReadF32(module + ".weight");
      absl::StatusOr<Tensor> b0 = base->ReadF32(module + ".weight");
      const std::string key = "base_model.model." + module;
      absl::StatusOr<Tensor> a = (*adapter)->ReadAs(key + ".lora_A.weight", DType::kF32);
      absl::StatusOr<Tensor> b = (*adapter)->ReadAs(key + ".lora_B.weight", DType::kF32);
      ASSERT_TRUE(w.ok() && b0.ok() && a.ok() && b.ok()) << module;
      const int64_t rows = w->shape()[0], cols = w->shape()[1];
      ASSERT_EQ(a->shape(), (std::vector<int64_t>{want_rank, cols})) << module;
      ASSERT_EQ(b->shape(), (std::vector<int64_t>{rows, want_rank})) << module;
      const auto wd = w->data<float>(), bd = b0->data<float>(), ad = a->data<float>(),
                 ld = b->data<float>();
      double max_w = 0, max_diff = 0, max_ba = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          double ba = 0;
          for (int64_t k = 0; k < want_rank; ++k) ba += ld[r * want_rank + k] * ad[k * cols + c];
          max_w = std::max(max_w, std::abs(static_cast<double>(wd[r * cols + c])));
          max_ba = std::max(max_ba, std::abs(ba));
          max_diff = std::max(max_diff, std::abs(bd[r * cols + c] + ba - wd[r * cols + c]));
        }
      }
      EXPECT_GT(max_ba, 1e-3 * max_w) << module << ": the adapter is not empty";
      EXPECT_LT(max_diff, 1e-5 * max_w) << module;
      worst = std::max(worst, max_diff / max_w);
    }
  }
  std::fprintf(stderr, "peft r=%lld: max |base + B·A - W| / max |W| = %.3g\n",
               static_cast<long long>(want_rank), worst);
  // Every other tensor (embeddings, norms) as in the dense export.
  for (const SafetensorsReader* reader : dense->readers()) {
    for (const TensorInfo& info : reader->tensors()) {
      if (info.name.find("_proj.weight") != std::string::npos) continue;
      absl::StatusOr<Tensor> x = dense->ReadF32(info.name), y = base->ReadF32(info.name);
      ASSERT_TRUE(x.ok() && y.ok()) << info.name;
      EXPECT_TRUE(std::equal(x->data<float>().begin(), x->data<float>().end(),
                             y->data<float>().begin(), y->data<float>().end()))
          << info.name;
    }
  }
}

TEST(ExportPeft, BasePlusAdapterIsTheCompressedModel) {
  TempDir tmp;
  const std::string out = Compress(tmp, "out", " --rank 8");
  std::string log;
  const std::string dense = tmp.Join("dense"), full = tmp.Join("peft"), four = tmp.Join("peft4");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format dense --model ", out, " --out ", dense,
                                    " 2>&1"),
                       &log),
            0)
      << log;
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format peft --model ", out, " --out ", full,
                                    " 2>&1"),
                       &log),
            0)
      << log;
  ExpectPeftRebuildsDense(full, dense, 8);
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format peft --ft-rank 4 --model ", out,
                                    " --out ", four, " 2>&1"),
                       &log),
            0)
      << log;
  ExpectPeftRebuildsDense(four, dense, 4);
  // --ft-rank larger than the rank keeps the full rank.
  const std::string big = tmp.Join("peft64");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format peft --ft-rank 64 --model ", out,
                                    " --out ", big, " 2>&1"),
                       &log),
            0)
      << log;
  nlohmann::json cfg =
      nlohmann::json::parse(ReadFile(big + "/adapter/adapter_config.json"), nullptr, false);
  ASSERT_TRUE(cfg.is_object());
  EXPECT_EQ(cfg["r"], 8);
  // --ft-rank is for peft only.
  EXPECT_NE(RunCommand(absl::StrCat(Ctl(), " export --format hf --ft-rank 4 --model ", out,
                                    " --out ", tmp.Join("bad"), " 2>&1"),
                       &log),
            0);
  EXPECT_NE(log.find("--ft-rank"), std::string::npos) << log;
}

TEST(ExportPeft, LdlqCheckpointIsRefusedWithReason) {
  TempDir tmp;
  const std::string out = Compress(tmp, "out", " --method ldlq --q-bits 4");
  std::string log;
  EXPECT_NE(RunCommand(absl::StrCat(Ctl(), " export --format peft --model ", out, " --out ",
                                    tmp.Join("peft"), " 2>&1"),
                       &log),
            0);
  EXPECT_NE(log.find("--format peft needs L and R"), std::string::npos) << log;
  EXPECT_NE(log.find("ldlq"), std::string::npos) << log;
  // The base was written before the adapter turned out empty: removed again.
  EXPECT_FALSE(std::filesystem::exists(tmp.Join("peft"))) << "a failed export left files";
}

// A --target-bits checkpoint mixes CALDERA matrices (L·R) with LDLQ ones (none):
// the latter go into the base only, and base + B·A is still the compressed model.
TEST(ExportPeft, MatricesWithoutFactorsGoIntoTheBase) {
  TempDir tmp;
  const std::string out = Compress(tmp, "out", " --target-bits 3.2");
  std::string log;
  const std::string dense = tmp.Join("dense"), peft = tmp.Join("peft");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format dense --model ", out, " --out ", dense,
                                    " 2>&1"),
                       &log),
            0)
      << log;
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format peft --model ", out, " --out ", peft,
                                    " 2>&1"),
                       &log),
            0)
      << log;
  const nlohmann::json report = nlohmann::json::parse(ReadFile(out + "/report.json"));
  int with = 0, without = 0;
  for (const nlohmann::json& m : report["matrices"]) {
    (m["setting"].get<std::string>().rfind("caldera", 0) == 0 ? with : without)++;
  }
  EXPECT_GT(with, 0);
  EXPECT_GT(without, 0);
  std::unique_ptr<model::Checkpoint> d = Open(dense), base = Open(peft + "/base");
  absl::StatusOr<std::unique_ptr<SafetensorsReader>> adapter =
      SafetensorsReader::OpenFile(peft + "/adapter/adapter_model.safetensors");
  ASSERT_TRUE(d && base && adapter.ok());
  EXPECT_EQ((*adapter)->tensors().size(), 2u * static_cast<size_t>(with));
  for (int64_t layer = 0; layer < d->config().num_layers; ++layer) {
    for (const model::LinearModule& m : model::kLinearModules) {
      const std::string module = d->config().LayerPrefix(layer) + m.suffix;
      absl::StatusOr<Tensor> w = d->ReadF32(module + ".weight");
      absl::StatusOr<Tensor> b0 = base->ReadF32(module + ".weight");
      ASSERT_TRUE(w.ok() && b0.ok()) << module;
      const std::string key = "base_model.model." + module;
      std::vector<float> sum(b0->data<float>().begin(), b0->data<float>().end());
      if ((*adapter)->Find(key + ".lora_A.weight") != nullptr) {
        absl::StatusOr<Tensor> a = (*adapter)->ReadAs(key + ".lora_A.weight", DType::kF32);
        absl::StatusOr<Tensor> b = (*adapter)->ReadAs(key + ".lora_B.weight", DType::kF32);
        ASSERT_TRUE(a.ok() && b.ok()) << module;
        const int64_t k = a->shape()[0], cols = a->shape()[1], rows = b->shape()[0];
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            for (int64_t j = 0; j < k; ++j) {
              sum[r * cols + c] += b->data<float>()[r * k + j] * a->data<float>()[j * cols + c];
            }
          }
        }
      }
      float max_w = 0, max_diff = 0;
      for (size_t i = 0; i < sum.size(); ++i) {
        max_w = std::max(max_w, std::abs(w->data<float>()[i]));
        max_diff = std::max(max_diff, std::abs(sum[i] - w->data<float>()[i]));
      }
      EXPECT_LT(max_diff, 1e-5f * max_w) << module;
    }
  }
}

}  // namespace
}  // namespace caldera

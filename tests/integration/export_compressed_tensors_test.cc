// calderactl export --format compressed-tensors on stories260K compressed with
// --serve vllm: every packed linear dequantizes to the record's Q bit for bit
// and the adapter holds L and R exactly; what the format cannot hold, a
// checkpoint whose record disagrees with its config and an --out that already
// holds files are refused with messages naming them, and nothing is written.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/decompose/record.h"
#include "core/format/compressed_tensors.h"
#include "core/format/safetensors.h"
#include "core/io/random_access_source.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/subprocess.h"

namespace caldera {
namespace {

using testing::ReadFile;
using testing::RunCommand;
using testing::StoriesModelDir;
using testing::TempDir;
namespace fs = std::filesystem;

std::string Ctl() { return CALDERACTL_PATH; }

int Compress(const std::string& out, const std::string& extra, std::string* log) {
  return RunCommand(absl::StrCat(Ctl(), " compress --model ", StoriesModelDir(), " --calibration ",
                                 StoriesModelDir(), "/calibration.safetensors --out ", out,
                                 " --iters 1 --lplr-iters 1 --workers 2", extra, " 2>&1"),
                    log);
}

int Export(const std::string& model, const std::string& out, std::string* log,
           const std::string& extra = " --dtype f32") {
  return RunCommand(absl::StrCat(Ctl(), " export --format compressed-tensors --model ", model,
                                 " --out ", out, extra, " 2>&1"),
                    log);
}

std::vector<std::unique_ptr<SafetensorsReader>> OpenAll(const std::string& dir) {
  std::vector<std::unique_ptr<SafetensorsReader>> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    auto src = OpenMappedFile(e.path().string());
    EXPECT_TRUE(src.ok()) << src.status();
    auto r = SafetensorsReader::Open(*std::move(src));
    EXPECT_TRUE(r.ok()) << r.status();
    out.push_back(*std::move(r));
  }
  return out;
}

const SafetensorsReader* Holding(const std::vector<std::unique_ptr<SafetensorsReader>>& readers,
                                 const std::string& tensor) {
  for (const auto& r : readers) {
    if (r->Find(tensor) != nullptr) return r.get();
  }
  return nullptr;
}

TEST(ExportCompressedTensors, DequantizesToTheRecordsQBitForBit) {
  TempDir tmp;
  const std::string out = tmp.Join("c"), ct = tmp.Join("ct");
  std::string log;
  ASSERT_EQ(Compress(out, " --serve vllm --rank 4 --q-group-size 65536", &log), 0) << log;
  ASSERT_EQ(Export(out, ct, &log), 0) << log;
  const auto records = OpenAll(out);
  const auto packed = OpenAll(ct + "/base");
  const auto adapter = OpenAll(ct + "/adapter");
  ASSERT_EQ(adapter.size(), 1u);
  int checked = 0;
  for (int layer = 0; layer < 5; ++layer) {
    for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      const std::string prefix = absl::StrCat("model.layers.", layer, ".", m);
      const SafetensorsReader* rec = Holding(records, prefix + ".caldera.config");
      const SafetensorsReader* pq = Holding(packed, prefix + ".weight_packed");
      ASSERT_NE(rec, nullptr) << prefix;
      ASSERT_NE(pq, nullptr) << prefix;
      absl::StatusOr<decompose::RecordFactors> f = decompose::ReadRecordFactors(*rec, prefix);
      ASSERT_TRUE(f.ok()) << f.status();
      absl::StatusOr<Tensor> w = format::ReadPackQuantized(*pq, prefix);
      ASSERT_TRUE(w.ok()) << w.status();
      ASSERT_EQ(w->shape(), (std::vector<int64_t>{f->q.rows(), f->q.cols()}));
      for (int64_t r = 0; r < f->q.rows(); ++r) {
        for (int64_t c = 0; c < f->q.cols(); ++c) {
          ASSERT_EQ(w->data<float>()[r * f->q.cols() + c], f->q(r, c)) << prefix << " " << r;
        }
      }
      // lora_B = L, lora_A = R: the fp16 factors, exactly.
      const std::string key = "base_model.model." + prefix;
      absl::StatusOr<Tensor> b = adapter[0]->ReadAs(key + ".lora_B.weight", DType::kF32);
      absl::StatusOr<Tensor> a = adapter[0]->ReadAs(key + ".lora_A.weight", DType::kF32);
      ASSERT_TRUE(a.ok() && b.ok()) << key;
      ASSERT_EQ(b->shape(), (std::vector<int64_t>{f->l.rows(), 4}));
      for (int64_t r = 0; r < f->l.rows(); ++r) {
        for (int64_t k = 0; k < 4; ++k) ASSERT_EQ(b->data<float>()[r * 4 + k], f->l(r, k));
      }
      for (int64_t k = 0; k < 4; ++k) {
        for (int64_t c = 0; c < f->r.cols(); ++c) {
          ASSERT_EQ(a->data<float>()[k * f->r.cols() + c], f->r(k, c));
        }
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 35);
  const nlohmann::json config = nlohmann::json::parse(ReadFile(ct + "/base/config.json"));
  const nlohmann::json& qc = config["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "compressed-tensors");
  EXPECT_EQ(qc["config_groups"].size(), 1u);  // int4, one scale per row, symmetric
  EXPECT_EQ(qc["config_groups"]["group_0"]["targets"].size(), 35u);
  EXPECT_EQ(qc["ignore"], nlohmann::json::array({"lm_head"}));
  const nlohmann::json ac = nlohmann::json::parse(ReadFile(ct + "/adapter/adapter_config.json"));
  EXPECT_EQ(ac["r"], 4);
  EXPECT_EQ(ac["lora_alpha"], 4);
  // calderactl eval reads the export's base (our reader of the format).
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " eval --model ", ct, "/base --tokens ",
                                    StoriesModelDir(), "/eval.safetensors 2>&1"),
                       &log),
            0)
      << log;
}

TEST(ExportCompressedTensors, RefusesWhatItCannotWriteAndWritesNothing) {
  TempDir tmp;
  std::string log;
  // E8P Q with the Hadamard transform (the default compress).
  const std::string e8p = tmp.Join("e8p");
  ASSERT_EQ(Compress(e8p, " --rank 4", &log), 0) << log;
  EXPECT_NE(Export(e8p, tmp.Join("x1"), &log), 0);
  EXPECT_NE(log.find("model.layers.0.self_attn.q_proj"), std::string::npos) << log;
  EXPECT_NE(log.find("e8p"), std::string::npos) << log;
  EXPECT_NE(log.find("--serve vllm"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp.Join("x1")));

  const std::string served = tmp.Join("served");
  ASSERT_EQ(Compress(served, " --serve vllm --method ldlq --q-group-size 65536", &log), 0) << log;
  // bf16 cannot hold the fp16 scales.
  EXPECT_NE(Export(served, tmp.Join("x2"), &log, " --dtype bf16"), 0);
  EXPECT_NE(log.find("f16 or f32"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp.Join("x2")));
  // An --out that holds a file: refused, the file left alone.
  fs::create_directories(tmp.Join("x3"));
  std::ofstream(tmp.Join("x3/mine.txt")) << "keep";
  EXPECT_NE(Export(served, tmp.Join("x3"), &log), 0);
  EXPECT_NE(log.find("already holds files"), std::string::npos) << log;
  EXPECT_EQ(ReadFile(tmp.Join("x3/mine.txt")), "keep");
  EXPECT_FALSE(fs::exists(tmp.Join("x3/base")));
  // A record that disagrees with config.json's quantization_config.
  nlohmann::json config = nlohmann::json::parse(ReadFile(served + "/config.json"));
  config["quantization_config"]["modules"]["model.layers.2.mlp.up_proj"]["cols"] = 128;
  std::ofstream(served + "/config.json") << config.dump(2);
  EXPECT_NE(Export(served, tmp.Join("x4"), &log), 0);
  EXPECT_NE(log.find("model.layers.2.mlp.up_proj"), std::string::npos) << log;
  EXPECT_NE(log.find("disagrees"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp.Join("x4")));
  // A dense model has nothing to pack.
  EXPECT_NE(Export(StoriesModelDir(), tmp.Join("x5"), &log), 0);
  EXPECT_NE(log.find("no compressed linear"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(tmp.Join("x5")));
  // --serve vllm refuses a group that does not divide down_proj's 172 columns.
  EXPECT_NE(Compress(tmp.Join("g32"), " --serve vllm --rank 4 --q-group-size 32", &log), 0);
  EXPECT_NE(log.find("down_proj"), std::string::npos) << log;
  EXPECT_NE(log.find("--q-group-size"), std::string::npos) << log;
}

}  // namespace
}  // namespace caldera

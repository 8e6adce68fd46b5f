// calderactl compress (embedded: pipeline steps in-process, local storage) on the
// stories260K fixture, then eval and export of its output; bad inputs.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/fixtures.h"
#include "tests/support/subprocess.h"

namespace caldera {
namespace {

using testing::FixturePath;
using testing::ReadFile;
using testing::RunCommand;
using testing::StoriesModelDir;
using testing::Subprocess;
using testing::TempDir;

std::string Ctl() { return CALDERACTL_PATH; }

// Small settings so the whole job runs in seconds on the fixture.
std::string FastFlags() { return " --iters 1 --lplr-iters 1 --workers 2"; }

std::string CompressCmd(const std::string& model, const std::string& out,
                        const std::string& extra = "") {
  return absl::StrCat(Ctl(), " compress --model ", model, " --calibration ", StoriesModelDir(),
                      "/calibration.safetensors --out ", out, FastFlags(),
                      extra.find("--rank") == std::string::npos ? " --rank 8" : "", extra, " 2>&1");
}

// The JSON header of a safetensors file ({} when unreadable).
nlohmann::json SafetensorsHeader(const std::string& path) {
  const std::string bytes = ReadFile(path);
  if (bytes.size() < 8) return nlohmann::json::object();
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  if (8 + n > bytes.size()) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(bytes.substr(8, n), nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}

// Every compressed module of `report` is stored as a record only: no dense
// weight anywhere in the checkpoint, and its record tensors (the config JSON
// aside) hold the bits the report counts, give or take the 64-bit seed and
// side words the accounting adds.
void ExpectOutputIsCompressed(const std::string& out, const nlohmann::json& report) {
  nlohmann::json index =
      nlohmann::json::parse(ReadFile(out + "/model.safetensors.index.json"), nullptr, false);
  ASSERT_TRUE(index.is_object() && index["weight_map"].is_object());
  std::map<std::string, nlohmann::json> headers;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (headers.count(shard) == 0)
      headers[shard] = SafetensorsHeader(out + "/" + shard.get<std::string>());
  }
  int64_t shard_bytes = 0;
  for (const auto& [shard, header] : headers) {
    ASSERT_FALSE(header.empty()) << shard;
    shard_bytes += static_cast<int64_t>(std::filesystem::file_size(out + "/" + shard));
  }
  const nlohmann::json& total = index["metadata"]["total_size"];
  EXPECT_EQ(std::to_string(shard_bytes),
            total.is_string() ? total.get<std::string>() : total.dump());
  for (const auto& m : report["matrices"]) {
    const std::string name = m["name"].get<std::string>();
    EXPECT_FALSE(index["weight_map"].contains(name + ".weight"))
        << name << " kept its dense weight";
    int64_t record_bytes = 0;
    for (const auto& [shard, header] : headers) {
      EXPECT_FALSE(header.contains(name + ".weight")) << name << ".weight is in " << shard;
      for (const auto& [tensor, info] : header.items()) {
        if (tensor.rfind(name + ".caldera.", 0) != 0 || tensor == name + ".caldera.config")
          continue;
        record_bytes +=
            info["data_offsets"][1].get<int64_t>() - info["data_offsets"][0].get<int64_t>();
      }
    }
    const double reported = m["storage_bits"].get<double>() / 8;
    EXPECT_GT(record_bytes, 0) << name;
    EXPECT_LE(record_bytes, reported) << name;
    EXPECT_GE(record_bytes + 16, reported) << name;
  }
}

// calderactl eval's perplexity of `model` on `tokens` (default: the fixture's
// eval set); -1 (and a failed expectation) when eval fails.
double Perplexity(const std::string& model, const std::string& tokens = "") {
  std::string out;
  const int rc =
      RunCommand(absl::StrCat(Ctl(), " eval --json --model ", model, " --tokens ",
                              tokens.empty() ? StoriesModelDir() + "/eval.safetensors" : tokens,
                              " 2>/dev/null"),
                 &out);
  EXPECT_EQ(rc, 0) << out;
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  EXPECT_TRUE(j.is_object() && j["perplexity"].is_number()) << out;
  return j.is_object() && j["perplexity"].is_number() ? j["perplexity"].get<double>() : -1;
}

TEST(CompressIntegration, EmbeddedJobProducesLoadableCheckpointAndFullReport) {
  TempDir tmp;
  const std::string out = tmp.Join("out");
  std::string log;
  ASSERT_EQ(RunCommand(CompressCmd(StoriesModelDir(), out, " -o json"), &log), 0) << log;

  // report.json: every linear of every block (5 layers x 7).
  nlohmann::json report = nlohmann::json::parse(ReadFile(out + "/report.json"), nullptr, false);
  ASSERT_FALSE(report.is_discarded());
  ASSERT_EQ(report["matrices"].size(), 35u);
  for (const auto& m : report["matrices"]) {
    EXPECT_GT(m["bits_per_param"].get<double>(), 2.0) << m.dump();
    EXPECT_LT(m["weighted_relative_error"].get<double>(), 1.0) << m.dump();
  }
  EXPECT_EQ(report["totals"]["matrices"].get<int>(), 35);
  ExpectOutputIsCompressed(out, report);

  nlohmann::json config = nlohmann::json::parse(ReadFile(out + "/config.json"), nullptr, false);
  ASSERT_FALSE(config.is_discarded());
  EXPECT_EQ(config["quantization_config"]["format"], "caldera");
  EXPECT_FALSE(config["quantization_config"].contains("quant_method"));
  EXPECT_EQ(config["quantization_config"]["format_version"], 2);
  EXPECT_EQ(config["quantization_config"]["modules"].size(), 35u);
  EXPECT_FALSE(ReadFile(out + "/model.safetensors.index.json").empty());
  // Scratch removed, directories included.
  EXPECT_FALSE(std::filesystem::exists(out + "/.caldera-scratch")) << out;

  // Perplexity of the compressed model stays within a measured bound of the
  // original's. Measured (2 bits Q, 4 bits L/R, rank 8, 1 iteration, ~3.06
  // bits/param on a 260K-parameter model): original 3.667, compressed 15.85,
  // ratio 4.32. Bound: ratio < 5.
  const double base = Perplexity(StoriesModelDir());
  const double compressed = Perplexity(out);
  std::fprintf(stderr, "perplexity: original %.4f compressed %.4f ratio %.4f\n", base, compressed,
               compressed / base);
  EXPECT_GT(compressed, 0.0);
  EXPECT_LT(compressed / base, 5.0);

  // export --format dense gives the same model as a plain checkpoint.
  const std::string dense = tmp.Join("dense");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format dense --model ", out, " --out ", dense,
                                    " 2>&1"),
                       &log),
            0)
      << log;
  const double dense_ppl = Perplexity(dense);
  EXPECT_NEAR(dense_ppl, compressed, 1e-3 * compressed);

  // The tokenizer file travels with the checkpoint (compress and export).
  const std::string vocab = ReadFile(StoriesModelDir() + "/tokenizer_vocab.json");
  ASSERT_FALSE(vocab.empty());
  EXPECT_EQ(ReadFile(out + "/tokenizer_vocab.json"), vocab);
  EXPECT_EQ(ReadFile(dense + "/tokenizer_vocab.json"), vocab);

  // export --format hf --dtype bf16: bf16 linears, every other tensor as in
  // the input (float32 here), a config without quantization_config that says
  // bfloat16; its perplexity is the compressed model's up to bf16 rounding.
  const std::string hf = tmp.Join("hf");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format hf --dtype bf16 --model ", out,
                                    " --out ", hf, " 2>&1"),
                       &log),
            0)
      << log;
  nlohmann::json hf_config = nlohmann::json::parse(ReadFile(hf + "/config.json"), nullptr, false);
  ASSERT_TRUE(hf_config.is_object());
  EXPECT_FALSE(hf_config.contains("quantization_config"));
  EXPECT_EQ(hf_config["torch_dtype"], "bfloat16");
  EXPECT_EQ(ReadFile(hf + "/tokenizer_vocab.json"), vocab);
  nlohmann::json hf_index =
      nlohmann::json::parse(ReadFile(hf + "/model.safetensors.index.json"), nullptr, false);
  ASSERT_TRUE(hf_index.is_object());
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  const std::string norm = "model.layers.0.input_layernorm.weight";
  nlohmann::json layer0 =
      SafetensorsHeader(hf + "/" + hf_index["weight_map"][q].get<std::string>());
  EXPECT_EQ(layer0[q]["dtype"], "BF16") << layer0.dump();
  EXPECT_EQ(layer0[norm]["dtype"], "F32") << layer0.dump();
  const double hf_ppl = Perplexity(hf);
  EXPECT_NEAR(hf_ppl, compressed, 1e-2 * compressed);
  EXPECT_NE(RunCommand(absl::StrCat(Ctl(), " export --format hf --dtype int3 --model ", out,
                                    " --out ", tmp.Join("bad"), " 2>&1"),
                       &log),
            0);
  EXPECT_NE(log.find("--dtype int3 is unknown"), std::string::npos) << log;
}

// Every family we accept round-trips: make-test-model -> compress -> eval ->
// export dense and hf -> eval, with perplexities that agree (hf in the model's
// own dtype: exact for float32, within bf16/f16 rounding otherwise). Qwen2's
// q/k/v biases stay with the uncompressed tensors, in another shard than the
// records; such checkpoints used to compress and then fail to load ("no
// CALDERA record").
struct Family {
  const char* name;
  const char* flags;
  double hf_tolerance;
};

class FamilyRoundTrip : public ::testing::TestWithParam<Family> {};

TEST_P(FamilyRoundTrip, CompressEvalExportEval) {
  const Family& fam = GetParam();
  TempDir tmp;
  const std::string model = tmp.Join("model"), tokens = tmp.Join("tokens.safetensors");
  std::string log;
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " make-test-model --out ", model, " ", fam.flags,
                                    " --hidden 64 --intermediate 176 --layers 2 --heads 4"
                                    " --kv-heads 2 --vocab 300 --tokens-out ",
                                    tokens, " --samples 8 --seq-len 48 2>&1"),
                       &log),
            0)
      << log;
  const std::string out = tmp.Join("out");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " compress --model ", model, " --calibration ", tokens,
                                    " --out ", out, FastFlags(), " --rank 8 2>&1"),
                       &log),
            0)
      << log;
  const double compressed = Perplexity(out, tokens);
  ASSERT_GT(compressed, 1.0);
  for (const char* format : {"dense", "hf"}) {
    const std::string exported = tmp.Join(format);
    ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format ", format, " --model ", out,
                                      " --out ", exported, " 2>&1"),
                         &log),
              0)
        << log;
    const double tol = std::string(format) == "dense" ? 1e-3 : fam.hf_tolerance;
    EXPECT_NEAR(Perplexity(exported, tokens), compressed, tol * compressed) << format;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Families, FamilyRoundTrip,
    ::testing::Values(
        Family{"LlamaTiedF32", "--arch LlamaForCausalLM --dtype f32", 1e-3},
        Family{"MistralUntiedBf16TwoShards",
               "--arch MistralForCausalLM --dtype bf16 --untied --shards 2", 2e-2},
        Family{"Qwen2BiasF16ThreeShards",
               "--arch Qwen2ForCausalLM --bias --dtype f16 --untied --shards 3", 1e-2},
        Family{"Llama3RopeBf16", "--arch LlamaForCausalLM --llama3-rope --dtype bf16", 2e-2},
        Family{
            "MixtralBf16TwoShards",
            "--arch MixtralForCausalLM --experts 4 --experts-per-token 2 --dtype bf16 --shards 2",
            2e-2},
        Family{"Qwen3MoeF32",
               "--arch Qwen3MoeForCausalLM --experts 4 --moe-intermediate 48 --untied", 1e-3}),
    [](const ::testing::TestParamInfo<Family>& p) { return std::string(p.param.name); });

// Sequential calibration (the default) calibrates each layer on the outputs
// of the compressed layers before it. Measured on the fixture with 2-bit
// uniform LDLQ (act order): perplexity 29.95 (original) -> 27.59 (sequential),
// ratio 0.92 (at 3 bits, since the grid search and no Hadamard, 5.71 -> 5.68
// only);
// if calibrate(l) did not run the compressed block l-1, both would be equal.
TEST(CompressIntegration, SequentialCalibrationBeatsOriginalAtTwoBits) {
  TempDir tmp;
  std::string log;
  double ppl[2];
  int i = 0;
  for (const char* mode : {"original", "sequential"}) {
    const std::string out = tmp.Join(mode);
    ASSERT_EQ(RunCommand(CompressCmd(StoriesModelDir(), out,
                                     absl::StrCat(" --method ldlq --quantizer uniform --q-bits 2"
                                                  " --calibration-mode ",
                                                  mode)),
                         &log),
              0)
        << log;
    ppl[i++] = Perplexity(out);
  }
  std::fprintf(stderr, "ldlq uniform 2-bit perplexity: original %.3f sequential %.3f\n", ppl[0],
               ppl[1]);
  EXPECT_LT(ppl[1], 0.95 * ppl[0]);
}

// Sharded calibration (--calibration-shards N): the shards' Hessians sum to
// the unsharded ones up to summation order, so the compressed model's
// perplexity is the same. Measured on the fixture (rank 8, sequential):
// 9.4554 for N = 1, 2 and 3 (the checkpoints' tensors were byte-identical).
TEST(CompressIntegration, ShardedCalibrationGivesTheUnshardedPerplexity) {
  TempDir tmp;
  std::string log;
  double ppl[3];
  for (int n = 1; n <= 3; ++n) {
    const std::string out = tmp.Join(absl::StrCat("n", n));
    ASSERT_EQ(
        RunCommand(CompressCmd(StoriesModelDir(), out, absl::StrCat(" --calibration-shards ", n)),
                   &log),
        0)
        << log;
    ppl[n - 1] = Perplexity(out);
  }
  std::fprintf(stderr, "perplexity with 1/2/3 calibration shards: %.6f %.6f %.6f\n", ppl[0], ppl[1],
               ppl[2]);
  EXPECT_NEAR(ppl[1], ppl[0], 1e-3 * ppl[0]);
  EXPECT_NEAR(ppl[2], ppl[0], 1e-3 * ppl[0]);
}

TEST(CompressIntegration, MoreShardsThanSamplesIsRejected) {
  TempDir tmp;
  std::string log;
  int rc = RunCommand(CompressCmd(StoriesModelDir(), tmp.Join("out"), " --calibration-shards 200"),
                      &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("--calibration-shards 200 is more than the 128 samples"), std::string::npos)
      << log;
  rc = RunCommand(CompressCmd(StoriesModelDir(), tmp.Join("out"), " --calibration-shards 0"), &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("--calibration-shards: Value 0 not in range 1 to 256"), std::string::npos)
      << log;
}

// LDLQ with a 4-bit E8P Q gets per-row scales: measured on the fixture,
// perplexity 6.98 at 4.13 bits with one scale per matrix -> 4.17 at 4.34 bits.
TEST(CompressIntegration, FourBitE8PLdlqWithRowScalesIsCloseToTheOriginal) {
  TempDir tmp;
  std::string log;
  const std::string out = tmp.Join("out");
  ASSERT_EQ(RunCommand(CompressCmd(StoriesModelDir(), out, " --method ldlq --q-bits 4"), &log), 0)
      << log;
  const double ppl = Perplexity(out);
  std::fprintf(stderr, "ldlq e8p 4-bit perplexity %.3f\n", ppl);
  EXPECT_LT(ppl, 4.6);
}

// --target-bits decomposes per matrix a window of candidates around the
// budget and allocates per block (job/bit_allocation.h): the average stays
// within the budget while bits move between matrices (some matrix above it),
// the report names each choice, config.json says "mixed", and the result
// beats the plain uniform 3-bit LDLQ (3.25 bits here, one of the candidates).
TEST(CompressIntegration, TargetBitsAllocatesPerBlockWithinTheBudget) {
  TempDir tmp;
  std::string log;
  const std::string out = tmp.Join("budget");
  ASSERT_EQ(RunCommand(CompressCmd(StoriesModelDir(), out, " --target-bits 3.5"), &log), 0) << log;
  const nlohmann::json report =
      nlohmann::json::parse(ReadFile(out + "/report.json"), nullptr, false);
  ASSERT_TRUE(report.is_object() && report["matrices"].is_array()) << report.dump();
  std::set<std::string> settings;
  double max_bits = 0;
  std::map<int, std::pair<double, double>> block_bits;  // layer -> (Σ bits, Σ params)
  for (const nlohmann::json& m : report["matrices"]) {
    ASSERT_TRUE(m["bits_per_param"].is_number() && m["setting"].is_string()) << m.dump();
    const double b = m["bits_per_param"].get<double>();
    max_bits = std::max(max_bits, b);
    const double params = m["rows"].get<double>() * m["cols"].get<double>();
    block_bits[m["layer"].get<int>()].first += b * params;
    block_bits[m["layer"].get<int>()].second += params;
    const std::string setting = m["setting"].get<std::string>();
    settings.insert(setting.substr(0, setting.find(' ')));
    if (setting.rfind("caldera r", 0) == 0) {
      EXPECT_EQ(setting.substr(9, setting.find(' ', 9) - 9), std::to_string(m["rank"].get<int>()))
          << m.dump();
    } else {
      EXPECT_EQ(m["rank"].get<int>(), 0) << m.dump();
    }
  }
  // Bits moved: some matrix is above the budget, every block within it.
  EXPECT_GT(max_bits, 3.5);
  for (const auto& [layer, bp] : block_bits) {
    EXPECT_LE(bp.first / bp.second, 3.5 + 1e-9) << "block " << layer;
  }
  EXPECT_EQ(settings.size(), 2u) << "expected both ldlq and caldera choices";
  const double bits = report["totals"]["bits_per_param"].get<double>();
  EXPECT_GT(bits, 3.25);
  EXPECT_LE(bits, 3.5);
  const nlohmann::json config =
      nlohmann::json::parse(ReadFile(out + "/config.json"), nullptr, false);
  EXPECT_EQ(config["quantization_config"]["method"], "mixed") << config.dump();
  EXPECT_EQ(config["quantization_config"]["target_bits"], 3.5) << config.dump();

  const std::string plain = tmp.Join("uniform3");
  ASSERT_EQ(RunCommand(CompressCmd(StoriesModelDir(), plain,
                                   " --method ldlq --quantizer uniform --q-bits 3"),
                       &log),
            0)
      << log;
  const double ppl_budget = Perplexity(out), ppl_plain = Perplexity(plain);
  std::fprintf(stderr, "--target-bits 3.5: %.3f bits, perplexity %.3f; uniform 3-bit %.3f\n", bits,
               ppl_budget, ppl_plain);
  EXPECT_LT(ppl_budget, 0.995 * ppl_plain);

  // 2.0: every candidate stores more (E8P's scales and padding).
  int rc = RunCommand(CompressCmd(StoriesModelDir(), tmp.Join("low"), " --target-bits 2"), &log);
  EXPECT_NE(rc, 0) << log;
  EXPECT_NE(log.find("raise --target-bits"), std::string::npos) << log;
  rc = RunCommand(CompressCmd(StoriesModelDir(), tmp.Join("nan"), " --target-bits 9"), &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("--target-bits 9 is out of range"), std::string::npos) << log;
}

TEST(CompressIntegration, MissingModelIsInvalidInputWithMessage) {
  TempDir tmp;
  std::string log;
  const int rc = RunCommand(CompressCmd(tmp.Join("no-such-model"), tmp.Join("out")), &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("no-such-model"), std::string::npos) << log;
  EXPECT_TRUE(ReadFile(tmp.Join("out/model.safetensors.index.json")).empty());
}

// Issue 35: `compress --model M --calibration C --out O` runs on the bundled
// model (a fixed default rank of 64 was refused: k_proj is 32 x 64); each
// matrix gets min(m, n) / 16, recorded in report.json.
TEST(CompressIntegration, TheDefaultSettingsRunOnTheBundledModel) {
  TempDir tmp;
  const std::string out = tmp.Join("out");
  std::string log;
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " compress --model ", StoriesModelDir(),
                                    " --calibration ", StoriesModelDir(),
                                    "/calibration.safetensors --out ", out, FastFlags(), " 2>&1"),
                       &log),
            0)
      << log;
  nlohmann::json report = nlohmann::json::parse(ReadFile(out + "/report.json"), nullptr, false);
  ASSERT_FALSE(report.is_discarded());
  ASSERT_EQ(report["matrices"].size(), 35u);
  for (const auto& m : report["matrices"]) {
    const int64_t thinner = std::min(m["rows"].get<int64_t>(), m["cols"].get<int64_t>());
    EXPECT_EQ(m["rank"].get<int64_t>(), thinner / 16) << m.dump();
  }
}

TEST(CompressIntegration, RankLargerThanMatrixIsRejected) {
  TempDir tmp;
  std::string log;
  const int rc = RunCommand(CompressCmd(StoriesModelDir(), tmp.Join("out"), " --rank 100"), &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("--rank 100 is larger than"), std::string::npos) << log;
}

TEST(CompressIntegration, UnknownBitsAreRejected) {
  TempDir tmp;
  std::string log;
  const int rc = RunCommand(CompressCmd(StoriesModelDir(), tmp.Join("out"), " --q-bits 7"), &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("--q-bits 7"), std::string::npos) << log;
}

TEST(CompressIntegration, TruncatedSafetensorsIsRejected) {
  TempDir tmp;
  const std::string model = tmp.Join("model");
  ASSERT_EQ(RunCommand(absl::StrCat("mkdir -p ", model, " && cp ", StoriesModelDir(),
                                    "/config.json ", model, "/ && head -c 1000 ", StoriesModelDir(),
                                    "/model.safetensors > ", model, "/model.safetensors")),
            0);
  std::string log;
  const int rc = RunCommand(CompressCmd(model, tmp.Join("out")), &log);
  EXPECT_EQ(rc, 2) << log;
  EXPECT_NE(log.find("model.safetensors"), std::string::npos) << log;
}

// Ctrl-C (SIGINT) while the job runs: the job is cancelled (exit 4), and the
// run leaves nothing behind: no scratch under <out>, no state directory in
// TMPDIR. (The signal used to land on an OpenBLAS thread started before main
// and kill the process outright, leaving both behind.)
TEST(CompressIntegration, SigintCancelsWithExitFourAndLeavesNothingBehind) {
  for (const int sig : {SIGINT, SIGTERM}) {
    TempDir tmp;
    const std::string out = tmp.Join("out"), state = tmp.Join("tmp");
    std::filesystem::create_directories(state);
    absl::StatusOr<Subprocess> p = Subprocess::Start(
        {"/usr/bin/env", "TMPDIR=" + state, Ctl(), "compress", "--model", StoriesModelDir(),
         "--calibration", StoriesModelDir() + "/calibration.safetensors", "--out", out, "--rank",
         "8", "--workers", "2"});
    ASSERT_TRUE(p.ok()) << p.status();
    // Wait until tasks have written scratch, so there is something to clean.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!std::filesystem::exists(out + "/.caldera-scratch") &&
           std::chrono::steady_clock::now() < deadline) {
      const int early = p->Wait(std::chrono::milliseconds(20));
      ASSERT_EQ(early, -1) << "calderactl ended before any task ran, wait status " << early;
    }
    ASSERT_TRUE(std::filesystem::exists(out + "/.caldera-scratch"));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    p->Signal(sig);
    const int status = p->Wait(std::chrono::seconds(120));
    ASSERT_TRUE(WIFEXITED(status)) << "signal " << sig << ": wait status " << status
                                   << (WIFSIGNALED(status) ? " (killed by the signal)" : "");
    EXPECT_EQ(WEXITSTATUS(status), 4) << "signal " << sig;
    EXPECT_FALSE(std::filesystem::exists(out + "/.caldera-scratch")) << "signal " << sig;
    EXPECT_FALSE(std::filesystem::exists(out + "/model.safetensors.index.json"));
    std::vector<std::string> left;
    for (const auto& e : std::filesystem::directory_iterator(state)) {
      left.push_back(e.path().filename().string());
    }
    EXPECT_TRUE(left.empty()) << "signal " << sig << ": left in TMPDIR: " << left.front();
  }
}

// A whole job with a residual-initialised TT-LoRA adapter per module: the
// report counts adapter parameters and every adapter lowers its module's
// weighted error; the checkpoint keeps each adapter's config with its cores,
// evaluates with the adapters applied (better than the same job without them:
// the adapters do not change Q, L, R) and exports to a dense model with the
// same perplexity.
TEST(CompressIntegration, TtLoraJobEvaluatesAndExportsDense) {
  TempDir tmp;
  const std::string out = tmp.Join("out"), plain = tmp.Join("plain");
  std::string log;
  ASSERT_EQ(RunCommand(CompressCmd(StoriesModelDir(), out,
                                   " --rank 4 --q-bits 2 --ttlora-rank 4 --ttlora-init residual"),
                       &log),
            0)
      << log;
  ASSERT_EQ(RunCommand(CompressCmd(StoriesModelDir(), plain, " --rank 4 --q-bits 2"), &log), 0)
      << log;
  nlohmann::json report = nlohmann::json::parse(ReadFile(out + "/report.json"), nullptr, false);
  ASSERT_FALSE(report.is_discarded());
  ASSERT_EQ(report["matrices"].size(), 35u);
  for (const auto& m : report["matrices"]) {
    ASSERT_TRUE(m.contains("ttlora_params")) << m.dump();
    EXPECT_GT(m["ttlora_params"].get<int64_t>(), 0) << m.dump();
    EXPECT_LT(m["ttlora_weighted_error_after"].get<double>(),
              m["ttlora_weighted_error_before"].get<double>())
        << m.dump();
  }
  nlohmann::json index =
      nlohmann::json::parse(ReadFile(out + "/model.safetensors.index.json"), nullptr, false);
  ASSERT_TRUE(index.is_object());
  std::set<std::string> adapters, shards;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    const size_t at = tensor.find(".ttlora.core.0");
    if (at == std::string::npos) continue;
    adapters.insert(tensor.substr(0, at));
    shards.insert(shard.get<std::string>());
  }
  EXPECT_EQ(adapters.size(), 35u);
  size_t configs = 0;
  for (const std::string& shard : shards) {
    const nlohmann::json header = SafetensorsHeader(out + "/" + shard);
    if (!header.contains("__metadata__")) continue;
    for (const auto& [key, value] : header["__metadata__"].items()) {
      if (key.rfind("ttlora_config.", 0) == 0 && adapters.count(key.substr(14)) == 1) ++configs;
    }
  }
  EXPECT_EQ(configs, 35u) << "every adapter's config is kept in its shard";

  // Measured: 11.5 with the adapters against 13.0 without at these fast
  // settings (original 3.67).
  const double with_adapters = Perplexity(out);
  const double without = Perplexity(plain);
  EXPECT_LT(with_adapters, 0.93 * without) << with_adapters << " " << without;
  const std::string dense = tmp.Join("dense");
  ASSERT_EQ(RunCommand(absl::StrCat(Ctl(), " export --format dense --model ", out, " --out ", dense,
                                    " 2>&1"),
                       &log),
            0)
      << log;
  EXPECT_NEAR(Perplexity(dense), with_adapters, 1e-3 * with_adapters);
}

}  // namespace
}  // namespace caldera
